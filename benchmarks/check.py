"""Benchmark: ``course check N`` on the reference solution, as a student runs it.

For each week a student's checkout is laid out in a temporary folder whose ``labs/``
is the reference (``solutions/`` without the hidden tests), and ``course check N
--verbose`` runs there in a subprocess; ``course check 1 --task 1`` runs too. Each
line of its output is time-stamped as it arrives, so the benchmark reports

* the time to the first row on screen (target: 10 s),
* the total time (target: 60 s for a whole week, 15 s for ``--task 1`` of week 1),
* the slowest notebook cell, against the cell limit (a locked set-up cell must stay
  far below it),
* how long the notebook and the component tests took (side by side, each from the start),

with the ratio of each time to its target, and the load average before and after.

    .venv/bin/python benchmarks/check.py                 # every week, and week 1 --task 1
    .venv/bin/python benchmarks/check.py --weeks 1 2
    make bench-check BENCH_ARGS="--weeks 1"

A missed target is a measurement, not a failure: the script exits 0 unless a check
did not pass on the reference. Times depend on the machine's load, which is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.config import WEEKS

REPO = Path(__file__).resolve().parents[1]
FIRST_ROW_TARGET = 10.0
WEEK_TARGET = 60.0
TASK_TARGET = 15.0
_ROW = re.compile(r"^\S+\s+(notebook|pytest)\s+(-|[\d.]+/[\d.]+)\s")
_SLOWEST = re.compile(r"^slowest cell: (\S+) ([\d.]+) s of a ([\d.]+) s limit")
_PHASES = re.compile(r"^time: notebook ([\d.]+) s(?:, component tests ([\d.]+) s)?")


def reference_checkout(dest: Path) -> Path:
    """A student's checkout whose labs/ is the reference, without the hidden tests."""
    ignore = shutil.ignore_patterns("__pycache__", "hidden", ".pytest_cache")
    shutil.copytree(REPO / "solutions", dest / "labs", ignore=ignore)
    return dest


def run_check(checkout: Path, *args: str) -> dict:
    """Run ``course check ARGS --verbose`` in ``checkout``; time its first row and its end."""
    cmd = [sys.executable, "-m", "autograder.cli", "check", *args, "--verbose"]
    started = time.monotonic()
    first, rows, slowest, phases = None, 0, None, ("-", "-")
    with subprocess.Popen(
        cmd, cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout:
            if _ROW.match(line):
                rows += 1
                first = first or time.monotonic() - started
            found = _SLOWEST.match(line)
            if found:
                slowest = (found.group(1), float(found.group(2)), float(found.group(3)))
            found = _PHASES.match(line)
            if found:
                phases = (found.group(1), found.group(2) or "-")
    return {
        "first": first,
        "total": time.monotonic() - started,
        "rows": rows,
        "code": proc.returncode,
        "slowest": slowest,
        "phases": phases,
    }


def _ratio(seconds: float | None, target: float) -> str:
    return "-" if seconds is None else f"{seconds:6.1f} s ({seconds / target:4.2f}x)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weeks", type=int, nargs="+", default=list(WEEKS), help="weeks (default: all)"
    )
    args = parser.parse_args(argv)
    runs = [(f"course check {w}", (str(w),), WEEK_TARGET) for w in args.weeks]
    if 1 in args.weeks:
        runs.append(("course check 1 --task 1", ("1", "--task", "1"), TASK_TARGET))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(f"{'run':<26} {'first row (10 s)':>20} {'total (target)':>22} {'rows':>5} "
          f"{'notebook':>9} {'tests':>7}  slowest cell (limit)")  # fmt: skip
    failed = 0
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        checkout = reference_checkout(Path(tmp) / "student")
        for name, cmd, target in runs:
            r = run_check(checkout, *cmd)
            cell = "-"
            if r["slowest"]:
                cid, secs, limit = r["slowest"]
                cell = f"{cid} {secs:.1f} s ({secs / limit:.0%} of {limit:g} s)"
            print(
                f"{name:<26} {_ratio(r['first'], FIRST_ROW_TARGET):>20} "
                f"{_ratio(r['total'], target):>22} {r['rows']:>5} "
                f"{r['phases'][0]:>9} {r['phases'][1]:>7}  {cell}"
                + ("" if r["code"] == 0 else f"  [exit {r['code']}: not every row passed]"),
                flush=True,
            )
            failed += r["code"] != 0
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
