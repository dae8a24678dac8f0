"""The pytest plugin of ``course check``: one JSON line per finished test, as it finishes.

``course check`` loads it with ``-p autograder.check_plugin`` and tails the file named
by ``COURSE_CHECK_EVENTS``, so each component test's row is printed the moment the
test ends. ``COURSE_CHECK_TEST_TIMEOUT`` is the student's per-test limit: a test's own
``@pytest.mark.timeout(n)`` can raise it, never lower it (a slow laptop gets at least
what the student asked for). With ``COURSE_CHECK_TASK=K`` only the tests marked
``@pytest.mark.task(K)`` run. It runs on the student's own machine, on their own code:
unlike :mod:`autograder.pytest_guard` it guards nothing.
"""

from __future__ import annotations

import json
import os

import pytest

from autograder.report import clip

#: Environment variables the plugin reads.
EVENTS_VAR = "COURSE_CHECK_EVENTS"
TIMEOUT_VAR = "COURSE_CHECK_TEST_TIMEOUT"
TASK_VAR = "COURSE_CHECK_TASK"

#: Outcome of each phase, worst first: what a test's row shows.
_RANK = ("error", "failed", "skipped", "passed")

_outcomes: dict[str, tuple[str, str]] = {}


def _emit(**record: object) -> None:
    path = os.environ.get(EVENTS_VAR)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def _own_timeout(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    seconds = (marker.args[0] if marker.args else marker.kwargs.get("timeout")) if marker else 0
    return float(seconds) if isinstance(seconds, (int, float)) else 0.0


def _task(item: pytest.Item) -> object:
    marker = item.get_closest_marker("task")
    return marker.args[0] if marker and marker.args else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    task = os.environ.get(TASK_VAR)
    if task:
        dropped = [item for item in items if str(_task(item)) != task]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if str(_task(item)) == task]
    limit = float(os.environ.get(TIMEOUT_VAR) or 0)
    if limit > 0:
        for item in items:
            item.add_marker(pytest.mark.timeout(max(limit, _own_timeout(item))), append=False)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _emit(id=report.nodeid, outcome="collect-error", text=clip(report.longreprtext))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        outcome = report.outcome
    else:  # a failing fixture is an error; a skip in set-up is a skip
        outcome = "skipped" if report.skipped else ("error" if report.failed else "passed")
    text = ""
    if report.skipped and isinstance(report.longrepr, tuple):
        text = str(report.longrepr[2]).removeprefix("Skipped: ")
    elif not report.passed:
        text = report.longreprtext
    old = _outcomes.get(report.nodeid, ("passed", ""))
    if _RANK.index(outcome) < _RANK.index(old[0]):
        _outcomes[report.nodeid] = (outcome, clip(text))
    else:
        _outcomes.setdefault(report.nodeid, old)


def pytest_runtest_logfinish(nodeid: str) -> None:
    outcome, text = _outcomes.pop(nodeid, ("passed", ""))
    _emit(id=nodeid, outcome=outcome, text=text)


def pytest_sessionfinish() -> None:
    # Every result is known: ``course check`` may end the process now, without waiting
    # for pytest's summary and the interpreter's exit (seconds, with scikit-learn loaded).
    _emit(end=True)
