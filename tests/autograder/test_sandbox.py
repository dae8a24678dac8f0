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
        wall=True, readonly=[str(tmp_path / "run")], args=["-q"],
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


def test_a_confirming_run_doubles_every_time_limit_and_keeps_the_others():
    limits = Limits(cell_timeout=12, test_timeout=20, memory_mb=1536, processes=96)
    doubled = limits.doubled()
    assert (doubled.cell_timeout, doubled.test_timeout, doubled.pytest_timeout) == (24, 40, 1200)
    assert doubled.cpu_seconds == 2 * limits.cpu_seconds
    assert (doubled.memory_mb, doubled.processes) == (1536, 96)
    assert doubled.file_mb == limits.file_mb and doubled.output_kb == limits.output_kb


@pytest.mark.parametrize(
    ("code", "walled", "inner"),
    [(137, True, -9), (139, True, -11), (1, True, 1), (137, False, 137), (None, True, None)],
)
def test_bubblewraps_return_code_gives_back_the_signal_that_ended_the_process(code, walled, inner):
    assert sandbox.inner_exit(code, walled) == inner


# --- the wall ----------------------------------------------------------------------------

WALLED = pytest.mark.skipif(
    os.getuid() != 0 or bool(sandbox.wall_problem()), reason="the wall needs root and bwrap"
)

#: Run behind the wall as the student's code runs: it reports what it can reach.
SURVEY = r"""
import json, os, socket, sys

secrets, port, names = json.loads(sys.argv[1]), int(sys.argv[2]), []
for top in ("/", "/tmp"):
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in ("/proc", "/sys", "/dev")]
        names += [os.path.join(folder, f) for f in files]
leaks, system = [], ("/usr/", "/etc/", sys.base_prefix + "/")
texts = (".py", ".ipynb", ".json", ".txt", ".md", ".yaml", ".yml", ".toml", ".cfg", ".pth")
for path in names:  # the system's and the installed packages' files are not the course's
    if path.startswith(system) or ("site-packages" in path and not path.endswith(".pth")):
        continue
    if not path.endswith(texts) or os.path.getsize(path) > 2**20:
        continue
    try:
        text = open(path, errors="replace").read()
    except OSError:
        continue
    leaks += [path for line in secrets if line in text]
reached = []
for address in (("127.0.0.1", port), ("192.0.2.1", 80)):
    try:
        socket.create_connection(address, timeout=3)
        reached.append(address)
    except OSError:
        pass
cmdlines = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            cmdlines.append(open(f"/proc/{pid}/cmdline").read())
        except OSError:
            pass
print(json.dumps({"uid": os.getuid(), "files": len(names), "leaks": sorted(set(leaks)),
                  "hidden": [p for p in names if "/hidden/" in p], "reached": reached,
                  "cmdlines": cmdlines, "visible": sorted(p for p in names if "/tmp/" in p)}))
"""


def _hidden_lines() -> list[str]:
    """Lines only the hidden tests and hidden notebook cells hold (every week), as the
    grader scrubs them from feedback; short ones are too common to tell anything."""
    from autograder.config import WEEKS
    from autograder.grade import hidden_lines
    from autograder.sources import find_source

    source = find_source()
    lines = {line for week in WEEKS.values() for line in hidden_lines(source, week)}
    return sorted(line for line in lines if len(line) > 30)


def _walled_probe(root, uid: int, grader, args: list[str]) -> dict:
    """Run a probe behind the wall in the sandbox folder ``root``: its answer."""
    spec = Spec(
        mode="probe", root=str(root), cwd=str(root), labs=str(root), uid=uid, wall=True,
        env={"PATH": "/usr/bin:/bin"}, events=str(grader / "events.jsonl"), args=args,
    )  # fmt: skip
    proc = subprocess.run(
        command(spec.write(grader / "spec.json"), spec=spec),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["isolation"] == "uid+wall", proc.stderr
    return answer


@WALLED
@pytest.mark.slow  # it walks and reads every file the wall lets in (about 10 s)
def test_nothing_hidden_and_nothing_of_another_slot_is_there_behind_the_wall(tmp_path):
    """The proof of the wall (issue 16): a process behind it, as the student's code runs,
    finds no hidden test file and no hidden cell's text in any file it can see, no
    second checkout of the course, no other slot's folder, no other process (its own
    PID namespace) and no network: neither the grader's loopback nor the outside."""
    import shutil
    import socket

    from autograder.config import REPO_ROOT

    scratch = tmp_path / "scratch"
    scratch.mkdir(mode=0o711)
    own, other = scratch / "sandbox-0", scratch / "sandbox-1"
    for folder in (own, other):
        folder.mkdir(mode=0o700)
    (other / "alice.py").write_text("answer = 42  # another student's work\n")
    second = tmp_path / "elsewhere" / "course"
    shutil.copytree(REPO_ROOT / "solutions", second / "solutions")
    secrets = _hidden_lines()
    assert len(secrets) > 20
    [uid] = sandbox.claim_uids(1)
    sandbox.chown_tree(own, uid)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = str(listener.getsockname()[1])
        answer = _walled_probe(own, uid, scratch, ["-c", SURVEY, json.dumps(secrets), port])
    assert answer["child"] == 0
    seen = json.loads(answer["output"])
    assert seen["uid"] == uid and seen["files"] > 1000  # the venv and the system are there
    assert seen["leaks"] == [] and seen["hidden"] == []
    assert not [p for p in seen["visible"] if p.startswith((str(other), str(second)))]
    assert seen["reached"] == []
    assert len(seen["cmdlines"]) <= 4  # bwrap, the probe, its child: nothing else
    ours = ("bwrap\0", f"{sys.executable}\0-I\0-m\0autograder.sandbox", f"{sys.executable}\0-c")
    assert all(c.startswith(ours) for c in seen["cmdlines"]), seen["cmdlines"]


@WALLED
def test_a_probe_behind_the_wall_runs_as_the_slots_user_with_its_own_tmp(tmp_path):
    """A file left in /tmp, /dev/shm or /var/tmp by one walled process is gone for the next."""
    [uid] = sandbox.claim_uids(1)
    root = tmp_path / "sandbox"
    root.mkdir(mode=0o700)
    os.chown(root, uid, uid)
    code = (
        "import os; print(os.getuid(), os.listdir('/tmp'), os.listdir('/dev/shm'), "
        "os.listdir('/var/tmp'));"
        "[open(f'{p}/left', 'w').write('x') for p in ('/tmp', '/dev/shm', '/var/tmp')]"
    )
    outputs = []
    for _ in range(2):
        answer = _walled_probe(root, uid, tmp_path, ["-c", code])
        assert answer["child"] == 0, answer
        outputs.append(answer["output"].split(" [")[0])
        assert "left" not in answer["output"], answer["output"]
    assert outputs == [str(uid), str(uid)]
