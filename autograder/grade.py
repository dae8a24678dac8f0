"""``course grade``: grade a class's checkouts with nbgrader and pytest, in parallel.

For each submission (a folder holding ``labs/``) and week, a worker process
(:mod:`autograder.worker`) grades the lab notebook with nbgrader's real
``autograde`` and the component code with the instructor's pytest tests, each
run of the student's code sandboxed (:mod:`autograder.sandbox`). This module is
the supervisor:

* it plans the jobs and skips those already graded (a report whose submission
  is unchanged), unless ``force``;
* it registers each week in the class gradebook (``<out>/nbgrader``, where the
  formgrader opens it) and in a template that every job copies;
* it runs ``jobs`` workers at once and, as each job finishes, records the
  notebook grades in the gradebook (keeping grades an instructor entered), then
  writes the report JSON, Markdown, feedback HTML and the class ``grades.csv``,
  each atomically, so an interrupted run loses no finished grade;
* a worker that hangs or dies is replaced; its job is reported, not lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from autograder import CourseError, intake, nbgrader_app
from autograder.config import (
    CONFIRM_FLAGS,
    COURSE_ID,
    HIDDEN_DIR,
    LABS,
    NO_TELEMETRY,
    REPO_ROOT,
    SOLUTIONS,
    VCS_DIR,
    WALL_PROGRAM,
    WEEKS,
    Week,
    get_week,
)
from autograder.merge import Shard, select_shard, write_shard_file
from autograder.report import (
    HIDDEN_VISIBILITIES,
    Report,
    TestResult,
    read_reports,
    write_class_csv,
    write_gradescope,
    write_report,
)
from autograder.sandbox import Limits, Spec, claim_uids, command, kill_user, wall_problem
from autograder.sources import (
    GradedItem,
    GradingSource,
    find_source,
    material_digest,
    notebook_items,
    pytest_items,
)
from autograder.worker import Job

#: Flags after which a report counts as not finished: the next run grades it again.
RETRY_FLAGS = {"grader-error"}
#: Flags that mean a student's lab could not be graded at all (exit status 3).
PROBLEM_FLAGS = {"missing-lab", "missing-notebook", "invalid-notebook", "grader-error"}


@dataclass(frozen=True)
class Submission:
    """A student's checkout: its folder and the id it is graded under."""

    path: Path
    student: str

    @property
    def labs(self) -> Path:
        return self.path / LABS


def student_id(path: Path) -> str:
    """The student id of a submission: its folder name, reduced to safe characters."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.resolve().name).strip("-.")
    return name or "student"


def find_submissions(paths: list[Path]) -> list[Submission]:
    """Check each path is a student's checkout and give each a unique id.

    Raises:
        CourseError: For a path that does not exist, has no labs/, or an id
            that two submissions would share.
    """
    if not paths:
        raise CourseError("Give at least one submission: the folder of a student's checkout.")
    subs, seen = [], {}
    for path in paths:
        if not path.exists():
            raise CourseError(f"'{path}' does not exist: give the folder of a student's checkout.")
        if not (path / LABS).is_dir():
            raise CourseError(
                f"'{path}' is not a submission: it has no {LABS}/ folder "
                "(give the folder of a student's checkout, which holds labs/)."
            )
        sid = student_id(path)
        if sid in seen:
            raise CourseError(
                f"'{path}' and '{seen[sid]}' would both be graded as '{sid}'; rename one."
            )
        seen[sid] = path
        subs.append(Submission(path.resolve(), sid))
    return subs


# --- planning ------------------------------------------------------------------------------


def plan(
    subs: list[Submission], week: int | None, all_weeks: bool
) -> list[tuple[Submission, Week]]:
    """The (submission, week) pairs to grade.

    ``week``: that week only; ``all_weeks``: every week of the course; neither:
    every week whose lab folder a submission has (the first week when none).
    """
    if week is not None and all_weeks:
        raise CourseError("Give either --week N or --all, not both.")
    if week is not None:
        weeks = [get_week(week)]
        return [(sub, w) for sub in subs for w in weeks]
    if all_weeks:
        return [(sub, w) for sub in subs for w in WEEKS.values()]
    jobs = []
    for sub in subs:
        own = [w for w in WEEKS.values() if (sub.labs / w.lab).is_dir()]
        jobs += [(sub, w) for w in own or list(WEEKS.values())[:1]]
    return jobs


def hidden_lines(source: GradingSource, week: Week) -> list[str]:
    """Every line of the week's hidden tests that the released files do not show."""
    if not source.hidden_tests:
        return []
    lines: list[str] = []
    hidden = source.tests(week) / HIDDEN_DIR
    for path in sorted(hidden.rglob("*.py")) if hidden.is_dir() else []:
        lines += path.read_text(encoding="utf-8").splitlines()
    nb = json.loads(source.notebook(week).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        text = "".join(cell.get("source", ""))
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", text, re.S):
            lines += block.splitlines()
    visible = ""
    released = REPO_ROOT / LABS / week.lab
    if released.is_dir():
        visible = "".join(
            p.read_text(errors="replace") for p in released.rglob("*.*") if p.is_file()
        )
    kept = {line.strip() for line in lines}
    return sorted((line for line in kept if line and line not in visible), key=len, reverse=True)


def _needed() -> list[str]:
    """Paths the sandboxed processes need: the Python installation and the grader."""
    grader = str(Path(__file__).resolve().parent)
    return [os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, grader}]


def _hideable(path: Path, needed: list[str], depth: int = 2) -> list[str]:
    """``path`` itself, or (when it holds a needed path) its children that do not."""
    real = os.path.realpath(path)
    if not os.path.isdir(real) or any(real.startswith(n + os.sep) for n in needed):
        return []
    if not any(n == real or n.startswith(real + os.sep) for n in needed):
        return [real]
    if depth == 0:
        return []
    found = []
    for child in sorted(Path(real).iterdir()):
        if child.is_dir() and not child.is_symlink():
            found += _hideable(child, needed, depth - 1)
    return found


def git_folders(checkout: Path) -> list[Path]:
    """The git folders of ``checkout``: its ``.git``, or those a worktree's ``.git`` file names.

    Its history holds every file ever committed (the course's: ``solutions/`` and
    the hidden tests).
    """
    dotgit = checkout / VCS_DIR
    if dotgit.is_dir():
        return [dotgit]
    try:
        text = dotgit.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return []
    if not text.startswith("gitdir:"):
        return []
    gitdir = (checkout / text.removeprefix("gitdir:").strip()).resolve()
    folders = [gitdir]
    with contextlib.suppress(OSError, UnicodeDecodeError, IndexError):
        common = (gitdir / "commondir").read_text(encoding="utf-8").splitlines()[0].strip()
        folders.append((gitdir / common).resolve())
    return [f for f in folders if f.is_dir()]


def protected(
    out: Path, subs: list[Submission], source: GradingSource, scratch: Path
) -> dict[str, list[str]]:
    """What the student's audit hook refuses to read (``read``) or change (``write``).

    That is the class's reports, the grading source, the grader's home, every
    submission, the course's ``solutions/`` and git history, and the run's
    scratch folder (the other slots' sandboxes and the grader's job folders; each
    job's own sandbox excepted). Behind the wall none of them is there at all:
    the hook is the tripwire that names the attempt.
    """
    needed = _needed()
    secret = [out, source.root, Path.home(), *(s.path for s in subs), *git_folders(REPO_ROOT)]
    if (REPO_ROOT / SOLUTIONS).is_dir():
        secret.append(REPO_ROOT / SOLUTIONS)
    read = sorted({p for path in secret for p in _hideable(path, needed)})
    write = sorted({*read, *(os.path.realpath(p) for p in needed)})
    return {"read": sorted({*read, os.path.realpath(scratch)}), "write": write}


# --- the class gradebook ---------------------------------------------------------------------


class Gradebook:
    """The class's nbgrader folder (``<out>/nbgrader``) and per-week templates."""

    def __init__(self, out: Path, source: GradingSource, limits: Limits) -> None:
        self.root = out.resolve() / "nbgrader"
        self.source = source
        self.limits = limits
        self._ready: dict[str, tuple[Path, Path]] = {}

    @property
    def url(self) -> str:
        return f"sqlite:///{self.root / 'gradebook.db'}"

    def prepare(self, week: Week) -> tuple[Path, Path]:
        """Register the week in the class gradebook and a template; return (template, release).

        The template (a gradebook holding only the week's assignment, which every
        job copies) is kept in ``<out>/nbgrader/.templates`` for as long as the
        source notebook does not change; so is the class gradebook's registration.
        """
        if week.lab in self._ready:
            return self._ready[week.lab]
        import nbgrader

        text = self.source.notebook(week).read_bytes()
        key = hashlib.sha256(text + nbgrader.__version__.encode()).hexdigest()[:12]
        template = self.root / ".templates" / f"{week.lab}-{key}"
        if not (template / "gradebook.db").is_file():
            building = template.with_name(f"{template.name}.{os.getpid()}")
            shutil.rmtree(building, ignore_errors=True)
            self._register(building, week)
            shutil.rmtree(template, ignore_errors=True)
            os.replace(building, template)
        source = self.root / "source" / week.lab / "lab.ipynb"
        if not (self.root / "gradebook.db").is_file():
            for part in ("source", "release"):
                shutil.copytree(
                    template / part / week.lab, self.root / part / week.lab, dirs_exist_ok=True
                )
            shutil.copyfile(template / "gradebook.db", self.root / "gradebook.db")
        elif not source.is_file() or source.read_bytes() != text:
            self._register(self.root, week)
        os.chmod(self.root, 0o700)
        self._ready[week.lab] = (template, template / "release" / week.lab / "lab.ipynb")
        return self._ready[week.lab]

    def _register(self, root: Path, week: Week) -> None:
        """nbgrader's generate_assignment of the week's source notebook in ``root``."""
        target = root / "source" / week.lab / "lab.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.source.notebook(week), target)
        api = nbgrader_app.api(root, self.limits.cell_timeout)
        nbgrader_app.run(api.generate_assignment(week.lab), f"register {week.lab}")

    def record(self, student: str, lab: str, part: dict | None) -> dict[str, dict]:
        """Save nbgrader's autograde results for one student; keep manual grades.

        ``part`` is the worker's notebook result; without grades (a missing or
        broken notebook) every cell gets zero, as nbgrader does for a missing one.
        A test cell that printed an error scores zero whatever nbgrader gave it:
        nbgrader gives full points to a cell whose first output is a non-numeric
        result, errors after it notwithstanding, and a student's hook can put one there.
        """
        from nbgrader.api import Gradebook as NbGradebook

        new = (part or {}).get("grades") or {}
        errors = (part or {}).get("errors") or {}
        comments = (part or {}).get("comments") or {}
        with NbGradebook(self.url, COURSE_ID) as gb:
            gb.update_or_create_student(student)
            gb.update_or_create_submission(lab, student)
            nb = gb.find_submission_notebook("lab", lab, student)
            for grade in nb.grades:
                got = new.get(grade.name, {"auto_score": 0.0, "needs_manual_grade": False})
                errored = grade.name in errors and not got["needs_manual_grade"]
                grade.auto_score = 0.0 if errored else got["auto_score"]
                if grade.manual_score is not None:
                    grade.needs_manual_grade = False
                else:
                    grade.needs_manual_grade = got["needs_manual_grade"]
            for comment in nb.comments:
                comment.auto_comment = comments.get(comment.name)
            gb.db.commit()
        self._keep_notebooks(student, lab, part)
        return self.grades(student, lab)

    def _keep_notebooks(self, student: str, lab: str, part: dict | None) -> None:
        """Put the graded notebooks where the formgrader looks for them."""
        for kind, key in (("submitted", "submitted"), ("autograded", "autograded")):
            dest = self.root / kind / student / lab / "lab.ipynb"
            src = (part or {}).get(key)
            if src and Path(src).is_file():
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_suffix(".tmp")
                shutil.copyfile(src, tmp)
                os.replace(tmp, dest)
            elif dest.exists():
                dest.unlink()

    def grades(self, student: str, lab: str) -> dict[str, dict]:
        """The student's notebook grades: score, manual score, needs manual grading."""
        from nbgrader.api import Gradebook as NbGradebook
        from nbgrader.api import MissingEntry

        with NbGradebook(self.url, COURSE_ID) as gb:
            try:
                nb = gb.find_submission_notebook("lab", lab, student)
            except MissingEntry:
                return {}
            return {
                g.name: {
                    "score": float(g.score or 0.0),
                    "manual_score": g.manual_score,
                    "needs_manual_grade": bool(g.needs_manual_grade),
                }
                for g in nb.grades
            }

    def submitted(self, student: str, lab: str) -> dict | None:
        """The notebook as graded (released test cells, the student's answers), if any."""
        path = self.root / "submitted" / student / lab / "lab.ipynb"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# --- reports ---------------------------------------------------------------------------------


def _zero(items: list[GradedItem], source: str, reason: str) -> list[TestResult]:
    return [TestResult(i.name, source, 0.0, i.points, "error", reason, i.hidden) for i in items]


def notebook_test(item: GradedItem, grade: dict | None, output: str, graded: bool) -> TestResult:
    """One notebook item from its gradebook grade and the error its cell printed."""
    grade = grade or {"score": 0.0, "manual_score": None, "needs_manual_grade": False}
    score = float(grade["score"])
    by_hand = grade["manual_score"] is not None
    if item.manual and grade["needs_manual_grade"]:
        status, output = "manual", ""
    elif item.manual or by_hand:
        status = "passed" if score >= item.points else "failed"
        if by_hand:
            output = "graded by your instructor"
        elif graded:
            output = "" if score else "the written answer was left blank"
    elif not graded:
        status = "error"
    elif score >= item.points:
        status, output = "passed", ""
    else:
        status = "failed" if "AssertionError" in output else "error"
    return TestResult(item.name, "notebook", score, item.points, status, output, item.hidden)


def _flag(report: Report, flags: list[str], reasons: list[str]) -> None:
    report.flags += [f for f in flags if f and f not in report.flags]
    report.reasons += [r for r in reasons if r and r not in report.reasons]


def build_report(
    sub: Submission, week: Week, source: GradingSource, result: dict, grades: dict
) -> Report:
    """Combine a worker's result and the gradebook into the student's report."""
    report = Report(student=sub.student, week=week.number, hidden_tests=source.hidden_tests)
    if not (sub.labs / week.lab).is_dir():
        _flag(report, ["missing-lab"], [f"The submission has no labs/{week.lab} folder."])
    nb = result.get("notebook") or {}
    tests = result.get("pytest") or {}
    _flag(report, nb.get("flags", []), nb.get("reasons", []))
    _flag(report, tests.get("flags", []), tests.get("reasons", []))
    left_out = list(dict.fromkeys(nb.get("left_out", []) + tests.get("left_out", [])))
    if left_out:
        more = f" and {len(left_out) - 4} more" if len(left_out) > 4 else ""
        _flag(
            report,
            ["planted-files"],
            [f"Files that could change grading were ignored: {', '.join(left_out[:4])}{more}."],
        )
    if result.get("error"):
        last = [line for line in result["error"].strip().splitlines() if line.strip()][-1:]
        _flag(
            report,
            ["grader-error"],
            [f"The grader failed on this submission ({(last or ['unknown'])[0][:200]}); "
             "run the same command again to retry."],
        )  # fmt: skip
    graded = nb.get("status") == "graded"
    errors = nb.get("errors", {})
    reason = (nb.get("reasons") or ["the notebook was not graded"])[-1] if not graded else ""
    if nb.get("detail"):
        reason += "\n" + nb["detail"]
    for item in notebook_items(source.notebook(week)):
        output = errors.get(item.name, "") if graded else reason
        report.tests.append(notebook_test(item, grades.get(item.name), output, graded))
    items = pytest_items(source.tests(week))
    if tests.get("status") != "graded":
        why = (tests.get("reasons") or ["the component tests did not run"])[-1]
        report.tests += _zero(items, "pytest", why)
    else:
        ran = tests.get("items", {})
        for item in items:
            got = ran.get(item.name, {"status": "error", "output": "this test did not run"})
            status, output = got["status"], got["output"]
            if tests.get("tampered"):
                status, output = "error", "not scored: the component tests were tampered with"
            score = item.points if status == "passed" else 0.0
            report.tests.append(
                TestResult(item.name, "pytest", score, item.points, status, output, item.hidden)
            )
    report.isolation = nb.get("isolation") or tests.get("isolation") or ""
    report.seconds = dict(result.get("seconds", {}))
    return report


def refresh(report: Report, source: GradingSource, week: Week, grades: dict) -> bool:
    """Bring a finished report's notebook scores up to date with the gradebook.

    Manual grades entered in the formgrader after the report was written are
    taken in. Returns True when the report changed.
    """
    graded = not {"missing-notebook", "invalid-notebook", "autograde-failed"} & set(report.flags)
    items = {i.name: i for i in notebook_items(source.notebook(week))}
    changed = False
    for index, test in enumerate(report.tests):
        item = items.get(test.name)
        if test.source != "notebook" or item is None or test.name not in grades:
            continue
        output = "" if test.output == "graded by your instructor" else test.output
        new = notebook_test(item, grades[test.name], output, graded)
        if (new.score, new.status) != (test.score, test.status):
            report.tests[index] = new
            changed = True
    return changed


# --- the worker pool -------------------------------------------------------------------------


class Pool:
    """``size`` worker processes, each fed one job at a time by a thread of its own."""

    def __init__(self, size: int, uids: list[int | None], log_dir: Path) -> None:
        self.size = size
        self.uids = uids
        self.log_dir = log_dir
        self.todo: queue.Queue = queue.Queue()
        self.done: queue.Queue = queue.Queue()
        self.procs: dict[int, subprocess.Popen] = {}
        self.stopping = False
        self.threads = [
            threading.Thread(target=self._slot, args=(slot,), daemon=True) for slot in range(size)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def submit(self, job: Job, tests: list[str], timeout: float) -> None:
        self.todo.put((job, tests, timeout))

    def _spawn(self, slot: int) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
        env.update(NO_TELEMETRY)
        log = open(self.log_dir / f"worker-{slot}.log", "ab")  # noqa: SIM115  (kept by the child)
        proc = subprocess.Popen(
            [sys.executable, "-m", "autograder.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            text=True,
            start_new_session=True,
        )
        log.close()
        self.procs[slot] = proc
        return proc

    def _kill(self, slot: int) -> None:
        proc = self.procs.pop(slot, None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if self.uids[slot] is not None:
            kill_user(self.uids[slot])

    def _slot(self, slot: int) -> None:
        proc = self._spawn(slot)  # it imports nbgrader while the supervisor prepares
        while not self.stopping:
            item = self.todo.get()
            if item is None:
                break
            job, tests, timeout = item
            job.uid = self.uids[slot]
            if proc is None or proc.poll() is not None:
                proc = self._spawn(slot)
            status = self._send(proc, job, tests, timeout)
            if status != "ok":
                self._kill(slot)
                proc = None
            self.done.put((job, status))
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill(slot)

    def _send(self, proc: subprocess.Popen, job: Job, tests: list[str], timeout: float) -> str:
        try:
            proc.stdin.write(json.dumps({"job": asdict(job), "tests": tests}) + "\n")
            proc.stdin.flush()
        except OSError:
            return "crashed"
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            return "timeout"
        return "ok" if proc.stdout.readline() else "crashed"

    def stop(self, now: bool = False) -> None:
        """Let the workers finish (or, with ``now``, kill them and their students' processes)."""
        self.stopping = now
        for _ in self.threads:
            self.todo.put(None)
        if now:
            for slot in list(self.procs):
                self._kill(slot)
        for thread in self.threads:
            if thread.ident is not None:  # started
                thread.join(timeout=None if not now else 15)


def probe(scratch: Path, uid: int, protect: list[str], wall: bool) -> str:
    """Check that a sandboxed process can run as ``uid`` (behind the wall, with ``wall``).

    Returns:
        The isolation reached (``uid+wall``, ``uid``), or an empty string when the
        process could not start that way.
    """
    root = scratch / f"probe-{int(wall)}"
    root.mkdir(mode=0o711)
    spec = Spec(
        mode="probe",
        root=str(root),
        cwd=str(root),
        labs=str(root),
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        uid=uid,
        wall=wall,
        protect_read=protect,
        events=str(scratch / f"probe-{int(wall)}-events.jsonl"),
    )
    path = spec.write(scratch / f"probe-{int(wall)}.json")
    try:
        proc = subprocess.run(command(path, spec=spec), capture_output=True, text=True, timeout=60)
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return ""
    finally:
        kill_user(uid)
    return answer["isolation"] if answer.get("child") == 0 else ""


def _job_timeout(source: GradingSource, week: Week, limits: Limits) -> float:
    nb = json.loads(source.notebook(week).read_text(encoding="utf-8"))
    cells = sum(1 for c in nb["cells"] if c.get("cell_type") == "code")
    return (cells + 6) * (limits.cell_timeout + 20) + limits.pytest_timeout + 240


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _lock(out: Path) -> int:
    """Hold ``<out>/.lock`` for this run: two runs never write one class folder at once.

    Raises:
        CourseError: When another run holds it.
    """
    import fcntl

    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise CourseError(
            f"Another `course grade` is writing to {out}; wait for it or choose another --out."
        ) from None
    return fd


def _scratch() -> Path:
    """A fresh scratch folder; those of earlier runs that were killed are removed."""
    base = Path(tempfile.gettempdir())
    for old in base.glob("course-grade-*"):
        pid = old.name.split("-")[2] if old.name.count("-") >= 3 else ""
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"course-grade-{os.getpid()}-"))
    os.chmod(scratch, 0o711)
    return scratch


# --- the API -----------------------------------------------------------------------------------


@dataclass
class _Todo:
    sub: Submission
    week: Week
    digest: str
    source_digest: str


def grade(
    submissions: list[Path],
    week: int | None = None,
    out: Path = Path("grades"),
    cell_timeout: int | None = None,
    source: GradingSource | None = None,
    progress: bool = True,
    *,
    all_weeks: bool = False,
    jobs: int | None = None,
    force: bool = False,
    test_timeout: int | None = None,
    limits: Limits | None = None,
    gradescope: bool = False,
    shard: Shard | None = None,
    hidden_visibility: str = "after_published",
    trust_submissions: bool = False,
) -> list[Report]:
    """Grade submissions in parallel and write reports plus the class ``grades.csv``.

    Args:
        submissions: Students' checkouts (folders holding ``labs/``).
        week: Only this week (exclusive with ``all_weeks``).
        out: Folder for the reports, the gradebook and ``grades.csv``.
        cell_timeout: Seconds a notebook cell may run (overrides ``limits``).
        source: What to grade against; default: :func:`find_source`.
        progress: Show a progress bar on stderr.
        all_weeks: Every week of the course, even those a submission lacks.
        jobs: Submissions graded at once; default: the cores available.
        force: Grade again what is already graded.
        test_timeout: Seconds one component test may run (overrides ``limits``).
        limits: Resource limits of the student's code; default: :class:`Limits`.
        gradescope: Also write ``weekNN-results.json`` for Gradescope.
        shard: Grade only this slice of the submissions (:func:`autograder.merge.select_shard`)
            and record it in ``<out>/shard.json`` for ``course merge``.
        hidden_visibility: Gradescope visibility of hidden tests: ``after_published`` or
            ``hidden``.
        trust_submissions: Grade without the wall where it cannot be built (work you
            trust). Without it, such a run is refused; grading the checkout the
            grader itself runs from (``course grade .``: your own work) is trusted.

    Returns:
        The reports, one per submission and week, in order.

    Raises:
        CourseError: For a week that does not exist or a path that is not a submission.
    """
    subs = find_submissions([Path(p) for p in submissions])
    everyone, subs = subs, select_shard(subs, shard)
    trusted = trust_submissions or all(s.path == REPO_ROOT.resolve() for s in subs)
    if not trusted and wall_problem():
        raise CourseError(_refusal(wall_problem()))
    pairs = plan(subs, week, all_weeks)
    jobs = jobs or default_jobs()
    if jobs < 1:
        raise CourseError(f"--jobs must be at least 1, not {jobs}.")
    if hidden_visibility not in HIDDEN_VISIBILITIES:
        raise CourseError(
            f"Hidden tests' visibility '{hidden_visibility}' is not one of: "
            f"{', '.join(HIDDEN_VISIBILITIES)}."
        )
    limits = limits or Limits()
    overrides = {"cell_timeout": cell_timeout, "test_timeout": test_timeout}
    limits = replace(limits, **{k: v for k, v in overrides.items() if v is not None})
    source = source or find_source()
    out = Path(out).resolve()
    if not out.exists():
        out.mkdir(parents=True, mode=0o700)
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", message=".*not in session.*")

    if shard is not None:
        write_shard_file(out, shard, everyone, pairs)
    materials = {w.number: material_digest(source, w) for w in {w for _, w in pairs}}
    todo, finished = [], {}
    for sub, wk in pairs:
        digest = intake.digest(sub.labs)
        path = out / sub.student / f"week{wk.number:02d}.json"
        if not force and path.is_file():
            try:
                old = Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, KeyError, TypeError):
                old = None
            fresh = old and (old.digest, old.source_digest) == (digest, materials[wk.number])
            if fresh and not RETRY_FLAGS & set(old.flags):
                finished[(sub.student, wk.number)] = old
                continue
        todo.append(_Todo(sub, wk, digest, materials[wk.number]))
    lock = _lock(out)
    scratch = _scratch()
    try:
        book = Gradebook(out, source, limits)
        hidden = {w.number: hidden_lines(source, w) for _, w in pairs}
        _refresh_all(finished, book, source, out, hidden)
        if todo:
            _run(
                todo,
                min(jobs, len(todo)),
                book,
                source,
                out,
                limits,
                scratch,
                hidden,
                progress,
                finished,
                len(pairs),
                trusted,
                everyone=everyone,
            )
    finally:
        write_class_csv(out)
        shutil.rmtree(scratch, ignore_errors=True)
        os.close(lock)
    reports = [
        finished[(sub.student, wk.number)]
        for sub, wk in pairs
        if (sub.student, wk.number) in finished
    ]
    if gradescope:
        for report in reports:
            write_gradescope(report, out, hidden.get(report.week, []), hidden_visibility)
    return reports


def _refresh_all(
    finished: dict, book: Gradebook, source: GradingSource, out: Path, hidden: dict
) -> None:
    """Take manual grades into reports that are otherwise up to date."""
    for (student, number), report in finished.items():
        week = WEEKS[number]
        if refresh(report, source, week, book.grades(student, week.lab)):
            write_report(report, out, hidden[number], book.submitted(student, week.lab))


def _job(number: int, item: _Todo, book: Gradebook, source, limits, scratch, protect, wall) -> Job:
    template, release = book.prepare(item.week)
    return Job(
        id=number,
        student=item.sub.student,
        lab=item.week.lab,
        submission=str(item.sub.path),
        source_notebook=str(source.notebook(item.week)),
        release_notebook=str(release),
        template=str(template),
        tests=str(source.tests(item.week)),
        scratch=str(scratch),
        uid=None,
        limits=asdict(limits),
        wall=wall,
        protect_read=protect["read"],
        protect_write=protect["write"],
        reference=str(source.root) if source.hidden_tests else None,
    )


def _isolation(scratch: Path, size: int, protect: list[str], trusted: bool):
    """The slots' user ids and whether the wall is up; refuse untrusted work without it.

    Raises:
        CourseError: When the wall cannot be built and the work is not trusted.
    """
    problem = wall_problem()
    claimed = claim_uids(size) if os.getuid() == 0 else []
    if claimed and not problem and probe(scratch, claimed[0], protect, wall=True):
        return list(claimed), True
    if not trusted:
        raise CourseError(_refusal(problem or f"{WALL_PROGRAM} could not build the wall here"))
    if claimed and probe(scratch, claimed[0], protect, wall=False):
        return list(claimed), False
    return [None] * size, False


def _refusal(problem: str) -> str:
    return (
        f"Refusing to grade: {problem}; pass --trust-submissions to grade work you trust "
        "without the wall."
    )


def _to_confirm(job: Job, status: str) -> tuple[list[str], dict]:
    """The phases whose grade may come from the machine's load (a timeout, a resource
    limit), and the job's result.
    """
    path = job.folder / "result.json"
    result = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if status == "timeout":
        return list(job.phases), result
    if status != "ok":
        return [], result
    flagged = [p for p in job.phases if CONFIRM_FLAGS & set((result.get(p) or {}).get("flags", []))]
    return flagged, result


def _merge(job: Job, first: dict) -> None:
    """Give a confirming run's result the parts of the first run it did not repeat."""
    path = job.folder / "result.json"
    if not path.is_file():
        return
    result = json.loads(path.read_text(encoding="utf-8"))
    for part in ("notebook", "pytest"):
        if part not in job.phases and part in first:
            result[part] = first[part]
            result.setdefault("seconds", {})[part] = first.get("seconds", {}).get(part)
    path.write_text(json.dumps(result, default=str), encoding="utf-8")


#: The reason a confirmed grade carries.
RETRIED = (
    "A timeout or resource limit was confirmed: this submission was graded again, alone "
    "and with doubled time limits, and this grade is that run's."
)


def _run(
    todo,
    size,
    book,
    source,
    out,
    limits,
    scratch,
    hidden,
    progress,
    finished,
    total,
    trusted=False,
    everyone=(),
) -> None:
    """Grade ``todo`` with ``size`` workers, writing each report as it finishes.

    A job flagged for a timeout or a resource limit is graded again once the
    others are done, alone and with doubled time limits (:meth:`Limits.doubled`); only
    that grade counts, and its report says so. The student's code sees none of
    ``everyone``'s checkouts (the whole class, other shards' submissions included) nor
    those of ``todo``.
    """
    from tqdm import tqdm

    protect = protected(out, list({*everyone, *(t.sub for t in todo)}), source, scratch)
    uids, walled = _isolation(scratch, size, protect["read"], trusted)
    pool = Pool(size, uids, scratch)
    bar = tqdm(
        total=total,
        initial=total - len(todo),
        desc="grading",
        unit="lab",
        disable=not progress,
        file=sys.stderr,
    )
    previous = signal.getsignal(signal.SIGTERM)
    main = threading.current_thread() is threading.main_thread()
    if main:
        signal.signal(signal.SIGTERM, _interrupt)
    items, confirm = dict(enumerate(todo)), []

    def done(job: Job, status: str, note: str = "") -> None:
        item = items[job.id]
        report = _finish(job, status, item, book, source, out, hidden[item.week.number], note)
        finished[(item.sub.student, item.week.number)] = report
        bar.set_postfix_str(f"{item.sub.student} week {item.week.number}")
        bar.update()

    try:
        pool.start()
        for number, item in items.items():
            job = _job(number, item, book, source, limits, scratch, protect, walled)
            pool.submit(job, _tests(source, item.week), _job_timeout(source, item.week, limits))
        for _ in range(len(todo)):
            job, status = pool.done.get()
            phases, result = _to_confirm(job, status)
            if phases:
                confirm.append((replace(job, phases=phases), result))
                shutil.rmtree(job.folder, ignore_errors=True)
            else:
                done(job, status)
        pool.stop()
        pool = Pool(1, uids[:1], scratch)  # alone: every other job is done
        if confirm:
            pool.start()
        for first, result in confirm:
            item = items[first.id]
            items[len(items)] = item
            doubled = asdict(Limits(**first.limits).doubled())
            job = replace(first, id=len(items) - 1, limits=doubled)
            pool.submit(job, _tests(source, item.week), 2 * _job_timeout(source, item.week, limits))
            job, status = pool.done.get()
            _merge(job, result)
            done(job, status, RETRIED)
        pool.stop()
    except BaseException:
        pool.stop(now=True)
        raise
    finally:
        bar.close()
        if main:
            signal.signal(signal.SIGTERM, previous)


def _tests(source: GradingSource, week: Week) -> list[str]:
    return [i.name for i in pytest_items(source.tests(week))]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _finish(
    job: Job, status: str, item: _Todo, book: Gradebook, source, out: Path, hidden, note=""
) -> Report:
    """Record one finished job: gradebook first, then the report files, then the CSV.

    ``note`` is one more reason for the report (that the grade was confirmed).
    """
    path = Path(job.scratch) / f"job-{job.id}" / "result.json"
    result = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if status != "ok":
        why = "it ran past its time limit" if status == "timeout" else "its worker process died"
        result.setdefault("error", f"grading stopped: {why}")
    grades = book.record(item.sub.student, item.week.lab, result.get("notebook"))
    report = build_report(item.sub, item.week, source, result, grades)
    report.digest = item.digest
    report.source_digest = item.source_digest
    _flag(report, [], [note])
    write_report(report, out, hidden, book.submitted(item.sub.student, item.week.lab))
    write_class_csv(out)
    shutil.rmtree(path.parent, ignore_errors=True)
    return report


__all__ = ["grade", "find_submissions", "Submission", "read_reports"]
