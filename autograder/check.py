"""``course check N``: a student's instant feedback on their own work.

It runs what the student can see: the visible test cells of their lab notebook
(executed cell by cell, as they are, in a fresh kernel) and the visible component
tests in ``labs/weekNN/tests`` (one pytest process beside the kernel, so the two
share a 2-core laptop instead of fighting over it). Each row is handed to
``on_row`` the moment it is known; :func:`check` returns them all, in plan order.
Hidden tests are not run; ``course grade`` runs them.

``task``: only task K. Its notebook cells run after the set-up cells and every cell
of the tasks before K (a task may use names an earlier one defined; their rows are
not shown), and no cell of a later task runs; its component tests are the ones
marked ``@pytest.mark.task(K)``.

Every process it starts (the kernel, pytest and what they start) is in a process
group of its own and is killed when ``check`` ends, however it ends: normally, on
Ctrl-C, on SIGTERM or SIGHUP, or on an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from autograder import CourseError
from autograder.check_plugin import EVENTS_VAR, TASK_VAR, TIMEOUT_VAR
from autograder.config import (
    CHECK_CELL_TIMEOUT,
    CHECK_OVERLAP,
    CHECK_RUN_TIMEOUT,
    CHECK_TEST_TIMEOUT,
    LABS,
    MAX_OUTPUT,
    NO_TELEMETRY,
    REPO_ROOT,
    TESTKIT,
    get_week,
    pytest_ini,
)
from autograder.report import TestResult
from autograder.sources import GradedItem, notebook_items, pytest_items, task_of

#: What a skipped component test shows: the instructor's grader decides it.
SKIPPED = "checked by your instructor's grader"
#: What a written answer shows.
SKIPPED_MANUAL = "graded by your instructor"


@dataclass
class Row(TestResult):
    """One row of ``course check``: a :class:`TestResult` with the full message.

    ``status`` may also be ``skipped`` (not counted: the instructor's grader decides)
    or ``timeout``; ``output`` is the short reason, ``details`` everything known.
    """

    details: str = ""


OnRow = Callable[[Row], None]


@dataclass
class CheckResult:
    """The rows of a check and where they came from.

    Attributes:
        cell_seconds: How long each executed notebook cell took (by grade id).
        phases: How long the notebook and the component tests took, in seconds (side by
            side: each from the start of the check).
    """

    week: int
    labs: Path
    tests: list[Row]
    task: int | None = None
    cell_seconds: dict[str, float] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tests if t.status not in ("manual", "skipped"))


@dataclass(frozen=True)
class Plan:
    """What a check will run: the notebook, the tests folder and the rows to expect."""

    week: int
    labs: Path
    notebook: Path
    tests_dir: Path
    cells: list[GradedItem]
    tests: list[GradedItem]
    task: int | None = None

    @property
    def names(self) -> list[str]:
        return [i.name for i in (*self.cells, *self.tests)]


def find_labs(start: Path | None = None) -> Path:
    """The student's labs/ folder: in the current folder or a parent, else the course's."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / LABS / "mlpipe").is_dir():
            return folder / LABS
    return REPO_ROOT / LABS


def _notebook_tasks(notebook: Path) -> set[int]:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    ids = (c.get("metadata", {}).get("nbgrader", {}).get("grade_id", "") for c in nb["cells"])
    return {t for t in map(task_of, ids) if t is not None}


def plan(week: int | str, labs: Path | None = None, task: int | None = None) -> Plan:
    """The rows ``check`` will produce, known before anything runs.

    Raises:
        CourseError: For a week without a lab, a missing or broken notebook, or a task
            the week does not have.
    """
    wk = get_week(week)
    labs = (labs or find_labs()).resolve()
    notebook = labs / wk.lab / "lab.ipynb"
    if not notebook.is_file():
        raise CourseError(
            f"{notebook} is missing; restore it with `git checkout -- {LABS}/{wk.lab}`."
        )
    try:
        cells = notebook_items(notebook)
        tasks = _notebook_tasks(notebook)
    except (ValueError, KeyError, TypeError):
        raise CourseError(f"{notebook} is not a valid notebook; restore it from git.") from None
    tests_dir = labs / wk.lab / "tests"
    tests = pytest_items(tests_dir) if tests_dir.is_dir() else []
    if task is not None:
        known = sorted(tasks | {t.task for t in tests if t.task is not None})
        if task not in known:
            raise CourseError(
                f"Week {wk.number}'s lab has no task {task}; its tasks are "
                f"{', '.join(map(str, known))}."
            )
        cells = [c for c in cells if c.task == task]
        tests = [t for t in tests if t.task == task]
    return Plan(wk.number, labs, notebook, tests_dir, cells, tests, task)


# --- processes ------------------------------------------------------------------------------


def _descendants(pids: list[int]) -> list[int]:
    """Every living descendant of ``pids`` (Linux: from /proc; elsewhere none)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Children:
    """The process groups ``check`` started; :meth:`kill` ends them and their descendants."""

    def __init__(self) -> None:
        self.leaders: list[int] = []

    def add(self, pid: int | None) -> None:
        if pid and pid not in self.leaders:
            self.leaders.append(pid)

    def kill(self) -> None:
        strays = _descendants(self.leaders)  # before the kill: orphans lose their parent
        for pid in self.leaders:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        for pid in strays:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end ``check`` like Ctrl-C does, so its clean-up runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


# --- the notebook -------------------------------------------------------------------------


def _cell_plan(cells: list, task: int | None) -> list[bool]:
    """Which cells run: all of them, or for task K the set-up cells and tasks 1 to K.

    A cell without a task in its grade id (the student's own cells) belongs to the task
    of the section it is in; locked cells without one (``setup``, ``teardown``) always run.
    """
    section, run = 0, []
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        own = task_of(meta.get("grade_id", ""))
        if own is not None:
            section = own
        always = own is None and bool(meta.get("locked")) and cell.cell_type == "code"
        mine = section if own is None else own
        run.append(task is None or always or mine <= task)
    return run


def _timeout_advice(name: str, limit: float, week: int, locked: bool) -> str:
    more = max(int(limit) * 2, 60)
    why = (
        "It is one of the lab's own set-up cells, so your machine is busy or slow: "
        "close other programs, or"
        if locked
        else "If it is slow but correct, make it faster or"
    )
    return (
        f"{name} did not finish within the {limit:g} s limit of a cell and was stopped. "
        f"{why} allow more time: `course check {week} --cell-timeout {more}`. "
        "If it waits for something that never comes (an endless loop, a server), fix that first."
    )


#: The ``ename`` of the reply of a cell stopped at its limit.
_TIMED_OUT = "CourseCheckCellTimeout"


def _cell_error(cell, ename: str = "") -> str | None:
    """The last error a cell raised (of that ``ename`` only, if given), as one line."""
    outs = [
        o
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error" and o.get("ename", "").startswith(ename)
    ]
    if not outs:
        return None
    return f"{outs[-1]['ename']}: {outs[-1]['evalue']}".rstrip(": ")[:MAX_OUTPUT]


def _run_notebook(
    p: Plan,
    work: Path,
    cell_timeout: float,
    children: Children,
    emit: OnRow,
    seconds: dict[str, float],
) -> None:
    """Execute the notebook cell by cell, emitting each graded cell's row as it finishes."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    try:
        nb = nbformat.read(p.notebook, as_version=4)
    except Exception as err:  # nbformat raises several types for broken files
        raise CourseError(
            f"{p.notebook} is not a valid notebook ({type(err).__name__}); restore it from git."
        ) from None
    wanted = {c.name: c for c in p.cells}
    if all(c.manual for c in p.cells):  # e.g. --task 5 of week 1: no cell to run, no kernel
        for c in p.cells:
            emit(Row(c.name, "notebook", 0, c.points, "manual", SKIPPED_MANUAL))
        return
    env = dict(os.environ, PYTHONPATH=str(p.labs), MLPIPE_HOME=str(work), **NO_TELEMETRY)
    replies: dict[int, dict] = {}  # the reply of each cell, to see which ones timed out

    def on_executed(cell_index: int, execute_reply: dict, **_: object) -> None:
        replies[cell_index] = execute_reply.get("content", {})

    client = NotebookClient(
        nb, timeout=cell_timeout, allow_errors=True, kernel_name="python3",
        shutdown_kernel="immediate", on_cell_executed=on_executed,
        # At the limit the kernel is interrupted (the cell's KeyboardInterrupt) and the
        # cell's reply is this error; the next cells run.
        interrupt_on_timeout=True, error_on_timeout={"ename": _TIMED_OUT, "evalue": ""},
        extra_arguments=["--IPKernelApp.log_level=ERROR", "--HistoryManager.enabled=False"],
        resources={"metadata": {"path": str(p.notebook.parent)}},
    )  # fmt: skip
    client.km = client.create_kernel_manager()
    answer_error = None  # the error of the last answer cell, to explain a test's NameError
    broken = ""  # why the remaining cells cannot run (the kernel died)
    try:
        client.start_new_kernel(env=env)
        client.start_new_kernel_client()
        for index, (cell, runs) in enumerate(
            zip(nb.cells, _cell_plan(nb.cells, p.task), strict=True)
        ):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            gid = meta.get("grade_id", "")
            name = gid or f"cell {index + 1}"
            if gid in wanted and wanted[gid].manual:
                emit(Row(gid, "notebook", 0, wanted[gid].points, "manual", SKIPPED_MANUAL))
                continue
            if not runs or cell.cell_type != "code":
                continue
            error = broken or None
            if not broken:
                started = time.monotonic()
                try:
                    client.execute_cell(cell, index)
                    error = _cell_error(cell)
                except DeadKernelError:
                    broken = error = (
                        f"the notebook's kernel died in {name} (out of memory, or the code "
                        "ended the process); the cells after it did not run"
                    )
                seconds[name] = round(time.monotonic() - started, 2)
                if replies.pop(index, {}).get("ename") == _TIMED_OUT:
                    error = _timeout_advice(name, cell_timeout, p.week, bool(meta.get("locked")))
                    if not _cell_error(cell, "KeyboardInterrupt"):  # the interrupt did not stop it
                        broken = f"the cells after {name} did not run: it did not stop"
                    if gid not in wanted:
                        emit(Row(name, "notebook", 0, 0, "timeout", error, details=error))
                    error = f"timeout: {error}"
            if meta.get("solution"):
                answer_error = error and re.sub(
                    r"^timeout: (.*? s limit).*", r"\1", error, flags=re.S
                )
            if gid in wanted:
                emit(_cell_row(wanted[gid], error, answer_error))
    finally:  # also when interrupted while the kernel starts: it has its pid by then
        children.add(getattr(getattr(client.km, "provisioner", None), "pid", None))
        children.kill()  # first: the kernel's own children are still its descendants
        with contextlib.suppress(Exception):
            client._cleanup_kernel()


def _cell_row(item: GradedItem, error: str | None, answer_error: str | None) -> Row:
    if error is None:
        return Row(item.name, "notebook", item.points, item.points, "passed")
    if error.startswith("timeout: "):
        text = error.removeprefix("timeout: ")
        return Row(item.name, "notebook", 0, item.points, "timeout", text, details=text)
    if error.startswith("NameError") and answer_error:
        error += f" (the answer cell above failed: {answer_error})"
    status = "failed" if error.startswith("AssertionError") else "error"
    return Row(item.name, "notebook", 0, item.points, status, error, details=error)


# --- the component tests --------------------------------------------------------------------

_TIMEOUT = re.compile(r"Timeout \(?>\s*([\d.]+)\s*s")


def _reason(status: str, text: str, week: int) -> str:
    """The short reason of a test's row: its ``E`` lines, or a friendly timeout."""
    found = _TIMEOUT.search(text)
    if found:
        limit = float(found.group(1))
        return (
            f"this test did not finish within its {limit:g} s limit and was stopped; "
            f"if your code is slow but correct, allow more time: "
            f"`course check {week} --test-timeout {max(int(limit) * 2, 60)}`"
        )
    if status == "skipped":
        return text.strip()
    lines = [line for line in text.splitlines() if line.startswith("E ")] or [
        line for line in text.splitlines() if line.strip()
    ][-1:]
    return "\n".join(line[1:].strip() if line.startswith("E ") else line for line in lines[:3])


def _test_row(item: GradedItem, status: str, text: str, week: int) -> Row:
    if status == "passed":
        return Row(item.name, "pytest", item.points, item.points, "passed")
    if status == "skipped":
        return Row(
            item.name,
            "pytest",
            0,
            item.points,
            "skipped",
            _reason(status, text, week),
            details=text,
        )
    reason = _reason(status, text, week)
    status = "timeout" if _TIMEOUT.search(text) else status
    return Row(item.name, "pytest", 0, item.points, status, reason, details=text)


def pytest_env(home: Path) -> dict[str, str]:
    """Environment of a pytest run over a student's code: scratch home, no stray options."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    env.update(
        NO_TELEMETRY, HOME=str(home), MLPIPE_HOME=str(home), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"
    )
    return env


def pytest_command(tests: Path, labs: Path, run_dir: Path, *extra: str) -> list[str]:
    """A pytest command over ``tests`` that imports ``labs``' mlpipe (``course check``'s).

    It writes ``run_dir/pytest.ini`` so that no configuration of the submission applies.
    """
    (run_dir / "pytest.ini").write_text(pytest_ini(labs), encoding="utf-8")
    return [
        sys.executable, "-m", "pytest", str(tests), "-q", "-c", str(run_dir / "pytest.ini"),
        "--rootdir", str(tests.parent), "-p", "no:cacheprovider", "-p", TESTKIT, *extra,
    ]  # fmt: skip


def _start_pytest(p: Plan, work: Path, test_timeout: float, children: Children) -> subprocess.Popen:
    cmd = pytest_command(
        p.tests_dir, p.labs, work, "-p", "pytest_timeout", "-p", "autograder.check_plugin",
        # Beside the run folder, not in it: a test that runs pytest in a tmp_path (week 4
        # runs your suite) must not find this run's pytest.ini above it.
        "--basetemp", str(work.parent / "pytest-tmp"),
    )  # fmt: skip
    env = pytest_env(work)
    env.update({EVENTS_VAR: str(work / "events.jsonl"), TIMEOUT_VAR: str(test_timeout)})
    if p.task is not None:
        env[TASK_VAR] = str(p.task)
    (work / "events.jsonl").touch()
    with open(work / "pytest.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    children.add(proc.pid)
    return proc


def _tail_pytest(
    p: Plan, work: Path, proc: subprocess.Popen, emit: OnRow, stop: threading.Event
) -> None:
    """Emit each test's row as its line arrives; when pytest ends, the missing ones.

    Nothing more is emitted once ``stop`` is set (``check`` was interrupted).
    """
    items = {f"{p.tests_dir.name}/{t.name}": t for t in p.tests}
    deadline = time.monotonic() + CHECK_RUN_TIMEOUT
    done: set[str] = set()
    with open(work / "events.jsonl", encoding="utf-8") as events:
        while True:
            ended = proc.poll() is not None
            for line in events.readlines():
                with contextlib.suppress(ValueError, KeyError):
                    record = json.loads(line)
                    if record.get("end"):
                        ended = True
                        continue
                    item = items.get(record["id"])
                    if record["outcome"] == "collect-error":
                        _collect_error(p, record, items, done, emit)
                    elif item and record["id"] not in done:
                        done.add(record["id"])
                        emit(_test_row(item, record["outcome"], record["text"], p.week))
            if ended or stop.is_set():
                break
            if time.monotonic() > deadline:
                proc.kill()
            time.sleep(0.1)
    log = (work / "pytest.log").read_text(encoding="utf-8", errors="replace")
    for nodeid, item in items.items():
        if nodeid not in done and not stop.is_set():
            text = f"pytest did not run this test; its output ended with:\n{log[-1500:]}"
            emit(
                Row(
                    item.name,
                    "pytest",
                    0,
                    item.points,
                    "error",
                    _reason("error", log, p.week),
                    details=text,
                )
            )


class _Tail(threading.Thread):
    """:func:`_tail_pytest` beside the notebook; what it raised is re-raised by ``check``."""

    def __init__(self, *args: object) -> None:
        super().__init__(daemon=True)
        self.args_ = args
        self.error: BaseException | None = None
        self.ended = 0.0

    def run(self) -> None:
        try:
            _tail_pytest(*self.args_)
        except BaseException as err:  # e.g. the on_row of a closed pipe: check re-raises it
            self.error = err
        finally:
            self.ended = time.monotonic()


def _collect_error(p: Plan, record: dict, items: dict, done: set[str], emit: OnRow) -> None:
    """A test file that does not import: every test of it is an error with the reason."""
    for nodeid, item in items.items():
        if nodeid.split("::")[0] == record["id"] and nodeid not in done:
            done.add(nodeid)
            emit(_test_row(item, "error", record["text"], p.week))


# --- check -----------------------------------------------------------------------------------


def check(
    week: int | str,
    labs: Path | None = None,
    *,
    task: int | None = None,
    cell_timeout: float = CHECK_CELL_TIMEOUT,
    test_timeout: float = CHECK_TEST_TIMEOUT,
    on_row: OnRow | None = None,
) -> CheckResult:
    """Run week ``week``'s visible notebook and component tests on the student's labs/.

    Args:
        week: The week number.
        labs: The student's labs/ folder; default: found from the current folder.
        task: Only this task's cells and tests (see the module's docstring).
        cell_timeout: Seconds a notebook cell may run.
        test_timeout: Seconds a component test may run (its own ``timeout`` mark may say more).
        on_row: Called with each row the moment it is known (from one thread at a time).

    Raises:
        CourseError: For a week without a lab, a missing or broken notebook, a task the
            week does not have, or limits that are not positive.
    """
    if cell_timeout <= 0 or test_timeout <= 0:
        raise CourseError("--cell-timeout and --test-timeout must be positive numbers of seconds.")
    p = plan(week, labs, task)
    rows: dict[str, Row] = {}
    lock = threading.Lock()

    def emit(row: Row) -> None:
        with lock:
            rows[row.name] = row
            if on_row:
                on_row(row)

    seconds: dict[str, float] = {}
    phases: dict[str, float] = {}
    children, stop = Children(), threading.Event()
    with (
        tempfile.TemporaryDirectory(prefix="course-check-") as tmp,
        _signals_interrupt(),
    ):
        work = Path(tmp) / "run"
        work.mkdir()
        started = time.monotonic()
        try:
            tail = None
            if p.tests and CHECK_OVERLAP:
                proc = _start_pytest(p, work, test_timeout, children)
                tail = _Tail(p, work, proc, emit, stop)
                tail.start()
            _run_notebook(p, work, cell_timeout, Children(), emit, seconds)
            phases["notebook"] = time.monotonic() - started
            tests_started = started
            if p.tests and not CHECK_OVERLAP:
                tests_started = time.monotonic()
                proc = _start_pytest(p, work, test_timeout, children)
                _tail_pytest(p, work, proc, emit, stop)
            if tail:
                tail.join()
                if tail.error:
                    raise tail.error
            if p.tests:
                ended = tail.ended if tail else time.monotonic()
                phases["component tests"] = ended - tests_started
        finally:
            stop.set()
            children.kill()
    order = {name: i for i, name in enumerate(p.names)}
    ordered = sorted(rows.values(), key=lambda r: order.get(r.name, -1))
    return CheckResult(p.week, p.labs, ordered, p.task, seconds, phases)
