"""Shared fixtures of the week 5 component tests.

These tests import ``mlpipe`` as installed: in your checkout that is your own
``labs/mlpipe``. Run them with ``course check 5`` (or ``pytest labs/week05/tests``).
A model is registered (with plain MLflow, so week 5 does not depend on your week 3)
in an SQLite store in a temporary folder under the alias ``champion``; the app is
tested in-process with FastAPI's test client and as a real uvicorn server on loopback.
The course's test kit (``autograder/testkit.py``) provides the markers, the empty
MLflow store the registry starts from (its tables are made once a session), reading
a Dockerfile and linting it.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder import testkit
from autograder.testkit import (
    copy_store,
    docker_cmd,
    dockerfile_instructions,
    free_port,
    iris_frame,
    pipeline_dir,
    pipeline_env,
    register_model,
    sqlite_uri,
    stop_process,
    tool,
)

pytest_plugins = ("autograder.testkit",)

#: The functions each task asks for (a test of the task needs at least one of them).
#: While all of a task's functions are still the released stubs, the course's test
#: kit fails its tests at once, before their fixtures, saying which to write.
TASK_FUNCTIONS = {
    1: (
        "serve.resolve_model",
        "serve.row_schema",
    ),
    2: (
        "serve.load_model",
        "serve.write",
        "serve.ready",
        "serve.predict",
        "serve.predict_batch",
        "serve.log_records",
    ),
    3: (
        "serve.log_records",
        "serve.write",
        "serve.predict",
    ),
    4: (
        "export.feature_matrix",
        "export.score_frame",
        "export.to_onnx",
        "export.check_parity",
    ),
}

#: The folder holding the mlpipe package under test (labs/ or solutions/).
PIPELINE_DIR = pipeline_dir()
DOCKERFILE = PIPELINE_DIR / "docker" / "serve.Dockerfile"
COMPOSE = PIPELINE_DIR / "compose.yaml"
MODEL = "iris-classifier"
FEATURES = list(testkit.FEATURES)
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = {"sepal_length": 6.9, "sepal_width": 3.1, "petal_length": 5.8, "petal_width": 2.2}
#: The kit's, for the test files.
__all__ = ["docker_cmd", "dockerfile_instructions", "free_port", "iris_frame", "sqlite_uri", "tool"]


@pytest.fixture(scope="session")
def registry(tmp_path_factory, empty_store) -> Path:
    """A project folder whose SQLite MLflow store has ``iris-classifier@champion``."""
    home = tmp_path_factory.mktemp("registry")
    copy_store(empty_store, home)
    register_model(home)
    return home


def make_settings(registry: Path, log: Path, **overrides):
    from mlpipe.serve import Settings

    return Settings(tracking_uri=sqlite_uri(registry), inference_log=log, **overrides)


def wait_loaded(app, seconds: float = 60) -> None:
    """Wait for the background load of ``app``'s model."""
    assert app.state.serve.loaded.wait(seconds), "the model did not load in time"
    assert app.state.serve.model is not None, app.state.serve.error


@pytest.fixture(scope="session")
def app_client(registry, tmp_path_factory):
    """``(app, client, log_path)``: the app in-process, its model loaded."""
    from fastapi.testclient import TestClient

    from mlpipe.serve import create_app

    log = tmp_path_factory.mktemp("log") / "inference.jsonl"
    app = create_app(make_settings(registry, log, max_batch=50))
    with TestClient(app) as client:
        wait_loaded(app)
        yield app, client, log


def read_log(path: Path) -> list[dict]:
    """Every line of an inference log, parsed (a half-written line fails the test)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    assert not text or text.endswith("\n"), "the inference log ends with a half-written line"
    return [json.loads(line) for line in text.splitlines()]


def serve_env(registry: Path, log: Path, **extra: str) -> dict[str, str]:
    """Environment of a server process: the mlpipe under test, the temp store and log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPIPE_SERVE_")}
    return pipeline_env(
        env,
        MLPIPE_HOME=str(registry),
        MLPIPE_SERVE_TRACKING_URI=sqlite_uri(registry),
        MLPIPE_SERVE_INFERENCE_LOG=str(log),
        **extra,
    )


@dataclass
class Server:
    """A server process on loopback."""

    url: str
    log: Path
    output: Path
    proc: subprocess.Popen


def wait_ready(server: Server, seconds: float = 90) -> None:
    """Poll ``/ready`` until it answers 200; fail with the server's last output otherwise."""
    __tracebackhide__ = True
    testkit.wait_http(server.url + "/ready", server.proc, server.output, seconds)


def start_server(cmd: list[str], env: dict[str, str], log: Path, port: int, cwd: Path) -> Server:
    output = log.parent / f"server-{port}.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Server(f"http://127.0.0.1:{port}", log, output, proc)


def stop_server(server: Server) -> None:
    stop_process(server.proc)


@pytest.fixture(scope="session")
def server(registry, tmp_path_factory):
    """The app under real uvicorn (``--factory``) on a free loopback port, model loaded."""
    folder = tmp_path_factory.mktemp("uvicorn")
    log, port = folder / "inference.jsonl", free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "mlpipe.serve:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip
    srv = start_server(cmd, serve_env(registry, log), log, port, folder)
    try:
        wait_ready(srv)
        yield srv
    finally:
        stop_server(srv)


def local_command(cmd: list[str], port: int) -> list[str]:
    """The image's command for this machine: this Python, loopback, ``port``."""
    cmd = list(cmd)
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        assert flag in cmd, f"the CMD must give {flag} explicitly"
        cmd[cmd.index(flag) + 1] = value
    if cmd[0] in ("python", "python3"):
        return [sys.executable, *cmd[1:]]
    return [sys.executable, "-m", cmd[0], *cmd[1:]]


def compose_schema_errors(compose: object) -> list[str]:
    """Where a parsed compose file breaks the Compose specification's JSON schema.

    The schema is the one check-jsonschema ships (``--builtin-schema vendor.compose-spec``),
    checked in-process, which is much faster than starting the command.
    """
    import check_jsonschema
    import jsonschema

    path = Path(check_jsonschema.__file__).parent / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(compose)
    ]
