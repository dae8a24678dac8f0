"""Benchmark: ``python -m mlpipe validate`` on a large processed CSV.

In a temporary folder a processed Iris CSV of about ``--mb`` megabytes is
written (the 150 Iris rows repeated, so every check but ``duplicates`` passes;
``duplicates`` fails, as it must on repeated rows, which exercises the whole
report). ``python -m mlpipe validate --data FILE`` then runs in a subprocess,
``--rounds`` times; each run's wall time and peak resident memory (the
child's ``ru_maxrss``, read with ``resource.getrusage(RUSAGE_CHILDREN)``
around a wrapper process of its own) are printed, with the ratio of the peak to
the file's size.

    .venv/bin/python benchmarks/validate.py                  # about 200 MB, 1 round
    .venv/bin/python benchmarks/validate.py --mb 50 --rounds 3
    .venv/bin/python benchmarks/validate.py --pythonpath /other/checkout/solutions
    make bench-validate BENCH_ARGS="--mb 100"

``--pythonpath`` picks the ``mlpipe`` to time (default: this checkout's
``solutions/``), so an older version can be compared from a git worktree:
``git worktree add /tmp/old <commit>`` then ``--pythonpath /tmp/old/solutions``.

Goals: peak memory at most 2x the file's size and under 10 s on 2 cores. A
missed goal is a measurement, not a failure: the script exits 0 unless the
stage failed to run. Times depend on the machine's load, which is printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADER = "sepal_length,sepal_width,petal_length,petal_width,species\n"

# Runs the stage in a child and prints the child's peak RSS in KiB: ru_maxrss of
# RUSAGE_CHILDREN covers only this wrapper's children, i.e. the stage alone.
_WRAPPER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def write_csv(path: Path, megabytes: float) -> int:
    """Write Iris rows repeated until the file holds about ``megabytes`` MB; return the rows."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    block = "".join(
        f"{a},{b},{c},{d},{iris.target_names[t]}\n"
        for (a, b, c, d), t in zip(iris.data.tolist(), iris.target, strict=True)
    )
    repeats = max(1, round(megabytes * 1e6 / len(block)))
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER)
        for _ in range(repeats):
            handle.write(block)
    return repeats * 150


def run_once(data: Path, pythonpath: Path) -> tuple[int, float, int]:
    """Run the validate stage once; return (exit code, seconds, peak RSS in bytes)."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    cmd = [sys.executable, "-c", _WRAPPER, sys.executable, "-m", "mlpipe", "validate"]
    start = time.perf_counter()
    out = subprocess.run(
        [*cmd, "--data", str(data)], env=env, capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - start
    code, kib = out.stdout.split()
    return int(code), seconds, int(kib) * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200.0, help="size of the CSV in MB")
    parser.add_argument("--rounds", type=int, default=1, help="runs of the stage")
    parser.add_argument(
        "--pythonpath", type=Path, default=REPO / "solutions", help="folder holding mlpipe"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        data = Path(tmp) / "iris.csv"
        rows = write_csv(data, args.mb)
        size = data.stat().st_size
        print(f"{data.name}: {size / 2**20:.0f} MiB, {rows:,} rows; mlpipe from {args.pythonpath}")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for n in range(1, args.rounds + 1):
            code, seconds, peak = run_once(data, args.pythonpath)
            print(
                f"round {n}: exit {code}, {seconds:.1f} s, peak RSS {peak / 2**20:.0f} MiB "
                f"= {peak / size:.2f}x the file"
            )
        print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
