"""Benchmark: batch scoring on a Ray head + worker (2 workers) against one ``mlpipe score`` process.

In a temporary project, an MLflow store gets an Iris model under the alias
``champion`` and ``python -m mlpipe scale generate`` writes ``--rows`` Iris-like
rows (1,000,000 by default, about 23 MB). Then, in the same run:

1. **cluster start-up**: a head and one worker node, each its own ``ray start``
   on 127.0.0.1 with one CPU (:class:`mlpipe.scale.LocalCluster`): 2 workers;
2. **end to end**: ``python -m mlpipe score`` and ``python -m mlpipe scale score
   --address ...`` as a student runs them, each in a fresh process (Python, MLflow,
   the model and, for Ray, connecting and starting the actors included);
3. **scoring only** (start-up excluded): in this process, with the model loaded and
   the actors up, week 5's ``export.score_csv`` on the file (read, check, predict,
   write: what ``mlpipe score`` does after loading the model) against
   ``Scorer.score`` on the cluster, ``--rounds`` times each, alternating.

Every output is compared byte for byte with ``mlpipe score``'s. The goal is a
speed-up of at least 1.6x for the scoring only, on 2 cores. A missed goal is a
measurement, not a failure (exit 0 unless something failed to run). Times depend
on the machine's load, which is printed.

    .venv/bin/python benchmarks/scale.py                 # 1,000,000 rows, 3 rounds
    .venv/bin/python benchmarks/scale.py --rows 200000 --rounds 1
    make bench-scale BENCH_ARGS="--rounds 5"
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL = 1.6


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Run ``python -m mlpipe ARGS``; return its wall time (fail with its output on an error)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mlpipe", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"`mlpipe {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the file to score")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of the scoring only")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "solutions"))
    sys.path.insert(0, str(REPO))
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

    from autograder import testkit
    from mlpipe import export, scale, serve

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        home = Path(tmp)
        env = testkit.pipeline_env(MLPIPE_HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "solutions"), env["PYTHONPATH"]])
        testkit.create_store(home)
        testkit.register_model(home)
        data, whole = home / "big.csv", home / "whole.csv"
        _run(["scale", "generate", "--rows", str(args.rows), "--out", str(data)], home, env)
        print(f"{data.name}: {args.rows:,} rows, {data.stat().st_size / 1e6:.0f} MB")
        print(f"load average before: {_load()} ({os.cpu_count()} cores)")

        cluster = scale.LocalCluster(workers=1, cpus=1)
        try:
            cluster.start(timeout=900)
            print(
                f"cluster start-up (head + 1 worker node, 1 CPU each): {cluster.seconds:.1f} s"
                + (f" ({cluster.late} nodes registered late)" if cluster.late else "")
            )
            single_cli = _run(["score", "--data", str(data), "--out", str(whole)], home, env)
            ray_cli = _run(
                ["scale", "score", "--address", cluster.address, "--input", str(data)]
                + ["--out", str(home / "cli.csv")],
                home,
                env,
            )
            same = (home / "cli.csv").read_bytes() == whole.read_bytes()
            print(f"end to end, mlpipe score:        {single_cli:6.1f} s")
            print(f"end to end, mlpipe scale score:  {ray_cli:6.1f} s (identical bytes: {same})")
            print(f"  speed-up end to end: {single_cli / ray_cli:.2f}x")

            os.environ["MLPIPE_HOME"] = str(home)
            ref = serve.resolve_model(serve.load_settings())
            model = serve.load_model(ref)
            valid = (0.0, 10.0)
            begin = time.perf_counter()
            scale.connect(cluster.address)
            with scale.Scorer(model, ref.columns, valid) as scorer:
                print(f"connect + {scorer.workers} actors up: {time.perf_counter() - begin:.1f} s")
                single, split = [], []
                for n in range(1, args.rounds + 1):
                    start = time.perf_counter()
                    export.score_csv(model, ref.columns, data, home / "one.csv", valid)
                    single.append(time.perf_counter() - start)
                    result = scorer.score(data, home / "ray.csv")
                    split.append(result.seconds)
                    same = (home / "ray.csv").read_bytes() == whole.read_bytes()
                    same = same and (home / "one.csv").read_bytes() == whole.read_bytes()
                    print(
                        f"round {n}: one process {single[-1]:.2f} s, Ray {split[-1]:.2f} s "
                        f"({result.parts} parts on {len(result.workers)} workers, identical: {same})"
                    )
            scale.disconnect()
        finally:
            cluster.stop()
        one, two = statistics.median(single), statistics.median(split)
        ratio = one / two
        print(f"scoring only (median of {args.rounds}): one process {one:.2f} s, Ray {two:.2f} s")
        print(
            f"speed-up excluding start-up: {ratio:.2f}x "
            f"(goal >= {GOAL}x: {'met' if ratio >= GOAL else 'missed'})"
        )
        print(f"load average after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
