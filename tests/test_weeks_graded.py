"""Weeks 2 and up, graded both ways: the reference earns every autograded point,
the untouched student version none of the coded ones."""

from __future__ import annotations

import pytest
from submissions import reference, untouched

from autograder.config import WEEKS
from autograder.grade import grade

LATER_WEEKS = [n for n in WEEKS if n > 1]


@pytest.mark.parametrize("week", LATER_WEEKS)
def test_reference_earns_every_autograded_point(tmp_path, week):
    (report,) = grade([reference(tmp_path / "reference")], week, tmp_path / "out", progress=False)
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
