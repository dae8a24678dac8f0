"""Shared fixtures of the week 2 component tests.

These tests import ``mlpipe`` as installed: in your checkout that is your own
``labs/mlpipe``. Run them with ``course check 2`` (or ``pytest labs/week02/tests``).
The DVC tests build a real git repository with a real DVC cache and a local
DVC remote in a temporary folder once, copy your pipeline files into it, run
``dvc repro`` there, and give each test its own copy of that repository.
The course's test kit (``autograder/testkit.py``) provides the markers and runs
the commands.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from autograder.testkit import assert_ran, pipeline_dir
from autograder.testkit import run as run_command
from mlpipe.config import ValidateParams, load_params

pytest_plugins = ("autograder.testkit",)

#: The functions each task asks for (a test of the task needs at least one of them).
#: While all of a task's functions are still the released stubs, the course's test
#: kit fails its tests at once, before their fixtures, saying which to write.
TASK_FUNCTIONS = {
    1: ("data.clean",),
    2: (
        "data.prepare",
        "data.lineage",
    ),
    3: (
        "validate.check_columns",
        "validate.check_types",
        "validate.check_missing",
        "validate.check_ranges",
        "validate.check_categories",
        "validate.check_duplicates",
        "validate.check_balance",
        "validate.check_drift",
        "validate.validate",
    ),
}

#: The folder holding the mlpipe package under test (labs/ or solutions/).
PIPELINE_DIR = pipeline_dir()
#: What a pipeline repository holds: the package and the pipeline files.
PIPELINE_FILES = ("mlpipe", "dvc.yaml", "params.yaml", "data/schema.json")


def tool_env() -> dict[str, str]:
    """Environment for git, DVC and the stages: this Python first, telemetry off."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(
        DVC_NO_ANALYTICS="1",
        DO_NOT_TRACK="1",
        GIT_AUTHOR_NAME="student",
        GIT_AUTHOR_EMAIL="student@example.com",
        GIT_COMMITTER_NAME="student",
        GIT_COMMITTER_EMAIL="student@example.com",
    )
    return env


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command (``dvc`` and ``mlpipe`` through this Python) in ``cwd``.

    With ``check``, a failure shows the command, its exit code and its last lines.
    """
    __tracebackhide__ = True
    if args[0] in ("dvc", "mlpipe"):
        args = (sys.executable, "-m", *args)
    proc = run_command(*args, cwd=cwd, env=tool_env())
    return assert_ran(proc, cwd=cwd) if check else proc


def stages_run(output: str) -> list[str]:
    """The stages ``dvc repro`` ran (not skipped), in order."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def model_fingerprint(repo: Path) -> str:
    meta = json.loads((repo / "models/iris-classifier/metadata.json").read_text())
    return meta["model_fingerprint"]


def make_repo(path: Path, remote: Path, per_class: int = 40) -> Path:
    """A git + DVC repository holding the pipeline, raw data tracked by DVC, committed."""
    path.mkdir(parents=True)
    for name in PIPELINE_FILES:
        source = PIPELINE_DIR / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, path / name)
    run("git", "init", "-q", "-b", "main", cwd=path)
    run("dvc", "init", "-q", cwd=path)
    run("dvc", "remote", "add", "-d", "local", str(remote), cwd=path)
    from mlpipe import data  # what `mlpipe fetch --per-class N` runs, without a fresh Python

    data.write_raw(path / "data/raw/iris.csv", per_class)
    run("dvc", "add", "-q", "data/raw/iris.csv", cwd=path)
    run("git", "add", "-A", cwd=path)
    run("git", "commit", "-qm", "pipeline and raw data v1", cwd=path)
    return path


@pytest.fixture(scope="session")
def built_repo(tmp_path_factory) -> Path:
    """A repository on which ``dvc repro`` has run once a session (copy it before changing it).

    Every test shares it: building it runs every stage in a
    fresh Python, which takes a minute on a busy machine.
    """
    root = tmp_path_factory.mktemp("dvc")
    repo = make_repo(root / "repo", root / "remote")
    run("dvc", "repro", cwd=repo)
    return repo


@pytest.fixture()
def repo(built_repo: Path, tmp_path: Path) -> Path:
    """A private copy of ``built_repo``, with its own remote folder."""
    copy = tmp_path / "repo"
    shutil.copytree(built_repo, copy, symlinks=True)
    use_remote(copy, built_repo.parent / "remote", tmp_path / "remote")
    return copy


def use_remote(repo: Path, old: Path, new: Path) -> None:
    """Point the copy's DVC remote from ``old`` to ``new`` (``dvc remote modify``, without a process)."""
    config = repo / ".dvc" / "config"
    text = config.read_text(encoding="utf-8")
    if text.count(str(old)) == 1:
        config.write_text(text.replace(str(old), str(new)), encoding="utf-8")
    else:  # written in a form this does not know: let DVC do it
        run("dvc", "remote", "modify", "local", "url", str(new), cwd=repo)


@pytest.fixture()
def clean_df() -> pd.DataFrame:
    """The processed Iris data, as ``mlpipe.data.clean`` writes it."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    df = iris.data.copy()
    df.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    df["species"] = iris.target_names[iris.target].astype(str)
    return df


@pytest.fixture()
def vparams() -> ValidateParams:
    """The validation thresholds of the pipeline's params.yaml."""
    return load_params(PIPELINE_DIR / "params.yaml", "validate", ValidateParams)


@pytest.fixture()
def reference() -> dict:
    """The training schema committed with the pipeline (data/schema.json)."""
    return json.loads((PIPELINE_DIR / "data" / "schema.json").read_text())


def stopped_by(df: pd.DataFrame, params: ValidateParams, reference: dict, check: str) -> str:
    """Assert that validation stops ``df`` with ``check`` among the failures; return its message."""
    from mlpipe import validate

    result = validate.validate(df, params, reference)
    assert not result.passed, "validation let bad data through"
    failed = {c.name: c.message for c in result.failed}
    assert check in failed, f"expected the check {check!r} to fail; failed: {sorted(failed)}"
    with pytest.raises(validate.ValidationError, match=check.replace(".", r"\.")):
        validate.require_valid(result)
    return failed[check]
