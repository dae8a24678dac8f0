"""Every lesson notebook runs under nbval, with the reference and before the lab is done.

The same command a student runs: ``pytest --nbval-lax weeks/NN-slug/lesson.ipynb``,
in a fresh process whose ``import mlpipe`` is the reference (``solutions/``) or the
released stubs (``labs/``). Before the lab is done a lesson must still run, and
say so ("Finish the lab ...") where it needs the student's code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LABS, REPO, SOLUTIONS

pytestmark = pytest.mark.slow

LESSONS = sorted((REPO / "weeks").glob("*/lesson.ipynb"))
HERE = Path(__file__).resolve().parent


def nbval(lesson: Path, pythonpath: Path, outputs: Path) -> subprocess.CompletedProcess:
    """Run ``pytest --nbval-lax LESSON`` with ``pythonpath``'s mlpipe; outputs go to a file."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env.update(
        PYTHONPATH=os.pathsep.join([str(pythonpath), str(HERE)]),
        NBVAL_OUTPUTS=str(outputs),
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    cmd = [
        sys.executable, "-m", "pytest", "-p", "nbval", "-p", "nbval_outputs",
        "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
        "--nbval-cell-timeout=300", "-q", "--rootdir", str(lesson.parent), str(lesson),
    ]  # fmt: skip
    return subprocess.run(
        cmd, cwd=lesson.parent, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.parent.name)
def test_lesson_runs_with_the_reference(lesson, tmp_path):
    proc = nbval(lesson, SOLUTIONS, tmp_path / "outputs.txt")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.parent.name)
def test_lesson_runs_before_the_lab_is_done(lesson, tmp_path):
    outputs = tmp_path / "outputs.txt"
    proc = nbval(lesson, LABS, outputs)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Finish the lab" in outputs.read_text(encoding="utf-8")


def test_every_week_with_a_lab_has_a_lesson():
    from autograder.config import WEEKS

    for week in WEEKS.values():
        assert (REPO / "weeks" / week.slug / "README.md").is_file()
        assert (REPO / "weeks" / week.slug / "lesson.ipynb").is_file()
