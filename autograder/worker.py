"""A grading worker: grades one submission and week at a time for ``course grade``.

``course grade`` (:mod:`autograder.grade`) starts one worker per parallel slot
(``python -m autograder.worker``) and sends it jobs, one JSON line each, on its
standard input; the worker answers each with one JSON line once the job's
``result.json`` is written. The worker is the grader's own code and keeps the
grader's rights; every piece of the student's code runs in a sandboxed child
(:mod:`autograder.sandbox`) under the slot's user id, behind the wall when it is up.
Behind the wall the kernel has no network: it talks to nbgrader over Unix sockets
(ZMQ's ``ipc`` transport) in the sandbox's ``kernel`` folder, and is interrupted by
a message rather than a signal (a signal would end bubblewrap).

A job has two phases (a confirming run repeats only the flagged one), each in a
fresh sandbox folder:

1. **notebook**: the submission's notebook is found and checked
   (:mod:`autograder.intake`), locked cells are put back, and nbgrader's real
   ``autograde`` runs it in a private course folder with :class:`GuardedExecute`
   and a kernel started through the sandbox. The grades nbgrader saved, the
   cells' errors and what went wrong are read back.
2. **pytest**: the instructor's component tests are copied in (read-only for
   the student's user) only now, and run by the sandboxed pytest with the guard
   plugin. When the test process dies or hangs, the tests that did not run yet
   are run again in a fresh process.

Every process of the slot's user is killed after each phase.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder import intake, skip_iri_grammar
from autograder.config import (
    COURSE_ID,
    KERNEL_NAME,
    KERNEL_STARTUP_TIMEOUT,
    MAX_PYTEST_ATTEMPTS,
    NO_TELEMETRY,
    RUN_STUBS_VAR,
    TESTKIT,
    get_week,
    pytest_ini,
)
from autograder.overlay import use_reference_for_other_weeks
from autograder.report import clip
from autograder.sandbox import (
    Limits,
    Spec,
    command,
    describe_exit,
    inner_exit,
    kill_session,
    kill_user,
)


@dataclass
class Job:
    """One submission and week to grade; sent by the supervisor as JSON.

    Attributes:
        id: Unique number within the run.
        student: The student id.
        lab: The lab, e.g. ``week01``.
        submission: The student's checkout.
        source_notebook: The instructor's notebook (with hidden tests).
        release_notebook: The released notebook (what students start from).
        template: A course folder whose gradebook has the lab registered.
        tests: The instructor's component tests of the week.
        scratch: The run's scratch folder.
        uid: The slot's user id, or None when the grader cannot change user.
        limits: The resource limits, as a mapping.
        wall: Run the student's code behind the bubblewrap wall (:func:`sandbox.wall`).
        protect_read: Folders the student's code must not read.
        protect_write: Folders the student's code must not change.
        reference: The instructor's solutions/ folder, whose files of the
            other weeks replace the student's in the sandbox copy (week
            isolation, :mod:`autograder.overlay`); None in a student template.
        phases: The phases to run (a confirming run repeats only those flagged).
    """

    id: int
    student: str
    lab: str
    submission: str
    source_notebook: str
    release_notebook: str
    template: str
    tests: str
    scratch: str
    uid: int | None
    limits: dict
    wall: bool = False
    protect_read: list[str] = field(default_factory=list)
    protect_write: list[str] = field(default_factory=list)
    reference: str | None = None
    phases: list[str] = field(default_factory=lambda: ["notebook", "pytest"])

    @property
    def folder(self) -> Path:
        """The job's private folder (the grader's only)."""
        return Path(self.scratch) / f"job-{self.id}"

    @property
    def sandbox(self) -> Path:
        """The job's sandbox folder (its parts belong to the student's user)."""
        return Path(self.scratch) / f"sandbox-{self.id}"


def sandbox_env(sandbox: Path, labs: Path) -> dict[str, str]:
    """The whole environment of a sandboxed process: nothing of the grader's."""
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    return {
        "PATH": path,
        "HOME": str(sandbox / "home"),
        "TMPDIR": str(sandbox / "tmp"),
        "LANG": "C.UTF-8",
        # The slot's uid has no passwd entry; getpass.getuser() (DVC, MLflow) reads these.
        "USER": "student",
        "LOGNAME": "student",
        "PYTHONPATH": str(labs),
        "MLPIPE_HOME": str(sandbox / "home"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
        "MPLBACKEND": "Agg",
        **NO_TELEMETRY,
        # The one grader setting a test run reads: run the tests of unstarted tasks too.
        **{k: v for k, v in os.environ.items() if k == RUN_STUBS_VAR},
    }


def _mkdir(path: Path, uid: int | None, mode: int = 0o700) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if uid is not None:
        os.chown(path, uid, uid)
    return path


def _give(path: Path, uid: int | None) -> None:
    """Give ``path`` to the student's user, a folder only it (and root) can enter."""
    os.chmod(path, 0o700)
    if uid is not None:
        from autograder.sandbox import chown_tree

        chown_tree(path, uid)


def _cleanup(job: Job, sid: int | None = None) -> None:
    if job.uid is not None:
        kill_user(job.uid)
    elif sid is not None:
        kill_session(sid)


def _spec(job: Job, mode: str, labs: Path, cwd: Path, **kw) -> Spec:
    return Spec(
        mode=mode,
        root=str(job.sandbox),
        cwd=str(cwd),
        labs=str(labs),
        env=sandbox_env(job.sandbox, labs),
        limits=Limits(**job.limits),
        uid=job.uid,
        wall=job.wall,
        protect_read=job.protect_read,
        protect_write=job.protect_write,
        **kw,
    )


def _events(path: Path) -> tuple[list[dict], str]:
    """The refused accesses recorded by the sandbox, and the isolation it reached."""
    if not path.is_file():
        return [], ""
    events, isolation = [], ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[:80]:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("kind") == "isolation":
            isolation = isolation or str(event.get("value"))
        elif isinstance(event, dict):
            events.append(event)
    return events, isolation


def _access_reason(events: list[dict], who: str) -> str:
    paths = []
    verbs = {"write": "write", "connect": "connect to"}
    for event in events:
        text = f"{verbs.get(event.get('kind'), 'read')} {event.get('path')}"
        if text not in paths:
            paths.append(text)
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return f"{who} tried to {', '.join(paths[:3])}{more}; this was refused."


# --- the notebook phase ------------------------------------------------------------------


def _cell_name(index: int | None, grade_id: str | None) -> str:
    if grade_id:
        return f"cell {grade_id}"
    return "a cell" if index is None else f"cell {index + 1} (not graded)"


def _errors(notebook: Path) -> dict[str, str]:
    """Map each graded cell's grade id to the error it printed."""
    if not notebook.is_file():
        return {}
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    errors = {}
    for cell in nb["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        outs = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if grade_id and outs:
            out = outs[-1]
            text = "\n".join(out.get("traceback", [])) or f"{out['ename']}: {out['evalue']}"
            errors[grade_id] = clip(text)
    return errors


def _notebook_reasons(findings: dict, limits: Limits) -> tuple[list[str], list[str]]:
    """Flags and reasons from what :class:`GuardedExecute` recorded."""
    flags, reasons = [], []

    def add(flag: str, reason: str) -> None:
        if flag and flag not in flags:
            flags.append(flag)
        if reason not in reasons:
            reasons.append(reason)

    for event in findings.get("events", []):
        where = _cell_name(event.get("cell"), event.get("grade_id"))
        kind = event["kind"]
        if kind == "timeout":
            add(
                "timeout",
                f"The {where} ran past the {limits.cell_timeout} s limit and was stopped.",
            )
        elif kind == "hung":
            add(
                "timeout",
                f"The {where} ignored the interrupt at the {limits.cell_timeout} s limit; "
                "its kernel was restarted.",
            )
        elif kind == "kernel-died":
            add(
                "kernel-died",
                f"The kernel died in the {where} ({event.get('detail')}); it was restarted "
                "and the rest of the notebook graded.",
            )
        elif kind == "resource" and "Memory" in str(event.get("detail")):
            add(
                "memory-limit",
                f"The {where} ran out of memory (limit {limits.memory_mb} MB); "
                "the kernel was restarted.",
            )
        elif kind == "resource":
            add(
                "process-limit",
                f"The {where} hit the limit of {limits.processes} processes; "
                "the kernel was restarted.",
            )
        elif kind == "exit":
            add(
                "exit-called",
                f"The {where} called sys.exit(); the rest of the notebook was graded.",
            )
        elif kind == "replay-failed":
            add("", "After a restart the earlier cells did not run again; later cells may fail.")
        elif kind == "checks-unavailable":
            add("", "The grader's tamper checks could not run in this kernel.")
    if findings.get("output_truncated"):
        add(
            "output-limit",
            f"The notebook printed more than {limits.output_kb} KB; the rest of its output "
            "was dropped.",
        )
    problems = findings.get("problems", [])
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        )
        add(
            "tampering", f"The notebook tampered with grading ({shown}); its test cells score zero."
        )
    return flags, reasons


def _autograde(job: Job, course: Path, kernel_spec: Path, findings: Path) -> dict:
    """Run nbgrader's real autograde in the private course folder ``course``."""
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute
    from traitlets.config import Config

    from autograder import nbgrader_app
    from autograder.execute import GuardedExecute

    limits = Limits(**job.limits)
    extra = Config()
    steps = Autograde.class_traits()["autograde_preprocessors"].default()
    extra.Autograde.autograde_preprocessors = [GuardedExecute if s is Execute else s for s in steps]
    extra.Execute.kernel_name = KERNEL_NAME
    extra.Execute.startup_timeout = KERNEL_STARTUP_TIMEOUT
    extra.GuardedExecute.findings_path = str(findings)
    extra.GuardedExecute.output_limit = limits.output_kb * 1024
    extra.GuardedExecute.sandbox_uid = -1 if job.uid is None else job.uid
    extra.GuardedExecute.walled = job.wall
    if job.wall:  # the wall has no network: the kernel talks over Unix sockets in its sandbox
        extra.KernelManager.transport = "ipc"
        extra.KernelManager.ip = str(job.sandbox / "kernel" / "ipc")
    api = nbgrader_app.api(course, limits.cell_timeout, extra)
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "JUPYTER_RUNTIME_DIR")}
    os.environ["JUPYTER_PATH"] = str(kernel_spec)
    os.environ["JUPYTER_RUNTIME_DIR"] = str(job.folder / "runtime")
    try:
        return api.autograde(job.lab, job.student)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _gradebook(db: Path, lab: str, student: str) -> tuple[dict, dict]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}", COURSE_ID) as gb:
        nb = gb.find_submission_notebook("lab", lab, student)
        grades = {
            g.name: {"auto_score": g.auto_score, "needs_manual_grade": bool(g.needs_manual_grade)}
            for g in nb.grades
        }
        comments = {c.name: c.auto_comment for c in nb.comments}
    return grades, comments


def _isolate_week(job: Job, labs: Path) -> None:
    """Give the sandbox copy the reference files of the other weeks (see overlay)."""
    reference = Path(job.reference) if job.reference else None
    use_reference_for_other_weeks(labs, get_week(job.lab), reference)


def _checked_notebook(job: Job, labs: Path, part: dict):
    """The submitted notebook with locked cells put back, or None; flags go into ``part``."""
    import nbformat

    path, flag, reason = intake.find_notebook(labs, job.lab)
    if flag:
        part["flags"].append(flag)
        part["reasons"].append(reason)
    if path is None:
        part["status"] = "missing"
        return None
    submitted, why = intake.read_notebook(path, job.lab)
    if submitted is None:
        part.update(status="invalid", flags=[*part["flags"], "invalid-notebook"])
        part["reasons"].append(why)
        return None
    repair = intake.repair_locked_cells(submitted, nbformat.read(job.release_notebook, 4))
    changed = [f"{g} edited" for g in repair.edited] + [f"{g} deleted" for g in repair.deleted]
    if changed:
        part["flags"].append("locked-cell-modified")
        part["reasons"].append(
            f"Locked cells were changed ({', '.join(changed)}); they were graded as the "
            "instructor wrote them."
        )
    if repair.kernel:
        part["flags"].append("wrong-kernel")
        part["reasons"].append(
            f"The notebook asked for the kernel '{repair.kernel}'; it was graded with the "
            "course's Python kernel."
        )
    return repair.notebook


def _private_course(job: Job, notebook) -> Path:
    """An nbgrader course folder of the job's own: the template's gradebook, the submission."""
    import nbformat

    course = job.folder / "nbgrader"
    (course / "source" / job.lab).mkdir(parents=True)
    shutil.copyfile(job.source_notebook, course / "source" / job.lab / "lab.ipynb")
    shutil.copyfile(Path(job.template) / "gradebook.db", course / "gradebook.db")
    target = course / "submitted" / job.student / job.lab / "lab.ipynb"
    target.parent.mkdir(parents=True)
    nbformat.write(notebook, target)
    return course


def _sandboxed_kernel(job: Job, labs: Path, part: dict) -> Path:
    """Copy the submission into the sandbox; return a kernel spec folder that starts it there."""
    sandbox_labs = job.sandbox / "labs"
    part["left_out"] = intake.copy_labs(labs, sandbox_labs)
    _isolate_week(job, sandbox_labs)
    cwd = sandbox_labs / job.lab
    cwd.mkdir(parents=True, exist_ok=True)
    _give(sandbox_labs, job.uid)
    events, log = job.folder / "kernel-events.jsonl", job.folder / "kernel.log"
    spec = _spec(
        job, "kernel", sandbox_labs, cwd, events=str(events), log=str(log),
        readonly=["{connection_file}"],
    )  # fmt: skip
    spec_path = spec.write(job.folder / "kernel-spec.json")
    kernels = job.folder / "jupyter"
    (kernels / "kernels" / KERNEL_NAME).mkdir(parents=True)
    kernel = {
        "argv": command(spec_path, "-f", "{connection_file}", spec=spec),
        "display_name": "course grader",
        "language": "python",
        # Behind the wall a signal to the process group would end bwrap, not interrupt.
        "interrupt_mode": "message" if job.wall else "signal",
    }
    (kernels / "kernels" / KERNEL_NAME / "kernel.json").write_text(json.dumps(kernel))
    return kernels


def _failed(job: Job, part: dict, result: dict) -> dict:
    """Report an autograde that nbgrader gave up on, with its own last words."""
    log = (result.get("error") or result.get("log") or "").strip().splitlines()
    kernel_log = job.folder / "kernel.log"
    if kernel_log.is_file():
        log += kernel_log.read_text(errors="replace").strip().splitlines()[-5:]
    detail = ([line for line in log if line.strip()] or ["no details"])[-1][:300]
    part.update(status="failed", flags=[*part["flags"], "autograde-failed"])
    part["reasons"].append(f"nbgrader could not grade the notebook: {detail}")
    part["detail"] = clip("\n".join(log))
    return part


def grade_notebook(job: Job) -> dict:
    """The notebook phase; see the module docstring."""
    labs = Path(job.submission) / "labs"
    part: dict = {"status": "not graded", "flags": [], "reasons": []}
    notebook = _checked_notebook(job, labs, part)
    if notebook is None:
        return part
    course = _private_course(job, notebook)
    part["submitted"] = str(course / "submitted" / job.student / job.lab / "lab.ipynb")
    kernels = _sandboxed_kernel(job, labs, part)
    findings_path = job.folder / "findings.json"
    try:
        result = _autograde(job, course, kernels, findings_path)
    finally:
        _cleanup(job)
    if not result.get("success"):
        return _failed(job, part, result)
    autograded = course / "autograded" / job.student / job.lab / "lab.ipynb"
    findings = json.loads(findings_path.read_text()) if findings_path.is_file() else {}
    flags, reasons = _notebook_reasons(findings, Limits(**job.limits))
    events, part["isolation"] = _events(job.folder / "kernel-events.jsonl")
    if events:
        flags.append("forbidden-access")
        reasons.append(_access_reason(events, "The notebook"))
    grades, comments = _gradebook(course / "gradebook.db", job.lab, job.student)
    part.update(
        status="graded",
        flags=part["flags"] + [f for f in flags if f not in part["flags"]],
        reasons=part["reasons"] + reasons,
        grades=grades,
        comments=comments,
        errors=_errors(autograded),
        autograded=str(autograded),
        findings=findings,
    )
    return part


# --- the pytest phase ----------------------------------------------------------------------


def _copy_tests(src: Path, dest: Path) -> None:
    """Copy the instructor's tests; the student's user may read them, never change them."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for folder, _dirs, files in os.walk(dest):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


def _write_ini(run: Path, labs: Path) -> Path:
    ini = run / "pytest.ini"
    ini.write_text(pytest_ini(labs), encoding="utf-8")
    os.chmod(ini, 0o644)
    return ini


@dataclass
class _Run:
    """What one sandboxed pytest process reported."""

    records: list[dict]
    forged: int
    returncode: int | None
    killed: str = ""


def _watch(proc: subprocess.Popen, results: Path, key: str, limits: Limits) -> _Run:
    """Wait for pytest; stop it when a test hangs or the whole run is too long."""
    from autograder.pytest_guard import read_results

    started = time.monotonic()
    killed = ""
    while proc.poll() is None:
        time.sleep(0.2)
        records, _ = read_results(results, key)
        own, running = own_timeouts(records), {}
        for record in records:
            if record["t"] == "start":
                running[record["id"]] = record["time"]
            elif record["t"] == "finish":
                running.pop(record["id"], None)
        now = time.time()
        if any(now - t > per_test_limit(n, own, limits) + 5 for n, t in running.items()):
            killed = "test-timeout"
        elif time.monotonic() - started > limits.pytest_timeout:
            killed = "run-timeout"
        if killed:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
    records, forged = read_results(results, key)
    return _Run(records, forged, proc.returncode, killed)


def own_timeouts(records: list[dict]) -> dict[str, float]:
    """The instructor's per-test ``timeout`` marks, as the guard reported them at collection."""
    return next((r.get("timeouts") or {} for r in records if r["t"] == "collected"), {})


def per_test_limit(nodeid: str, own: dict[str, float], limits: Limits) -> float:
    """Seconds ``nodeid`` may run: its own ``timeout`` mark if the instructor set one.

    The mark is capped by the whole run's limit.
    """
    return min(float(own.get(nodeid, limits.test_timeout)), float(limits.pytest_timeout))


def course_skip(where: list | None, tests: Path) -> bool:
    """True when a skip was raised in the instructor's test files, not by the code under test.

    Args:
        where: ``[path, line]`` of the skip, as the guard plugin recorded pytest's report.
        tests: The sandbox's copy of the instructor's tests.
    """
    if not where or not isinstance(where[0], str):
        return False
    root = os.path.realpath(tests)
    return os.path.realpath(where[0]).startswith(root + os.sep)


def _outcomes(
    records: list[dict], tests: Path
) -> tuple[dict[str, tuple[str, str]], set[str], str | None]:
    """Map node ids to (status, output); also the finished ids and the one left running.

    A skip is ``skipped`` when the instructor's tests (in ``tests``) raised it, and
    ``skipped-by-code`` when the code under test did.
    """
    outcomes: dict[str, tuple[str, str]] = {}
    finished, running = set(), None
    for record in records:
        kind, nodeid = record["t"], record.get("id", "")
        if kind == "start":
            running = nodeid
        elif kind == "finish":
            finished.add(nodeid)
            running = None
        elif kind == "report":
            status, output = outcomes.get(nodeid, ("passed", ""))
            if record["outcome"] == "failed" and status != "error":
                status = "failed" if record["when"] == "call" else "error"
                output = record.get("text", "")
            elif record["outcome"] == "skipped" and status == "passed":
                own = course_skip(record.get("where"), tests)
                status = "skipped" if own else "skipped-by-code"
                output = record.get("text", "")
            outcomes[nodeid] = (status, output)
    return outcomes, finished, running


def _pytest_sandbox(job: Job, labs: Path, part: dict) -> tuple[Path, Path, Path]:
    """A fresh copy of the submission, the instructor's tests (read-only), a results folder."""
    plabs = job.sandbox / "plabs"
    part["left_out"] = intake.copy_labs(labs, plabs)
    _isolate_week(job, plabs)
    _give(plabs, job.uid)
    run = _mkdir(job.sandbox / "run", None, 0o755)
    _copy_tests(Path(job.tests), run / "tests")
    _write_ini(run, plabs)
    return plabs, run, _mkdir(job.sandbox / "out", job.uid)


def _start_pytest(job: Job, attempt: int, nodeids: list[str], plabs: Path, run: Path, out: Path):
    """Start one sandboxed pytest over ``nodeids``; return it and its results file and key."""
    key, results = secrets.token_hex(16), out / f"results-{attempt}.jsonl"
    args = [
        *nodeids, "-q", "-c", str(run / "pytest.ini"), "--rootdir", str(run),
        "--confcutdir", str(run / "tests"), "-p", "no:cacheprovider", "-p", "no:stepwise",
        "-p", "pytest_timeout", f"--timeout={job.limits['test_timeout']}", "-p", TESTKIT,
    ]  # fmt: skip
    spec = _spec(
        job, "pytest", plabs, run, events=str(job.folder / "pytest-events.jsonl"),
        log=str(job.folder / f"pytest-{attempt}.log"), key=key, results=str(results), args=args,
        readonly=[str(run)],
    )  # fmt: skip
    proc = subprocess.Popen(
        command(spec.write(job.folder / f"pytest-spec-{attempt}.json"), spec=spec),
        cwd=run,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc, results, key


def _read_run(
    run: _Run, nodeids: list[str], problems: list[str], tests: Path
) -> tuple[dict, bool, str | None]:
    """Results of one pytest process; tampering it shows is added to ``problems``."""
    from autograder.pytest_guard import CANARY

    ran, _finished, running = _outcomes(run.records, tests)
    ended = any(r["t"] == "end" for r in run.records)
    collected = next((r["ids"] for r in run.records if r["t"] == "collected"), [])
    for record in run.records:
        if record["t"] == "tampering":
            problems += [p for p in record["problems"] if p not in problems]
        if record["t"] == "collect-error":
            for nodeid in nodeids:
                if nodeid.startswith(record["id"]) and nodeid not in ran:
                    ran[nodeid] = ("error", clip(record.get("text", "")))
    if run.forged:
        problems.append(f"{run.forged} test results were written by the code under test")
    canary = [n for n in collected if n.endswith("::" + CANARY)]
    if canary and ran.get(canary[0], ("missing", ""))[0] == "passed":
        problems.append("a test that must fail passed: the results were altered")
    elif canary and ended and canary[0] not in ran:
        problems.append("the canary test did not report: the results were altered")
    ran = {k: v for k, v in ran.items() if not k.endswith("::" + CANARY)}
    running = None if running and running.endswith("::" + CANARY) else running
    return ran, ended, running


def _stopped(run: _Run, limits: Limits, part: dict) -> str:
    """Why the test that was running when pytest stopped gets no points; flag it."""
    if run.killed == "test-timeout":
        part["flags"].append("timeout")
        running = next((r["id"] for r in reversed(run.records) if r["t"] == "start"), "")
        seconds = per_test_limit(running, own_timeouts(run.records), limits)
        return f"This test ran past the {seconds:g} s limit and ignored the stop."
    if run.killed == "run-timeout":
        part["flags"].append("timeout")
        return f"The component tests ran past their {limits.pytest_timeout} s limit."
    part["flags"].append("tests-crashed")
    return f"The test process died during this test: {describe_exit(run.returncode)}."


def grade_tests(job: Job, names: list[str]) -> dict:
    """The pytest phase for the graded tests ``names``; see the module docstring.

    When the test process dies or is stopped, the test it was running gets an
    error and the tests that had not run yet run in a fresh process.
    """
    limits = Limits(**job.limits)
    labs = Path(job.submission) / "labs"
    part: dict = {"status": "graded", "items": {}, "flags": [], "reasons": []}
    if not (labs / "mlpipe" / "__init__.py").is_file():
        part["status"] = "missing"
        part["reasons"].append("labs/mlpipe is missing from the submission.")
        return part
    plabs, run, out = _pytest_sandbox(job, labs, part)
    remaining = [f"tests/{name}" for name in names]
    results: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    died_early: _Run | None = None
    for attempt in range(MAX_PYTEST_ATTEMPTS):
        proc, path, key = _start_pytest(job, attempt, remaining, plabs, run, out)
        outcome = _watch(proc, path, key, limits)
        outcome.returncode = inner_exit(outcome.returncode, job.wall)
        _cleanup(job, proc.pid)
        ran, ended, running = _read_run(outcome, remaining, problems, run / "tests")
        results.update(ran)
        if ended or not remaining:
            break
        if running:
            results[running] = ("error", _stopped(outcome, limits, part))
            part["reasons"].append(f"{running.removeprefix('tests/')}: {results[running][1]}")
        left = [
            n
            for n in remaining
            if n not in results and not any(k.startswith(n + "[") for k in results)
        ]
        if outcome.killed == "run-timeout":
            break
        if left == remaining:  # the process ended before it ran any of them
            retry = died_early is None and not outcome.killed
            died_early = outcome
            if retry:  # once more: a machine's hiccup must not cost the grade
                continue
            break
        remaining = left
    part["items"] = _items(names, results, part)
    if died_early is not None:
        _not_run(part, describe_exit(died_early.returncode))
    if problems:
        part["flags"].append("tampering")
        part["reasons"].append(
            "The component tests were tampered with (" + "; ".join(problems[:3]) + "); "
            "they score zero."
        )
        part["tampered"] = True
    events, part["isolation"] = _events(job.folder / "pytest-events.jsonl")
    if events:
        part["flags"].append("forbidden-access")
        part["reasons"].append(_access_reason(events, "The code under test"))
    part["flags"] = list(dict.fromkeys(part["flags"]))
    return part


#: The output of a graded test of which no pytest process reported anything.
NOT_RUN = "this test did not run"


def _not_run(part: dict, exit_text: str) -> None:
    """Say why the tests that never ran got no points, and flag it (see :func:`grade_tests`)."""
    missing = [n for n, item in part["items"].items() if item["output"] == NOT_RUN]
    if not missing:
        return
    why = f"The test process ended twice before these tests ran: {exit_text}."
    for name in missing:
        part["items"][name]["output"] = why
    part["flags"].append("tests-crashed")
    part["reasons"].append(f"{len(missing)} component tests did not run: {why}")


def _items(names: list[str], results: dict, part: dict) -> dict[str, dict]:
    """One status and output per graded test (parametrised cases combined).

    A test the instructor's code skipped is ``skipped`` (no points, no flag); one the
    code under test skipped fails and is flagged as tampering.
    """
    items, skipped = {}, []
    for name in names:
        nodeid = f"tests/{name}"
        cases = [v for k, v in results.items() if k == nodeid or k.startswith(nodeid + "[")]
        if not cases:
            items[name] = {"status": "error", "output": NOT_RUN}
            continue
        bad = [c for c in cases if c[0] != "passed"]
        bad = [c for c in bad if c[0] != "skipped"] or bad
        status, output = bad[0] if bad else ("passed", "")
        if status == "skipped":
            output = "skipped: " + output
        elif status == "skipped-by-code":
            skipped.append(name)
            status, output = "failed", "skipped: " + output
        if status != "passed" and "Timeout (>" in output:
            part["flags"].append("timeout")
            part["reasons"].append(f"{name}: the test ran past the time limit and was stopped.")
        items[name] = {"status": status, "output": clip(output)}
    if skipped:
        part["flags"].append("tampering")
        part["reasons"].append(
            f"The code under test skipped graded tests ({', '.join(skipped[:3])}); they score zero."
        )
    return items


# --- one job, and the loop -----------------------------------------------------------------


def run_job(job: Job, names: list[str]) -> dict:
    """Grade one job; write and return its result."""
    _mkdir(job.folder, None)
    sandbox = _mkdir(job.sandbox, None, 0o711)
    for sub in ("home", "tmp", "kernel"):
        _mkdir(sandbox / sub, job.uid)
    result: dict = {"job": asdict(job), "seconds": {}}
    try:
        if "notebook" in job.phases:
            start = time.monotonic()
            result["notebook"] = grade_notebook(job)
            result["seconds"]["notebook"] = round(time.monotonic() - start, 2)
            _write(job, result)
        for sub in ("home", "tmp"):
            shutil.rmtree(sandbox / sub, ignore_errors=True)
            _mkdir(sandbox / sub, job.uid)
        if "pytest" in job.phases:
            start = time.monotonic()
            result["pytest"] = grade_tests(job, names)
            result["seconds"]["pytest"] = round(time.monotonic() - start, 2)
    except Exception:
        result["error"] = traceback.format_exc()
    finally:
        _cleanup(job)
        shutil.rmtree(sandbox, ignore_errors=True)
    _write(job, result)
    return result


def _write(job: Job, result: dict) -> None:
    tmp = job.folder / "result.json.tmp"
    tmp.write_text(json.dumps(result, default=str), encoding="utf-8")
    os.replace(tmp, job.folder / "result.json")


def main() -> int:
    """Read jobs from stdin (one JSON line each), answer each on stdout when done."""
    skip_iri_grammar()
    reply = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything else printed goes to the log, not into the replies
    warnings.filterwarnings("ignore")
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        job = Job(**message["job"])
        try:
            run_job(job, message["tests"])
        except Exception:
            _mkdir(job.folder, None)
            _write(job, {"job": asdict(job), "error": traceback.format_exc()})
        reply.write(json.dumps({"id": job.id}) + "\n")
        reply.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
