"""``course release``: generate the student version labs/ from solutions/.

Three rules make a release, one per kind of file:

* lab notebooks go through nbgrader's ``generate_assignment`` (solutions
  replaced by stubs, hidden tests removed, outputs cleared);
* ``.py`` files keep their code but every ``### BEGIN SOLUTION`` ...
  ``### END SOLUTION`` region becomes ``raise NotImplementedError(...)``;
* other text files replace such a region with ``# YOUR CODE HERE``.

Hidden component tests (``weekNN/tests/hidden/``) are never released.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from autograder import CourseError, nbgrader_app
from autograder.config import (
    HIDDEN_DIR,
    LABS,
    REPO_ROOT,
    SOLUTIONS,
    WEEKS,
    get_week,
    is_litter,
)

BEGIN = "BEGIN SOLUTION"
END = "END SOLUTION"


@dataclass
class ReleaseResult:
    """What a release changed (or, with ``check``, would change).

    Attributes:
        changed: Paths under labs/ that were (or would be) written.
        removed: Paths under labs/ that were (or would be) deleted.
    """

    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        """True when labs/ already matched solutions/."""
        return not self.changed and not self.removed


def _enclosing_function(lines: list[str], index: int) -> str | None:
    """Name of the nearest ``def`` above line ``index``."""
    for line in reversed(lines[:index]):
        stripped = line.lstrip()
        if stripped.startswith(("def ", "async def ")):
            return stripped.split("def ", 1)[1].split("(", 1)[0]
    return None


def _strip(text: str, stub) -> str:
    """Replace every solution region of ``text`` with ``stub(indent, lines, i)``."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    start = None
    for i, line in enumerate(lines):
        if BEGIN in line and line.lstrip().startswith("#"):
            if start is not None:
                raise CourseError(f"Nested '{BEGIN}' marker at line {i + 1}.")
            start = i
            indent = line[: len(line) - len(line.lstrip())]
            out.append(stub(indent, lines, i))
        elif END in line and line.lstrip().startswith("#"):
            if start is None:
                raise CourseError(f"'{END}' without '{BEGIN}' at line {i + 1}.")
            start = None
        elif start is None:
            out.append(line)
    if start is not None:
        raise CourseError(f"'{BEGIN}' at line {start + 1} has no '{END}'.")
    return "".join(out)


def stub_python(text: str, module: str) -> str:
    """Turn a solution ``.py`` file into its student version.

    Args:
        text: The file's source.
        module: Dotted module name, used in the stub's message.

    Returns:
        The source with each solution region replaced by a
        ``raise NotImplementedError("module.function")`` line.
    """

    def stub(indent: str, lines: list[str], i: int) -> str:
        name = _enclosing_function(lines, i)
        where = f"{module}.{name}" if name else module
        return f'{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError("{where}")\n'

    return _strip(text, stub)


def stub_text(text: str) -> str:
    """Turn any other solution file (Dockerfile, YAML) into its student version."""
    return _strip(text, lambda indent, lines, i: f"{indent}# YOUR CODE HERE\n")


def _is_litter(rel: Path) -> bool:
    return any(is_litter(part) for part in rel.parts)


def _week_of(rel: Path) -> int | None:
    """The week a path belongs to: ``weekNN/...`` or a file a week owns."""
    first = rel.parts[0]
    if first.startswith("week") and first[4:].isdigit():
        return int(first[4:])
    for week in WEEKS.values():
        if rel.as_posix() in week.files:
            return week.number
    return None


def source_files(solutions: Path, weeks: set[int] | None = None) -> list[Path]:
    """List the files of solutions/ that a release reads, relative paths.

    Args:
        solutions: The solutions folder.
        weeks: Only files of these weeks (plus the shared ones); ``None``: all.
    """
    files = []
    for path in sorted(solutions.rglob("*")):
        rel = path.relative_to(solutions)
        if not path.is_file() or _is_litter(rel) or HIDDEN_DIR in rel.parts:
            continue
        week = _week_of(rel)
        if weeks is not None and week is not None and week not in weeks:
            continue
        files.append(rel)
    return files


def _release_notebooks(solutions: Path, notebooks: list[Path], dest: Path) -> None:
    """Run nbgrader's generate_assignment on the lab notebooks into ``dest``."""
    by_lab: dict[str, list[Path]] = {}
    for rel in notebooks:
        by_lab.setdefault(rel.parts[0], []).append(rel)
    with tempfile.TemporaryDirectory(prefix="course-release-") as tmp:
        root = Path(tmp)
        nb_api = nbgrader_app.api(root)
        for lab, rels in by_lab.items():
            for rel in rels:
                target = root / "source" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(solutions / rel, target)
            nbgrader_app.run(
                nb_api.generate_assignment(lab), f"generate the student version of {lab}"
            )
            for rel in rels:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / "release" / rel, dest / rel)


def build(solutions: Path, dest: Path, weeks: set[int] | None = None) -> list[Path]:
    """Write the student version of ``solutions`` into the empty folder ``dest``.

    Returns:
        The relative paths written.
    """
    files = source_files(solutions, weeks)
    notebooks = [rel for rel in files if rel.suffix == ".ipynb" and _week_of(rel) is not None]
    for rel in files:
        if rel in notebooks:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        raw = (solutions / rel).read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            target.write_bytes(raw)
            continue
        try:
            if rel.suffix == ".py":
                module = ".".join(rel.with_suffix("").parts)
                text = stub_python(text, module)
            elif BEGIN in text:
                text = stub_text(text)
        except CourseError as err:
            raise CourseError(f"{SOLUTIONS}/{rel.as_posix()}: {err}") from None
        target.write_text(text, encoding="utf-8")
    _release_notebooks(solutions, notebooks, dest)
    return files


def _tree(root: Path) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and not _is_litter(path.relative_to(root))
    }


def release(root: Path = REPO_ROOT, week: int | None = None, check: bool = False) -> ReleaseResult:
    """Regenerate labs/ from solutions/, or with ``check`` only compare them.

    Args:
        root: The course repository.
        week: Only this week's files (and the shared ones); ``None``: all weeks.
        check: Write nothing; report what is stale.

    Returns:
        What changed, or would change.

    Raises:
        CourseError: When solutions/ is missing or a marker is malformed.
    """
    solutions, labs = root / SOLUTIONS, root / LABS
    if not solutions.is_dir():
        raise CourseError(
            f"No {SOLUTIONS}/ folder in {root}: releasing needs the instructor's course repository."
        )
    weeks = {get_week(week).number} if week is not None else None
    with tempfile.TemporaryDirectory(prefix="course-labs-") as tmp:
        build(solutions, Path(tmp), weeks)
        fresh = _tree(Path(tmp))
        current = _tree(labs)
        result = ReleaseResult()
        result.changed = sorted(rel for rel, data in fresh.items() if current.get(rel) != data)
        if weeks is None:
            result.removed = sorted(rel for rel in current if rel not in fresh)
        if check:
            return result
        for rel in result.changed:
            (labs / rel).parent.mkdir(parents=True, exist_ok=True)
            (labs / rel).write_bytes(fresh[rel])
        for rel in result.removed:
            (labs / rel).unlink()
    return result
