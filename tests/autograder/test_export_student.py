"""``autograder.export``: ``course export-student``, the student template."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import REPO, run_module

from autograder.export import export_student


def test_exported_template_has_no_solutions_and_runs_its_own_check(tmp_path):
    dest = export_student(tmp_path / "template")
    files = [p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()]
    assert not [f for f in files if f.startswith("solutions") or "/hidden/" in f]
    assert ".github/workflows/grade.yml" in files
    assert "autograder/reference/week01/lab.ipynb" in files
    # The template's Makefile includes the telemetry definition, which comes with autograder/.
    assert "autograder/telemetry.env" in files
    make = subprocess.run(["make", "-s", "help"], cwd=dest, capture_output=True, text=True)
    assert make.returncode == 0 and "make check" in make.stdout, make.stderr
    hidden_source = (REPO / "solutions/week01/tests/hidden/test_train_hidden.py").read_text()
    for f in files:
        text = (dest / f).read_text(errors="ignore")
        if f.startswith(("labs/", "weeks/", "autograder/reference/")):
            assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, f
        assert "test_training_reproduces_across_processes" not in text, f
    assert "def test_" in hidden_source
    # The template's own CLI works there: check runs the visible tests of its labs/.
    proc = run_module("autograder.cli", "check", "1", cwd=dest, pythonpath=dest, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "visible score: 0 / 21" in proc.stdout
    assert str(dest / "labs") in proc.stdout


@pytest.mark.slow  # a whole grading run; the fast tier checks the template with `course check`
def test_exported_template_grades_itself_with_visible_tests_only(tmp_path):
    """What the template's own CI runs: `course grade .`, without hidden tests."""
    dest = export_student(tmp_path / "alice")
    proc = run_module(
        "autograder.cli",
        "grade",
        ".",
        "--week",
        "1",
        "--out",
        "grades",
        "--quiet",
        cwd=dest,
        pythonpath=dest,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hidden tests were not available" in proc.stdout
    report = json.loads((dest / "grades/alice/week01.json").read_text())
    assert report["hidden_tests"] is False and report["score"] == 0
    assert not [t for t in report["tests"] if "hidden/" in t["name"]]
    assert report["max_score"] == 25  # 10 notebook + 11 visible component + 4 written
