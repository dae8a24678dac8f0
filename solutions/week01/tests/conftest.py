"""Shared fixtures of the week 1 component tests.

These tests import ``mlpipe`` as installed: in your checkout that is your own
``labs/mlpipe``. Run them with ``course check 1`` (or ``pytest labs/week01/tests``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mlpipe


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n): how many points the test is worth")
    config.addinivalue_line("markers", "task(k): the lab task the test belongs to")


#: The folder holding the mlpipe package under test (labs/ or solutions/).
PIPELINE_DIR = Path(mlpipe.__file__).resolve().parents[1]
DOCKERFILE = PIPELINE_DIR / "docker" / "train.Dockerfile"


def run_mlpipe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m mlpipe ARGS`` with the mlpipe under test importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PIPELINE_DIR), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "mlpipe", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """Parse a Dockerfile into ``(INSTRUCTION, arguments)`` pairs."""
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
    """The exec-form ``CMD`` of a Dockerfile, as a list of strings."""
    cmds = [args for word, args in dockerfile_instructions(path) if word == "CMD"]
    assert cmds, f"{path.name} has no CMD instruction"
    try:
        cmd = json.loads(cmds[-1])
    except json.JSONDecodeError:
        pytest.fail('CMD must use the exec form: CMD ["python", "-m", ...]')
    return cmd


@pytest.fixture()
def params_file(tmp_path: Path) -> Path:
    """A valid params.yaml in a temporary folder."""
    path = tmp_path / "params.yaml"
    shutil.copyfile(PIPELINE_DIR / "params.yaml", path)
    return path
