"""``autograder.check``: ``course check``, the student's instant feedback."""

from __future__ import annotations

from conftest import LABS
from submissions import reference

from autograder.check import check


def test_check_on_the_untouched_lab_fails_every_item_with_a_reason():
    result = check(1, labs=LABS)
    coded = [t for t in result.tests if t.status != "manual"]
    assert coded and all(t.score == 0 and t.output for t in coded)
    assert {t.source for t in coded} == {"notebook", "pytest"}
    assert not any("hidden" in t.name for t in result.tests)


def test_check_on_the_reference_passes_every_visible_item(tmp_path):
    sub = reference(tmp_path / "me")
    result = check(1, labs=sub / "labs")
    failed = [(t.name, t.output) for t in result.tests if t.status not in ("passed", "manual")]
    assert not failed
    assert result.score == result.max_score > 0
