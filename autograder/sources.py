"""Where the grader finds what it grades against, and what each week is worth.

In the instructor's course repository the source is ``solutions/`` (hidden
tests included). In a student template it is ``autograder/reference/``: the
released notebooks and visible tests only, so the report says hidden tests
were not used.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from autograder import CourseError
from autograder.config import (
    HIDDEN_DIR,
    REFERENCE_DIR,
    REPO_ROOT,
    SOLUTIONS,
    WEEKS,
    Week,
    is_litter,
)


@dataclass(frozen=True)
class GradedItem:
    """One thing worth points, known before any submission runs.

    Attributes:
        name: Grade id of a notebook cell, or ``file.py::test_name``.
        points: Points available.
        hidden: True for hidden tests (or a cell holding some).
        manual: True for a written answer the instructor grades.
        task: The lab task it belongs to (``taskK_...`` grade ids, ``@pytest.mark.task(K)``).
    """

    name: str
    points: float
    hidden: bool = False
    manual: bool = False
    task: int | None = None


_TASK_ID = re.compile(r"(?:test_)?task(\d+)_")


def task_of(grade_id: str) -> int | None:
    """The task K of a notebook cell's grade id (``taskK_answer``, ``test_taskK_...``), if any."""
    match = _TASK_ID.match(grade_id or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class GradingSource:
    """The instructor's side of grading: notebooks and tests per week."""

    root: Path
    hidden_tests: bool

    def notebook(self, week: Week) -> Path:
        return self.root / week.lab / "lab.ipynb"

    def tests(self, week: Week) -> Path:
        return self.root / week.lab / "tests"


def find_source(repo: Path = REPO_ROOT) -> GradingSource:
    """Return solutions/ when present, else the student template's reference copy.

    Raises:
        CourseError: When neither exists.
    """
    if (repo / SOLUTIONS).is_dir():
        return GradingSource(repo / SOLUTIONS, hidden_tests=True)
    if (repo / REFERENCE_DIR).is_dir():
        return GradingSource(repo / REFERENCE_DIR, hidden_tests=False)
    raise CourseError(
        f"No grading source in {repo}: expected {SOLUTIONS}/ (instructors) or {REFERENCE_DIR}/."
    )


def material_files(source: GradingSource, week: Week) -> list[Path]:
    """The instructor's files that grading ``week`` reads, relative to ``source.root``.

    That is the week's folder (source notebook, visible and hidden tests) and everything
    of the source outside the weeks' folders (the reference pipeline that the fixtures
    and the overlay of the other weeks' files use); other weeks' folders are left out.
    """
    others = {w.lab for w in WEEKS.values()} - {week.lab}
    files = []
    for path in sorted(source.root.rglob("*")):
        rel = path.relative_to(source.root)
        if rel.parts[0] in others or any(is_litter(part) for part in rel.parts):
            continue
        if path.is_file():
            files.append(rel)
    return files


def material_digest(source: GradingSource, week: Week) -> str:
    """A sha256 over :func:`material_files` (paths and contents): which version was graded."""
    hasher = hashlib.sha256()
    for rel in material_files(source, week):
        hasher.update(rel.as_posix().encode() + b"\0")
        hasher.update(hashlib.sha256((source.root / rel).read_bytes()).digest())
    return hasher.hexdigest()


def notebook_items(notebook: Path) -> list[GradedItem]:
    """List the graded cells of a source notebook with their points."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    items = []
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("grade"):
            continue
        source = "".join(cell.get("source", ""))
        items.append(
            GradedItem(
                name=meta["grade_id"],
                points=float(meta.get("points", 0)),
                hidden="BEGIN HIDDEN TESTS" in source,
                manual=bool(meta.get("solution")),
                task=task_of(meta["grade_id"]),
            )
        )
    return items


def _mark(func: ast.FunctionDef, name: str) -> float | None:
    """The n of a ``@pytest.mark.NAME(n)`` decorator (``points``, ``task``), if any."""
    for deco in func.decorator_list:
        if (
            isinstance(deco, ast.Call)
            and isinstance(deco.func, ast.Attribute)
            and deco.func.attr == name
            and deco.args
            and isinstance(deco.args[0], ast.Constant)
        ):
            return float(deco.args[0].value)
    return None


def pytest_items(tests: Path) -> list[GradedItem]:
    """List the graded tests of a tests folder (``@pytest.mark.points(n)`` functions).

    A test's ``@pytest.mark.task(k)`` is its :attr:`GradedItem.task`.

    Names are ``relative/path.py::test_name``; tests without points are not graded.
    """
    items = []
    for path in sorted(tests.rglob("test_*.py")):
        rel = path.relative_to(tests).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                points = _mark(node, "points")
                if points is not None:
                    hidden = HIDDEN_DIR in Path(rel).parts
                    task = _mark(node, "task")
                    items.append(
                        GradedItem(
                            f"{rel}::{node.name}",
                            points,
                            hidden=hidden,
                            task=None if task is None else int(task),
                        )
                    )
    return items
