"""A fresh clone installs from the lock and every Make target the README names works there (slow tier)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_jupyterlab_serves_the_course_with_the_nbgrader_extension(tmp_path):
    port, token = _free_port(), "course-test"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path), HOME=str(tmp_path))
    lab_args = f"--no-browser --IdentityProvider.token={token} --ServerApp.allow_root=True"
    server = subprocess.Popen(
        ["make", "-s", "lab", f"LAB_PORT={port}", f"LAB_ARGS={lab_args}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start")
        with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=10) as resp:
            page = resp.read().decode()
        config = json.loads(
            page.split('id="jupyter-config-data" type="application/json">', 1)[1].split(
                "</script>"
            )[0]
        )
        names = {ext["name"] for ext in config["federated_extensions"]}
        assert "@jupyter/nbgrader" in names
        with urllib.request.urlopen(f"{base}/formgrader?token={token}", timeout=30) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(
            f"{base}/api/contents/labs/week01?token={token}", timeout=10
        ) as resp:
            listing = {item["name"] for item in json.load(resp)["content"]}
        assert "lab.ipynb" in listing
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
