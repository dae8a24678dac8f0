"""``course grade``: grade students' checkouts with nbgrader and pytest.

For each submission (a folder holding ``labs/``) and week:

1. the lab notebook goes through nbgrader's real ``autograde`` against the
   instructor's source notebook (hidden tests restored), in a kernel whose
   ``import mlpipe`` is the student's own ``labs/mlpipe``;
2. the instructor's component tests (visible and hidden) run with pytest
   against the student's ``labs/mlpipe``, in a scratch folder of their own;
3. both are combined into one :class:`~autograder.report.Report`, written as
   JSON, Markdown and feedback HTML, and the class ``grades.csv`` is updated.

The gradebook and nbgrader's folders are kept under ``<out>/nbgrader`` so that
the instructor can open the formgrader there for the written answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from autograder import CourseError, nbgrader_app
from autograder.config import (
    CELL_TIMEOUT,
    LABS,
    NO_TELEMETRY,
    PYTEST_TIMEOUT,
    TEST_TIMEOUT,
    WEEKS,
    Week,
    get_week,
)
from autograder.report import Report, TestResult, write_class_csv, write_report
from autograder.sources import GradedItem, GradingSource, find_source, notebook_items, pytest_items

KERNEL_NAME = "course-grader"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MAX_OUTPUT = 4000


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


def _clip(text: str) -> str:
    text = ANSI.sub("", text).strip()
    return text if len(text) <= MAX_OUTPUT else "...\n" + text[-MAX_OUTPUT:]


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of a block."""
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _write_kernelspec(jupyter_dir: Path, labs: Path, home: Path) -> None:
    """A kernel whose ``import mlpipe`` is the student's, with its own home folder."""
    spec = jupyter_dir / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    env = {"PYTHONPATH": str(labs), "HOME": str(home), "MLPIPE_HOME": str(home), **NO_TELEMETRY}
    kernel = {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--IPKernelApp.log_level=ERROR",
        ],  # fmt: skip
        "display_name": "course grader",
        "language": "python",
        "env": env,
    }
    (spec / "kernel.json").write_text(json.dumps(kernel, indent=1), encoding="utf-8")


def cell_errors(cells: list[dict]) -> dict[str, dict]:
    """Map the grade id of each nbgrader cell that raised to its last error output.

    The last one, because on a timeout nbgrader appends its ``CellTimeoutError``
    after the ``KeyboardInterrupt`` that stopped the cell.
    """
    errors = {}
    for cell in cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        outs = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if grade_id and outs:
            errors[grade_id] = outs[-1]
    return errors


def _cell_outputs(notebook: Path) -> dict[str, str]:
    """Map each graded cell's grade id to the traceback it printed, if any."""
    if not notebook.is_file():
        return {}
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return {
        grade_id: _clip("\n".join(out.get("traceback", [])) or f"{out['ename']}: {out['evalue']}")
        for grade_id, out in cell_errors(nb["cells"]).items()
    }


def pytest_env(home: Path) -> dict[str, str]:
    """Environment of a pytest run over a student's code: scratch home, no stray options."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    env.update(
        NO_TELEMETRY, HOME=str(home), MLPIPE_HOME=str(home), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"
    )
    return env


def pytest_command(tests: Path, labs: Path, run_dir: Path, *extra: str) -> list[str]:
    """A pytest command that imports ``labs``' mlpipe and reports to ``run_dir/results.xml``.

    It writes ``run_dir/pytest.ini`` so that no configuration of the submission applies.
    """
    (run_dir / "pytest.ini").write_text(
        f"[pytest]\npythonpath = {labs}\nmarkers =\n    points(n): points a graded test is worth\n",
        encoding="utf-8",
    )
    return [
        sys.executable, "-m", "pytest", str(tests), "-q", "-c", str(run_dir / "pytest.ini"),
        "--rootdir", str(tests.parent), "-p", "no:cacheprovider", *extra,
        f"--junitxml={run_dir / 'results.xml'}", "-o", "junit_family=xunit1",
    ]  # fmt: skip


def _zero(items: list[GradedItem], source: str, reason: str) -> list[TestResult]:
    return [
        TestResult(
            i.name, source, 0.0, i.points, "manual" if i.manual else "error", reason, i.hidden
        )
        for i in items
    ]


class NotebookGrader:
    """nbgrader's autograde over one course folder kept under ``<out>/nbgrader``."""

    def __init__(self, out: Path, source: GradingSource, cell_timeout: int = CELL_TIMEOUT) -> None:
        self.root = out.resolve() / "nbgrader"
        self.source = source
        self.cell_timeout = cell_timeout
        self._ready: set[str] = set()

    def _api(self):
        nb_api = nbgrader_app.api(self.root, self.cell_timeout)
        nb_api.coursedir.config.Execute.kernel_name = KERNEL_NAME
        return nb_api

    def prepare(self, week: Week) -> None:
        """Register the week's source notebook in the gradebook (once per run)."""
        if week.lab in self._ready:
            return
        target = self.root / "source" / week.lab / "lab.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.source.notebook(week), target)
        nbgrader_app.run(self._api().generate_assignment(week.lab), f"register {week.lab}")
        self._ready.add(week.lab)

    def grade(
        self, sub: Submission, week: Week, work: Path
    ) -> tuple[list[TestResult], list[str], list[str]]:
        """Autograde one notebook; return the results, flags and reasons."""
        items = notebook_items(self.source.notebook(week))
        submitted = sub.labs / week.lab / "lab.ipynb"
        if not submitted.is_file():
            reason = f"labs/{week.lab}/lab.ipynb is missing."
            return _zero(items, "notebook", reason), ["missing-notebook"], [reason]
        try:
            json.loads(submitted.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            reason = f"labs/{week.lab}/lab.ipynb is not a valid notebook (its JSON cannot be read)."
            return _zero(items, "notebook", reason), ["invalid-notebook"], [reason]

        self.prepare(week)
        dest = self.root / "submitted" / sub.student / week.lab / "lab.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(submitted, dest)
        home = work / "home"
        home.mkdir(parents=True, exist_ok=True)
        _write_kernelspec(work / "jupyter", sub.labs, home)
        with _environ(JUPYTER_PATH=str(work / "jupyter")):
            result = self._api().autograde(week.lab, sub.student)
        if not result.get("success"):
            log = (result.get("error") or result.get("log") or "").strip().splitlines()
            reason = "nbgrader could not grade the notebook: " + (log[-1] if log else "no details")
            return _zero(items, "notebook", reason), ["autograde-failed"], [reason]

        errors = _cell_outputs(self.root / "autograded" / sub.student / week.lab / "lab.ipynb")
        flags = ["timeout"] if any("CellTimeoutError" in e for e in errors.values()) else []
        return self._results(items, sub, week, errors), flags, []

    def _results(self, items, sub, week, errors) -> list[TestResult]:
        from nbgrader.api import Gradebook, MissingEntry

        results = []
        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}", "mlops-roadmap") as gb:
            try:
                grades = {
                    g.name: g
                    for g in gb.find_submission_notebook("lab", week.lab, sub.student).grades
                }
            except MissingEntry:
                grades = {}
            for item in items:
                grade = grades.get(item.name)
                if grade is None:
                    results.append(
                        TestResult(
                            item.name,
                            "notebook",
                            0.0,
                            item.points,
                            "error",
                            "not graded",
                            item.hidden,
                        )
                    )
                    continue
                score = float(grade.score or 0.0)
                if item.manual:
                    status = (
                        "manual"
                        if grade.needs_manual_grade
                        else ("passed" if score >= item.points else "failed")
                    )
                    output = (
                        "" if status != "failed" or score else "the written answer was left blank"
                    )
                elif score >= item.points:
                    status, output = "passed", ""
                else:
                    output = errors.get(item.name, "")
                    status = "failed" if "AssertionError" in output else "error"
                results.append(
                    TestResult(
                        item.name, "notebook", score, item.points, status, output, item.hidden
                    )
                )
        return results


def _junit_results(xml_path: Path) -> dict[str, tuple[str, str]]:
    """Map ``path.py::test`` to ``(status, output)`` from a JUnit XML file."""
    results: dict[str, tuple[str, str]] = {}
    if not xml_path.is_file():
        return results
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        module = case.get("classname", "").split(".")
        # classname is tests.sub.module (plus a class name for tests in classes).
        rel = "/".join(module[1:]) + ".py"
        name = f"{rel}::{case.get('name')}"
        status, output = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed", "error": "error", "skipped": "failed"}[child.tag]
                output = _clip(f"{child.get('message', '')}\n{child.text or ''}")
                break
        results[name] = (status, output)
    return results


def grade_component(
    sub: Submission, week: Week, source: GradingSource, work: Path
) -> list[TestResult]:
    """Run the instructor's component tests of ``week`` against the student's mlpipe."""
    tests_src = source.tests(week)
    items = pytest_items(tests_src)
    if not (sub.labs / "mlpipe" / "__init__.py").is_file():
        return _zero(items, "pytest", "labs/mlpipe is missing from the submission.")
    run_dir = work / "pytest"
    shutil.copytree(tests_src, run_dir / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = pytest_env(home)
    xml = run_dir / "results.xml"
    cmd = pytest_command(
        run_dir / "tests", sub.labs, run_dir, "-p", "pytest_timeout", f"--timeout={TEST_TIMEOUT}"
    )
    reason = ""
    try:
        proc = subprocess.run(
            cmd, cwd=run_dir, env=env, capture_output=True, text=True, timeout=PYTEST_TIMEOUT
        )
        if proc.returncode not in (0, 1):
            reason = (
                _clip(proc.stdout[-2000:] + proc.stderr[-2000:])
                or f"pytest exited with {proc.returncode}"
            )
    except subprocess.TimeoutExpired:
        reason = f"the component tests were stopped after {PYTEST_TIMEOUT} s."
    ran = _junit_results(xml)
    results = []
    for item in items:
        status, output = ran.get(item.name, ("error", reason or "this test did not run"))
        score = item.points if status == "passed" else 0.0
        results.append(
            TestResult(item.name, "pytest", score, item.points, status, output, item.hidden)
        )
    return results


def grade_one(sub: Submission, week: Week, notebooks: NotebookGrader, out: Path) -> Report:
    """Grade one submission for one week and write its report files."""
    report = Report(
        student=sub.student, week=week.number, hidden_tests=notebooks.source.hidden_tests
    )
    with tempfile.TemporaryDirectory(prefix=f"grade-{sub.student}-") as tmp:
        work = Path(tmp)
        if not (sub.labs / week.lab).is_dir():
            report.flags.append("missing-lab")
            report.reasons.append(f"The submission has no labs/{week.lab} folder.")
        nb_results, flags, reasons = notebooks.grade(sub, week, work)
        report.tests += nb_results
        report.flags += [f for f in flags if f not in report.flags]
        report.reasons += [r for r in reasons if r not in report.reasons]
        report.tests += grade_component(sub, week, notebooks.source, work)
    write_report(report, out)
    return report


def grade(
    submissions: list[Path],
    week: int | None = None,
    out: Path = Path("grades"),
    cell_timeout: int = CELL_TIMEOUT,
    source: GradingSource | None = None,
    progress: bool = True,
) -> list[Report]:
    """Grade submissions and write reports plus the class ``grades.csv``.

    Args:
        submissions: Students' checkouts (folders holding ``labs/``).
        week: Only this week; ``None``: every week that a submission has.
        out: Folder for the reports, the gradebook and ``grades.csv``.
        cell_timeout: Seconds a notebook cell may run.
        source: What to grade against; default: :func:`find_source`.
        progress: Show a progress bar on stderr.

    Returns:
        The reports, one per submission and week.

    Raises:
        CourseError: For a week that does not exist or a path that is not a submission.
    """
    weeks = [get_week(week)] if week is not None else None
    subs = find_submissions([Path(p) for p in submissions])
    source = source or find_source()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (sub, w)
        for sub in subs
        for w in (
            weeks
            or [w for w in WEEKS.values() if (sub.labs / w.lab).is_dir()]
            or list(WEEKS.values())[:1]
        )
    ]
    notebooks = NotebookGrader(out, source, cell_timeout)
    reports = []
    # nbgrader's gradebook triggers SQLAlchemy warnings that say nothing to a grader.
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", message=".*not in session.*")
    from tqdm import tqdm

    bar = tqdm(jobs, desc="grading", unit="lab", disable=not progress, file=sys.stderr)
    for sub, w in bar:
        bar.set_postfix_str(f"{sub.student} week {w.number}")
        reports.append(grade_one(sub, w, notebooks, out))
    write_class_csv(out)
    return reports
