"""Run a student's code in a process of its own, behind a wall, with limits and without rights.

The grader never runs a student's code in its own process. Each notebook kernel
and each component-test run is started through this module, as
``python -I -m autograder.sandbox SPEC [ARGS...]``, and, when the wall is up, inside
bubblewrap (``bwrap``, :func:`wall`): an allow-list filesystem (the system, the
Python installation and the grader's own package read-only, the job's sandbox
folder writable, nothing else: no ``solutions/``, no other checkout, no other
slot's folder), a private ``/tmp`` and ``/dev/shm``, a PID namespace with its own
``/proc``, a network namespace with nothing but its own loopback, and
``--die-with-parent``. SPEC is a JSON file that only the grader (root) can read;
before any student code runs, the process

1. sets its resource limits: private memory (``RLIMIT_DATA``), file size, CPU
   seconds, processes, no core dumps;
2. drops root: it becomes a user id of its own (one per grading slot, so that
   two students graded at once cannot signal each other's processes); inside the
   wall it is root with only the capabilities to change user, which it loses here;
3. starts from a scrubbed environment (only what the course needs, a scratch
   home and temporary folder, never the instructor's variables);
4. installs an audit hook (:pep:`578`) that refuses and records every attempt to
   read the hidden tests, the grades or the grader's scratch folders, to write the
   grader's or another student's files, or to connect beyond the loopback, from
   Python code in this process: a tripwire for honest mistakes, not the defence.

Then it runs what was asked: an IPython kernel (``kernel``), pytest with the
course's guard plugin (``pytest``), or a self-test (``probe``).

This module is imported by the sandboxed processes themselves, so it imports
nothing heavy at module level.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from autograder.config import (
    CELL_TIMEOUT,
    CPU_SECONDS,
    FILE_MB,
    MEMORY_MB,
    OUTPUT_KB,
    OUTPUT_LIMIT_MARKER,
    PROCESSES,
    PYTEST_TIMEOUT,
    SLOT_UID_BASE,
    TEST_TIMEOUT,
    VCS_CONTENT,
    VCS_DIR,
    WALL_CAPS,
    WALL_PROGRAM,
    WALL_SYSTEM,
    WALL_TMP,
    WALL_TMP_MB,
)


@dataclass(frozen=True)
class Limits:
    """Resource limits of the processes that run a student's code.

    The defaults are the grader's constants in :mod:`autograder.config`.

    Attributes:
        cell_timeout: Seconds a notebook cell may run.
        test_timeout: Seconds one component test may run.
        pytest_timeout: Seconds the whole component-test run may take.
        memory_mb: Private memory of each process (``RLIMIT_DATA``), in MB.
        file_mb: Largest file a process may write, in MB.
        output_kb: Output a notebook may print before the rest is dropped, in KB.
        processes: Processes and threads the student's user id may have at once.
        cpu_seconds: CPU time of each process, a backstop behind the timeouts.
    """

    cell_timeout: int = CELL_TIMEOUT
    test_timeout: int = TEST_TIMEOUT
    pytest_timeout: int = PYTEST_TIMEOUT
    memory_mb: int = MEMORY_MB
    file_mb: int = FILE_MB
    output_kb: int = OUTPUT_KB
    processes: int = PROCESSES
    cpu_seconds: int = CPU_SECONDS

    def doubled(self) -> Limits:
        """These limits with every time limit doubled, for a confirming run.

        Memory and processes are counted per process and per user id, which the
        machine's load does not change: a confirming run keeps them, so that a
        resource failure is confirmed at the limit that fired.
        """
        return replace(
            self,
            cell_timeout=2 * self.cell_timeout,
            test_timeout=2 * self.test_timeout,
            pytest_timeout=2 * self.pytest_timeout,
            cpu_seconds=2 * self.cpu_seconds,
        )


@dataclass
class Spec:
    """What a sandboxed process needs to know; written as JSON by the grader.

    Attributes:
        mode: ``kernel``, ``pytest`` or ``probe``.
        root: The sandbox folder (owned by ``uid``).
        cwd: Working folder of the process.
        labs: The copy of the student's ``labs/`` that ``import mlpipe`` resolves to.
        env: The whole environment of the process.
        limits: Resource limits.
        uid: User id to become (None: keep the current one).
        wall: Run behind the bubblewrap wall (:func:`wall`).
        readonly: Paths bound read-only into the wall, over the writable ``root``
            (the instructor's tests) or beside it (the kernel's connection file).
        protect_read: Folders the student's code must not read (``root`` excepted).
        protect_write: Folders the student's code must not change.
        events: File the audit hook appends refused accesses to (opened before
            privileges are dropped).
        log: File that receives the process's own stdout and stderr.
        args: Arguments of the mode (pytest's command line, the kernel's).
        key: Secret of the pytest guard, to sign its results.
        results: File the pytest guard writes its results to.
    """

    mode: str
    root: str
    cwd: str
    labs: str
    env: dict[str, str]
    limits: Limits = field(default_factory=Limits)
    uid: int | None = None
    wall: bool = False
    readonly: list[str] = field(default_factory=list)
    protect_read: list[str] = field(default_factory=list)
    protect_write: list[str] = field(default_factory=list)
    events: str = ""
    log: str = ""
    args: list[str] = field(default_factory=list)
    key: str = ""
    results: str = ""

    def write(self, path: Path) -> Path:
        """Write the spec as JSON readable by its owner only."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(self), handle)
        return path

    @classmethod
    def read(cls, path: str | Path) -> Spec:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data["limits"] = Limits(**data["limits"])
        return cls(**data)


def command(spec_path: Path, *args: str, spec: Spec | None = None) -> list[str]:
    """The command line that runs a sandboxed process described by ``spec_path``.

    With a ``spec`` whose ``wall`` is set, the process starts behind :func:`wall`.
    """
    inner = [sys.executable, "-I", "-m", "autograder.sandbox", str(spec_path), *args]
    if spec is None or not spec.wall:
        return inner
    return [*wall(spec, spec_path), "--", *inner]


def _grader_paths() -> list[str]:
    """What the sandboxed Python needs read-only: its installation and the grader's package."""
    package = os.path.dirname(os.path.abspath(__file__))
    found = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, package)}
    found.add(os.path.dirname(os.path.realpath(sys.executable)))
    return sorted(p for p in found if not any(p.startswith(q + os.sep) for q in found))


def _touch(path: str) -> str:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    return path


def wall(spec: Spec, spec_path: Path) -> list[str]:
    """The bubblewrap command line (up to ``--``) of the wall around one sandboxed process.

    Inside: the system folders, the Python installation and the grader's package
    read-only; the spec read-only (root's alone); the job's sandbox folder
    ``spec.root`` writable, with ``spec.readonly`` read-only over it; the record
    and log files writable (root's alone). A fresh ``/tmp``, ``/dev`` (with its
    ``/dev/shm``) and ``/proc`` (of its own PID namespace), no network but its own
    loopback, no System V IPC, and nothing outlives the process that started it.
    The process inside is root without any capability but changing user, which
    :func:`enter` does before the student's code runs.
    """
    size = str(WALL_TMP_MB * 1024 * 1024)
    args = [
        WALL_PROGRAM, "--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc",
        "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox", "--cap-drop", "ALL",
    ]  # fmt: skip
    for cap in WALL_CAPS:
        args += ["--cap-add", cap]
    for path in WALL_SYSTEM:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for path in WALL_TMP:  # fresh, sticky and writable for all, as on the host
        args += ["--perms", "1777", "--size", size, "--tmpfs", path]
    binds = [("--ro-bind", path) for path in _grader_paths()]
    binds += [("--bind", spec.root)]
    binds += [("--bind", _touch(path)) for path in (spec.events, spec.log) if path]
    binds += [("--ro-bind", str(spec_path))] + [("--ro-bind", path) for path in spec.readonly]
    bound, made = [p for p in WALL_SYSTEM if os.path.isdir(p)], set(WALL_TMP)
    for how, path in binds:
        for folder in map(str, reversed(Path(path).parents[:-1])):  # the way: 0755 folders
            if folder not in made and not _inside(folder, tuple(bound)):
                args += ["--dir", folder]
                made.add(folder)
        bound.append(path)
        args += [how, path, path]
    return args


def wall_problem() -> str:
    """Why the wall cannot be built here, as one sentence; empty when it can be."""
    if shutil.which(WALL_PROGRAM) is None:
        return (
            f"bubblewrap ({WALL_PROGRAM}) is not installed, so the students' code cannot be "
            "walled off (install it with `make sandbox-setup`)"
        )
    if os.getuid() != 0:
        return (
            "the wall needs root (each grading slot runs the students' code as a user id "
            "of its own; run `course grade` with sudo or in the grading image)"
        )
    return ""


# --- run in the sandboxed process, before the student's code ------------------------


def set_limits(limits: Limits, uid: int | None) -> None:
    """Apply the resource limits to this process (inherited by its children)."""
    import resource

    mb = 1024 * 1024
    pairs = {
        resource.RLIMIT_DATA: limits.memory_mb * mb,
        resource.RLIMIT_FSIZE: limits.file_mb * mb,
        resource.RLIMIT_CPU: limits.cpu_seconds,
        resource.RLIMIT_CORE: 0,
    }
    if uid is not None:
        # Counted per user id: the slot's own id, so the count starts at zero.
        pairs[resource.RLIMIT_NPROC] = limits.processes
    elif os.getuid() != 0:
        # Without a user id of its own the count includes the grader's processes.
        pairs[resource.RLIMIT_NPROC] = limits.processes + _count_processes(os.getuid())
    for which, value in pairs.items():
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value if which != resource.RLIMIT_CPU else hard))
    # A file too large fails with an error instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _count_processes(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                count += os.stat(f"/proc/{entry}").st_uid == uid
    return count


def drop_privileges(uid: int) -> None:
    """Become ``uid`` (group ``uid``, no supplementary groups) for good."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def is_vcs_metadata(path: str) -> bool:
    """True for a git folder's metadata (``HEAD``, refs, config), not its file contents.

    Every git-aware library reads these to find the commit of the code it runs
    (MLflow through GitPython, from the grader's own checkout): a refused read of
    them is not the student's doing. Objects (the files' contents) are not metadata.
    """
    parts = path.split(os.sep)
    if VCS_DIR not in parts:
        return False
    inner = parts[parts.index(VCS_DIR) + 1 :]
    return not any(part in VCS_CONTENT for part in inner)


def install_audit_hook(spec: Spec, events: int) -> None:
    """Refuse and record reads of protected folders, writes to the grader's files, and
    connections beyond the loopback.

    Records go to the open file ``events`` (one JSON line each, at most 50). A read
    of a protected git folder's metadata (:func:`is_vcs_metadata`) is refused
    without a record: git-aware tools make it on their own. The sandbox folder
    ``spec.root`` is the student's even inside a protected folder (the grader's
    scratch folder, which holds the other slots'). The hook cannot be removed from
    Python code; child processes do not inherit it.
    """
    import ipaddress

    own = os.path.realpath(spec.root)
    protect_read = tuple(os.path.realpath(p) for p in spec.protect_read)
    protect_write = tuple(os.path.realpath(p) for p in spec.protect_write)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    state = {"count": 0}
    realpath, fsdecode, dumps, oswrite = os.path.realpath, os.fsdecode, json.dumps, os.write
    metadata = is_vcs_metadata

    def record(kind: str, path: str) -> None:
        if state["count"] < 50 and not (kind == "read" and metadata(path)):
            state["count"] += 1
            oswrite(events, (dumps({"kind": kind, "path": path}) + "\n").encode())
        raise PermissionError(13, f"course grade: access to {path} is not allowed")

    def check(path, write: bool) -> None:
        if isinstance(path, int) or path is None:
            return
        try:
            real = realpath(fsdecode(path))
        except (TypeError, ValueError):
            return
        for root in protect_read:
            mine = _inside(own, (root,)) and _inside(real, (own,))
            if not mine and _inside(real, (root,)):
                record("write" if write else "read", real)
        if write and _inside(real, protect_write):
            record("write", real)

    def connect(address) -> None:
        if not isinstance(address, tuple) or len(address) < 2:
            return  # a Unix socket: a path inside the wall
        host = str(address[0])
        try:
            local = ipaddress.ip_address(host.split("%")[0])
            local = local.is_loopback or local.is_unspecified
        except ValueError:
            local = host == "localhost"
        if not local:
            record("connect", f"{host}:{address[1]}")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            write = bool(flags & write_flags) if isinstance(flags, int) else False
            write = write or (isinstance(mode, str) and any(c in mode for c in "wax+"))
            check(path, write)
        elif event in ("os.listdir", "os.scandir"):
            check(args[0], False)
        elif event in ("socket.connect", "socket.sendto"):
            connect(args[1])
        elif event in (
            "os.remove",
            "os.rmdir",
            "os.mkdir",
            "os.chmod",
            "os.chown",
            "os.utime",
        ) or event in ("os.truncate", "shutil.rmtree"):
            check(args[0], True)
        elif event in ("os.rename", "os.link", "os.symlink"):
            check(args[0], event != "os.symlink")
            check(args[1], True)
        elif event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.system"):
            words = args[1] if event != "os.system" else [args[0]]
            text = " ".join(map(str, words if isinstance(words, list | tuple) else [words]))
            text = text.replace(own, "")
            for root in protect_read:
                if root in text:
                    record("exec", root)

    sys.addaudithook(hook)


def _redirect_output(log: str) -> None:
    """Send this process's own stdout and stderr (not the notebook's) to ``log``."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def enter(spec: Spec) -> str:
    """Apply the whole sandbox to this process; return how it is isolated.

    Returns:
        ``uid+wall``, ``uid`` or ``limits-only``: what protects the grader.
    """
    as_root = os.getuid() == 0 and spec.uid is not None
    isolation = ("uid+wall" if spec.wall else "uid") if as_root else "limits-only"
    # IPython ends when its parent (this id) goes: behind the wall that id means nothing, and
    # --die-with-parent does the same.
    keep = {k: v for k, v in os.environ.items() if k == "JPY_PARENT_PID" and not spec.wall}
    if spec.log:
        _redirect_output(spec.log)
    set_limits(spec.limits, spec.uid if as_root else None)
    # The record file is opened while still privileged: the student's user cannot open it.
    events = os.open(spec.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(events, (json.dumps({"kind": "isolation", "value": isolation}) + "\n").encode())
    install_audit_hook(spec, events)
    if as_root:
        drop_privileges(spec.uid)
    os.umask(0o077)
    os.environ.clear()
    os.environ.update(spec.env)
    os.environ.update(keep)
    os.chdir(spec.cwd)
    return isolation


def _cap_kernel_output(limit: int) -> None:
    """Drop what a kernel prints beyond ``limit`` characters (one marker instead)."""
    from ipykernel import iostream

    write = iostream.OutStream.write
    state = {"left": limit, "told": False}

    def capped(self, string):
        if not isinstance(string, str):
            return write(self, string)
        if state["left"] >= len(string):
            state["left"] -= len(string)
            return write(self, string)
        if not state["told"]:
            state["told"] = True
            write(self, string[: max(state["left"], 0)] + "\n" + OUTPUT_LIMIT_MARKER + "\n")
        state["left"] = 0
        return len(string)

    iostream.OutStream.write = capped


def _run_kernel(spec: Spec, argv: list[str]) -> None:
    """Copy the connection file where the student's user can read it, then run IPython.

    The grader's connection file is root's: it is read while still root and written
    again, as the student's user, into the sandbox's ``kernel`` folder.
    """
    conn = argv[argv.index("-f") + 1]
    copy = os.path.join(spec.root, "kernel", "connection.json")
    with open(conn, encoding="utf-8") as src:
        data = src.read()
    argv = [copy if a == conn else a for a in argv]
    enter(spec)
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as dst:
        dst.write(data)
    sys.path[:0] = [spec.labs]
    _cap_kernel_output(spec.limits.output_kb * 1024)
    from autograder import kernel_guard

    kernel_guard.LABS = spec.labs
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(["--IPKernelApp.log_level=ERROR", *argv])
    app.start()


def _run_pytest(spec: Spec) -> int:
    enter(spec)
    sys.path[:0] = [spec.labs]
    from autograder import pytest_guard

    pytest_guard.configure(spec.key, spec.results, spec.labs)
    import pytest

    return int(pytest.main(spec.args, plugins=[pytest_guard]))


def _probe(spec: Spec) -> int:
    """Report the isolation reached and whether a child Python starts.

    The child runs ``spec.args`` (default: an import) as the student's code would:
    after the whole sandbox is entered. Its standard output is reported too.
    """
    import subprocess

    isolation = enter(spec)
    args = spec.args or ["-c", "import json"]
    child = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    readable = [p for p in spec.protect_read if os.access(p, os.R_OK)]
    answer = {"isolation": isolation, "child": child.returncode, "readable": readable}
    answer["output"] = child.stdout[-100_000:]
    print(json.dumps(answer))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -I -m autograder.sandbox SPEC [ARGS...]``."""
    sys.dont_write_bytecode = True  # never write into the grader's or the library's folders
    argv = list(sys.argv[1:] if argv is None else argv)
    spec = Spec.read(argv[0])
    if spec.mode == "kernel":
        _run_kernel(spec, argv[1:])
        return 0
    if spec.mode == "pytest":
        return _run_pytest(spec)
    return _probe(spec)


# --- used by the grader (root side) -------------------------------------------------


def claim_uids(count: int, lock_dir: Path = Path("/tmp/course-grade-uids")) -> list[int]:
    """Reserve ``count`` user ids for this process's slots, none shared with another run.

    Each id is held with a lock on a file of its own for as long as this process
    lives (a killed run frees its ids). Leftover processes of a claimed id are
    killed before it is used.
    """
    import fcntl

    lock_dir.mkdir(mode=0o700, exist_ok=True)
    if lock_dir.stat().st_uid != os.getuid() or lock_dir.is_symlink():
        raise OSError(f"{lock_dir} belongs to another user")
    claimed: list[int] = []
    for uid in range(SLOT_UID_BASE, SLOT_UID_BASE + 4096):
        fd = os.open(lock_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _HELD.append(fd)  # released when this process ends
        kill_user(uid)
        claimed.append(uid)
        if len(claimed) == count:
            return claimed
    raise OSError("no free user id for the grading slots")


_HELD: list[int] = []


def chown_tree(path: Path, uid: int) -> None:
    """Give ``path`` and everything below it to ``uid`` (group ``uid``)."""
    for folder, dirs, files in os.walk(path):
        os.chown(folder, uid, uid)
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, uid)


def processes_of(uid: int) -> list[int]:
    """The ids of the live processes whose real user id is ``uid`` (zombies left out)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        state = fields.get("State", "").split()
        owner = fields.get("Uid", "").split()
        if owner and int(owner[0]) == uid and state and state[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def kill_user(uid: int, timeout: float = 5.0) -> int:
    """Kill every process of ``uid`` (forks included); return how many were alive.

    A child becomes ``uid`` and sends ``SIGKILL`` to every process it may signal,
    which are exactly that user's processes; repeated until none is left.
    """
    found = len(processes_of(uid))
    deadline = time.monotonic() + timeout
    while processes_of(uid) and time.monotonic() < deadline:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child only signals and leaves
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.05)
    return found


def inner_exit(code: int | None, walled: bool) -> int | None:
    """The return code of the process behind the wall, from bubblewrap's.

    bubblewrap exits with ``128 + n`` when the process inside was killed by signal
    ``n``; this gives it back as ``-n``, as :mod:`subprocess` reports a signal.
    """
    if walled and code is not None and code > 128:
        return 128 - code
    return code


def describe_exit(code: int | None) -> str:
    """How a process ended, from its return code, as a phrase."""
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return f"it was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"it was killed by signal {-code}"
    return f"it exited with code {code}"


def kill_session(sid: int) -> None:
    """Kill every process of session ``sid`` (when the grader cannot change user)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                os.kill(int(entry), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            pass


if __name__ == "__main__":
    sys.exit(main())
