"""Shared fixtures of the week 3 component tests.

These tests import ``mlpipe`` as installed: in your checkout that is your own
``labs/mlpipe``. Run them with ``course check 3`` (or ``pytest labs/week03/tests``).
Every test uses its own MLflow store (an SQLite file in a temporary folder) and
checks the results by querying MLflow itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_iris

import mlpipe

#: The folder holding the mlpipe package under test (labs/ or solutions/).
PIPELINE_DIR = Path(mlpipe.__file__).resolve().parents[1]
#: Trials in the searches the tests run (small, to stay fast).
N_TRIALS = 4
MODEL = "iris-classifier"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n): how many points the test is worth")
    config.addinivalue_line("markers", "task(k): the lab task the test belongs to")
    config.addinivalue_line(
        "markers", "timeout(seconds): a longer limit for a slow test (pytest-timeout)"
    )


def iris_frame() -> pd.DataFrame:
    """The processed Iris data (built here, so week 3 does not depend on week 2)."""
    iris = load_iris(as_frame=True)
    df = iris.data.copy()
    df.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    df["species"] = iris.target_names[iris.target].astype(str)
    return df


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
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PIPELINE_DIR), env.get("PYTHONPATH")]))
    env.update(MLPIPE_HOME=str(home), MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return subprocess.run(
        [sys.executable, "-m", "mlpipe", "tune", "--params", "params.yaml", "--data", "iris.csv"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def sqlite_uri(home: Path) -> str:
    return f"sqlite:///{home / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _fresh_tracking_env():
    """``mlflow.set_tracking_uri`` exports MLFLOW_TRACKING_URI; keep it from leaking between tests."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def tuned(tmp_path_factory) -> tuple[Path, mlflow.MlflowClient]:
    """A project on which ``python -m mlpipe tune`` ran, and a client of its store."""
    home = tmp_path_factory.mktemp("tuned")
    write_project(home)
    proc = run_tune(home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return home, mlflow.MlflowClient(tracking_uri=sqlite_uri(home), registry_uri=sqlite_uri(home))


@pytest.fixture()
def store(tmp_path, monkeypatch) -> Path:
    """An empty project folder used as MLPIPE_HOME, MLflow pointed at its SQLite store."""
    monkeypatch.setenv("MLPIPE_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield tmp_path
    if mlflow.active_run():
        mlflow.end_run()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def mlflow_server(tmp_path):
    """A real ``mlflow server`` on loopback with its own SQLite store; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1",
        ],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        env=dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "mlflow server did not start:\n" + (tmp_path / "server.log").read_text()
                )
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
