"""Shared fixtures of the week 4 component tests.

These tests import ``mlpipe`` as installed: in your checkout that is your own
``labs/mlpipe``. Run them with ``course check 4`` (or ``pytest labs/week04/tests``).

* The gate tests score real scikit-learn models and use a real MLflow registry
  (an SQLite store in a temporary folder) with the aliases ``challenger`` and
  ``champion``; the command line is run as ``python -m mlpipe gate``.
* The suite tests copy your pipeline project (the folder holding ``mlpipe``:
  your ``labs/``) to a temporary folder, plant one bug in it and run your own
  ``project_tests/`` there with ``python -m pytest``: your suite must pass on the
  pipeline as it is and fail on the planted bug.
* The workflow tests read ``.github/workflows/pipeline.yml``.

The course's test kit (``autograder/testkit.py``) provides the markers, the empty
MLflow store the registry starts from (its tables are made once a session) and
runs the commands.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from autograder import testkit
from autograder.testkit import copy_store, iris_frame, pipeline_dir, pipeline_env, run_mlpipe

pytest_plugins = ("autograder.testkit",)

#: The functions each task asks for (a test of the task needs at least one of them).
#: While all of a task's functions are still the released stubs, the course's test
#: kit fails its tests at once, before their fixtures, saying which to write.
TASK_FUNCTIONS = {
    1: (
        "gates.thresholds",
        "gates.versus_champion",
    ),
    2: (
        "gates.invariance",
        "gates.directional",
        "gates.minimum_functionality",
        "gates.latency",
        "gates.size",
    ),
    3: (
        "gates.thresholds",
        "gates.versus_champion",
        "gates.decide",
        "gates.promote",
        "gates.candidates",
        "gates.gate_registry",
    ),
}

#: The folder holding the mlpipe package under test (labs/ or solutions/).
PIPELINE_DIR = pipeline_dir()
MODEL = "iris-classifier"
#: The workflow file, relative to the pipeline project.
WORKFLOW = Path(".github/workflows/pipeline.yml")
#: The student's own suite, relative to the pipeline project.
SUITE_DIR = "project_tests"
#: Seconds one run of the student's suite may take.
SUITE_TIMEOUT = 120
__all__ = ["iris_frame"]  # the kit's, for the test files


def fit(C: float):
    """The week-1 pipeline with ``C``, fitted on the training rows of the default split."""
    from mlpipe import train
    from mlpipe.config import TrainParams

    params = TrainParams(C=C)
    X_train, _, y_train, _ = train.split_data(iris_frame(), params.test_size, params.seed)
    return train.build_pipeline(params).fit(X_train, y_train)


# --- a registry with two versions ----------------------------------------------------------

#: Registry versions: 1 is a weak model (C=0.01, about 80% accurate), 2 a good one (C=1).
WEAK, GOOD = "1", "2"


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory, empty_store) -> Path:
    """An MLflow store (``mlflow.db``) holding versions 1 (weak) and 2 (good) of the model."""
    import mlflow

    from mlpipe import track, train
    from mlpipe.config import TrackParams, TrainParams

    home = tmp_path_factory.mktemp("registry")
    copy_store(empty_store, home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLPIPE_HOME", str(home))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        track.connect(TrackParams())
        df = iris_frame()
        for C in (0.01, 1.0):
            params = TrainParams(C=C)
            _, X_test, _, y_test = train.split_data(df, params.test_size, params.seed)
            model = fit(C)
            metrics = train.evaluate(model, X_test, y_test)
            tags = {"data_fingerprint": train.fingerprint(df), "git_commit": None}
            with mlflow.start_run() as run:
                uri = track.log_training_run(model, params, metrics, X_test.head(3), tags)
            track.register(MODEL, uri, run.info.run_id, f"C={C}")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return home


def make_registry(home: Path, template: Path, **aliases: str) -> Path:
    """Copy the template store into ``home`` with exactly these aliases (alias=version)."""
    import mlflow

    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template / "mlflow.db", home / "mlflow.db")
    uri = sqlite_uri(home)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    for alias in client.get_registered_model(MODEL).aliases:
        client.delete_registered_model_alias(MODEL, alias)
    for alias, version in aliases.items():
        client.set_registered_model_alias(MODEL, alias, version)
    return home


sqlite_uri = testkit.sqlite_uri
#: An ``MlflowClient`` of the SQLite store in a folder.
client_of = testkit.mlflow_client


def aliases(home: Path) -> dict[str, str]:
    """The registered model's aliases in ``home``'s store, alias -> version."""
    return testkit.aliases(home, MODEL)


def write_project(home: Path, **gates: object) -> Path:
    """Processed data and a params.yaml (gates overridden by ``gates``) in ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    iris_frame().to_csv(home / "iris.csv", index=False)
    params = yaml.safe_load((PIPELINE_DIR / "params.yaml").read_text())
    params["gates"] = {**(params.get("gates") or {}), **gates}
    (home / "params.yaml").write_text(yaml.safe_dump(params))
    return home / "params.yaml"


def run_gate(home: Path, *args: str, tracking_uri: str | None = None):
    """Run ``python -m mlpipe gate --params params.yaml --data iris.csv ARGS`` in ``home``."""
    extra = {"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {}
    env = pipeline_env(MLPIPE_HOME=str(home), **extra)
    command = ["gate", "--params", "params.yaml", "--data", "iris.csv", *args]
    return run_mlpipe(*command, cwd=home, env=env)


# --- the student's suite, graded by mutation -----------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """A planted bug: ``old`` replaced by ``new`` in ``file`` (relative to the project)."""

    name: str
    file: str
    old: str
    new: str


@dataclass
class SuiteRun:
    """One run of the student's ``project_tests/`` on a copy of the pipeline."""

    returncode: int | None
    passed: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    output: str = ""

    @property
    def ok(self) -> bool:
        """True when the suite ran and every test passed."""
        return self.returncode == 0

    def why(self) -> str:
        """A short account of the run, for assertion messages."""
        if self.returncode is None:
            return f"it did not finish within {SUITE_TIMEOUT} s"
        if self.failed:
            return f"these tests failed: {', '.join(self.failed[:5])}"
        tail = "\n".join(self.output.strip().splitlines()[-8:])
        return f"pytest exited with {self.returncode}:\n{tail}"


#: Folders of the pipeline project the suite does not need (weeks' labs, stores, caches).
_IGNORE = shutil.ignore_patterns(
    "week[0-9][0-9]", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".git", ".dvc",
    "mlartifacts", "mlruns", "*.db", "models", "grades",
)  # fmt: skip


def copy_pipeline(dest: Path) -> Path:
    """Copy the pipeline project (the folder holding ``mlpipe``) to ``dest``."""
    shutil.copytree(PIPELINE_DIR, dest, ignore=_IGNORE, symlinks=False)
    return dest


def plant(root: Path, mutant: Mutant) -> bool:
    """Apply ``mutant`` to the copy at ``root``; False when its old text is not there."""
    path = root / mutant.file
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if text.count(mutant.old) != 1:
        return False
    path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")
    return True


def _counts(xml: Path) -> tuple[dict[str, int], list[str]]:
    passed: dict[str, int] = {}
    failed: list[str] = []
    if not xml.is_file():
        return passed, failed
    for case in ET.parse(xml).getroot().iter("testcase"):
        module = case.get("classname", "").split(".")[-1]
        if any(child.tag in ("failure", "error", "skipped") for child in case):
            failed.append(f"{module}.py::{case.get('name')}")
        else:
            passed[module] = passed.get(module, 0) + 1
    return passed, failed


def run_suite(root: Path, quick: bool = False) -> SuiteRun:
    """Run ``python -m pytest -q -p no:cacheprovider project_tests`` in the copy at ``root``.

    ``quick`` stops at the first failure (``-x``): enough to tell a caught bug.
    """
    xml = root.parent / f"{root.name}-results.xml"
    home = root.parent / f"{root.name}-home"
    home.mkdir(exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "MLFLOW_TRACKING_URI")
    }
    env.update(
        PYTHONPATH=str(root), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", MLPIPE_HOME=str(home),
        DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1",
    )  # fmt: skip
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", SUITE_DIR,
        "--rootdir", str(root), f"--junitxml={xml}", *(["-x"] if quick else []),
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return SuiteRun(None)
    passed, failed = _counts(xml)
    return SuiteRun(proc.returncode, passed, failed, proc.stdout[-4000:] + proc.stderr[-2000:])


REFERENCE = "reference"


class Suites:
    """Runs the student's suite on copies of the pipeline, each variant once per session."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.runs: dict[str, SuiteRun] = {}
        self.missing: set[str] = set()

    def run(self, mutants: Sequence[Mutant | None]) -> dict[str, SuiteRun]:
        """Run the suite on the unchanged copy (``None``) and on each mutant, two at a time.

        A mutant whose old text is not in the student's file gets no run and
        is listed in :attr:`missing`. When the suite fails on the unchanged
        copy, the mutants that are not run yet are left out (nothing to catch).
        """
        todo: dict[str, Path] = {}
        for mutant in mutants:
            name = REFERENCE if mutant is None else mutant.name
            if name in self.runs or name in self.missing or name in todo:
                continue
            root = copy_pipeline(self.base / name / "pipeline")
            if mutant is not None and not plant(root, mutant):
                self.missing.add(name)
                continue
            todo[name] = root
        names = list(todo)
        first = names[:2] if REFERENCE in todo else []
        if REFERENCE in todo and REFERENCE not in first:
            first = [REFERENCE, names[0]]
        self._run_batch({name: todo[name] for name in first})
        if self.runs.get(REFERENCE, SuiteRun(0)).ok:
            self._run_batch({name: root for name, root in todo.items() if name not in first})
        names = [REFERENCE if m is None else m.name for m in mutants]
        return {name: self.runs[name] for name in names if name in self.runs}

    def _run_batch(self, todo: dict[str, Path]) -> None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            roots = todo.values()
            quick = [name != REFERENCE for name in todo]
            for name, result in zip(todo, pool.map(run_suite, roots, quick), strict=True):
                self.runs[name] = result


@pytest.fixture(scope="session")
def suites(tmp_path_factory) -> Suites:
    """The session's runs of the student's suite (shared by the visible and hidden tests)."""
    return Suites(tmp_path_factory.mktemp("suites"))


def require_suite_passes(run: SuiteRun) -> None:
    """Fail, with why, unless the student's suite passed on the unchanged pipeline."""
    assert run.ok, (
        f"your {SUITE_DIR}/ must pass on the pipeline as it is before they can catch a planted bug, "
        f"but {run.why()}"
    )


# --- the workflow --------------------------------------------------------------------------


def load_workflow() -> dict:
    """The parsed workflow; ``on`` is the key of its triggers (YAML 1.1 reads it as True)."""
    path = PIPELINE_DIR / WORKFLOW
    assert path.is_file(), f"{WORKFLOW} is missing from your pipeline project"
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(workflow, dict), f"{WORKFLOW} is not a YAML mapping"
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def triggers(workflow: dict) -> dict:
    """The workflow's events as a mapping (``on: push`` and ``on: [push]`` forms too)."""
    on = workflow.get("on")
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on if isinstance(on, dict) else {}


def steps(workflow: dict) -> list[dict]:
    """Every step of every job, in file order."""
    found = []
    for job in (workflow.get("jobs") or {}).values():
        if isinstance(job, dict) and isinstance(job.get("steps"), list):
            found += [step for step in job["steps"] if isinstance(step, dict)]
    return found


def command(step: dict) -> str:
    """A step's ``run:`` with its whitespace collapsed (empty for ``uses:`` steps)."""
    return " ".join(str(step.get("run") or "").split())


def _glob(pattern: str) -> re.Pattern:
    """A GitHub ``paths`` filter pattern as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def runs_on_change(event: object, path: str) -> bool:
    """Whether a change to ``path`` starts the workflow for an event's settings."""
    if not isinstance(event, dict) or not (event.get("paths") or event.get("paths-ignore")):
        return True
    if event.get("paths-ignore"):
        return not any(_glob(p).match(path) for p in event["paths-ignore"])
    matched = False
    for pattern in event["paths"]:
        negate = pattern.startswith("!")
        if _glob(pattern.lstrip("!")).match(path):
            matched = not negate
    return matched


#: Files whose change must start the pipeline: data, params, the pipeline, code, tests.
WATCHED = (
    "data/raw/iris.csv.dvc",
    "params.yaml",
    "dvc.yaml",
    "mlpipe/train.py",
    f"{SUITE_DIR}/test_model.py",
)


def required_steps() -> dict[str, int]:
    """Index of the first step doing each required thing (-1 when none does)."""
    found = {name: -1 for name in ("checkout", "python", "install", "pull", "repro", "tests")}
    found.update(gate=-1, promote=-1)
    for i, step in enumerate(steps(load_workflow())):
        uses, run = str(step.get("uses") or ""), command(step)
        version = str((step.get("with") or {}).get("python-version", ""))
        kinds = {
            "checkout": uses.startswith("actions/checkout@"),
            "python": uses.startswith("actions/setup-python@") and version == "3.11",
            "install": "pip install" in run,
            "pull": "dvc pull" in run or "dvc fetch" in run,
            "repro": "dvc repro" in run,
            "tests": "pytest" in run and f" {SUITE_DIR}" in f" {run.split('pytest', 1)[1]}",
            "gate": "mlpipe gate" in run and "--promote" not in run,
            "promote": "mlpipe gate" in run and "--promote" in run,
        }
        for kind, match in kinds.items():
            if match and found[kind] < 0:
                found[kind] = i
    return found


@dataclass
class GateRun:
    """What ``python -m mlpipe gate`` returned and printed, run in this process."""

    returncode: int
    stdout: str
    stderr: str
    args: tuple[str, ...] = ()


def gate_here(home: Path, *args: str, capsys, tracking_uri: str | None = None) -> GateRun:
    """Run the ``gate`` stage in this process (no fresh MLflow import), in ``home``."""
    from mlpipe.__main__ import main

    command = ["gate", "--params", str(home / "params.yaml"), "--data", str(home / "iris.csv")]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(home)
        patch.setenv("MLPIPE_HOME", str(home))
        if tracking_uri:
            patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        capsys.readouterr()
        code = main([*command, *args])
    out = capsys.readouterr()
    shown = ("python", "-m", "mlpipe", *command, *args)  # as it would run in a fresh process
    return GateRun(code, out.out, out.err, tuple(a.removeprefix(f"{home}/") for a in shown))
