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
