"""Benchmark: a class of generated week-1 submissions graded three ways in one run.

1. raw ``nbgrader autograde``, serially, over every notebook (one nbgrader
   process, as an instructor would run it), plus the component tests run with
   plain pytest one submission after another: what ``course grade`` does
   without sandboxing, tamper checks or reports;
2. ``course grade --jobs 1``;
3. ``course grade --jobs 2``.

The class is a mix of right (the reference), partly right (a split that forgets
to stratify, no Dockerfile; a syntax error in one answer) and wrong (blank or
untouched) submissions. Raw nbgrader cannot give each student's kernel its own
``mlpipe``, so its kernels all import the reference package; ``course grade``
imports each student's own.

    .venv/bin/python benchmarks/grade_class.py            # 40 submissions
    .venv/bin/python benchmarks/grade_class.py --count 8  # a quick look

Goals: ``--jobs 1`` costs at most 1.2x (raw nbgrader + pytest part);
``--jobs 2`` is at least 1.6x faster than ``--jobs 1`` on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from submissions import SAMPLES  # noqa: E402

from autograder.config import NO_TELEMETRY, TEST_TIMEOUT, pytest_ini  # noqa: E402

BIN = Path(sys.executable).parent
MIX = ("reference", "partial", "blank", "syntax-error", "untouched")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env['PATH']}",
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
        **NO_TELEMETRY,
    )
    return env


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 1, 3):
        sys.exit(
            f"{cmd[:3]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return time.perf_counter() - start


def make_class(root: Path, count: int) -> list[Path]:
    """``count`` submissions cycling through the mix, as student-NN folders."""
    subs = []
    for i in range(count):
        kind = MIX[i % len(MIX)]
        subs.append(SAMPLES[kind](root / f"{kind}-{i:02d}"))
    return subs


def raw_nbgrader(subs: list[Path], course: Path, env: dict[str, str]) -> tuple[float, float]:
    """Time ``nbgrader generate_assignment`` and one serial ``nbgrader autograde`` run."""
    (course / "source/week01").mkdir(parents=True)
    shutil.copyfile(REPO / "solutions/week01/lab.ipynb", course / "source/week01/lab.ipynb")
    for sub in subs:
        target = course / "submitted" / sub.name / "week01"
        target.mkdir(parents=True)
        shutil.copyfile(sub / "labs/week01/lab.ipynb", target / "lab.ipynb")
    raw_env = dict(env, PYTHONPATH=str(subs[0] / "labs"))  # the reference's package
    register = _timed(["nbgrader", "generate_assignment", "week01", "--force"], course, raw_env)
    autograde = _timed(["nbgrader", "autograde", "week01", "--force"], course, raw_env)
    return register, autograde


def pytest_part(subs: list[Path], work: Path, env: dict[str, str]) -> float:
    """Time the component tests of every submission with plain pytest, one after another."""
    start = time.perf_counter()
    for sub in subs:
        run = work / sub.name
        shutil.copytree(REPO / "solutions/week01/tests", run / "tests")
        (run / "pytest.ini").write_text(pytest_ini(sub / "labs"))
        cmd = [sys.executable, "-m", "pytest", "tests", "-q", "-c", "pytest.ini", "-p"]
        cmd += ["no:cacheprovider", "-p", "pytest_timeout", f"--timeout={TEST_TIMEOUT}"]
        subprocess.run(
            cmd, cwd=run, env=dict(env, HOME=str(run), MLPIPE_HOME=str(run)), capture_output=True
        )
    return time.perf_counter() - start


def course_grade(subs: list[Path], out: Path, jobs: int, env: dict[str, str]) -> float:
    cmd = [str(BIN / "course"), "grade", *map(str, subs), "--week", "1"]
    return _timed([*cmd, "--out", str(out), "--jobs", str(jobs), "--quiet"], out.parent, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="submissions (default: 40)")
    args = parser.parse_args()
    env = _env()
    with tempfile.TemporaryDirectory(prefix="bench-class-") as tmp:
        tmp = Path(tmp)
        subs = make_class(tmp / "class", args.count)
        register, raw = raw_nbgrader(subs, tmp / "raw", env)
        tests = pytest_part(subs, tmp / "pytest", env)
        one = course_grade(subs, tmp / "jobs1", 1, env)
        two = course_grade(subs, tmp / "jobs2", 2, env)
        same = (tmp / "jobs1/grades.csv").read_text() == (tmp / "jobs2/grades.csv").read_text()
    base = raw + tests
    load = os.getloadavg()
    print(f"{args.count} week-1 submissions ({', '.join(MIX)}), {os.cpu_count()} cores")
    print(f"load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"raw nbgrader generate_assignment (once):      {register:7.1f} s")
    print(f"raw nbgrader autograde, serial:               {raw:7.1f} s")
    print(f"component tests with plain pytest, serial:    {tests:7.1f} s")
    print(f"  raw nbgrader + pytest part:                 {base:7.1f} s")
    print(f"course grade --jobs 1:                        {one:7.1f} s")
    print(f"course grade --jobs 2:                        {two:7.1f} s")
    print(f"--jobs 1 / (raw + pytest part):               {one / base:7.2f}x  (goal <= 1.2x)")
    print(f"--jobs 1 / --jobs 2 (speed-up):               {one / two:7.2f}x  (goal >= 1.6x)")
    print(f"same grades.csv with 1 and 2 jobs:            {same}")


if __name__ == "__main__":
    main()
