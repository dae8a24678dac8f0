"""The pytest plugin that reports component-test results the grader can check.

It runs inside the sandboxed pytest process, next to the student's package, so
it cannot be out of the student's reach; it makes cheating visible instead:

* every result is one signed JSON line (HMAC with a secret the grader gave the
  process before any student code ran): lines the student's code writes are
  rejected;
* the state of the test tools is recorded before the student's package is
  imported (builtins, pytest's runner, reports, outcomes, assertion rewriting,
  pluggy's hook calls) and compared after every test, as are the helper
  functions of the instructor's test files (those they define and those they
  import, e.g. from the course's test kit, and the kit's own) and the origin of
  every hook: a plugin or hook that comes from the submission is reported;
* one extra test that must fail (the canary) runs with the graded ones: if it
  passes, the results were forged.

:func:`configure` must be called before ``pytest.main``.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
from pathlib import Path

import pytest

from autograder.config import MAX_RESULTS, TESTKIT
from autograder.report import clip

#: Name of the canary test (in the first test module).
CANARY = "course_grade_canary"

_state: dict = {}

#: (module, attribute) or (module, class, attribute) the student's code must not replace.
_INTERNALS = [
    ("_pytest.runner", "call_and_report"),
    ("_pytest.runner", "runtestprotocol"),
    ("_pytest.runner", "pytest_runtest_makereport"),
    ("_pytest.runner", "check_interactive_exception"),
    ("_pytest.runner", "CallInfo", "from_call"),
    ("_pytest.reports", "TestReport", "__init__"),
    ("_pytest.reports", "TestReport", "from_item_and_call"),
    ("_pytest.reports", "BaseReport", "passed"),
    ("_pytest.reports", "BaseReport", "failed"),
    ("_pytest.reports", "BaseReport", "skipped"),
    ("_pytest.python", "pytest_pyfunc_call"),
    ("_pytest.python", "Function", "runtest"),
    ("_pytest.skipping", "pytest_runtest_makereport"),
    ("_pytest.skipping", "pytest_runtest_setup"),
    ("_pytest.outcomes", "skip"),
    ("_pytest.outcomes", "fail"),
    ("_pytest.outcomes", "xfail"),
    ("_pytest.outcomes", "exit"),
    ("_pytest.assertion.rewrite", "AssertionRewritingHook", "exec_module"),
    ("_pytest.assertion.util", "assertrepr_compare"),
    ("_pytest.approx", "approx"),
    ("_pytest.raises", "raises"),
    ("pytest", "approx"),
    ("pytest", "raises"),
    ("pytest", "fail"),
    ("pytest", "skip"),
    ("pluggy._callers", "_multicall"),
    ("pluggy._hooks", "HookCaller", "__call__"),
    ("pluggy._manager", "PluginManager", "_hookexec"),
]


def _resolve(path: tuple[str, ...]):
    module = sys.modules.get(path[0])
    if module is None:
        return None
    if len(path) == 2:
        return getattr(module, path[1], None)
    cls = getattr(module, path[1], None)
    return None if cls is None else cls.__dict__.get(path[2])


def configure(key: str, results: str, labs: str) -> None:
    """Remember the secret and record the test tools; call before ``pytest.main``."""
    import importlib

    for path in _INTERNALS:
        with contextlib.suppress(ImportError):
            importlib.import_module(path[0])
    fd = os.open(results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    _state.update(
        key=key.encode(),
        fd=fd,
        labs=os.path.realpath(labs),
        builtins=dict(vars(builtins)),
        internals={path: _resolve(path) for path in _INTERNALS},
        helpers={},
        reported=set(),
        canary=(secrets.randbelow(10**9), secrets.randbelow(10**9) + 10**9),
    )


def sign(key: bytes, payload: str) -> str:
    """The signature of one result line."""
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def _emit(**record) -> None:
    payload = json.dumps(record, default=str)
    line = json.dumps({"p": payload, "s": sign(_state["key"], payload)}) + "\n"
    os.write(_state["fd"], line.encode())


def read_results(path: Path, key: str) -> tuple[list[dict], int]:
    """Read a results file; return the records with a valid signature and the number without."""
    records, forged = [], 0
    if not path.is_file():
        return records, forged
    with open(path, "rb") as handle:  # a flood written by the student's code is cut short
        text = handle.read(MAX_RESULTS).decode("utf-8", errors="replace")
    for line in text.splitlines():
        try:
            outer = json.loads(line)
            if hmac.compare_digest(sign(key.encode(), outer["p"]), outer["s"]):
                records.append(json.loads(outer["p"]))
                continue
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        forged += 1
    return records, forged


def _from_labs(obj) -> bool:
    code = getattr(obj, "__code__", None)
    filename = code.co_filename if code else getattr(obj, "__file__", None)
    if not filename:
        module = sys.modules.get(getattr(type(obj), "__module__", ""), None)
        filename = getattr(module, "__file__", None)
    return bool(filename) and os.path.realpath(filename).startswith(_state["labs"] + os.sep)


def _top_level_names(path: str) -> tuple[set[str], set[str]]:
    """The functions and classes a test file defines, and the names it imports from a module.

    Names imported from the submission's own package (``from mlpipe import train``) are
    left out: they are the code under test, not the tests' helpers.
    """
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return set(), set()
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    defined = {node.name for node in tree.body if isinstance(node, kinds)}
    imported = set()
    for node in tree.body:
        if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
            continue
        if not _from_labs(sys.modules.get(node.module.partition(".")[0])):
            imported |= {alias.asname or alias.name for alias in node.names} - {"*"}
    return defined, imported - defined


def _record_helpers(modules) -> None:
    for module in modules:
        path = getattr(module, "__file__", None)
        if not path:
            continue
        defined, imported = _top_level_names(path)
        _state["helpers"][module.__name__] = (
            module,
            {name: module.__dict__.get(name) for name in defined | imported},
            os.path.realpath(path),
            imported,
        )


def _helper_problems() -> list[str]:
    """Helpers of the tests (defined in a test file or the kit, or imported into one) replaced.

    A helper imported into a test file (from the course's test kit, a conftest)
    must stay the object it was and must never be the submission's code; one a
    file defines must also keep that file's code.
    """
    problems = []
    for module, expected, path, imported in _state["helpers"].values():
        for name, obj in expected.items():
            now = module.__dict__.get(name)
            code = getattr(now, "__code__", None)
            if name in imported:
                replaced = now is not obj or (code is not None and _from_labs(now))
            else:
                replaced = now is not obj or (code and os.path.realpath(code.co_filename) != path)
            if replaced:
                problems.append(f"the test helper {name} of {Path(path).name} was replaced")
    return problems


def problems(config: pytest.Config | None = None) -> list[str]:
    """What the student's code changed in the test tools, builtins or helpers."""
    found = []
    now = vars(builtins)
    for name, obj in _state["builtins"].items():
        if now.get(name) is not obj:
            found.append(f"builtins.{name} was replaced")
    for path, obj in _state["internals"].items():
        if obj is not None and _resolve(path) is not obj:
            found.append(f"{'.'.join(path)} was replaced")
    found += _helper_problems()
    if config is not None:
        pm = config.pluginmanager
        for plugin in pm.get_plugins():
            if _from_labs(plugin):
                found.append(f"the submission registered a pytest plugin ({pm.get_name(plugin)})")
        for name in dir(pm.hook):
            caller = getattr(pm.hook, name, None)
            for impl in getattr(caller, "get_hookimpls", list)():
                if _from_labs(impl.function):
                    found.append(f"the submission added a pytest hook ({name})")
    return sorted(set(found))


def _report_problems(config: pytest.Config | None) -> None:
    new = [p for p in problems(config) if p not in _state["reported"]]
    if new:
        _state["reported"].update(new)
        _emit(t="tampering", problems=new)


def _canary() -> None:
    first, second = _state["canary"]
    assert first == second, "the canary test must fail"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config, items) -> None:
    modules = {item.module for item in items if getattr(item, "module", None)}
    tests_root = str(config.rootpath)
    conftests = [
        m
        for name, m in sys.modules.items()
        if name.endswith("conftest")
        and str(getattr(m, "__file__", "") or "").startswith(tests_root + os.sep)
    ]
    kit = [sys.modules[TESTKIT]] if TESTKIT in sys.modules else []
    _record_helpers([*modules, *conftests, *kit])
    if items:
        canary = pytest.Function.from_parent(items[-1].parent, name=CANARY, callobj=_canary)
        items.append(canary)
    _emit(t="collected", ids=[item.nodeid for item in items], timeouts=_own_timeouts(items))
    _report_problems(config)


def _own_timeouts(items) -> dict[str, float]:
    """Per-test limits the instructor set with ``@pytest.mark.timeout(n)`` (pytest-timeout)."""
    timeouts = {}
    for item in items:
        marker = item.get_closest_marker("timeout")
        if marker is None:
            continue
        seconds = marker.args[0] if marker.args else marker.kwargs.get("timeout")
        if isinstance(seconds, (int, float)) and seconds > 0:
            timeouts[item.nodeid] = float(seconds)
    return timeouts


def pytest_collectreport(report) -> None:
    if report.failed:
        _emit(t="collect-error", id=report.nodeid, text=clip(str(report.longreprtext)))


def pytest_runtest_logstart(nodeid: str, location) -> None:
    _emit(t="start", id=nodeid, time=time.time())


def _skip_location(report) -> list | None:
    """Where a skip was raised, as pytest recorded it: ``[path, line]``, or None."""
    longrepr = report.longrepr
    if not report.skipped or not isinstance(longrepr, tuple) or len(longrepr) != 3:
        return None
    return [os.path.realpath(str(longrepr[0])), longrepr[1]]


def pytest_runtest_logreport(report) -> None:
    text = "" if report.passed else str(report.longreprtext)
    where = _skip_location(report)
    if where:
        text = str(report.longrepr[2]).removeprefix("Skipped: ")
    _emit(
        t="report",
        id=report.nodeid,
        when=report.when,
        outcome=report.outcome,
        text=clip(text),
        duration=round(report.duration, 3),
        where=where,
    )


def pytest_runtest_logfinish(nodeid: str, location) -> None:
    _emit(t="finish", id=nodeid)
    _report_problems(_state.get("config"))


def pytest_configure(config: pytest.Config) -> None:
    _state["config"] = config


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    _report_problems(session.config)
    _emit(t="end", status=int(exitstatus))
