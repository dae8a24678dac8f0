"""Shared fixtures of the week 3 component tests.

These tests import ``mlpipe`` as installed: in your checkout that is your own
``labs/mlpipe``. Run them with ``course check 3`` (or ``pytest labs/week03/tests``).
Every test uses its own MLflow store (an SQLite file in a temporary folder) and
checks the results by querying MLflow itself. The course's test kit
(``autograder/testkit.py``) provides the markers, the empty store each test copies
(MLflow's tables are made once a session) and runs the commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from autograder.testkit import (
    assert_ran,
    copy_store,
    free_port,
    iris_frame,
    mlflow_client,
    pipeline_dir,
    pipeline_env,
    run_mlpipe,
    sqlite_uri,
    stop_process,
    wait_http,
)

pytest_plugins = ("autograder.testkit",)

#: The functions each task asks for (a test of the task needs at least one of them).
#: While all of a task's functions are still the released stubs, the course's test
#: kit fails its tests at once, before their fixtures, saying which to write.
TASK_FUNCTIONS = {
    1: (
        "track.tracking_uri",
        "track.check_reachable",
        "track.log_training_run",
    ),
    2: ("track.tune",),
    3: (
        "track.register",
        "track.load_by_alias",
    ),
}

#: The folder holding the mlpipe package under test (labs/ or solutions/).
PIPELINE_DIR = pipeline_dir()
#: Trials in the searches the tests run (small, to stay fast).
N_TRIALS = 4
MODEL = "iris-classifier"
__all__ = ["iris_frame", "sqlite_uri"]  # the kit's, for the test files
#: The tracking server's environment: telemetry off, and no job runner (its seven
#: worker processes, each importing MLflow, would slow the tests down to a crawl).
SERVER_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


def write_project(home: Path, **track: object) -> Path:
    """A project folder with processed data and a params.yaml; returns params.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    iris_frame().to_csv(home / "iris.csv", index=False)
    params = yaml.safe_load((PIPELINE_DIR / "params.yaml").read_text())
    params["track"] = {**params.get("track", {}), "n_trials": N_TRIALS, **track}
    (home / "params.yaml").write_text(yaml.safe_dump(params))
    return home / "params.yaml"


def run_tune(home: Path, tracking_uri: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m mlpipe tune`` in ``home`` (MLPIPE_HOME too)."""
    extra = {"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {}
    env = pipeline_env(MLPIPE_HOME=str(home), **extra)
    return run_mlpipe("tune", "--params", "params.yaml", "--data", "iris.csv", cwd=home, env=env)


@pytest.fixture(scope="session")
def tuned(tmp_path_factory, empty_store) -> tuple[Path, mlflow.MlflowClient]:
    """A project on which ``python -m mlpipe tune`` ran, and a client of its store."""
    home = tmp_path_factory.mktemp("tuned")
    write_project(home)
    copy_store(empty_store, home)
    assert_ran(run_tune(home), cwd=home)
    return home, mlflow_client(home)


@pytest.fixture()
def store(tmp_path, monkeypatch, empty_store) -> Path:
    """An empty project folder used as MLPIPE_HOME, MLflow pointed at its SQLite store."""
    copy_store(empty_store, tmp_path)
    monkeypatch.setenv("MLPIPE_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield tmp_path
    if mlflow.active_run():
        mlflow.end_run()


@pytest.fixture()
def mlflow_server(tmp_path, empty_store):
    """A real ``mlflow server`` on loopback with its own SQLite store; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    backend = copy_store(empty_store, tmp_path, "server.db", artifacts="mlflow-artifacts:/0")
    output = tmp_path / "server.log"
    with open(output, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                "--backend-store-uri", backend,
                "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1",
            ],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, **SERVER_ENV),
        )  # fmt: skip
    try:
        wait_http(url + "/health", proc, output, seconds=90)
        yield url
    finally:
        stop_process(proc)
