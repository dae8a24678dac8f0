"""Shared fixtures. The repository's tests run against the reference solutions/mlpipe."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

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
LONG_FIRST = (
    "tests/e2e/test_both_ways.py",
    "tests/e2e/test_week1_class.py",
    # the slow tier's longest units, longest first (measured with --durations)
    "tests/e2e/test_shard_class.py",
    "tests/e2e/test_fresh_clone.py",
    "tests/e2e/test_handout.py",
    "tests/e2e/test_self_grading.py",
    "tests/e2e/test_lessons.py",
    "tests/e2e/test_airflow.py",
    "tests/mlpipe/test_rollout.py",
    "tests/e2e/test_setup.py",
    "tests/mlpipe/test_scale.py",
)
#: Files whose tests share no module fixture: under ``--dist loadgroup`` (``make
#: test-slow``) each of their tests is a unit of its own, spread over the workers;
#: every other file stays one unit (its module fixtures run once).
SPREAD = ("tests/e2e/test_lessons.py", "tests/e2e/test_mistakes.py")
#: The mistakes go last: many short units that fill the workers' ends evenly.
LAST = ("tests/e2e/test_mistakes.py",)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    """Order the tests longest file first (:data:`LONG_FIRST`, then the rest as collected,
    then :data:`LAST`) and give each file one ``xdist_group`` unless it is in :data:`SPREAD`."""

    def rank(path: str) -> int:
        if path in LAST:
            return len(LONG_FIRST) + 1
        return LONG_FIRST.index(path) if path in LONG_FIRST else len(LONG_FIRST)

    files = {item: item.nodeid.split("::", 1)[0] for item in items}
    items.sort(key=lambda item: rank(files[item]))  # stable: every other file keeps its place
    for item, path in files.items():
        if path not in SPREAD:
            item.add_marker(pytest.mark.xdist_group(path))


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
