"""A week-1 class graded in batches: golden samples, bad and hostile ones, normal ones.

Each golden sample (``tests/submissions.py``) must get exactly the grade recorded in
``tests/golden/week01.json``. Each sample in ``tests/hostile.py`` must get its flag, a
one-line reason and exactly the points it earned, while the normal submissions graded
in the same run get their full score and nothing outside a sandbox changes.

The samples are graded in two batches, each one ``course grade`` run: a representative
one in ``make test`` (every golden sample, and a sample of each kind of trouble: a
timeout, a dead kernel, edited locked cells, a missing notebook, cheats in the kernel
and in pytest, planted files, forbidden writes, reading the hidden tests), and the
rest of the hostile samples in ``make test-slow``. Both hold the two normal
submissions. One run for the golden and the hostile samples costs one grading of the
reference and one nbgrader start-up fewer than two.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
from pathlib import Path

import pytest
from conftest import REPO
from hostile import SAMPLES, Context, build, second_checkout
from submissions import SAMPLES as GOLDEN_SAMPLES
from submissions import hidden_test_lines

from autograder.grade import grade
from autograder.report import read_reports
from autograder.sandbox import SLOT_UID_BASE, Limits, processes_of

GOLDEN = json.loads((REPO / "tests/golden/week01.json").read_text())

#: Short limits: the bombs and loops are stopped in seconds.
LIMITS = Limits(cell_timeout=12, test_timeout=20, memory_mb=1536, processes=96)
#: The representative batch has no hanging test, so its tests get the default limit: an
#: honest week-1 test that a loaded machine slows past 20 s must not flip a golden grade.
REPRESENTATIVE_LIMITS = Limits(cell_timeout=12, memory_mb=1536, processes=96)
BATCH_LIMITS = {"representative": REPRESENTATIVE_LIMITS}
GUARDED = ["autograder/grade.py", "autograder/sandbox.py", "solutions/week01/lab.ipynb"]


def _hashes(paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


NORMAL = ("reference", "fast")
#: The representative batch of ``make test``; every other sample runs in ``make test-slow``.
REPRESENTATIVE = (
    "sleeper", "os-exit", "locked-edited", "missing", "hide-failures",
    "skip-tests", "planted", "grader-writes", "hidden-reader",
)  # fmt: skip
REST = tuple(n for n in SAMPLES if n not in (*NORMAL, *REPRESENTATIVE))
#: The golden samples graded in the representative batch (its ``reference`` is NORMAL's).
GOLDEN_EXTRA = tuple(n for n in GOLDEN_SAMPLES if n not in NORMAL)
BATCHES = {"representative": (*REPRESENTATIVE, *GOLDEN_EXTRA), "rest": REST}
SLOW = pytest.mark.slow


def _batch_param(name: str):
    return pytest.param(name, marks=[SLOW] if name == "rest" else [], id=name)


def _sample_param(name: str):
    batch = "representative" if name in REPRESENTATIVE else "rest"
    return pytest.param(batch, name, marks=[SLOW] if batch == "rest" else [], id=name)


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    """Each batch graded once, on first use."""
    graded: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in graded:
            limits = BATCH_LIMITS.get(name, LIMITS)
            graded[name] = _grade_batch(
                tmp_path_factory.mktemp(name), (*NORMAL, *BATCHES[name]), limits
            )
        return graded[name]

    return get


@pytest.fixture(params=[_batch_param(n) for n in BATCHES])
def batch(request, batches):
    return batches(request.param)


def _grade_batch(root: Path, names: tuple[str, ...], limits: Limits) -> dict:
    out = root / "grades"
    hostile = [n for n in names if n in SAMPLES]
    listener = socket.create_server(("127.0.0.1", 0))  # the grader's loopback: out of reach
    ctx = Context(
        out=out, victim=root / "subs" / "reference", port=listener.getsockname()[1],
        second=second_checkout(root / "elsewhere" / "course"),
    )  # fmt: skip
    subs = build(root / "subs", ctx, hostile)
    for name in names:
        if name not in subs:
            subs[name] = GOLDEN_SAMPLES[name](root / "subs" / name)
    victim = sorted((subs["reference"] / "labs").rglob("*.*"))
    guarded = [REPO / p for p in GUARDED]
    before = _hashes([*victim, *guarded])
    with listener:
        reports = grade(list(subs.values()), week=1, out=out, progress=False, jobs=2, limits=limits)
    return {
        "out": out,
        "subs": subs,
        "reports": {r.student: r for r in reports},
        "before": before,
        "after": _hashes([*victim, *guarded]),
    }


def _autograded(report) -> float:
    return sum(t.score for t in report.tests if t.status != "manual")


# --- golden samples ------------------------------------------------------------------------


def test_every_golden_sample_gets_its_golden_grade(batches):
    reports = batches("representative")["reports"]
    assert set(GOLDEN) <= set(reports)
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


def test_golden_reference_earns_every_autograded_point(batches):
    report = batches("representative")["reports"]["reference"]
    coded = [t for t in report.tests if t.status != "manual"]
    assert coded and all(t.status == "passed" and t.score == t.max_score for t in coded)
    assert report.needs_manual_grading and report.hidden_tests


def test_golden_untouched_student_version_earns_no_coded_point(batches):
    report = batches("representative")["reports"]["untouched"]
    assert report.max_score == GOLDEN["reference"]["max_score"]
    assert all(t.score == 0 for t in report.tests)


def test_golden_infinite_loop_times_out_and_the_rest_is_graded(batches):
    report = batches("representative")["reports"]["infinite-loop"]
    assert "timeout" in report.flags
    status = {t.name: t.status for t in report.tests}
    assert status["test_task2_split"] == "error"
    assert status["test_task3_train"] == status["test_task4_repro"] == "passed"


def test_golden_reports_have_every_field_and_agree_with_the_csv(batches):
    batch = batches("representative")
    out, reports = batch["out"], batch["reports"]
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0] == "student,week01,total"
    assert {row.split(",")[0]: float(row.split(",")[1]) for row in rows[1:]} == {
        name: r.score for name, r in reports.items()
    }
    assert {r.student for r in read_reports(out)} == set(reports)
    for name in GOLDEN:
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


# --- hostile samples -----------------------------------------------------------------------


@pytest.mark.parametrize(("which", "name"), [_sample_param(n) for n in (*REPRESENTATIVE, *REST)])
def test_hostile_sample_is_flagged_and_earns_only_what_it_earned(batches, which, name):
    report = batches(which)["reports"][name]
    expected = SAMPLES[name][1]
    assert expected.flag in report.flags, (report.flags, report.reasons)
    assert any(expected.reason in r for r in report.reasons), report.reasons
    assert all("\n" not in r for r in report.reasons)
    assert _autograded(report) == expected.score, [(t.name, t.status) for t in report.tests]
    assert report.max_score == 29
    status = {t.name: t.status for t in report.tests}
    for test, wanted in expected.statuses:
        assert status[test] == wanted, test


def test_normal_submissions_in_the_same_run_get_full_marks(batch):
    reference, fast = batch["reports"]["reference"], batch["reports"]["fast"]
    assert reference.flags == [] and fast.flags == []
    assert _autograded(reference) == 25 and _autograded(fast) == SAMPLES["fast"][1].score
    assert reference.needs_manual_grading


def test_nothing_outside_the_sandboxes_changed(batch):
    assert batch["after"] == batch["before"]
    assert (batch["subs"]["reference"] / "labs/week01/lab.ipynb").is_file()
    db = batch["out"] / "nbgrader/gradebook.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert "changed by a student" not in (batch["out"] / "grades.csv").read_text()


def test_gradebook_csv_and_reports_agree(batch):
    from nbgrader.api import Gradebook

    out, reports = batch["out"], batch["reports"]
    rows = dict(line.split(",", 1) for line in (out / "grades.csv").read_text().splitlines()[1:])
    assert set(rows) == set(reports)
    with Gradebook(f"sqlite:///{out / 'nbgrader/gradebook.db'}", "mlops-roadmap") as gb:
        for name, report in reports.items():
            assert float(rows[name].split(",")[0]) == report.score
            nb_score = sum(t.score for t in report.tests if t.source == "notebook")
            assert gb.find_submission("week01", name).score == pytest.approx(nb_score), name


def test_dead_kernels_keep_the_autograded_notebook(batch):
    dead = [n for n in ("os-exit", "kill-9", "segfault") if n in batch["reports"]]
    assert dead
    for name in dead:
        path = batch["out"] / "nbgrader/autograded" / name / "week01/lab.ipynb"
        nb = json.loads(path.read_text())
        errors = [
            o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"
        ]
        assert any(o["ename"] == "DeadKernelError" for o in errors), name


@pytest.mark.slow
def test_the_flood_is_not_kept(batches):
    path = batches("rest")["out"] / "nbgrader/autograded/output-flood/week01/lab.ipynb"
    assert path.stat().st_size < 5 * 2**20


def test_no_student_process_is_left_running(batch):
    if os.getuid() != 0:
        pytest.skip("the grader changes user only when it runs as root")
    assert all(r.isolation == "uid+wall" for r in batch["reports"].values())
    import fcntl

    for uid in range(SLOT_UID_BASE, SLOT_UID_BASE + 8):
        lock = Path("/tmp/course-grade-uids") / f"{uid}.lock"
        if not lock.exists():
            continue
        with open(lock) as handle:
            try:  # a free id (no run holds it) must have no process left
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            assert processes_of(uid) == [], uid


def test_feedback_never_shows_hidden_test_source(batch):
    hidden = hidden_test_lines()
    assert len(hidden) > 20
    out = batch["out"]
    files = [*out.glob("*/week01-feedback.html"), *out.glob("*/week01.md")]
    assert len(files) == 2 * len(batch["reports"])
    for path in files:
        text = path.read_text()
        leaked = [line for line in hidden if line in text or line.replace('"', "&quot;") in text]
        assert not leaked, f"{path} shows hidden test source: {leaked[:2]}"
    if "hidden-reader" not in batch["reports"]:
        return
    # The leaking sample did try: its instructor's report holds the hidden text.
    assert any(line in (out / "hidden-reader/week01.json").read_text() for line in hidden)


def test_feedback_shows_the_students_code_and_visible_results(batches):
    html = (batches("representative")["out"] / "locked-edited/week01-feedback.html").read_text()
    assert "n_rows = 0" in html  # their answer
    assert "assert n_rows == 150" in html  # the visible test, as released
    assert "looks fine to me" not in html  # graded with the instructor's cell


def test_manual_grades_are_exported_and_survive_a_forced_regrade(batches, tmp_path):
    from nbgrader.api import Gradebook

    batch = batches("representative")
    out = tmp_path / "grades"
    import shutil

    shutil.copytree(batch["out"], out)
    sub = batch["subs"]["fast"]
    first = batch["reports"]["fast"]
    assert first.needs_manual_grading
    url = f"sqlite:///{out / 'nbgrader/gradebook.db'}"
    with Gradebook(url, "mlops-roadmap") as gb:  # what the formgrader does on "save"
        answer = gb.find_grade("task6_written", "lab", "week01", "fast")
        answer.manual_score, answer.needs_manual_grade = 3.0, False
        gb.db.commit()

    [again] = grade(
        [sub], week=1, out=out, progress=False, limits=REPRESENTATIVE_LIMITS, gradescope=True
    )
    assert again.seconds == first.seconds  # taken from the gradebook, not graded again
    assert not again.needs_manual_grading
    assert again.score == first.score + 3
    saved = json.loads((out / "fast/week01.json").read_text())
    assert saved["score"] == again.score and saved["needs_manual_grading"] is False
    assert json.loads((out / "fast/week01-results.json").read_text())["score"] == again.score
    assert f"fast,{again.score:g},{again.score:g}" in (out / "grades.csv").read_text()

    [forced] = grade(
        [sub], week=1, out=out, progress=False, limits=REPRESENTATIVE_LIMITS, force=True
    )
    assert forced.seconds != first.seconds
    assert forced.score == again.score and not forced.needs_manual_grading
    with Gradebook(url, "mlops-roadmap") as gb:
        assert gb.find_grade("task6_written", "lab", "week01", "fast").manual_score == 3.0
