"""Every lesson notebook and the lab sources execute, top to bottom, without errors."""

from __future__ import annotations

import os

import nbformat
import pytest
from conftest import LABS, REPO, SOLUTIONS
from nbclient import NotebookClient

LESSONS = sorted((REPO / "weeks").glob("*/lesson.ipynb"))


def _execute(path, pythonpath):
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute(env=env)
    return nb


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.parent.name)
def test_lesson_runs_with_the_reference(lesson):
    _execute(lesson, SOLUTIONS)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.parent.name)
def test_lesson_runs_before_the_lab_is_done(lesson):
    nb = _execute(lesson, LABS)
    text = "".join(str(o.get("text", "")) for cell in nb.cells for o in cell.get("outputs", []))
    assert "Finish the lab" in text


@pytest.mark.parametrize(
    "lab", sorted(SOLUTIONS.glob("week*/lab.ipynb")), ids=lambda p: p.parent.name
)
def test_lab_source_runs_clean_with_the_reference(lab):
    nb = _execute(lab, SOLUTIONS)
    errors = [
        o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors


def test_every_week_with_a_lab_has_a_lesson():
    from autograder.config import WEEKS

    for week in WEEKS.values():
        assert (REPO / "weeks" / week.slug / "README.md").is_file()
        assert (REPO / "weeks" / week.slug / "lesson.ipynb").is_file()


@pytest.mark.parametrize(
    ("pythonpath", "notebook", "verdict"),
    [
        (SOLUTIONS, SOLUTIONS / "week01/lab.ipynb", "Success! Your notebook passes all the tests."),
        (LABS, LABS / "week01/lab.ipynb", "VALIDATION FAILED ON 5 CELL(S)!"),
    ],
    ids=["reference", "untouched"],
)
def test_nbgrader_validate_button_verdict(tmp_path, pythonpath, notebook, verdict):
    """What JupyterLab's Validate button says: nbgrader's own validate command."""
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), "validate", str(notebook)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert verdict in proc.stdout + proc.stderr
