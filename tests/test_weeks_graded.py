"""Weeks 2 and up, graded both ways: the reference earns every autograded point,
the untouched student version none of the coded ones.

The full-marks submission has done *only* the graded week: every other week is
still the released stub, so the grade also proves week isolation (week 2's DVC
pipeline trains with week 1's code, which the grader takes from the reference).
"""

from __future__ import annotations

import pytest
from submissions import only_week, untouched

from autograder.config import WEEKS
from autograder.grade import grade

LATER_WEEKS = [n for n in WEEKS if n > 1]


@pytest.mark.parametrize("week", LATER_WEEKS)
def test_reference_earns_every_autograded_point(tmp_path, week):
    (report,) = grade([only_week(tmp_path / "done", week)], week, tmp_path / "out", progress=False)
    coded = [t for t in report.tests if t.status != "manual"]
    failed = [f"{t.name}: {t.output[:300]}" for t in coded if t.status != "passed"]
    assert not failed, failed
    assert {t.source for t in coded} == {"notebook", "pytest"}
    assert report.hidden_tests and report.needs_manual_grading and not report.flags
    manual = sum(t.max_score for t in report.tests if t.status == "manual")
    assert report.score == report.max_score - manual > 0


@pytest.mark.parametrize("week", LATER_WEEKS)
def test_untouched_student_version_earns_no_coded_point(tmp_path, week):
    (report,) = grade([untouched(tmp_path / "untouched")], week, tmp_path / "out", progress=False)
    assert report.max_score > 0 and report.score == 0
    assert [t.name for t in report.tests if t.score] == []
    assert any(t.hidden for t in report.tests) and any(not t.hidden for t in report.tests)
