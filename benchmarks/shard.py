"""Benchmark: a class graded as 2 shards and merged, against one ``course grade --jobs 2`` run.

1. ``course grade --week 1 --jobs 2`` over the class (the generated week-1 submissions of
   ``grade_class.py``);
2. the same class as 2 shards at once, ``--shard 0/2`` and ``--shard 1/2``, each
   ``--jobs 1`` (two cores, as the one run uses), then ``course merge``;
3. unless ``--no-weeks``: the reference graded for every week (``--all --jobs 2``), each
   week's time per submission from its report, and from them the wall time of 300
   students x 8 weeks with N shards (week 8, not written yet, counted as the slowest week).

    .venv/bin/python benchmarks/shard.py            # 40 submissions (make bench-shard)
    .venv/bin/python benchmarks/shard.py --count 8 --no-weeks

Goal: sharding and merging cost at most 10 % over the one run; both give the same
``grades.csv``, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import autograder  # noqa: F401, E402  (before tests/ is on the path: its autograder/ is not the package)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))
from grade_class import BIN, _env, course_grade, make_class  # noqa: E402
from submissions import reference  # noqa: E402

STUDENTS, WEEKS_OF_COURSE = 300, 8
#: Shard counts of the estimate (each shard a 2-core pod running --jobs 2).
SHARD_COUNTS = (1, 4, 10, 30, 100)


def two_shards(subs: list[Path], root: Path, env: dict[str, str]) -> tuple[float, float]:
    """Grade ``subs`` as 2 shards at once (``--jobs 1`` each), then merge; return both times."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                str(BIN / "course"),
                "grade",
                *map(str, subs),
                "--week",
                "1",
                "--jobs",
                "1",
                "--shard",
                f"{k}/2",
                "--out",
                str(root / f"shard-{k}"),
                "--quiet",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for k in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode not in (0, 3):
            sys.exit(f"a shard failed ({proc.returncode}): {err[-2000:]}")
    graded = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(
        [str(BIN / "course"), "merge", str(root / "shard-0"), str(root / "shard-1"),
         "--out", str(root / "merged")],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return graded, time.perf_counter() - start


def week_times(root: Path, env: dict[str, str]) -> dict[int, float]:
    """Seconds to grade the reference submission, per week (``--all --jobs 2``)."""
    sub = reference(root / "reference")
    subprocess.run(
        [str(BIN / "course"), "grade", str(sub), "--all", "--jobs", "2", "--quiet",
         "--out", str(root / "weeks")],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    times = {}
    for path in sorted((root / "weeks" / sub.name).glob("week[0-9][0-9].json")):
        report = json.loads(path.read_text())
        times[report["week"]] = sum(report["seconds"].values())
    return times


def estimate(times: dict[int, float], overhead: float) -> list[str]:
    """Wall time of 300 students x 8 weeks for each shard count, from per-week times."""
    weeks = dict(times)
    for week in range(1, WEEKS_OF_COURSE + 1):
        weeks.setdefault(week, max(times.values()))  # a week without a lab yet: the slowest
    per_student = sum(weeks.values())  # seconds of one grading slot for all 8 weeks
    lines = [
        f"per student, all {WEEKS_OF_COURSE} weeks: {per_student:.0f} s of one slot "
        f"({', '.join(f'w{w} {t:.0f}' for w, t in sorted(weeks.items()))})"
    ]
    for count in SHARD_COUNTS:
        students = math.ceil(STUDENTS / count)
        wall = students * per_student / 2 * overhead  # 2 slots per 2-core pod (--jobs 2)
        lines.append(
            f"  {count:>3} shards (2-core pods, --jobs 2): {students:>3} students each, "
            f"about {wall / 3600:6.2f} h"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="submissions (default: 40)")
    parser.add_argument(
        "--no-weeks", action="store_true", help="skip the per-week times and the estimate"
    )
    args = parser.parse_args()
    env = _env()
    with tempfile.TemporaryDirectory(prefix="bench-shard-") as tmp:
        tmp = Path(tmp)
        subs = make_class(tmp / "class", args.count)
        one = course_grade(subs, tmp / "one", 2, env)
        graded, merged = two_shards(subs, tmp, env)
        same = (tmp / "one/grades.csv").read_bytes() == (tmp / "merged/grades.csv").read_bytes()
        times = {} if args.no_weeks else week_times(tmp, env)
    load = os.getloadavg()
    ratio = (graded + merged) / one
    print(f"{args.count} week-1 submissions, {os.cpu_count()} cores")
    print(f"load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"one run, course grade --jobs 2:                 {one:7.1f} s")
    print(f"2 shards at once, --jobs 1 each:                {graded:7.1f} s")
    print(f"course merge of the 2 shards:                   {merged:7.1f} s")
    print(f"(shards + merge) / one run:                     {ratio:7.2f}x  (goal <= 1.10x)")
    print(f"same grades.csv, byte for byte:                 {same}")
    if times:
        print(f"\nestimate for {STUDENTS} students x {WEEKS_OF_COURSE} weeks (sharding overhead {ratio:.2f}x):")  # fmt: skip
        print("\n".join(estimate(times, max(ratio, 1.0))))


if __name__ == "__main__":
    main()
