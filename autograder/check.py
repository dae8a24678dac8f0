"""``course check N``: a student's instant feedback on their own work.

It runs what the student can see: the visible test cells of their lab notebook
(executed as they are, in a fresh kernel) and the visible component tests in
``labs/weekNN/tests``, both at once, and returns one row per graded item.
Hidden tests are not run; ``course grade`` runs them.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from autograder import CourseError
from autograder.config import CELL_TIMEOUT, LABS, NO_TELEMETRY, PYTEST_TIMEOUT, REPO_ROOT, get_week
from autograder.grade import _junit_results, cell_errors, pytest_command, pytest_env
from autograder.report import TestResult
from autograder.sources import notebook_items, pytest_items


@dataclass
class CheckResult:
    """The rows of a check and where they came from."""

    week: int
    labs: Path
    tests: list[TestResult]

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tests if t.status != "manual")


def find_labs(start: Path | None = None) -> Path:
    """The student's labs/ folder: in the current folder or a parent, else the course's."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / LABS / "mlpipe").is_dir():
            return folder / LABS
    return REPO_ROOT / LABS


def _start_pytest(tests: Path, labs: Path, work: Path) -> subprocess.Popen:
    cmd = pytest_command(tests, labs, work, "-p", "xdist", "-n", "2")
    return subprocess.Popen(
        cmd,
        cwd=work,
        env=pytest_env(work),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run_notebook(notebook: Path, labs: Path, work: Path) -> dict[str, str | None]:
    """Execute the notebook; map each graded cell's id to its error (None if it passed)."""
    import nbformat
    from nbclient import NotebookClient

    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as err:  # nbformat raises several types for broken files
        raise CourseError(
            f"{notebook} is not a valid notebook ({type(err).__name__}); restore it from git."
        ) from None
    env = dict(os.environ, PYTHONPATH=str(labs), MLPIPE_HOME=str(work), **NO_TELEMETRY)
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT, allow_errors=True, kernel_name="python3",
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": str(notebook.parent)}},
    )  # fmt: skip
    client.execute(env=env)
    errors = {
        gid: f"{o['ename']}: {o['evalue']}".rstrip(": ") for gid, o in cell_errors(nb.cells).items()
    }
    results: dict[str, str | None] = {}
    answer_error = None  # the error of the last answer cell, to explain a test's NameError
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade_id"):
            continue
        error = errors.get(meta["grade_id"])
        if meta.get("solution"):
            answer_error = error
        elif meta.get("grade"):
            if error and error.startswith("NameError") and answer_error:
                error += f" (the answer cell above failed: {answer_error})"
            results[meta["grade_id"]] = error
    return results


def check(week: int | str, labs: Path | None = None) -> CheckResult:
    """Run week ``week``'s visible notebook and component tests on the student's labs/.

    Args:
        week: The week number.
        labs: The student's labs/ folder; default: found from the current folder.

    Raises:
        CourseError: For a week without a lab or a lab folder that is missing.
    """
    wk = get_week(week)
    labs = (labs or find_labs()).resolve()
    lab_dir = labs / wk.lab
    notebook = lab_dir / "lab.ipynb"
    if not notebook.is_file():
        raise CourseError(
            f"{notebook} is missing; restore it with `git checkout -- {LABS}/{wk.lab}`."
        )
    with tempfile.TemporaryDirectory(prefix="course-check-") as tmp:
        work = Path(tmp)
        tests_dir = lab_dir / "tests"
        proc = _start_pytest(tests_dir, labs, work) if tests_dir.is_dir() else None
        cells = _run_notebook(notebook, labs, work)
        rows = []
        for item in notebook_items(notebook):
            if item.manual:
                rows.append(
                    TestResult(
                        item.name, "notebook", 0, item.points, "manual", "graded by your instructor"
                    )
                )
                continue
            error = cells.get(item.name, "this cell did not run")
            status = (
                "passed"
                if error is None
                else ("failed" if error.startswith("AssertionError") else "error")
            )
            rows.append(
                TestResult(
                    item.name,
                    "notebook",
                    item.points if error is None else 0,
                    item.points,
                    status,
                    error or "",
                )
            )
        if proc is not None:
            try:
                log, _ = proc.communicate(timeout=PYTEST_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                log = f"the component tests were stopped after {PYTEST_TIMEOUT} s"
            ran = _junit_results(work / "results.xml")
            for item in pytest_items(tests_dir):
                status, output = ran.get(item.name, ("error", log[-500:]))
                lines = [
                    line for line in output.splitlines() if line.startswith("E ")
                ] or output.splitlines()[:1]
                reason = (
                    "\n".join(line[1:].strip() for line in lines[:3]) if status != "passed" else ""
                )
                rows.append(
                    TestResult(
                        item.name,
                        "pytest",
                        item.points if status == "passed" else 0,
                        item.points,
                        status,
                        reason,
                    )
                )
    return CheckResult(wk.number, labs, rows)
