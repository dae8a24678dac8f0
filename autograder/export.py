"""``course export-student DEST``: the repository a student receives.

The template has everything a student needs and nothing they must not see:
no solutions/, no hidden tests, no instructor files. It carries a pristine copy
of the released notebooks and visible tests in ``autograder/reference`` (what
its own CI grades against), a GitHub workflow that grades each push, and the
student's own README and Makefile (``autograder/templates/student-README.md``,
whose week table is generated from :data:`autograder.config.WEEKS`, and
``student-Makefile``), whose every command works in the template.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from autograder import CourseError
from autograder.config import HIDDEN_DIR, LABS, LITTER, REFERENCE_DIR, REPO_ROOT, SOLUTIONS, WEEKS

#: Top-level entries copied into the template (the rest is instructor-only).
TEMPLATE_ENTRIES = (
    ".devcontainer", ".gitignore", "environment.yml",
    "pyproject.toml", "requirements", "weeks", "labs", "autograder", "nbgrader_config.py",
    "jupyter-config",
)  # fmt: skip
STUDENT_WORKFLOW = "autograder/templates/student-grade.yml"
#: The student's README (``{{weeks}}`` is replaced by the week table) and Makefile.
STUDENT_README = "autograder/templates/student-README.md"
STUDENT_MAKEFILE = "autograder/templates/student-Makefile"
WEEKS_MARKER = "{{weeks}}"


def week_table(root: Path = REPO_ROOT) -> str:
    """The student README's week table: one row per week of :data:`WEEKS` with a lab."""
    rows = [
        "| week | lesson | lab | you write | written answer: what a full one covers |",
        "|---|---|---|---|---|",
    ]
    for week in WEEKS.values():
        if not (root / LABS / week.lab / "lab.ipynb").is_file():
            continue
        lesson = f"weeks/{week.slug}"
        lab = f"{LABS}/{week.lab}/lab.ipynb"
        files = ", ".join(f"`{LABS}/{f}`" for f in week.files)
        rows.append(
            f"| {week.number} | [{week.title}]({lesson}/README.md) | [{lab}]({lab}) | {files} "
            f"| [{lesson}/RUBRIC.md]({lesson}/RUBRIC.md) |"
        )
    return "\n".join(rows)


def student_readme(root: Path = REPO_ROOT) -> str:
    """The README of the student template, with its week table filled in."""
    template = (root / STUDENT_README).read_text(encoding="utf-8")
    return template.replace(WEEKS_MARKER, week_table(root))


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
    (dest / "README.md").write_text(student_readme(root), encoding="utf-8")
    shutil.copyfile(root / STUDENT_MAKEFILE, dest / "Makefile")
    leaked = [p for p in dest.rglob("*") if p.name in (SOLUTIONS, HIDDEN_DIR)]
    if leaked:
        raise CourseError(f"Refusing to export: {leaked[0]} would leak instructor files.")
    return dest
