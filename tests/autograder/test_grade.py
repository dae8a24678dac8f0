"""``autograder.grade``: planning a class run."""

from __future__ import annotations

import json

from autograder.config import WEEKS
from autograder.grade import Submission, plan


def test_all_weeks_and_one_week_are_planned_from_the_week_registry(tmp_path):
    sub = Submission(tmp_path, "alice")
    assert [w for _, w in plan([sub], None, True)] == list(WEEKS.values())
    assert [w.number for _, w in plan([sub], 1, False)] == [1]


def _git(*args, cwd):
    import subprocess

    subprocess.run(
        ["git", "-c", "user.name=s", "-c", "user.email=s@example.com", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


def test_a_checkouts_git_folders_are_found_also_through_a_worktree(tmp_path):
    from autograder.grade import git_folders

    main = tmp_path / "main"
    main.mkdir()
    (main / "f.py").write_text("x = 1\n")
    _git("init", "-q", cwd=main)
    _git("add", ".", cwd=main)
    _git("commit", "-qm", "first", cwd=main)
    _git("worktree", "add", "-q", str(tmp_path / "wt"), cwd=main)
    assert git_folders(main) == [main / ".git"]
    assert git_folders(tmp_path / "wt") == [main / ".git/worktrees/wt", main / ".git"]
    assert git_folders(tmp_path) == []


def test_the_courses_git_history_is_protected_like_its_solutions(tmp_path):
    """It holds every committed version of solutions/ and the hidden tests."""
    import os

    from autograder.config import REPO_ROOT
    from autograder.grade import git_folders, protected
    from autograder.sources import find_source

    protect = protected(tmp_path / "out", [], find_source(), tmp_path / "scratch")
    assert git_folders(REPO_ROOT) or not (REPO_ROOT / ".git").exists()
    for folder in git_folders(REPO_ROOT):
        assert os.path.realpath(folder) in protect["read"]
        assert os.path.realpath(folder) in protect["write"]
    assert os.path.realpath(tmp_path / "scratch") in protect["read"]  # the other slots


def test_without_the_wall_untrusted_work_is_refused_in_one_sentence(tmp_path, monkeypatch):
    """Nothing is written; the sentence names the way out (--trust-submissions)."""
    import pytest

    from autograder import CourseError, sandbox
    from autograder.grade import grade

    sub = tmp_path / "alice"
    (sub / "labs/week01").mkdir(parents=True)
    monkeypatch.setattr(sandbox, "shutil", _NoProgram)
    with pytest.raises(CourseError) as err:
        grade([sub], week=1, out=tmp_path / "out", progress=False)
    text = str(err.value)
    assert text.startswith("Refusing to grade: bubblewrap (bwrap) is not installed")
    assert "--trust-submissions" in text and "\n" not in text
    assert not (tmp_path / "out").exists()


class _NoProgram:
    """``shutil`` on a machine without bwrap."""

    @staticmethod
    def which(name: str) -> None:
        return None


def _job(tmp_path, result: dict | None, phases=("notebook", "pytest")):
    from autograder.worker import Job

    job = Job(
        id=3, student="s", lab="week01", submission="", source_notebook="",
        release_notebook="", template="", tests="", scratch=str(tmp_path), uid=None,
        limits={}, phases=list(phases),
    )  # fmt: skip
    job.folder.mkdir(exist_ok=True)
    if result is not None:
        (job.folder / "result.json").write_text(json.dumps(result))
    return job


def test_only_a_timeout_or_a_resource_limit_is_confirmed_and_only_its_phase(tmp_path):
    from autograder.grade import _to_confirm

    slow_cell = {"notebook": {"flags": ["timeout"]}, "pytest": {"flags": []}}
    assert _to_confirm(_job(tmp_path, slow_cell), "ok")[0] == ["notebook"]
    bomb = {"notebook": {"flags": []}, "pytest": {"flags": ["memory-limit", "tampering"]}}
    assert _to_confirm(_job(tmp_path, bomb), "ok")[0] == ["pytest"]
    cheat = {"notebook": {"flags": ["tampering", "kernel-died"]}, "pytest": {"flags": []}}
    assert _to_confirm(_job(tmp_path, cheat), "ok")[0] == []
    assert _to_confirm(_job(tmp_path, None), "timeout")[0] == ["notebook", "pytest"]
    assert _to_confirm(_job(tmp_path, None), "crashed")[0] == []


def test_a_confirming_run_keeps_the_first_runs_other_phase(tmp_path):
    from autograder.grade import _merge

    first = {"notebook": {"flags": ["timeout"]}, "pytest": {"items": {"t": 1}}, "seconds": {}}
    first["seconds"] = {"notebook": 30.0, "pytest": 9.0}
    job = _job(tmp_path, {"notebook": {"flags": []}, "seconds": {"notebook": 50.0}}, ["notebook"])
    _merge(job, first)
    merged = json.loads((job.folder / "result.json").read_text())
    assert merged["notebook"] == {"flags": []} and merged["pytest"] == {"items": {"t": 1}}
    assert merged["seconds"] == {"notebook": 50.0, "pytest": 9.0}
