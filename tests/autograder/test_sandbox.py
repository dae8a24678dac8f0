"""``autograder.sandbox``: the spec a sandboxed process reads, its limits and its clean-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from autograder import sandbox
from autograder.sandbox import Limits, Spec, command, describe_exit


def test_a_spec_survives_the_round_trip_and_only_its_owner_reads_it(tmp_path):
    spec = Spec(
        mode="probe", root=str(tmp_path), cwd=str(tmp_path), labs=str(tmp_path),
        env={"PATH": "/usr/bin"}, limits=Limits(cell_timeout=7, memory_mb=100), uid=61000,
        hide=["/secret"], args=["-q"],
    )  # fmt: skip
    path = spec.write(tmp_path / "spec.json")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert Spec.read(path) == spec


def test_the_command_runs_the_module_isolated_from_the_environment(tmp_path):
    cmd = command(tmp_path / "spec.json", "extra")
    assert cmd[:4] == [sys.executable, "-I", "-m", "autograder.sandbox"]
    assert cmd[4:] == [str(tmp_path / "spec.json"), "extra"]


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (None, "it stopped answering"),
        (0, "it exited with code 0"),
        (-signal.SIGKILL, "it was killed by signal SIGKILL"),
        (-signal.SIGSEGV, "it was killed by signal SIGSEGV"),
        (-99, "it was killed by signal 99"),
    ],
)
def test_how_a_process_ended_is_one_phrase(code, phrase):
    assert describe_exit(code) == phrase


def test_a_probe_without_a_uid_reports_limits_only(tmp_path):
    """As the current user (no uid change) the isolation reached is the limits alone."""
    secret = tmp_path / "secret"
    secret.mkdir()
    spec = Spec(
        mode="probe", root=str(tmp_path), cwd=str(tmp_path), labs=str(tmp_path),
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, protect_read=[str(secret)],
        events=str(tmp_path / "events.jsonl"),
    )  # fmt: skip
    proc = subprocess.run(
        command(spec.write(tmp_path / "spec.json")), capture_output=True, text=True, timeout=60
    )
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["child"] == 0, proc.stderr
    assert answer["isolation"] == "limits-only"  # no uid given: it kept the current user


@pytest.mark.skipif(os.getuid() != 0, reason="changing user needs root")
def test_claimed_ids_are_not_shared_and_their_processes_are_killed():
    # The shared lock folder, as every grading run uses: a private one would claim (and
    # kill the processes of) ids that a grading run beside this test is using.
    first = sandbox.claim_uids(2)
    assert len(set(first)) == 2
    child = subprocess.Popen(["sleep", "60"], user=first[0], cwd="/", start_new_session=True)
    try:
        assert sandbox.processes_of(first[0]) == [child.pid]
        assert sandbox.kill_user(first[0]) == 1
        child.wait(timeout=10)
        assert sandbox.processes_of(first[0]) == []
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.parametrize(
    ("path", "metadata"),
    [
        ("/class/alice/.git", True),  # a worktree's .git file, or the folder itself
        ("/class/alice/.git/HEAD", True),
        ("/class/alice/.git/commondir", True),
        ("/course/.git/worktrees/wt/HEAD", True),
        ("/course/.git/refs/heads/main", True),
        ("/course/.git/objects/ab/cdef", False),  # a file's contents
        ("/course/.git/modules/sub/objects/ab/cdef", False),
        ("/course/.git/lfs/objects/ab/cd/abcd", False),
        ("/course/solutions/week01/tests/hidden/test_train_hidden.py", False),
        ("/course/solutions/.gitignore", False),
    ],
)
def test_only_a_git_folders_metadata_counts_as_metadata(path, metadata):
    assert sandbox.is_vcs_metadata(path) is metadata


HOOKED = """
import os
import sys

from autograder.sandbox import Spec, install_audit_hook

spec = Spec.read(sys.argv[1])
install_audit_hook(spec, os.open(spec.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
import git  # what MLflow asks for the run's commit

try:
    print("commit", git.Repo(sys.argv[2], search_parent_directories=True).head.commit.hexsha)
except Exception as err:
    print("no commit", type(err).__name__)
for path in sys.argv[3:]:
    try:
        open(path).read()
    except PermissionError:
        print("refused", path)
"""


def _git_checkout(path):
    """A checkout holding the grader's code (``code/``) and a student's ``labs/``."""
    for rel in ("code/sandbox.py", "labs/mlpipe/train.py"):
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text("print('hi')\n")
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "first"]):
        subprocess.run(
            ["git", "-c", "user.name=s", "-c", "user.email=s@example.com", *args],
            cwd=path, check=True, capture_output=True,
        )  # fmt: skip
    return path


def test_a_git_lookup_from_the_graders_code_is_refused_and_not_reported(tmp_path):
    """``course grade .``: the grader's code sits in the graded checkout, whose ``.git``
    and ``labs/`` are protected. MLflow looks up the commit above the code that runs
    (the grader's): refused, and not the student's doing. Reading the checkout's
    files, or its git objects (their contents), is still refused and reported.
    """
    checkout = _git_checkout(tmp_path / "checkout")
    obj = next(p for p in (checkout / ".git/objects").rglob("*") if p.is_file())
    spec = Spec(
        mode="probe", root=str(tmp_path), cwd=str(tmp_path), labs=str(tmp_path), env={},
        protect_read=[str(checkout / ".git"), str(checkout / "labs")],
        events=str(tmp_path / "events.jsonl"),
    )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", HOOKED, str(spec.write(tmp_path / "spec.json")),
         str(checkout / "code"), str(checkout / "labs/mlpipe/train.py"), str(obj)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "no commit" in proc.stdout, proc.stdout + proc.stderr
    assert proc.stdout.count("refused") == 2, proc.stdout + proc.stderr
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events == [
        {"kind": "read", "path": str(checkout / "labs/mlpipe/train.py")},
        {"kind": "read", "path": str(obj)},
    ]
