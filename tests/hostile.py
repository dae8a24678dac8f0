"""Bad and hostile week-1 submissions, each with the outcome the grader must reach.

Every sample starts from a known submission and adds one misbehaviour:

* ``fast``: the reference solution with its command line switched off, so its
  component tests run in seconds. It earns 19 of the 25 autograded points (the
  three tests that run ``python -m mlpipe`` fail); most samples below add their
  misbehaviour to it, so they must still earn exactly those 19;
* ``untouched``: the released student version, which earns nothing; the
  cheating samples add a cheat to it, so they must still earn nothing.

Every bomb stops by itself even if no limit fires (tests run as root): the
memory bomb at 3 GB, the output flood
at 300 MB, the fork bomb at 400 processes (each child exits after 2 s), the loops
after two minutes.

The ``wall-*`` samples try what only the wall (bubblewrap) stops: another checkout of
the course elsewhere on the disk, another slot's sandbox folder and the grader's job
folders, other processes' ``/proc`` entries, the network. Behind the wall none of it is
there; the audit hook, a tripwire, names what they reached for.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from submissions import LABS, REPO, _reference, _set_cell, untouched

NB = "labs/week01/lab.ipynb"
#: Autograded points of the samples' bases: fast earns 10 (notebook) + 9 (pytest).
FAST, FAST_PYTEST = 19.0, 9.0


@dataclass(frozen=True)
class Context:
    """What a hostile sample aims at.

    Attributes:
        out: The grades folder.
        victim: Another student's checkout.
        second: A second checkout of the course elsewhere on the disk (hidden tests and all).
        port: A port on the grader's loopback where something listens (0: none).
    """

    out: Path
    victim: Path
    second: Path = Path("/nonexistent")
    port: int = 0


def second_checkout(dest: Path) -> Path:
    """A copy of the course's week-1 solutions, hidden tests included, at ``dest``."""
    shutil.copytree(REPO / "solutions/week01", dest / "solutions/week01")
    return dest


@dataclass(frozen=True)
class Expected:
    """What the grader must report for a sample.

    Attributes:
        flag: The flag the report must carry.
        reason: Text one of the report's reasons must contain.
        score: The autograded score (the written answer is never graded here).
        statuses: Statuses some tests must have.
    """

    flag: str
    reason: str
    score: float
    statuses: tuple[tuple[str, str], ...] = ()


def _nb(dest: Path) -> dict:
    return json.loads((dest / NB).read_text())


def _save(dest: Path, nb: dict) -> None:
    (dest / NB).write_text(json.dumps(nb, indent=1))


def _add_cell(dest: Path, after: str, source: str) -> None:
    """Insert a new (ungraded) code cell after the cell ``after``."""
    nb = _nb(dest)
    index = next(
        i
        for i, c in enumerate(nb["cells"])
        if c["metadata"].get("nbgrader", {}).get("grade_id") == after
    )
    cell = {
        "cell_type": "code",
        "metadata": {},
        "source": source,
        "outputs": [],
        "execution_count": None,
    }
    nb["cells"].insert(index + 1, cell)
    _save(dest, nb)


def _append(dest: Path, module: str, code: str) -> None:
    path = dest / "labs/mlpipe" / module
    path.write_text(path.read_text() + "\n\n" + code.strip() + "\n")


def fast(dest: Path) -> Path:
    """The reference with its command line switched off (component tests take seconds)."""
    _reference(dest)
    (dest / "labs/mlpipe/__main__.py").write_text(
        '"""Switched off in this sample so that its tests run fast."""\n'
        'raise SystemExit("the command line is switched off in this sample")\n'
    )
    return dest


def _fast_with_cell(source: str, after: str = "test_task2_split"):
    def make(dest: Path, ctx: Context) -> Path:
        fast(dest)
        _add_cell(dest, after, source)
        return dest

    return make


SLEEPER = "import time\n\ntime.sleep(600)  # far past any limit\n"
LOOP_EXCEPT = """import time

stop = time.monotonic() + 120  # ends by itself after two minutes
while time.monotonic() < stop:
    try:
        while time.monotonic() < stop:
            pass
    except BaseException:  # swallows the grader's interrupt
        pass
"""
OS_EXIT = "import os\n\nos._exit(0)\n"
KILL_9 = "import os\nimport signal\n\nos.kill(os.getpid(), signal.SIGKILL)\n"
SEGFAULT = "import ctypes\n\nctypes.string_at(0)\n"
SYS_EXIT = "import sys\n\nsys.exit(3)\n"
MEMORY_BOMB = """def bomb():
    chunks = []
    for _ in range(60):  # stops at 3 GB even if no limit fires
        chunks.append(b"\\x01" * (50 * 2**20))


bomb()
"""
OUTPUT_FLOOD = """line = "x" * 999_999 + "\\n"
for _ in range(300):  # 300 MB, then it stops
    print(line, end="")
"""
FORK_BOMB = """import os
import time

for _ in range(400):  # at most 400 processes even if no limit fires
    if os.fork() == 0:
        time.sleep(2)
        os._exit(0)
"""
REDEFINE = """import hashlib


def fingerprint(df):
    return "sha256:" + hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()


train.fingerprint = fingerprint  # the tests would call this one, not the package's
"""
HIDE_FAILURES = """from IPython.core.interactiveshell import InteractiveShell

_run_cell = InteractiveShell.run_cell


def run_cell(self, *args, **kwargs):
    result = _run_cell(self, *args, **kwargs)
    result.error_in_exec = result.error_before_exec = None  # every cell "passes"
    return result


InteractiveShell.run_cell = run_cell
InteractiveShell.showtraceback = lambda self, *args, **kwargs: None
"""
#: A test cell whose first output is a non-numeric result gets full points from nbgrader,
#: errors after it notwithstanding: this hook puts one at the start of every cell.
DISPLAY_FIRST = """from IPython import get_ipython

_shell = get_ipython()


def _claim(info):
    _shell.displayhook("all checks passed")


_shell.events.register("pre_run_cell", _claim)
"""
BUILTINS = """import builtins

_len = builtins.len
builtins.len = lambda obj: 150 if hasattr(obj, "columns") else _len(obj)
"""


def locked_edited(dest: Path, ctx: Context) -> Path:
    """A wrong answer to task 1 with its test cell emptied; task 2's test cell deleted."""
    fast(dest)
    _set_cell(dest / NB, "task1_answer", "df = train.load_data()\nn_rows = 0\nclass_counts = {}\n")
    _set_cell(dest / NB, "test_task1_data", "pass  # looks fine to me\n")
    nb = _nb(dest)
    nb["cells"] = [
        c
        for c in nb["cells"]
        if c["metadata"].get("nbgrader", {}).get("grade_id") != "test_task2_split"
    ]
    _save(dest, nb)
    return dest


def renamed(dest: Path, ctx: Context) -> Path:
    fast(dest)
    (dest / NB).rename(dest / "labs/week01/lab-Copy1.ipynb")
    return dest


def missing(dest: Path, ctx: Context) -> Path:
    fast(dest)
    (dest / NB).unlink()
    return dest


def invalid_json(dest: Path, ctx: Context) -> Path:
    fast(dest)
    text = (dest / NB).read_text()
    (dest / NB).write_text(text[: len(text) // 2])
    return dest


def wrong_kernel(dest: Path, ctx: Context) -> Path:
    fast(dest)
    nb = _nb(dest)
    nb["metadata"]["kernelspec"] = {
        "name": "julia-1.9",
        "display_name": "Julia",
        "language": "julia",
    }
    _save(dest, nb)
    return dest


def redefine_helpers(dest: Path, ctx: Context) -> Path:
    """The package's fingerprint is a stub; the notebook swaps in a working one."""
    fast(dest)
    _append(
        dest, "train.py", 'def fingerprint(df):\n    raise NotImplementedError("not written yet")'
    )
    _add_cell(dest, "setup", REDEFINE)
    return dest


def _untouched_with_cell(source: str):
    def make(dest: Path, ctx: Context) -> Path:
        untouched(dest)
        _add_cell(dest, "setup", source)
        return dest

    return make


def _fast_with_builtins(dest: Path, ctx: Context) -> Path:
    fast(dest)
    _add_cell(dest, "setup", BUILTINS)
    return dest


PATCH_REPORTS = """
try:  # every test report says "passed"
    import _pytest.reports as _reports

    _init = _reports.TestReport.__init__

    def _passing(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        self.outcome, self.longrepr = "passed", None

    _reports.TestReport.__init__ = _passing
except ImportError:
    pass
"""
PATCH_HELPERS = """
import sys as _sys


def _fake_instructions(path):
    return [("FROM", "python"), ("COPY", "x"), ("RUN", "x"), ("USER", "10001"),
            ("CMD", '["python", "-m", "mlpipe", "train"]')]


for _module in list(_sys.modules.values()):  # the tests' helpers, wherever they are bound:
    _file = getattr(_module, "__file__", "") or ""  # the tests and the course's test kit
    if "/tests/" in _file or _file.endswith("testkit.py"):
        if hasattr(_module, "dockerfile_instructions"):
            _module.dockerfile_instructions = _fake_instructions
"""
SKIP_TESTS = """
import sys as _sys


def _skip_under_pytest(func):
    def wrapper(*args, **kwargs):
        if "pytest" in _sys.modules:
            import pytest

            pytest.skip("skipped by the code under test")
        return func(*args, **kwargs)

    return wrapper


for _name in ("load_data", "fingerprint", "split_data", "build_pipeline", "evaluate", "train"):
    globals()[_name] = _skip_under_pytest(globals()[_name])
"""
FORGE_RESULTS = """
import atexit as _atexit
import json as _json
import os as _os


def _forge():
    line = _json.dumps({"t": "report", "id": "tests/test_train.py::test_build_pipeline_uses_params",
                        "when": "call", "outcome": "passed"})
    for fd in _os.listdir("/proc/self/fd"):
        try:
            path = _os.readlink(f"/proc/self/fd/{fd}")
            if path.endswith(".jsonl"):
                with open(path, "a") as handle:
                    handle.write(line + "\\n")
        except OSError:
            pass
    try:
        with open("results.xml", "w") as handle:
            handle.write('<testsuite><testcase classname="tests.test_train" name="x"/></testsuite>')
    except OSError:
        pass


_atexit.register(_forge)
"""
PLANTED_HOOK = """import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome, report.longrepr = "passed", None
"""


def _untouched_package(module: str, code: str):
    def make(dest: Path, ctx: Context) -> Path:
        untouched(dest)
        _append(dest, module, code)
        return dest

    return make


def helpers_replaced(dest: Path, ctx: Context) -> Path:
    """No Dockerfile written; the package fakes the tests' Dockerfile parser."""
    fast(dest)
    shutil.copyfile(LABS / "docker/train.Dockerfile", dest / "labs/docker/train.Dockerfile")
    _append(dest, "train.py", PATCH_HELPERS)
    return dest


def planted(dest: Path, ctx: Context) -> Path:
    untouched(dest)
    (dest / "labs/conftest.py").write_text(PLANTED_HOOK)
    (dest / "labs/mlpipe/conftest.py").write_text(PLANTED_HOOK)
    (dest / "labs/mlpipe/cheat.py").write_text(PLANTED_HOOK)
    (dest / "labs/pytest.ini").write_text("[pytest]\naddopts = -p mlpipe.cheat\n")
    (dest / "labs/sitecustomize.py").write_text("import mlpipe.cheat\n")
    (dest / "labs/json.py").write_text("raise SystemExit('shadowed')\n")
    return dest


def grader_writes(dest: Path, ctx: Context) -> Path:
    """Writes to the gradebook, the class CSV, the grader's code and another student."""
    targets = [
        ctx.out / "nbgrader/gradebook.db",
        ctx.out / "grades.csv",
        ctx.victim / "labs/mlpipe/train.py",
        REPO / "autograder/grade.py",
    ]
    code = (
        "import os\n\n"
        f"for target in {[str(t) for t in targets]!r}:\n"
        "    try:\n"
        '        with open(target, "a") as handle:\n'
        '            handle.write("# changed by a student\\n")\n'
        "    except OSError as err:\n"
        "        print(type(err).__name__, target)\n"
        "try:\n"
        f"    os.remove({str(ctx.victim / NB)!r})\n"
        "except OSError as err:\n"
        "    print(type(err).__name__)\n"
    )
    return _fast_with_cell(code)(dest, ctx)


LEAK_EVALUATE = """
import sys as _sys
from pathlib import Path as _Path

_evaluate = evaluate


def evaluate(model, X, y, dataset=None):
    if X is None:  # only the hidden confusion-matrix test passes X=None
        tests = _Path(_sys.modules["conftest"].__file__).parent
        raise AssertionError((tests / "hidden/test_train_hidden.py").read_text())
    return _evaluate(model, X, y, dataset)
"""
CRASH_EVALUATE = """
import os as _os

_evaluate = evaluate


def evaluate(model, X, y, dataset=None):
    if X is None:  # only the hidden confusion-matrix test passes X=None
        _os._exit(1)
    return _evaluate(model, X, y, dataset)
"""
#: The package ends the test process as pytest imports it (the notebook's kernel is spared).
EXIT_UNDER_PYTEST = """
import os as _os
import sys as _sys

if "pytest" in _sys.modules:
    _os._exit(3)
"""
HANG_EVALUATE = """
import time as _time

_evaluate = evaluate


def evaluate(model, X, y, dataset=None):
    if X is None:  # only the hidden confusion-matrix test passes X=None
        stop = _time.monotonic() + 120  # ends by itself after two minutes
        while _time.monotonic() < stop:
            try:
                while _time.monotonic() < stop:
                    pass
            except BaseException:  # swallows the timeout
                pass
    return _evaluate(model, X, y, dataset)
"""


def hidden_reader(dest: Path, ctx: Context) -> Path:
    """The notebook reads the hidden tests from disk; the package echoes them in a failure."""
    fast(dest)
    paths = [
        str(REPO / "solutions/week01/tests/hidden/test_train_hidden.py"),
        str(ctx.out / "nbgrader/source/week01/lab.ipynb"),
    ]
    _add_cell(
        dest,
        "test_task2_split",
        f"for path in {paths!r}:\n"
        "    try:\n"
        "        print(open(path).read())\n"
        "    except OSError as err:\n"
        "        print(type(err).__name__, path)\n",
    )
    _append(dest, "train.py", LEAK_EVALUATE)
    return dest


def _fast_package(code: str):
    def make(dest: Path, ctx: Context) -> Path:
        fast(dest)
        _append(dest, "train.py", code)
        return dest

    return make


def _fast_only(dest: Path, ctx: Context) -> Path:
    return fast(dest)


def _reference_only(dest: Path, ctx: Context) -> Path:
    return _reference(dest)


#: Cells that reach past the wall; what they find is printed (the instructor's report keeps
#: it). ``TOPS`` and ``PORT`` are filled in per run.
SEARCH_DISK = """import os

found = []
for top in TOPS:
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev", "usr", "site-packages")]
        found += [os.path.join(folder, f) for f in files if f == "test_train_hidden.py"]
for path in found:
    print(open(path).read())
print("hidden tests found:", found)
"""
OTHER_SLOTS = """import glob

for pattern in ("/tmp/course-grade-*/sandbox-*/labs/mlpipe/*.py",
                "/tmp/course-grade-*/job-*/nbgrader/source/week01/lab.ipynb"):
    for path in glob.glob(pattern):
        print(path, open(path).read()[:200])
"""
OTHER_PROCESSES = """import os
import re

seen = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            seen.append(open(os.path.join("/proc", pid, "cmdline")).read().replace(chr(0), " "))
        except OSError:
            pass
paths = sorted({p for line in seen for p in re.findall(r"/[^ ]*course-grade[^ ]*", line)})
print(len(seen), "processes")
for path in paths:  # the grader's files those command lines name
    try:
        print(path, open(path).read()[:200])
    except OSError as err:
        print(type(err).__name__, path)
"""
NETWORK = """import socket

for address in (("192.0.2.1", 80), ("127.0.0.1", PORT)):
    try:
        socket.create_connection(address, timeout=3).sendall(b"GET / HTTP/1.0")
        print("reached", address)
    except OSError as err:
        print(type(err).__name__, address)
"""


def _wall_sample(code: str):
    def make(dest: Path, ctx: Context) -> Path:
        fast(dest)
        tops = repr(["/", str(ctx.second)])
        source = code.replace("TOPS", tops).replace("PORT", str(ctx.port or 9))
        _add_cell(dest, "test_task2_split", source)
        return dest

    return make


HIDDEN_EVALUATE = (
    ("hidden/test_train_hidden.py::test_evaluate_confusion_matrix_on_known_predictions", "error"),
)

#: name -> (builder, expected outcome); ``reference`` and ``fast`` are the normal ones.
SAMPLES = {
    "reference": (_reference_only, Expected("", "", 25.0)),
    "fast": (_fast_only, Expected("", "", FAST)),
    "sleeper": (_fast_with_cell(SLEEPER), Expected("timeout", "ran past the", FAST)),
    "loop-except": (
        _fast_with_cell(LOOP_EXCEPT),
        Expected("timeout", "ignored the interrupt", FAST),
    ),
    "os-exit": (_fast_with_cell(OS_EXIT), Expected("kernel-died", "exited with code 0", FAST)),
    "kill-9": (_fast_with_cell(KILL_9), Expected("kernel-died", "SIGKILL", FAST)),
    "segfault": (_fast_with_cell(SEGFAULT), Expected("kernel-died", "SIGSEGV", FAST)),
    "sys-exit": (_fast_with_cell(SYS_EXIT), Expected("exit-called", "sys.exit()", FAST)),
    "memory-bomb": (
        _fast_with_cell(MEMORY_BOMB),
        Expected("memory-limit", "ran out of memory", FAST),
    ),
    "output-flood": (
        _fast_with_cell(OUTPUT_FLOOD),
        Expected("output-limit", "printed more than", FAST),
    ),
    "fork-bomb": (_fast_with_cell(FORK_BOMB), Expected("process-limit", "limit of", FAST)),
    "locked-edited": (
        locked_edited,
        Expected(
            "locked-cell-modified",
            "test_task1_data edited, test_task2_split deleted",
            FAST - 2,
            (("test_task1_data", "failed"), ("test_task2_split", "passed")),
        ),
    ),
    "renamed": (renamed, Expected("notebook-renamed", "lab-Copy1.ipynb was graded", FAST)),
    "missing": (missing, Expected("missing-notebook", "lab.ipynb is missing", FAST_PYTEST)),
    "invalid-json": (
        invalid_json,
        Expected("invalid-notebook", "JSON cannot be read", FAST_PYTEST),
    ),
    "wrong-kernel": (wrong_kernel, Expected("wrong-kernel", "julia-1.9", FAST)),
    "redefine-helpers": (
        redefine_helpers,
        Expected("tampering", "mlpipe.train.fingerprint was redefined", FAST_PYTEST - 2),
    ),
    "hide-failures": (
        _untouched_with_cell(HIDE_FAILURES),
        Expected("tampering", "InteractiveShell.run_cell was replaced", 0.0),
    ),
    "display-first": (
        _untouched_with_cell(DISPLAY_FIRST),
        Expected("tampering", "registered a 'pre_run_cell' callback", 0.0),
    ),
    "patch-builtins": (
        _fast_with_builtins,
        Expected("tampering", "builtins.len was replaced", FAST_PYTEST),
    ),
    "patch-reports": (
        _untouched_package("__init__.py", PATCH_REPORTS),
        Expected("tampering", "TestReport.__init__ was replaced", 0.0),
    ),
    "patch-helpers": (
        helpers_replaced,
        Expected("tampering", "dockerfile_instructions", 10.0),
    ),
    "planted": (planted, Expected("planted-files", "labs/conftest.py (a pytest conftest)", 0.0)),
    "skip-tests": (
        _untouched_package("train.py", SKIP_TESTS),
        Expected("tampering", "skipped graded tests", 0.0),
    ),
    "forge-results": (
        _untouched_package("__init__.py", FORGE_RESULTS),
        Expected("tampering", "written by the code under test", 0.0),
    ),
    "grader-writes": (grader_writes, Expected("forbidden-access", "this was refused", FAST)),
    "hidden-reader": (
        hidden_reader,
        Expected(
            "forbidden-access",
            "test_train_hidden.py",
            FAST - 1,
            ((HIDDEN_EVALUATE[0][0], "failed"),),
        ),
    ),
    "tests-crash": (
        _fast_package(CRASH_EVALUATE),
        Expected("tests-crashed", "exited with code 1", FAST - 1, HIDDEN_EVALUATE),
    ),
    "tests-exit-at-import": (
        _fast_package(EXIT_UNDER_PYTEST),
        Expected("tests-crashed", "ended twice before these tests ran", FAST - FAST_PYTEST),
    ),
    "tests-hang": (
        _fast_package(HANG_EVALUATE),
        Expected("timeout", "ran past the", FAST - 1, HIDDEN_EVALUATE),
    ),
    "wall-second-checkout": (
        _wall_sample(SEARCH_DISK),
        Expected("forbidden-access", "tried to read /tmp/course-grade-", FAST),
    ),
    "wall-other-slots": (
        _wall_sample(OTHER_SLOTS),
        Expected("forbidden-access", "tried to read /tmp/course-grade-", FAST),
    ),
    "wall-processes": (
        _wall_sample(OTHER_PROCESSES),
        Expected("forbidden-access", "tried to read /tmp/course-grade-", FAST),
    ),
    "wall-network": (
        _wall_sample(NETWORK),
        Expected("forbidden-access", "tried to connect to 192.0.2.1:80", FAST),
    ),
}


def build(root: Path, ctx: Context, names=None) -> dict[str, Path]:
    """Build the samples (all, or ``names``) under ``root``; return name -> folder."""
    return {name: SAMPLES[name][0](root / name, ctx) for name in names or SAMPLES}
