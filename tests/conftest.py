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
