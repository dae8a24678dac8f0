"""Shared fixtures of the week 2 component tests.

These tests import ``mlpipe`` as installed: in your checkout that is your own
``labs/mlpipe``. Run them with ``course check 2`` (or ``pytest labs/week02/tests``).
The DVC tests build a real git repository with a real DVC cache and a local
DVC remote in a temporary folder, copy your pipeline files into it and run
``dvc`` there.
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

import mlpipe
from mlpipe.config import ValidateParams, load_params

#: The folder holding the mlpipe package under test (labs/ or solutions/).
PIPELINE_DIR = Path(mlpipe.__file__).resolve().parents[1]
#: What a pipeline repository holds: the package and the pipeline files.
PIPELINE_FILES = ("mlpipe", "dvc.yaml", "params.yaml", "data/schema.json")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n): how many points the test is worth")
    config.addinivalue_line("markers", "task(k): the lab task the test belongs to")
    config.addinivalue_line(
        "markers", "timeout(seconds): a longer limit for a slow test (pytest-timeout)"
    )


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
    """Run a command (``dvc`` and ``mlpipe`` through this Python) in ``cwd``."""
    if args[0] in ("dvc", "mlpipe"):
        args = (sys.executable, "-m", *args)
    proc = subprocess.run(
        args, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        shown = " ".join(args[2:] if args[0] == sys.executable else args)
        pytest.fail(f"`{shown}` failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    return proc


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
    run("mlpipe", "fetch", "--per-class", str(per_class), cwd=path)
    run("dvc", "add", "-q", "data/raw/iris.csv", cwd=path)
    run("git", "add", "-A", cwd=path)
    run("git", "commit", "-qm", "pipeline and raw data v1", cwd=path)
    return path


@pytest.fixture(scope="module")
def built_repo(tmp_path_factory) -> Path:
    """A repository on which ``dvc repro`` has run once (copy it before changing it)."""
    root = tmp_path_factory.mktemp("dvc")
    repo = make_repo(root / "repo", root / "remote")
    run("dvc", "repro", cwd=repo)
    return repo


@pytest.fixture()
def repo(built_repo: Path, tmp_path: Path) -> Path:
    """A private copy of ``built_repo``, with its own remote folder."""
    copy = tmp_path / "repo"
    shutil.copytree(built_repo, copy, symlinks=True)
    run("dvc", "remote", "modify", "local", "url", str(tmp_path / "remote"), cwd=copy)
    return copy


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
