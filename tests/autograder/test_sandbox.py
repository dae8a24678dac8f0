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
def test_claimed_ids_are_not_shared_and_their_processes_are_killed(tmp_path):
    first = sandbox.claim_uids(2, lock_dir=tmp_path / "locks")
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
