"""Benchmark: `course grade` for one week-1 submission beside raw `nbgrader autograde`.

Both grade the same notebook (the reference solution submitted as a student's
work) in one run. Raw nbgrader does the notebook only; `course grade` also runs
the component tests and writes the reports, so the script prints both parts.

    .venv/bin/python benchmarks/grade_one.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from submissions import reference  # noqa: E402

BIN = Path(sys.executable).parent


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def _component_time(sub: Path, work: Path) -> float:
    """Time the component tests alone, with plain pytest (as in grade_class.py)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from grade_class import _env, pytest_part

    work.mkdir()
    return pytest_part([sub], work, _env())


def main() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sub = reference(tmp / "student")
        # Raw nbgrader: a course folder, the assignment registered, then autograde.
        course = tmp / "raw"
        (course / "source/week01").mkdir(parents=True)
        shutil.copyfile(REPO / "solutions/week01/lab.ipynb", course / "source/week01/lab.ipynb")
        (course / "submitted/student/week01").mkdir(parents=True)
        shutil.copyfile(
            sub / "labs/week01/lab.ipynb", course / "submitted/student/week01/lab.ipynb"
        )
        raw_env = dict(env, PYTHONPATH=str(sub / "labs"))
        nbgrader = [str(BIN / "nbgrader")]
        register = _timed([*nbgrader, "generate_assignment", "week01", "--force"], course, raw_env)
        raw = _timed([*nbgrader, "autograde", "week01", "--force"], course, raw_env)
        pytest_part = _component_time(sub, tmp / "component")
        ours = _timed(
            [
                str(BIN / "course"),
                "grade",
                str(sub),
                "--week",
                "1",
                "--out",
                str(tmp / "out"),
                "--quiet",
            ],
            tmp,
            env,
        )
    print("one week-1 submission (reference solution); for a class see grade_class.py")
    print(f"raw nbgrader generate_assignment (registers):     {register:6.1f} s")
    print(f"raw nbgrader autograde (notebook only):           {raw:6.1f} s")
    print(f"course grade (notebook + component tests + reports): {ours:6.1f} s")
    print(f"  of which the component tests (pytest):           {pytest_part:6.1f} s")
    print(f"  so the notebook part and reports:                {ours - pytest_part:6.1f} s")
    print(f"ratio course grade / raw nbgrader:                 {ours / raw:6.2f}x")
    print(f"ratio (course grade - pytest part) / raw nbgrader: {(ours - pytest_part) / raw:6.2f}x")
    both = register + raw
    print(
        f"ratio (course grade - pytest part) / raw register+autograde: {(ours - pytest_part) / both:6.2f}x"
    )


if __name__ == "__main__":
    main()
