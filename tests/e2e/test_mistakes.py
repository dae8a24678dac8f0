"""``course check`` on the catalogue of typical mistakes: each is caught, with a useful message.

Each sample is the reference with one mistake made (``tests/mistakes.py``). ``course check``
must fail the item named in the catalogue, with a message that names the function,
says what was expected and what came, and hints at the fix; and it must show no
traceback. The whole catalogue is in the slow tier; a representative few in the fast one.

Each sample is checked with ``--task K``, K being the task that holds the item (what a
student runs while working on that task): the item is checked as a full run checks it,
and the catalogue costs one task's cells and tests per sample, not a whole week's.
"""

from __future__ import annotations

from collections import Counter

import pytest
from mistakes import FAST, MISTAKES, build, edited

from autograder.check import check
from autograder.config import REPO_ROOT as REPO
from autograder.config import SOLUTIONS, WEEKS, get_week
from autograder.sources import notebook_items, pytest_items


def task_of_item(week: int, item: str) -> int:
    """The lab task that the graded ``item`` of ``week`` belongs to."""
    lab = REPO / SOLUTIONS / get_week(week).lab
    items = [*notebook_items(lab / "lab.ipynb"), *pytest_items(lab / "tests")]
    [task] = [i.task for i in items if i.name == item]
    assert task is not None, f"{item} belongs to no task"
    return task


def _param(mistake):
    marks = () if mistake.name in FAST else (pytest.mark.slow,)
    return pytest.param(mistake, id=f"week{mistake.week:02d}-{mistake.name}", marks=marks)


def test_every_edit_applies_once_and_every_week_has_eight():
    for mistake in MISTAKES:
        assert edited(mistake) != "", mistake.name  # raises if the reference moved on
    per_week = Counter(m.week for m in MISTAKES)
    assert per_week[1] >= 13
    assert len({m.name for m in MISTAKES}) == len(MISTAKES)
    started = [week for week in WEEKS if per_week[week]]
    assert all(per_week[week] >= 8 for week in started), per_week


@pytest.mark.parametrize("mistake", [_param(m) for m in MISTAKES])
def test_check_catches_the_mistake_with_a_useful_message(mistake, tmp_path):
    sub = build(mistake, tmp_path / "student")
    result = check(mistake.week, labs=sub / "labs", task=task_of_item(mistake.week, mistake.item))
    rows = {t.name: t for t in result.tests}
    assert mistake.item in rows, sorted(rows)
    row = rows[mistake.item]
    assert row.status in ("failed", "error") and row.score == 0, (row.status, row.output)
    missing = [fragment for fragment in mistake.expect if fragment not in row.output]
    assert not missing, f"{mistake.item} said:\n{row.output}\nmissing: {missing}"
    assert "Traceback (most recent call last)" not in row.output
    assert "\x1b" not in row.output and "#x1B" not in row.output, "terminal colour codes"
    assert result.score < result.max_score
