"""Weeks 2 and up, graded both ways in one class run: the reference earns every
autograded point, the untouched student version none of the coded ones.

One ``course grade`` run (session-scoped) grades, for each week N, a submission
that has done *only* week N (every other week is still the released stub, and
the submission holds no other week's lab folder, so only week N is planned) and
one untouched submission on every week. The full-marks grade also proves week
isolation: week 2's DVC pipeline trains with week 1's code, which the grader
takes from the reference. Week 1 is graded both ways by the golden samples.
"""

from __future__ import annotations

import shutil

import pytest
from submissions import only_week, untouched

from autograder.config import RUN_STUBS_VAR, WEEKS
from autograder.grade import grade
from autograder.sandbox import Limits

LATER_WEEKS = [n for n in WEEKS if n > 1]
#: Generous limits: this run proves the points, not the timeouts (the hostile batch does),
#: and other grading runs of the tier share the machine's two cores with it.
LIMITS = Limits(cell_timeout=120, test_timeout=180)


def _keep_labs(sub, weeks) -> None:
    """Remove the lab folders of every week not in ``weeks`` (so grading plans only those)."""
    for number, week in WEEKS.items():
        if number not in weeks:
            shutil.rmtree(sub / "labs" / week.lab)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("both-ways")
    subs = []
    for week in LATER_WEEKS:
        sub = only_week(root / f"done-week{week:02d}", week)
        _keep_labs(sub, {week})
        subs.append(sub)
    subs.append(untouched(root / "untouched"))
    _keep_labs(subs[-1], set(LATER_WEEKS))
    reports = grade(subs, out=root / "out", progress=False, jobs=2, limits=LIMITS)
    return {(r.student, r.week): r for r in reports}


@pytest.mark.parametrize("week", LATER_WEEKS)
def test_reference_earns_every_autograded_point(graded, week):
    report = graded[(f"done-week{week:02d}", week)]
    coded = [t for t in report.tests if t.status != "manual"]
    failed = [f"{t.name}: {t.output[:300]}" for t in coded if t.status != "passed"]
    assert not failed, failed
    assert {t.source for t in coded} == {"notebook", "pytest"}
    assert report.hidden_tests and report.needs_manual_grading and not report.flags
    manual = sum(t.max_score for t in report.tests if t.status == "manual")
    assert report.score == report.max_score - manual > 0


@pytest.mark.parametrize("week", LATER_WEEKS)
def test_untouched_student_version_earns_no_coded_point(graded, week):
    report = graded[("untouched", week)]
    assert report.max_score > 0 and report.score == 0
    assert [t.name for t in report.tests if t.score] == []
    assert any(t.hidden for t in report.tests) and any(not t.hidden for t in report.tests)
    # the test kit's shortcut: a task whose functions are all stubs fails without running
    assert any("is not started yet" in t.output for t in report.tests if t.source == "pytest")


def test_one_run_graded_exactly_the_planned_weeks(graded):
    expected = {(f"done-week{w:02d}", w) for w in LATER_WEEKS}
    expected |= {("untouched", w) for w in LATER_WEEKS}
    assert set(graded) == expected


@pytest.mark.slow
def test_untouched_tests_fail_on_their_own_without_the_not_started_shortcut(tmp_path, monkeypatch):
    """The test kit fails the tests of an unstarted task at once; here every test runs.

    So the proof above (the untouched version earns no coded point) holds for the tests
    themselves, not only for the shortcut.
    """
    monkeypatch.setenv(RUN_STUBS_VAR, "1")
    sub = untouched(tmp_path / "untouched")
    _keep_labs(sub, set(LATER_WEEKS))
    reports = grade([sub], out=tmp_path / "out", progress=False, jobs=2, limits=LIMITS)
    assert {r.week for r in reports} == set(LATER_WEEKS)
    for report in reports:
        assert report.max_score > 0 and report.score == 0, report.week
        assert not [t.name for t in report.tests if t.score], report.week
        shortcut = [t.name for t in report.tests if "is not started yet" in t.output]
        assert shortcut == [], (report.week, shortcut)
