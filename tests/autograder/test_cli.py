"""The ``course`` CLI: bad input gets one sentence, a non-zero exit and no traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import REPO, run_module


def course(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return run_module("autograder.cli", *args, cwd=cwd)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["grade", "/nonexistent/student"], "does not exist"),
        (["grade", "{tmp}"], "is not a submission: it has no labs/ folder"),
        (["grade", "{sub}", "--week", "9"], "There is no lab for week '9'"),
        (["check", "12"], "There is no lab for week '12'"),
        (["release", "--week", "0", "--check"], "There is no lab for week '0'"),
        (["export-student", "{sub}"], "is not empty"),
    ],
)
def test_bad_input_is_one_sentence(tmp_path, args, needle):
    sub = tmp_path / "student"
    (sub / "labs").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    proc = course(*(a.format(tmp=tmp_path / "empty", sub=sub) for a in args))
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_submission_without_the_week_is_graded_zero_and_flagged(tmp_path):
    sub = tmp_path / "alice"
    (sub / "labs").mkdir(parents=True)
    proc = course("grade", str(sub), "--week", "1", "--out", str(tmp_path / "out"), "--quiet")
    assert proc.returncode == 3, proc.stderr
    assert "alice" in proc.stdout and "missing-lab" in proc.stdout
    assert "The submission has no labs/week01 folder." in proc.stdout
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "out/alice/week01.json").is_file()
    assert (tmp_path / "out/grades.csv").read_text().splitlines()[1] == "alice,0,0"


def test_release_check_passes_on_the_repository():
    proc = course("release", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "in sync" in proc.stdout


def test_help_lists_every_verb():
    proc = course("--help")
    for verb in ("release", "check", "grade", "export-student"):
        assert verb in proc.stdout
