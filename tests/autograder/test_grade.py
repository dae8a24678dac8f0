"""``autograder.grade``: planning a class run."""

from __future__ import annotations

from autograder.config import WEEKS
from autograder.grade import Submission, plan


def test_all_weeks_and_one_week_are_planned_from_the_week_registry(tmp_path):
    sub = Submission(tmp_path, "alice")
    assert [w for _, w in plan([sub], None, True)] == list(WEEKS.values())
    assert [w.number for _, w in plan([sub], 1, False)] == [1]
