"""``autograder.sources``: graded items are known before any code runs."""

from __future__ import annotations

from conftest import LABS, SOLUTIONS

from autograder.sources import find_source, notebook_items, pytest_items


def test_notebook_items_carry_points_and_kinds():
    items = {i.name: i for i in notebook_items(SOLUTIONS / "week01/lab.ipynb")}
    assert items and all(i.points > 0 for i in items.values())
    assert any(i.manual for i in items.values()), "the written answer is graded by hand"
    assert any(i.hidden for i in items.values()), "the source has hidden test blocks"
    released = {i.name: i for i in notebook_items(LABS / "week01/lab.ipynb")}
    assert set(released) == set(items)
    assert not any(i.hidden for i in released.values())


def test_pytest_items_are_the_tests_with_points(tmp_path):
    (tmp_path / "hidden").mkdir()
    (tmp_path / "test_a.py").write_text(
        "import pytest\n\n@pytest.mark.points(3)\ndef test_graded():\n    pass\n\n"
        "def test_not_graded():\n    pass\n"
    )
    (tmp_path / "hidden/test_b.py").write_text(
        "import pytest\n\n@pytest.mark.points(2.5)\ndef test_secret():\n    pass\n"
    )
    items = pytest_items(tmp_path)
    assert [(i.name, i.points, i.hidden) for i in items] == [
        ("hidden/test_b.py::test_secret", 2.5, True),
        ("test_a.py::test_graded", 3.0, False),
    ]


def test_the_instructors_checkout_grades_with_hidden_tests():
    source = find_source()
    assert source.hidden_tests and source.root == SOLUTIONS
