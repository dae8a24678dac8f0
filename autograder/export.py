"""``course export-student DEST``: the repository a student receives.

The template has everything a student needs and nothing they must not see:
no solutions/, no hidden tests, no instructor files. It carries a pristine copy
of the released notebooks and visible tests in ``autograder/reference`` (what
its own CI grades against) and a GitHub workflow that grades each push.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from autograder import CourseError
from autograder.config import HIDDEN_DIR, LABS, LITTER, REFERENCE_DIR, REPO_ROOT, SOLUTIONS, WEEKS

#: Top-level entries copied into the template (the rest is instructor-only).
TEMPLATE_ENTRIES = (
    ".devcontainer", ".gitignore", "Makefile", "README.md", "environment.yml",
    "pyproject.toml", "requirements", "weeks", "labs", "autograder", "nbgrader_config.py",
    "jupyter-config",
)  # fmt: skip
STUDENT_WORKFLOW = "autograder/templates/student-grade.yml"


def export_student(dest: Path, root: Path = REPO_ROOT) -> Path:
    """Write the student template into ``dest`` (which must not exist or be empty).

    Returns:
        The template folder.

    Raises:
        CourseError: When ``dest`` is not empty or labs/ has not been released.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise CourseError(f"'{dest}' is not empty; choose a new folder for the student template.")
    if not (root / LABS / "mlpipe").is_dir():
        raise CourseError("labs/ has not been generated yet; run `course release` first.")
    ignore = shutil.ignore_patterns(*LITTER, "reference", "*.egg-info")
    dest.mkdir(parents=True, exist_ok=True)
    for name in TEMPLATE_ENTRIES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / name)
    for week in WEEKS.values():
        lab = root / LABS / week.lab
        if lab.is_dir():
            shutil.copytree(lab, dest / REFERENCE_DIR / week.lab, ignore=ignore)
    workflow = dest / ".github" / "workflows" / "grade.yml"
    workflow.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / STUDENT_WORKFLOW, workflow)
    leaked = [p for p in dest.rglob("*") if p.name in (SOLUTIONS, HIDDEN_DIR)]
    if leaked:
        raise CourseError(f"Refusing to export: {leaked[0]} would leak instructor files.")
    return dest
