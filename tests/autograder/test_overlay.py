"""Week isolation: week N is graded on the student's week-N files and the reference for the rest."""

from __future__ import annotations

from conftest import LABS, SOLUTIONS

from autograder.config import get_week
from autograder.intake import copy_labs
from autograder.overlay import foreign_files, use_reference_for_other_weeks


def test_foreign_files_are_the_other_weeks_files():
    foreign = foreign_files(get_week(2))
    assert "mlpipe/train.py" in foreign and "mlpipe/track.py" in foreign
    assert "mlpipe/data.py" not in foreign and "dvc.yaml" not in foreign
    assert "mlpipe/config.py" not in foreign, "shared files stay the student's"


def _graded_copy(dest, solutions):
    """What the worker does: copy the submission, then overlay the other weeks."""
    copy_labs(LABS, dest)
    use_reference_for_other_weeks(dest, get_week(2), solutions)
    return dest


def test_the_graded_copy_takes_other_weeks_from_the_reference(tmp_path):
    labs = _graded_copy(tmp_path / "labs", SOLUTIONS)
    assert (labs / "mlpipe/train.py").read_text() == (SOLUTIONS / "mlpipe/train.py").read_text()
    assert (labs / "mlpipe/data.py").read_text() == (LABS / "mlpipe/data.py").read_text()
    assert (labs / "dvc.yaml").read_text() == (LABS / "dvc.yaml").read_text()
    assert (labs / "week02/lab.ipynb").is_file()


def test_the_graded_copy_without_solutions_is_the_submission(tmp_path):
    labs = _graded_copy(tmp_path / "labs", None)
    assert (labs / "mlpipe/train.py").read_text() == (LABS / "mlpipe/train.py").read_text()
