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


AIRFLOW_RUNNER = REPO / "tests" / "airflow_runner.py"


def airflow_env(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    """An environment for Airflow in ``home`` (SQLite there, no examples) reading ``dags``.

    Its Python imports the reference ``mlpipe`` (``PYTHONPATH``), telemetry off.
    """
    from autograder.testkit import pipeline_env

    return pipeline_env(
        None,
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__USAGE_DATA_COLLECTION__ENABLED="False",
        **extra,
    )


def run_airflow(*args: str, env: dict[str, str], cwd: Path, timeout: int = 900) -> dict:
    """Run ``tests/airflow_runner.py ARGS``; return the JSON it printed last.

    A failure shows the exit code and the last lines of the runner's output.
    """
    import json
    import subprocess

    cmd = [sys.executable, str(AIRFLOW_RUNNER), *args]
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
    assert proc.returncode == 0 and found, (
        f"airflow_runner {args} exited {proc.returncode}:\n{tail}"
    )
    return json.loads(found[-1].removeprefix("RESULT "))
