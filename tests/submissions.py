"""Sample student submissions for week 1, each built from the course's own files.

Every sample is a student's checkout (a folder holding ``labs/``), made by
applying one small, documented change to the reference solution or to the
untouched student version, so the samples cannot drift from the course. Their
expected grades are in ``tests/golden/week01.json``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS, LABS = REPO / "solutions", REPO / "labs"


def _reference(dest: Path) -> Path:
    """The reference solution, laid out as a student's labs/ (every week, no hidden tests)."""
    shutil.copytree(
        SOLUTIONS, dest / "labs", ignore=shutil.ignore_patterns("__pycache__", "hidden")
    )
    return dest


def _set_cell(notebook: Path, grade_id: str, source: str) -> None:
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == grade_id:
            cell["source"] = source
    notebook.write_text(json.dumps(nb, indent=1))


def reference(dest: Path) -> Path:
    """The solution itself, submitted as a student's work."""
    return _reference(dest)


def untouched(dest: Path) -> Path:
    """The student version exactly as released."""
    shutil.copytree(LABS, dest / "labs", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def only_week(dest: Path, week: int) -> Path:
    """The released version with only week ``week`` done: its files and notebook from the
    reference, every other week's stubs untouched (grading must isolate the weeks)."""
    from autograder.config import get_week

    untouched(dest)
    done = get_week(week)
    for rel in (*done.files, f"{done.lab}/lab.ipynb"):
        shutil.copyfile(SOLUTIONS / rel, dest / "labs" / rel)
    return dest


def blank(dest: Path) -> Path:
    """Every answer cell emptied, the package untouched."""
    untouched(dest)
    for task in ("task1_answer", "task2_answer", "task3_answer", "task4_answer"):
        _set_cell(dest / "labs/week01/lab.ipynb", task, "")
    return dest


def partial(dest: Path) -> Path:
    """Tasks 1 and 2 done in the notebook; a split that forgets to stratify; no Dockerfile."""
    _reference(dest)
    nb = dest / "labs/week01/lab.ipynb"
    _set_cell(nb, "task3_answer", "# not done yet\n")
    _set_cell(nb, "task4_answer", "# not done yet\n")
    train = dest / "labs/mlpipe/train.py"
    text = train.read_text()
    assert text.count(", stratify=df[target]") == 1, (
        "the reference split changed: update this sample"
    )
    train.write_text(text.replace(", stratify=df[target]", ""))
    shutil.copyfile(LABS / "docker" / "train.Dockerfile", dest / "labs/docker/train.Dockerfile")
    return dest


def syntax_error(dest: Path) -> Path:
    """The reference with a syntax error in the answer of task 2."""
    _reference(dest)
    _set_cell(dest / "labs/week01/lab.ipynb", "task2_answer", "X_train, X_test = (\n")
    return dest


def infinite_loop(dest: Path) -> Path:
    """The reference with an endless loop in the answer of task 2."""
    _reference(dest)
    _set_cell(dest / "labs/week01/lab.ipynb", "task2_answer", "while True:\n    pass\n")
    return dest


SAMPLES = {
    "reference": reference,
    "untouched": untouched,
    "blank": blank,
    "partial": partial,
    "syntax-error": syntax_error,
    "infinite-loop": infinite_loop,
}


def build_all(root: Path) -> dict[str, Path]:
    """Build every sample under ``root``; return name -> submission folder."""
    return {name: make(root / name) for name, make in SAMPLES.items()}


def hidden_test_lines() -> list[str]:
    """Every substantial line of hidden test source, from the tests and the notebook."""
    lines = []
    for path in (SOLUTIONS / "week01/tests/hidden").glob("*.py"):
        lines += path.read_text().splitlines()
    nb = json.loads((SOLUTIONS / "week01/lab.ipynb").read_text())
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        lines += (
            re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", text, re.S)[
                0
            ].splitlines()
            if "HIDDEN" in text
            else []
        )
    visible = "".join(p.read_text() for p in (LABS / "week01").rglob("*.*") if p.is_file())
    return [
        line.strip()
        for line in lines
        if len(line.strip()) > 25
        and not line.strip().startswith(("#", '"""'))
        and line.strip() not in visible
    ]
