"""An honest learner grades their own git checkout: no flag may accuse them.

The README's self-paced section says ``course grade . --week N``. The checkout is
a git repository, and MLflow records the commit of the code that runs: it looks
up the repository above the grader's own code, whose git folder (it holds the
course's history) is protected like ``solutions/``. The grader refuses those
reads but does not report them as the student's. The learner's account is not
root, so the audit hook is all the isolation there is: these runs grade that way.

Week 4's visible mutant skips itself when the learner's ``clean`` is written
differently from the line it plants the bug in. In a student template (no
``solutions/``, so no reference files of the other weeks) that is what happens:
the test scores zero as ``skipped``, and a skip by the course's own test is no
tampering.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from submissions import LABS, reference

from autograder import grade as grading
from autograder.config import WEEKS
from autograder.sandbox import Limits
from autograder.sources import GradingSource

pytestmark = pytest.mark.slow

GRADED = (3, 4, 5)
#: Generous limits: this run proves the flags and the points, not the timeouts.
LIMITS = Limits(cell_timeout=120, test_timeout=180)
#: The line week 4's visible mutant plants its bug in, and an honest rewrite of it.
REFERENCE_LINE = "df[target] = labels.str.removeprefix(params.label_prefix)"
HONEST_LINE = "df[target] = [label.removeprefix(params.label_prefix) for label in labels]"
VISIBLE_MUTANT = "test_suite.py::test_your_suite_catches_a_label_prefix_left_in_place"


def _git(*args: str, cwd) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Learner", "-c", "user.email=learner@example.com", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


def _checkout(dest):
    """The reference of weeks 3-5, ``clean`` written its own way, committed to git."""
    sub = reference(dest)
    for number, week in WEEKS.items():
        if number not in GRADED:
            shutil.rmtree(sub / "labs" / week.lab)
    data = sub / "labs/mlpipe/data.py"
    text = data.read_text(encoding="utf-8")
    assert text.count(REFERENCE_LINE) == 1
    data.write_text(text.replace(REFERENCE_LINE, HONEST_LINE), encoding="utf-8")
    _git("init", "-q", cwd=sub)
    _git("add", ".", cwd=sub)
    _git("commit", "-qm", "my weeks 3 to 5", cwd=sub)
    return sub


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Weeks 3-5 with the hidden tests, and week 4 as a student template grades it."""
    root = tmp_path_factory.mktemp("self-grading")
    sub = _checkout(root / "learner")
    with pytest.MonkeyPatch.context() as patch:
        # Not root: no user of its own and no wall; a learner's own work is trusted.
        patch.setattr(grading, "probe", lambda *args, **kwargs: "")
        full = grading.grade(
            [sub], out=root / "grades", progress=False, jobs=2, limits=LIMITS,
            trust_submissions=True,
        )  # fmt: skip
        template = GradingSource(LABS, hidden_tests=False)
        visible = grading.grade(
            [sub], week=4, out=root / "template-grades", source=template, progress=False,
            limits=LIMITS, trust_submissions=True,
        )  # fmt: skip
    return {r.week: r for r in full}, visible[0]


@pytest.mark.parametrize("week", GRADED)
def test_honest_work_in_a_git_checkout_raises_no_flag(graded, week):
    report = graded[0][week]
    assert report.isolation == "limits-only"
    assert (report.flags, report.reasons) == ([], [])
    coded = [t for t in report.tests if t.status != "manual"]
    failed = [f"{t.name}: {t.output[:300]}" for t in coded if t.status != "passed"]
    assert not failed, failed


def test_the_courses_own_skip_scores_zero_without_a_flag(graded):
    report = graded[1]
    assert (report.flags, report.reasons) == ([], [])
    skipped = {t.name: t for t in report.tests if t.status == "skipped"}
    assert list(skipped) == [VISIBLE_MUTANT]
    test = skipped[VISIBLE_MUTANT]
    assert test.score == 0 and test.max_score == 2
    assert "has no line `df[target] = labels.str.removeprefix" in test.output
    others = [t.name for t in report.tests if t.status not in ("passed", "manual", "skipped")]
    assert others == []
