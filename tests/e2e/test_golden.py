"""``course grade`` on the sample submissions: golden grades, both ways, no leaks."""

from __future__ import annotations

import json

import pytest
from conftest import REPO
from submissions import build_all, hidden_test_lines

from autograder.grade import grade
from autograder.report import read_reports

GOLDEN = json.loads((REPO / "tests/golden/week01.json").read_text())


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    subs = build_all(root / "subs")
    out = root / "grades"
    reports = grade(list(subs.values()), week=1, out=out, cell_timeout=12, progress=False)
    return out, {r.student: r for r in reports}


def test_every_sample_gets_its_golden_grade(graded):
    _, reports = graded
    assert set(reports) == set(GOLDEN)
    for name, expected in GOLDEN.items():
        report = reports[name]
        got = {
            "score": report.score,
            "max_score": report.max_score,
            "flags": report.flags,
            "needs_manual_grading": report.needs_manual_grading,
            "tests": {t.name: t.status for t in report.tests},
        }
        assert got == expected, name


def test_reference_earns_every_autograded_point(graded):
    report = graded[1]["reference"]
    coded = [t for t in report.tests if t.status != "manual"]
    assert coded and all(t.status == "passed" and t.score == t.max_score for t in coded)
    assert report.needs_manual_grading and report.hidden_tests


def test_untouched_student_version_earns_no_coded_point(graded):
    report = graded[1]["untouched"]
    assert report.max_score == GOLDEN["reference"]["max_score"]
    assert all(t.score == 0 for t in report.tests)


def test_infinite_loop_times_out_and_the_rest_is_graded(graded):
    report = graded[1]["infinite-loop"]
    assert "timeout" in report.flags
    status = {t.name: t.status for t in report.tests}
    assert status["test_task2_split"] == "error"
    assert status["test_task3_train"] == status["test_task4_repro"] == "passed"


def test_reports_csv_and_gradebook_agree(graded):
    out, reports = graded
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0] == "student,week01,total"
    assert {row.split(",")[0]: float(row.split(",")[1]) for row in rows[1:]} == {
        name: r.score for name, r in reports.items()
    }
    assert {r.student for r in read_reports(out)} == set(reports)
    for name in reports:
        data = json.loads((out / name / "week01.json").read_text())
        assert set(data) >= {
            "student",
            "week",
            "score",
            "max_score",
            "hidden_tests",
            "needs_manual_grading",
            "flags",
            "tests",
        }
        assert (out / name / "week01.md").read_text().startswith(f"# Week 1: {name}")
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{out / 'nbgrader' / 'gradebook.db'}", "mlops-roadmap") as gb:
        for name, report in reports.items():
            nb_score = sum(t.score for t in report.tests if t.source == "notebook")
            assert gb.find_submission("week01", name).score == pytest.approx(nb_score)


def test_feedback_never_shows_hidden_test_source(graded):
    out, _ = graded
    hidden = hidden_test_lines()
    assert len(hidden) > 20
    feedback = list(out.glob("*/week01-feedback.html")) + list(out.glob("*/week01.md"))
    assert len(feedback) == 2 * len(GOLDEN)
    for path in feedback:
        text = path.read_text()
        leaked = [line for line in hidden if line in text or line.replace('"', "&quot;") in text]
        assert not leaked, f"{path} shows hidden test source: {leaked[:2]}"
