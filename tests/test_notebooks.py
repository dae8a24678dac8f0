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
