"""``autograder.report``: what student-facing text may show."""

from __future__ import annotations

import json

from submissions import hidden_test_lines

from autograder.report import (
    Report,
    clip,
    gradescope_results,
    scrub,
    to_feedback_html,
    to_markdown,
)
from autograder.report import TestResult as Result


def test_student_facing_text_never_quotes_hidden_tests():
    hidden = hidden_test_lines()
    leak = "\n".join(hidden[:5])
    report = Report("alice", 1, True, reasons=[f"echo: {hidden[0]}"])
    report.tests = [
        Result(
            "hidden/t.py::test_x", "pytest", 0, 1, "failed", f"E   AssertionError: {leak}", True
        ),
        Result("test_train.py::test_y", "pytest", 0, 1, "failed", leak, False),
        Result("test_task1_data", "notebook", 0, 2, "error", f"Traceback\n{leak}", True),
    ]
    notebook = {"cells": [{"cell_type": "code", "source": leak, "metadata": {}}]}
    for text in (to_feedback_html(report, hidden, notebook), to_markdown(report, hidden)):
        assert not [line for line in hidden if line in text or line.replace('"', "&quot;") in text]
    assert scrub("x " + hidden[0], hidden) == "x [hidden test]"
    assert json.dumps(report.to_dict())  # the instructor's JSON keeps everything


def test_markdown_points_a_manual_item_to_the_weeks_rubric():
    from conftest import REPO

    report = Report("alice", 2, False)
    report.tests = [Result("task5_written", "notebook", 0, 4, "manual", "", False)]
    text = to_markdown(report)
    assert "weeks/02-data/RUBRIC.md" in text and (REPO / "weeks/02-data/RUBRIC.md").is_file()
    report.tests[0].status = "passed"  # graded: no pointer
    assert "RUBRIC.md" not in to_markdown(report)


def test_markdown_says_why_a_skipped_test_earned_nothing():
    report = Report("alice", 4, True)
    reason = "skipped: mlpipe/data.py has no line to plant the bug in"
    report.tests = [Result("test_suite.py::test_x", "pytest", 0, 2, "skipped", reason, False)]
    text = to_markdown(report)
    assert "| `test_suite.py::test_x` | pytest | 0 / 2 | skipped |" in text
    assert "## What to fix" in text and reason in text
    assert report.to_dict()["max_score"] == 2


def test_clip_keeps_a_long_failures_message_and_its_end():
    diff = "\n".join(f"E         -     {i}," for i in range(2000))
    text = (
        f"    assert a == b\nE   AssertionError: the index starts at 200\nE   assert [...]\n{diff}"
    )
    clipped = clip(text, limit=1000)
    assert clipped.startswith("E   AssertionError: the index starts at 200")
    assert clipped.endswith("E         -     1999,") and len(clipped) < 1100
    assert clip("short") == "short"
    assert clip("x" * 50 + "\nend", limit=10) == "...\n" + ("x" * 50 + "\nend")[-10:]


def test_a_hidden_test_shows_only_the_graders_line_never_its_output():
    """A student's code ran beside the hidden test: its output may carry anything, encoded."""
    import base64
    import zlib

    payload = base64.b64encode(zlib.compress(b"def test_hidden(): assert secret() == 42")).decode()
    report = Report("mallory", 1, True)
    report.tests = [
        Result(
            "hidden/t.py::test_x", "pytest", 0, 1, "failed", f"E   AssertionError: {payload}", True
        ),
        Result("test_task2_split", "notebook", 0, 2, "error", f"ValueError: {payload}", True),
    ]
    results = json.dumps(gradescope_results(report))
    for text in (to_feedback_html(report), to_markdown(report), results):
        assert payload not in text
        assert "a hidden check failed" in text and "a hidden check could not run" in text
