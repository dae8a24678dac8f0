"""``autograder.intake``: what the grader checks and copies before any student code runs."""

from __future__ import annotations

import nbformat
from conftest import LABS, SOLUTIONS

from autograder import intake


def test_a_renamed_notebook_is_found_and_two_are_not(tmp_path):
    week = tmp_path / "labs/week01"
    week.mkdir(parents=True)
    (week / "lab (1).ipynb").write_text("{}")
    path, flag, reason = intake.find_notebook(tmp_path / "labs", "week01")
    assert path.name == "lab (1).ipynb" and flag == "notebook-renamed" and "in its place" in reason
    (week / "other.ipynb").write_text("{}")
    path, flag, reason = intake.find_notebook(tmp_path / "labs", "week01")
    assert path is None and flag == "missing-notebook" and "keep exactly one" in reason


def test_a_linked_notebook_is_not_followed(tmp_path):
    week = tmp_path / "labs/week01"
    week.mkdir(parents=True)
    (week / "lab.ipynb").symlink_to(SOLUTIONS / "week01/lab.ipynb")
    path, flag, _ = intake.find_notebook(tmp_path / "labs", "week01")
    assert path is None and flag == "missing-notebook"


def test_broken_notebooks_get_one_sentence(tmp_path):
    for text, needle in (("{", "JSON cannot be read"), ("[]", "no list of cells")):
        path = tmp_path / "lab.ipynb"
        path.write_text(text)
        nb, reason = intake.read_notebook(path, "week01")
        assert nb is None and needle in reason and "\n" not in reason


def test_locked_cells_are_put_back_and_reported():
    release = nbformat.read(LABS / "week01/lab.ipynb", as_version=4)
    student = nbformat.read(LABS / "week01/lab.ipynb", as_version=4)
    student.metadata["kernelspec"] = {"name": "julia-1.9"}
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in student.cells]
    student.cells[ids.index("test_task1_data")].source = "pass"
    del student.cells[ids.index("test_task2_split")]
    del student.cells[ids.index("setup")]
    repair = intake.repair_locked_cells(student, release)
    assert repair.edited == ["test_task1_data"]
    assert sorted(repair.deleted) == ["setup", "test_task2_split"]
    assert repair.kernel == "julia-1.9"
    assert [c.source for c in repair.notebook.cells] == [c.source for c in release.cells]


def test_the_reference_notebook_with_hidden_tests_is_not_modified():
    release = nbformat.read(LABS / "week01/lab.ipynb", as_version=4)
    source = nbformat.read(SOLUTIONS / "week01/lab.ipynb", as_version=4)
    repair = intake.repair_locked_cells(source, release)
    assert repair.edited == repair.deleted == [] and repair.kernel == ""


def test_the_sandbox_copy_leaves_out_what_could_alter_grading(tmp_path):
    labs = tmp_path / "labs"
    (labs / "mlpipe").mkdir(parents=True)
    (labs / "week01/tests").mkdir(parents=True)
    (labs / "mlpipe/__init__.py").write_text("")
    (labs / "mlpipe/conftest.py").write_text("")
    (labs / "week01/tests/conftest.py").write_text("")  # the released one: silently skipped
    (labs / "conftest.py").write_text("")
    (labs / "pytest.ini").write_text("[pytest]\n")
    (labs / "sitecustomize.py").write_text("")
    (labs / "json.py").write_text("")
    (labs / "docker").mkdir()
    (labs / "docker/train.Dockerfile").write_text("FROM python\n")
    (labs / "params.yaml").write_text("seed: 1\n")
    (labs / "link").symlink_to(SOLUTIONS)
    left_out = intake.copy_labs(labs, tmp_path / "copy")
    assert sorted(left_out) == [
        "labs/conftest.py (a pytest conftest)",
        "labs/json.py (it shadows the module json)",
        "labs/link (a symbolic link)",
        "labs/mlpipe/conftest.py (a pytest conftest)",
        "labs/pytest.ini (pytest configuration)",
        "labs/sitecustomize.py (a Python start-up hook)",
    ]
    copied = sorted(
        p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*.*")
    )
    assert copied == ["docker/train.Dockerfile", "mlpipe/__init__.py", "params.yaml"]


def test_the_digest_changes_with_the_submission(tmp_path):
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs/a.py").write_text("1")
    first = intake.digest(tmp_path / "labs")
    assert intake.digest(tmp_path / "labs") == first
    (tmp_path / "labs/a.py").write_text("2")
    assert intake.digest(tmp_path / "labs") != first


def test_the_sandbox_copy_keeps_the_students_own_suite_and_workflow(tmp_path):
    """Week 4: labs/project_tests/ (with its conftest and even an __init__) and labs/.github
    are the student's work, copied like any other; other conftest files are still left out."""
    labs = tmp_path / "labs"
    for rel in (
        "mlpipe/__init__.py", "project_tests/__init__.py", "project_tests/conftest.py",
        "project_tests/test_data.py", "project_tests/sub/conftest.py",
        ".github/workflows/pipeline.yml",
    ):  # fmt: skip
        (labs / rel).parent.mkdir(parents=True, exist_ok=True)
        (labs / rel).write_text("x = 1\n")
    left_out = intake.copy_labs(labs, tmp_path / "copy")
    assert left_out == ["labs/project_tests/sub/conftest.py (a pytest conftest)"]
    for rel in (
        "project_tests/conftest.py",
        "project_tests/test_data.py",
        ".github/workflows/pipeline.yml",
    ):
        assert (tmp_path / "copy" / rel).is_file(), rel
