"""Shared fixtures. The repository's tests run against the reference solutions/mlpipe."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
LABS = REPO / "labs"

# The reference package comes first, before the student's labs/mlpipe that the
# editable install exposes.
if str(SOLUTIONS) not in sys.path:
    sys.path.insert(0, str(SOLUTIONS))

from autograder import skip_iri_grammar  # noqa: E402

skip_iri_grammar()  # what the `course` entry points do: nbformat imports 2 s faster


def run_module(*args: str, cwd: Path, pythonpath: Path | None = None, timeout: int = 300):
    """Run ``python -m ARGS`` in a fresh process; PYTHONPATH is ``pythonpath`` only."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


#: The files whose one grading run takes minutes: they start first, one per xdist worker,
#: so that the rest of the tier fills the time beside them (``make test`` passes
#: ``--no-loadscope-reorder``, which keeps this order instead of xdist's own).
LONG_FIRST = ("tests/e2e/test_both_ways.py", "tests/e2e/test_week1_class.py")


def pytest_collection_modifyitems(config, items) -> None:
    """Put the tests of :data:`LONG_FIRST` first, in that order; keep the rest as collected."""

    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONG_FIRST.index(path) if path in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: every other file keeps its place
