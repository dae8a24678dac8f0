"""``autograder.checklist``: ``course checklist``, ticked from evidence, practised by quiz."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO, SOLUTIONS

from autograder import CourseError
from autograder import checklist as ck
from autograder.cli import main
from autograder.config import WEEKS
from autograder.report import Report, write_report
from autograder.report import TestResult as Result
from autograder.sources import notebook_items, pytest_items

ITEMS = ck.load_items()
GOLDEN = REPO / "tests/golden/checklist.md"


def _graded(week: int) -> dict[str, bool]:
    """Every graded item of a week in solutions/: name -> hidden."""
    lab = SOLUTIONS / WEEKS[week].lab
    items = [*notebook_items(lab / "lab.ipynb"), *pytest_items(lab / "tests")]
    return {i.name: i.hidden and i.name.startswith("hidden/") for i in items}


# --- the items cannot rot ---------------------------------------------------------------------

EVIDENCE = [(i.id, e) for i in ITEMS for e in i.evidence]


@pytest.mark.parametrize(
    ("item", "evidence"), EVIDENCE, ids=[f"{i}-week{e.week}" for i, e in EVIDENCE]
)
def test_every_evidence_name_is_a_visible_graded_item_of_its_week(item, evidence):
    if not evidence.released:
        assert evidence.pending, f"{item}: week {evidence.week} is not a week of the course"
        pytest.skip(f"week {evidence.week} is not in WEEKS yet (pending)")
    graded = _graded(evidence.week)
    for name in evidence.tests:
        assert name in graded, f"{item}: {name} is not a graded item of week {evidence.week}"
        # The checklist ships in the student template and `course check` runs visible items only.
        assert not graded[name], f"{item}: {name} is a hidden test"


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_items_are_well_formed_and_link_to_real_lesson_sections():
    assert len({i.id for i in ITEMS}) == len(ITEMS)
    for item in ITEMS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", item.id), item.id
        assert item.weeks and all(1 <= w <= 8 for w in item.weeks), item.id
        if item.kind == "hands-on":
            assert item.evidence and not item.answer, item.id
            assert {e.week for e in item.evidence} <= set(item.weeks), item.id
            continue
        assert len(item.answer.split()) >= 40 and item.question.strip(), item.id
        readme, anchor = item.lesson.split("#")
        text = (REPO / readme).read_text(encoding="utf-8")
        anchors = {_slug(h) for h in re.findall(r"^#{2,4} (.+)$", text, re.MULTILINE)}
        assert anchor in anchors, f"{item.id}: no heading #{anchor} in {readme}"
        for ref in item.questions:  # "6.5": week 6's README, interview question 5
            week, number = map(int, ref.split("."))
            week_readme = REPO / "weeks" / _week_slug(week) / "README.md"
            summaries = re.findall(r"<summary>(\d+)\.", week_readme.read_text(encoding="utf-8"))
            assert str(number) in summaries, f"{item.id}: no question {ref}"


def _week_slug(week: int) -> str:
    return next(p.name for p in (REPO / "weeks").iterdir() if p.name.startswith(f"{week:02d}-"))


def test_the_issue_s_items_are_all_there():
    kinds = {i.id: i.kind for i in ITEMS}
    for concept in (
        "pipeline-components",
        "drift",
        "cicd-for-ml",
        "reproducibility",
        "tracking-tools",
    ):
        assert kinds[concept] == "concept"
    for skill in (
        "containerise",
        "track-experiments",
        "automate-pipelines",
        "deploy-kubernetes",
        "monitor-evidently",
    ):
        assert kinds[skill] == "hands-on"
    assert kinds["design-churn-service"] == kinds["design-delayed-labels"] == "design"


def test_a_broken_items_file_is_one_sentence(tmp_path):
    bad = tmp_path / "checklist.yaml"
    bad.write_text("items:\n  - id: x\n    title: X\n    kind: hands-on\n    weeks: [1]\n")
    with pytest.raises(
        CourseError, match="is not a valid checklist .item 1 is hands-on without evidence"
    ):
        ck.load_items(bad)
    bad.write_text("items:\n  - id: x\n    title: a: b\n")
    with pytest.raises(CourseError) as err:
        ck.load_items(bad)
    assert "\n" not in str(err.value)


# --- ticking from evidence --------------------------------------------------------------------


def _report(student: str, week: int, statuses: dict[str, str]) -> Report:
    return Report(
        student,
        week,
        hidden_tests=True,
        tests=[
            Result(name, "notebook" if "::" not in name else "pytest", 1, 1, status)
            for name, status in statuses.items()
        ],
    )


def _passing(week: int) -> dict[str, str]:
    """Every visible graded item of a week, passed."""
    return {n: "passed" for n, hidden in _graded(week).items() if not hidden}


def _state(cl: ck.Checklist, item_id: str) -> ck.ItemState:
    return next(s for s in cl.items if s.item.id == item_id)


def test_an_item_is_ticked_only_when_every_named_test_passed(tmp_path):
    week1 = _passing(1)
    week1["test_train.py::test_dockerfile_runs_as_non_root_and_trains"] = "failed"
    write_report(_report("alice", 1, week1), tmp_path / "grades")
    cl = ck.checklist(tmp_path)
    assert cl.student == "alice"
    repro = _state(cl, "reproducible-training")
    assert repro.state == "proven" and repro.done and repro.passed == repro.needed == 4
    assert {p.source for p in repro.proofs} == {"grades/alice/week01.json"}
    box = _state(cl, "containerise")  # week 1 has one failure, week 5 no report at all
    assert box.state == "partial" and not box.done
    failed = [p for p in box.proofs if p.status == "failed"]
    assert [p.name for p in failed] == [
        "test_train.py::test_dockerfile_runs_as_non_root_and_trains"
    ]
    assert box.missing_weeks() == [5]
    table = ck.to_table(cl)
    assert "[x] Train a model reproducibly" in table
    assert "[~] Containerise ML workloads" in table and "2/6 passed" in table
    assert "failed  week 1  test_train.py::test_dockerfile_runs_as_non_root_and_trains" in table
    assert no_evidence(5) in table


def no_evidence(week: int) -> str:
    return (
        f"week {week}: no evidence yet: run `course check {week}` or "
        f"`course grade . --week {week} --out grades`"
    )


def test_without_any_evidence_nothing_is_ticked_and_nothing_fails(tmp_path):
    cl = ck.checklist(tmp_path)
    hands_on = cl.of_kind("hands-on")
    assert {s.state for s in hands_on} <= {"no-evidence", "pending"}
    assert cl.student is None and cl.sources == []
    table = ck.to_table(cl)
    assert no_evidence(1) in table and "Evidence: none yet" in table
    assert cl.summary()["hands-on"] == {"done": 0, "total": len(hands_on)}


def test_a_name_a_report_lacks_is_not_evidence(tmp_path):
    write_report(_report("alice", 3, {"test_task1_log": "passed"}), tmp_path / "grades")
    track = _state(ck.checklist(tmp_path), "track-experiments")
    assert track.state == "partial"
    assert [p.status for p in track.proofs].count("missing") == len(track.proofs) - 1
    assert (
        "absent  week 3  test_track.py::test_best_trial_is_registered_as_challenger  "
        "(grades/alice/week03.json)" in ck.to_table(ck.checklist(tmp_path))
    )


def test_pending_weeks_count_only_once_they_are_in_the_course(tmp_path, monkeypatch):
    item = ck.Item(
        "k8s",
        "Deploy",
        "hands-on",
        (1, 9),
        evidence=(ck.Evidence(1, ("test_task1_data",)), ck.Evidence(9, ("test_x",), pending=True)),
    )
    write_report(_report("alice", 1, {"test_task1_data": "passed"}), tmp_path / "grades")
    state = _state(ck.checklist(tmp_path, items=[item]), "k8s")
    assert state.state == "proven" and [p.status for p in state.proofs] == ["passed", "pending"]
    monkeypatch.setitem(WEEKS, 9, WEEKS[1])  # week 9 joins the course: its evidence is needed
    state = _state(ck.checklist(tmp_path, items=[item]), "k8s")
    assert state.state == "partial" and state.proofs[1].status == "none"


def test_several_students_need_student(tmp_path):
    for student in ("alice", "bob"):
        write_report(_report(student, 1, _passing(1)), tmp_path / "grades")
    with pytest.raises(
        CourseError,
        match=r"holds the reports of 2 students \(alice, bob\); choose one with --student NAME",
    ):
        ck.checklist(tmp_path)
    cl = ck.checklist(tmp_path, student="bob")
    assert cl.student == "bob" and _state(cl, "reproducible-training").state == "proven"
    with pytest.raises(
        CourseError, match="has no reports of 'carol'; the students there are: alice, bob"
    ):
        ck.checklist(tmp_path, student="carol")
    # --grades may name one student's folder, anywhere
    cl = ck.checklist(tmp_path, grades=tmp_path / "grades/alice")
    assert cl.student == "alice"


def test_a_fresh_check_takes_precedence_over_the_reports(tmp_path):
    (tmp_path / "labs/week01").mkdir(parents=True)
    (tmp_path / "labs/week01/lab.ipynb").write_text("{}")
    write_report(_report("alice", 1, _passing(1)), tmp_path / "grades")
    calls = []

    def fake_check(week, labs):
        calls.append((week, labs))
        rows = [SimpleNamespace(name=n, status="passed") for n in _passing(1)]
        rows = [r for r in rows if r.name != "test_task4_repro"]
        return SimpleNamespace(
            tests=[*rows, SimpleNamespace(name="test_task4_repro", status="failed")]
        )

    cl = ck.checklist(tmp_path, run_checks=True, run_check=fake_check, on_week=lambda w: None)
    assert calls == [(1, tmp_path / "labs")]  # the only week whose lab is there
    assert cl.sources == [
        "course check, weeks 1",
        "grade reports of alice in grades/alice, weeks 1",
    ]
    assert "week 2: no labs/week02/lab.ipynb to check" in cl.notes
    repro = _state(cl, "reproducible-training")  # the report says passed, the check failed
    assert repro.state == "partial" and {p.source for p in repro.proofs} == {"course check 1"}
    assert [p.name for p in repro.proofs if p.status == "failed"] == ["test_task4_repro"]


def test_a_check_that_cannot_run_is_a_note(tmp_path):
    (tmp_path / "labs/week01").mkdir(parents=True)
    (tmp_path / "labs/week01/lab.ipynb").write_text("{}")

    def broken(week, labs):
        raise CourseError("labs/week01/lab.ipynb is not a valid notebook; restore it from git.")

    cl = ck.checklist(tmp_path, run_checks=True, run_check=broken, weeks=[1])
    assert cl.notes == [
        "week 1: `course check 1` could not run: "
        "labs/week01/lab.ipynb is not a valid notebook; restore it from git."
    ]
    with pytest.raises(CourseError, match="has no labs/ folder; --run-checks runs"):
        ck.checklist(tmp_path / "labs/week01", run_checks=True, run_check=broken)


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_a_report_that_does_not_parse_is_one_sentence_naming_it(tmp_path, capsys):
    bad = tmp_path / "grades/alice/week02.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"student": "alice", "week": 2, "tests": [')
    assert main(["checklist", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not a readable grade report" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    bad.write_text('{"student": "alice", "week": 2, "hidden_tests": true, "tests": [{"name": 1}]}')
    assert main(["checklist", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["{tmp}/nowhere"], "is not a folder; give the path of your course checkout"),
        (
            ["{tmp}", "--grades", "{tmp}/nothing"],
            "The grades folder '{tmp}/nothing' does not exist.",
        ),
        (["{tmp}", "--run-checks"], "has no labs/ folder"),
        (["{tmp}", "--student", "alice"], "There are no grade reports in '{tmp}/grades'"),
        (["{tmp}", "--quiz"], "is not a readable ratings file"),
    ],
)
def test_cli_bad_input_is_one_sentence(tmp_path, capsys, args, needle):
    (tmp_path / ".course").mkdir()
    (tmp_path / ".course/checklist.json").write_text("{not json")
    if "--quiz" not in args:
        (tmp_path / ".course/checklist.json").unlink()
    assert main(["checklist", *(a.format(tmp=tmp_path) for a in args)]) == 2
    err = capsys.readouterr().err
    assert needle.format(tmp=tmp_path) in err and len(err.strip().splitlines()) == 1


def test_cli_json_and_md(tmp_path, capsys):
    write_report(_report("alice", 6, _passing(6)), tmp_path / "grades")
    assert main(["checklist", str(tmp_path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["student"] == "alice" and data["path"] == str(tmp_path.resolve())
    monitor = next(i for i in data["items"] if i["id"] == "monitor-evidently")
    assert monitor["state"] == "proven" and monitor["done"] is True
    assert {e["status"] for e in monitor["evidence"]} == {"passed"}
    assert {e["source"] for e in monitor["evidence"]} == {"grades/alice/week06.json"}
    drift = next(i for i in data["items"] if i["id"] == "drift")
    assert drift["state"] == "not-practised" and "concept drift" in drift["answer"]
    assert drift["lesson"].startswith("weeks/06-orchestration-monitoring/README.md#")
    assert data["summary"]["hands-on"]["done"] == 1
    assert main(["checklist", str(tmp_path), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("## MLOps skills proven by this repository\n")
    assert "| ✅ | Monitor a served model for drift" in md
    assert "[week 6](weeks/06-orchestration-monitoring/README.md#what-can-change" in md


def test_cli_lists_checklist_and_starts_without_heavy_imports(tmp_path):
    code = (
        "import sys; from autograder.cli import main; "
        f"rc = main(['checklist', {str(tmp_path)!r}, '--format', 'json']); "
        "heavy = [m for m in ('nbformat', 'nbclient', 'mlflow', 'sklearn', 'pandas', 'numpy', "
        "'autograder.check') if m in sys.modules]; print(rc, heavy, file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.stderr.strip().splitlines()[-1] == "0 []", proc.stderr
    assert json.loads(proc.stdout)["summary"]["design"]["total"] == 2
    proc = subprocess.run(
        [sys.executable, "-m", "autograder.cli", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert "checklist" in proc.stdout


# --- the quiz ---------------------------------------------------------------------------------

QUIZ_ITEMS = [
    ck.Item(
        "a",
        "First",
        "concept",
        (6,),
        lesson="weeks/x.md#a",
        question="What is A?",
        answer="A is the first letter.",
    ),
    ck.Item(
        "b",
        "Second",
        "design",
        (7,),
        lesson="weeks/x.md#b",
        question="Design B.",
        answer="B is designed so.",
    ),
    ck.Item(
        "c",
        "Third",
        "concept",
        (1,),
        lesson="weeks/x.md#c",
        question="And C?",
        answer="C comes third.",
    ),
    ck.Item("h", "Hands", "hands-on", (1,), evidence=(ck.Evidence(1, ("t",)),)),
]


def _clock(*stamps: str):
    times = iter(datetime.fromisoformat(s) for s in stamps)
    return lambda: next(times)


def test_quiz_asks_reveals_and_saves_each_rating(tmp_path):
    answers = "My answer about A\nsecond line\n\n2\nI would design B\n\nmaybe\n3\n"
    out = io.StringIO()
    result = ck.quiz(
        tmp_path,
        io.StringIO(answers),
        out,
        items=QUIZ_ITEMS,
        now=_clock("2026-12-01T10:00:00+00:00", "2026-12-01T10:05:00+00:00"),
    )
    text = out.getvalue()
    assert text.index("What is A?") < text.index("A is the first letter.") < text.index("Design B.")
    assert "Type 1, 2, 3, s or q." in text  # "maybe" is not a rating
    assert "Hands" not in text  # hands-on items are never rated by hand
    assert result.rated == ["a", "b"] and result.asked == 3 and result.total == 3
    saved = json.loads((tmp_path / ".course/checklist.json").read_text())
    assert saved == {
        "ratings": {
            "a": [{"rating": 2, "at": "2026-12-01T10:00:00+00:00"}],
            "b": [{"rating": 3, "at": "2026-12-01T10:05:00+00:00"}],
        }
    }
    assert not [p for p in (tmp_path / ".course").iterdir() if p.name != "checklist.json"]
    # The next quiz starts with what was never rated, then the weakest.
    out = io.StringIO()
    again = ck.quiz(
        tmp_path,
        io.StringIO("\ns\n\n1\n"),
        out,
        items=QUIZ_ITEMS,
        now=_clock("2026-12-02T09:00:00+00:00"),
    )
    assert out.getvalue().index("And C?") < out.getvalue().index("What is A?")
    assert again.rated == ["a"]
    ratings = ck.read_ratings(tmp_path)
    assert [r.rating for r in ratings["a"]] == [2, 1] and "c" not in ratings
    states = {s.item.id: s.state for s in ck.checklist(tmp_path, items=QUIZ_ITEMS).items}
    assert states == {"a": "missed it", "b": "fully", "c": "not-practised", "h": "no-evidence"}


def test_quiz_ends_cleanly_at_end_of_input_and_on_quit(tmp_path):
    out = io.StringIO()
    result = ck.quiz(
        tmp_path,
        io.StringIO("answer\n\n3\nhalf an answ"),
        out,
        items=QUIZ_ITEMS,
        now=_clock("2026-12-01T10:00:00+00:00"),
    )
    assert result.rated == ["a"] and result.asked == 2 and not result.interrupted
    assert ck.read_ratings(tmp_path)["a"][0].rating == 3
    result = ck.quiz(tmp_path, io.StringIO("\nq\n"), io.StringIO(), items=QUIZ_ITEMS)
    assert result.rated == [] and result.asked == 1


def test_cli_quiz_reads_a_pipe(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("I do not know\n\n1\n"))
    assert main(["checklist", str(tmp_path), "--quiz"]) == 0
    out = capsys.readouterr().out
    total = len(ck.quiz_order(ITEMS, {}))
    assert f"Quiz 1 of {total} questions rated, saved in" in out
    (item,) = ck.read_ratings(tmp_path)
    assert item == ck.quiz_order(ITEMS, {})[0].id


# --- the portfolio section (golden) -----------------------------------------------------------

GOLDEN_ITEMS = [
    ck.Item(
        "repro",
        "Train reproducibly",
        "hands-on",
        (1,),
        evidence=(ck.Evidence(1, ("test_task4_repro", "test_train.py::test_split")),),
    ),
    ck.Item(
        "box",
        "Containerise",
        "hands-on",
        (1, 5),
        evidence=(
            ck.Evidence(1, ("test_train.py::test_dockerfile",)),
            ck.Evidence(5, ("test_export.py::test_image",)),
        ),
    ),
    ck.Item(
        "gates",
        "Gate | promote",
        "hands-on",
        (4,),
        evidence=(ck.Evidence(4, ("test_gates.py::a", "test_gates.py::b")),),
    ),
    ck.Item(
        "k8s",
        "Deploy on Kubernetes",
        "hands-on",
        (7,),
        evidence=(ck.Evidence(99, ("test_k8s.py::x",), pending=True),),
    ),
    ck.Item(
        "drift",
        "Data drift | concept drift",
        "concept",
        (6,),
        answer="...",
        lesson="weeks/06-orchestration-monitoring/README.md#labels-arrive-late",
        question="?",
    ),
    ck.Item(
        "cicd",
        "CI/CD in ML",
        "concept",
        (4,),
        answer="...",
        lesson="weeks/04-cicd/README.md#x",
        question="?",
    ),
    ck.Item(
        "churn",
        "Design a churn service",
        "design",
        (5, 7),
        answer="...",
        lesson="weeks/07-cloud-scaling/README.md#y",
        question="?",
    ),
]


def _golden_checklist(tmp_path: Path) -> ck.Checklist:
    grades = tmp_path / "grades"
    write_report(
        _report(
            "alice",
            1,
            {
                "test_task4_repro": "passed",
                "test_train.py::test_split": "passed",
                "test_train.py::test_dockerfile": "passed",
            },
        ),
        grades,
    )
    write_report(
        _report("alice", 4, {"test_gates.py::a": "passed", "test_gates.py::b": "error"}), grades
    )
    ck.write_ratings(
        tmp_path,
        {
            "drift": [
                ck.Rating(2, "2026-11-30T08:00:00+00:00"),
                ck.Rating(3, "2026-12-01T08:00:00+00:00"),
            ],
            "cicd": [ck.Rating(1, "2026-12-01T09:00:00+00:00")],
        },
    )
    return ck.checklist(tmp_path, items=GOLDEN_ITEMS)


def test_markdown_of_a_fixed_report_set_matches_the_golden_file(tmp_path):
    md = ck.to_markdown(_golden_checklist(tmp_path), today=date(2026, 12, 2))
    if os.environ.get("COURSE_UPDATE_GOLDEN"):
        GOLDEN.write_text(md, encoding="utf-8")
    assert md == GOLDEN.read_text(encoding="utf-8")


def test_json_of_a_fixed_report_set(tmp_path):
    data = json.loads(ck.to_json(_golden_checklist(tmp_path)))
    states = {i["id"]: i["state"] for i in data["items"]}
    assert states == {
        "repro": "proven",
        "box": "partial",
        "gates": "partial",
        "k8s": "pending",
        "drift": "fully",
        "cicd": "missed it",
        "churn": "not-practised",
    }
    assert data["summary"] == {
        "hands-on": {"done": 1, "total": 4},
        "concept": {"done": 1, "total": 2},
        "design": {"done": 0, "total": 1},
    }
    gates = next(i for i in data["items"] if i["id"] == "gates")
    assert gates["evidence"][1] == {
        "week": 4,
        "name": "test_gates.py::b",
        "status": "error",
        "source": "grades/alice/week04.json",
    }
    drift = next(i for i in data["items"] if i["id"] == "drift")
    assert drift["rating"] == {"rating": 3, "at": "2026-12-01T08:00:00+00:00"}
    assert data["sources"] == ["grade reports of alice in grades/alice, weeks 1, 4"]


# --- the student template ---------------------------------------------------------------------


def test_the_student_template_carries_the_checklist(tmp_path):
    from autograder.export import export_student

    dest = export_student(tmp_path / "alice")
    assert (dest / "autograder/checklist.yaml").is_file()
    assert "course checklist" in (dest / "README.md").read_text(encoding="utf-8")
    write_report(_report("alice", 2, _passing(2)), dest / "grades")
    cl = ck.checklist(dest)
    assert _state(cl, "version-and-validate-data").state == "proven"
    for item in cl.items:  # the lessons the items link to are in the template
        if item.item.lesson:
            assert (dest / item.item.lesson.split("#")[0]).is_file()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_run_checks_ticks_week_1_from_a_real_course_check(tmp_path):
    """A real `course check 1` on the reference laid out as a student's checkout."""
    from submissions import reference

    checkout = reference(tmp_path / "alice")
    cl = ck.checklist(checkout, run_checks=True, weeks=[1])
    assert cl.sources == ["course check, weeks 1"]
    repro = _state(cl, "reproducible-training")
    assert repro.state == "proven", ck.to_table(cl)
    assert _state(cl, "containerise").missing_weeks() == [5]
