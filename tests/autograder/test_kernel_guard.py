"""``autograder.kernel_guard``: the tripwire the grader checks between notebook cells.

Each test runs the guard in a fresh IPython shell in its own process (the grader
runs it inside the sandboxed kernel, through ``user_expressions``).
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
from autograder import kernel_guard
shell = InteractiveShell.instance()
if sys.argv[1] == "snapshot":
    kernel_guard.snapshot()
shell.run_cell(sys.argv[2])
print(kernel_guard.check())
"""


def guard_after(cell: str, snapshot: bool = True) -> list[str]:
    """What :func:`kernel_guard.check` reports after ``cell`` ran."""
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, "snapshot" if snapshot else "none", cell],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_clean_cell_changes_nothing():
    assert guard_after("x = sum(range(10))") == []


def test_a_replaced_builtin_and_a_foreign_callback_are_reported():
    found = guard_after(
        "import builtins\nbuiltins.len = lambda x: 3\n"
        "get_ipython().events.register('pre_run_cell', lambda info: None)"
    )
    assert "builtins.len was replaced" in found
    assert "the notebook registered a 'pre_run_cell' callback" in found


def test_checks_that_were_never_set_up_say_so():
    assert guard_after("pass", snapshot=False) == [
        "the grader's checks were not set up in this kernel"
    ]
