"""``autograder.worker``: the per-test limits of a sandboxed pytest run."""

from __future__ import annotations

from autograder.sandbox import Limits
from autograder.worker import per_test_limit


def test_an_instructors_timeout_mark_lengthens_only_that_test_up_to_the_run_limit():
    limits = Limits(test_timeout=60, pytest_timeout=600)
    own = {"tests/test_a.py::slow": 180.0, "tests/test_a.py::huge": 9999.0}
    assert per_test_limit("tests/test_a.py::slow", own, limits) == 180
    assert per_test_limit("tests/test_a.py::other", own, limits) == 60
    assert per_test_limit("tests/test_a.py::huge", own, limits) == 600


COURSE_TESTS = """
import pytest

import shaky


def test_course_skip():
    pytest.skip("no line to plant the bug in")


def test_code_skip():
    shaky.clean()


@pytest.mark.parametrize("case", [1, 2])
def test_course_skip_and_failure(case):
    if case == 1:
        pytest.skip("not this case")
    assert case == 3
"""
SHAKY = """
import pytest


def clean():
    pytest.skip("skipped by the code under test")
"""


def test_a_skip_by_the_course_scores_zero_unflagged_and_one_by_the_code_is_tampering(
    tmp_path, monkeypatch
):
    """Skips are told apart by where pytest says they were raised, as the guard records it."""
    import pytest

    from autograder import pytest_guard
    from autograder.worker import _items, _outcomes

    run, labs = tmp_path / "run", tmp_path / "labs"
    (run / "tests").mkdir(parents=True)
    labs.mkdir()
    (run / "tests/test_course.py").write_text(COURSE_TESTS)
    (labs / "shaky.py").write_text(SHAKY)
    monkeypatch.syspath_prepend(str(labs))
    key, results = "k" * 32, tmp_path / "results.jsonl"
    pytest_guard.configure(key, str(results), str(labs))
    args = ["-q", "-p", "no:cacheprovider", "--rootdir", str(run), str(run / "tests")]
    pytest.main(args, plugins=[pytest_guard])
    ran, _, _ = _outcomes(pytest_guard.read_results(results, key)[0], run / "tests")
    part: dict = {"flags": [], "reasons": []}
    names = ["test_course.py::" + n for n in ("test_course_skip", "test_code_skip")]
    items = _items([*names, "test_course.py::test_course_skip_and_failure"], ran, part)
    assert items[names[0]] == {
        "status": "skipped",
        "output": "skipped: no line to plant the bug in",
    }
    assert items[names[1]]["status"] == "failed"
    assert items[names[1]]["output"] == "skipped: skipped by the code under test"
    assert items["test_course.py::test_course_skip_and_failure"]["status"] == "failed"
    assert part["flags"] == ["tampering"]
    assert part["reasons"] == [
        "The code under test skipped graded tests (test_course.py::test_code_skip); "
        "they score zero."
    ]
