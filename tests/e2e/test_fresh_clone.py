"""A fresh clone installs from the lock and every Make target the README names works there (slow tier)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_fresh_clone_installs_from_the_lock_and_imports_the_students_mlpipe(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    start = time.monotonic()
    proc = subprocess.run(
        ["make", "install"], cwd=clone, capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"fresh-clone install: {time.monotonic() - start:.0f} s")
    python = clone / ".venv/bin/python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    check = subprocess.run(
        [str(clone / ".venv/bin/uv"), "pip", "check", "--python", str(python)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    where = subprocess.run(
        [str(python), "-c", "import mlpipe, autograder; print(mlpipe.__file__); print(autograder.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert where.stdout.split() == [
        str(clone / "labs/mlpipe/__init__.py"),
        str(clone / "autograder/__init__.py"),
    ]
    assert (clone / ".venv/bin/course").is_file()

    # Every other Make target the README names runs on the fresh clone and leaves it clean.
    def make(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["make", *args], cwd=clone, capture_output=True, text=True, env=env, timeout=900
        )

    for target in (["lock"], ["format"], ["release"], ["lint"], ["release-check"], ["demo"]):
        proc = make(*target)
        assert proc.returncode == 0, f"make {target[0]}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    check = make("check", "WEEK=1")
    assert check.returncode != 0, "the untouched lab cannot pass its own check"
    assert "visible score: 0 / 21" in check.stdout
    assert make("clean").returncode == 0
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True
    )
    assert status.stdout == "", f"make targets changed tracked files: {status.stdout}"
