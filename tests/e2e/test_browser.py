"""JupyterLab in a real browser: what a student and an instructor do with `make lab`.

Chromium (Debian's, never a downloaded one) is driven by Playwright against `make lab`
started in a scratch copy of the course: JupyterLab autosaves, so it never touches the
checkout. Each step leaves a PNG in ``$COURSE_SCREENSHOTS`` (default build/screenshots).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOKEN = "course-browser-test"
NEWS_PROMPT = "official Jupyter news"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous waits: on a loaded 2-core machine a kernel start or a validation takes long.
WAIT_MS = 120_000
VALIDATE_MS = 300_000

pytestmark = pytest.mark.slow


def _screenshots() -> Path:
    folder = Path(os.environ.get("COURSE_SCREENSHOTS") or REPO / "build" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _copy_course(dest: Path) -> None:
    """Copy the tracked and untracked-but-not-ignored files; .venv links to this venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        src = REPO / name
        if name == ".venv" or name.startswith(".venv/") or not src.is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name, follow_symlinks=False)
    (dest / ".venv").symlink_to(sys.prefix, target_is_directory=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium (never a browser Playwright downloads)."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        pytest.skip("Chromium is not installed (make test-slow installs Debian's chromium).")
    return path


@pytest.fixture
def lab(tmp_path):
    """`make lab` in a scratch copy of the course: yields its URL, the copy and the log."""
    course = tmp_path / "course"
    _copy_course(course)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JUPYTER_CONFIG_PATH")}
    env.update(HOME=str(tmp_path / "home"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    log = tmp_path / "lab.log"
    with log.open("w") as out:
        # `-o .venv/.installed`: the copy shares this venv, which make must never reinstall.
        server = subprocess.Popen(
            ["make", "-s", "-o", ".venv/.installed", "lab", f"LAB_PORT={port}",
             f"LAB_ARGS=--no-browser --IdentityProvider.token={TOKEN}"],
            cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"make lab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, course, log
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


@pytest.mark.timeout(1200)
def test_a_student_runs_and_validates_the_lab_and_an_instructor_opens_the_formgrader(
    chromium, lab, tmp_path
):
    from playwright.sync_api import sync_playwright

    base, course, log = lab
    checkout_lab = (REPO / "labs/week01/lab.ipynb").read_bytes()
    shots = _screenshots()
    for old in shots.glob("browser-*.png"):
        old.unlink()
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900},
        )
        context.set_default_timeout(WAIT_MS)
        page = context.pages[0] if context.pages else context.new_page()
        step = "start"

        def shot(name: str) -> None:
            page.screenshot(path=str(shots / f"browser-{name}.png"))

        try:
            # JupyterLab with the nbgrader extension, and no "Jupyter news" prompt.
            step = "01-lab"
            page.goto(f"{base}/lab?token={TOKEN}")
            page.locator(".jp-DirListing-content").wait_for()
            config = json.loads(page.locator("#jupyter-config-data").text_content())
            assert "@jupyter/nbgrader" in {ext["name"] for ext in config["federated_extensions"]}
            news = page.evaluate(
                """async () => {
                    const r = await fetch('/lab/api/settings/@jupyterlab/apputils-extension:notification');
                    return (await r.json()).schema.properties.fetchNews.default;
                }"""
            )
            assert news == "false", f"the course's lab asks for Jupyter news (fetchNews={news})"

            # The student opens labs/week01/lab.ipynb from the file browser.
            listing = page.locator(".jp-DirListing-content")
            listing.locator(".jp-DirListing-itemText", has_text=re.compile("^labs$")).dblclick()
            listing.locator(".jp-DirListing-itemText", has_text=re.compile("^week01$")).dblclick()
            notebook_item = listing.locator(
                ".jp-DirListing-itemText", has_text=re.compile(r"^lab\.ipynb$")
            )
            notebook_item.wait_for()
            shot(step)
            step = "02-cell-output"
            notebook_item.dblclick()
            panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            # The indicator reads "idle" before the session has a kernel ("No Kernel"), and a
            # cell run then is dropped: wait for the kernel's name and its idle state together.
            page.wait_for_function(
                """() => {
                    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
                    const name = panel && panel.querySelector('.jp-KernelName');
                    const state = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
                    return !!name && name.textContent.includes('ipykernel')
                        && state.getAttribute('data-status') === 'idle';
                }""",
                timeout=WAIT_MS,
            )
            cells = panel.locator(".jp-Notebook .jp-Cell")
            # The set-up cell (imports, no output), then Task 1's untouched answer cell,
            # whose released stub raises NotImplementedError.
            setup = cells.filter(has_text="from mlpipe import train").first
            setup.locator(".cm-content").click()
            page.keyboard.press("Shift+Enter")
            setup.locator(".jp-InputPrompt", has_text="[1]:").wait_for()
            assert setup.locator(".jp-OutputArea-output").count() == 0
            answer = cells.filter(has_text="raise NotImplementedError()").first
            answer.locator(".cm-content").click()
            page.keyboard.press("Shift+Enter")
            answer.locator(".jp-InputPrompt", has_text="[2]:").wait_for()
            output = answer.locator(".jp-OutputArea-output").first
            output.wait_for()
            assert "NotImplementedError" in output.inner_text()
            assert page.get_by_text(NEWS_PROMPT).count() == 0
            shot(step)

            # Validate: the untouched lab fails. nbgrader's handler blocks the server while
            # the notebook runs, so a "Server Connection Error" may come first: dismiss it.
            step = "03-validation-results"
            panel.locator(".validate-button").click()
            dialogs = page.locator(".jp-Dialog")
            results = dialogs.filter(has_text="Validation Results")
            lost = dialogs.filter(has_text="Server Connection Error")
            deadline = time.monotonic() + VALIDATE_MS / 1000
            while True:
                remaining = int((deadline - time.monotonic()) * 1000)
                if remaining <= 0:
                    pytest.fail("no Validation Results in time")
                dialogs.first.wait_for(timeout=remaining)
                if results.count():
                    break
                if not lost.count():
                    pytest.fail(f"unexpected dialog: {dialogs.all_inner_texts()}")
                error = lost.first.element_handle()
                lost.first.locator(".jp-Dialog-button").last.click()
                error.wait_for_element_state("hidden")
            dialog = results.first
            body = dialog.locator("#validation-message")
            text = body.inner_text()
            assert "validation-failed" in (body.get_attribute("class") or "")
            assert "The following cell failed:" in text
            assert 'assert n_rows == 150, f"Iris has 150 rows, got {n_rows}"' in text
            assert "NameError: name 'n_rows' is not defined" in text, text
            shot(step)
            dialog.locator(".jp-Dialog-button").last.click()

            # The instructor's formgrader, with a working exchange (no warning).
            step = "04-formgrader"
            response = page.goto(f"{base}/formgrader?token={TOKEN}")
            assert response is not None and response.status == 200
            page.get_by_role("heading", name="Manage Assignments").wait_for()
            page.locator("#main-table tr").first.wait_for()  # the assignment list has loaded
            warnings = page.locator(".alert-warning")  # #warning-exchange, #warning-course-id
            assert warnings.count() == 0, warnings.all_inner_texts()
            assert (course / "grades/exchange").is_dir()
            shot(step)
        except BaseException:
            with contextlib.suppress(Exception):
                shot(f"{step}-failed")
            print(log.read_text()[-5000:])
            raise
        finally:
            context.close()
    assert sorted(p.name for p in shots.glob("browser-*.png")) == [
        "browser-01-lab.png",
        "browser-02-cell-output.png",
        "browser-03-validation-results.png",
        "browser-04-formgrader.png",
    ]
    # JupyterLab saved the scratch copy (Validate saves first), never the checkout.
    saved = json.loads((course / "labs/week01/lab.ipynb").read_text())
    counts = [c.get("execution_count") for c in saved["cells"] if c["cell_type"] == "code"]
    assert counts[:2] == [1, 2]
    assert (REPO / "labs/week01/lab.ipynb").read_bytes() == checkout_lab
