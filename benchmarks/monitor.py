"""Benchmark: ``mlpipe monitor`` on a 100,000-line inference log against a plain Evidently run.

In a temporary folder, week 2's processed Iris data and schema are written, and an
inference log of ``--lines`` predictions (Iris rows with a little noise, a model's
labels) in week 5's own format (``serve.log_records`` through ``serve.InferenceLog``,
batches of 100 rows). Then, ``--rounds`` times, in this process, Evidently imported
and warmed up once before:

* **read**: ``monitor.read_log`` alone (parsing the log into a frame);
* **plain**: ``Report.run`` of the same metrics (``DataDriftPreset`` on the
  features, ``ValueDrift`` of the prediction, the same tests and threshold) on the
  same two frames, the window and the reference, already in memory;
* **monitor**: ``monitor.monitor``, all of it: reading the log, the window, the
  report, the summary, and writing ``drift.html``, ``drift.json``, ``summary.json``
  and ``mlpipe.prom``.

The ratio is monitor / plain, round by round (its median is judged, goal: at most
1.5; the ratio of the best times is printed too: the machine's load moves both). The
command line's wall time (``python -m mlpipe monitor`` in a subprocess: the
interpreter, Evidently's import and the same run) is printed for reference.

    .venv/bin/python benchmarks/monitor.py                   # 100,000 lines, 5 rounds
    .venv/bin/python benchmarks/monitor.py --lines 20000 --rounds 5
    make bench-monitor BENCH_ARGS="--rounds 5"

A missed goal is a measurement, not a failure: the script exits 0 unless a run
failed. Times depend on the machine's load, which is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "solutions"))

GOAL = 1.5


def load() -> str:
    """The load average, as ``uptime`` prints it."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_project(root: Path, lines: int) -> Path:
    """Processed data, schema and an inference log of ``lines`` predictions under ``root``."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlpipe import data, serve, train, validate
    from mlpipe.config import PrepareParams

    processed = root / "data" / "processed" / "iris.csv"
    data.prepare(data.write_raw(root / "data" / "raw" / "iris.csv"), processed, PrepareParams())
    df = data.read_processed(processed)
    validate.write_schema(df, root / "data" / "schema.json")
    X = df[train.FEATURES].to_numpy()
    model = LogisticRegression(max_iter=500).fit(X, df["species"])
    rng = np.random.default_rng(0)
    rows = (X[rng.integers(0, len(X), lines)] + rng.normal(0, 0.03, (lines, X.shape[1]))).round(3)
    labels = [str(label) for label in model.predict(rows)]
    features = tuple((f, "double") for f in train.FEATURES)
    ref = serve.ModelRef("iris-classifier", "champion", "1", None, "u", "u", features)
    log = serve.InferenceLog(root / "logs" / "inference.jsonl")
    for start in range(0, lines, 100):
        batch = [
            dict(zip(train.FEATURES, r, strict=True)) for r in rows[start : start + 100].tolist()
        ]
        records = serve.log_records(ref, uuid.uuid4().hex, batch, labels[start : start + 100], 1.0)
        log.write(records)
    log.close()
    return log.path


def plain_run(window, reference, features, params):
    """Evidently's ``Report.run`` of the monitor's metrics on two frames in memory."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=features, categorical_columns=["prediction"])
    columns = [*features, "prediction"]
    report = Report(
        [
            DataDriftPreset(
                columns=features,
                num_method="ks",
                threshold=params.drift_threshold,
                drift_share=params.max_drift_share,
            ),
            ValueDrift(column="prediction", method="chisquare", threshold=params.drift_threshold),
        ]
    )
    return report.run(
        Dataset.from_pandas(window[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="predictions in the log")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds")
    args = parser.parse_args(argv)

    from mlpipe import monitor, validate
    from mlpipe.config import MonitorParams

    print(f"load average before: {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        root = Path(tmp)
        log = write_project(root, args.lines)
        size = log.stat().st_size / 1e6
        print(f"inference log: {args.lines:,} lines, {size:.1f} MB")
        schema_path = root / "data" / "schema.json"
        processed = root / "data" / "processed" / "iris.csv"
        schema = validate.read_schema(schema_path)
        features = monitor.schema_features(schema)
        params = MonitorParams()
        reference = monitor.read_reference(processed, schema, schema_path)
        seconds, _ = timed(lambda: __import__("evidently"))
        print(f"evidently imported in {seconds:.1f} s")
        window = monitor.read_log(log, features).frame
        plain_run(window.head(1000), reference, features, params)  # warm-up
        reads, plains, monitors = [], [], []
        for i in range(args.rounds):
            reads.append(timed(monitor.read_log, log, features)[0])
            plains.append(timed(plain_run, window, reference, features, params)[0])
            out = root / "reports" / f"round{i}"
            monitors.append(
                timed(monitor.monitor, log, processed, schema_path, out, params, last=args.lines)[0]
            )
            print(
                f"  round {i + 1}: read {reads[-1]:.2f} s, plain Report.run {plains[-1]:.2f} s, "
                f"mlpipe monitor {monitors[-1]:.2f} s"
            )
        read, plain, whole = (statistics.median(x) for x in (reads, plains, monitors))
        ratio = statistics.median(m / p for m, p in zip(monitors, plains, strict=True))
        best = min(monitors) / min(plains)
        verdict = "met" if ratio <= GOAL else "NOT met"
        print(f"median: read {read:.2f} s, plain {plain:.2f} s, monitor {whole:.2f} s")
        print(
            f"ratio monitor / plain Report.run: {ratio:.2f}, median of the rounds "
            f"(goal at most {GOAL}: {verdict}); of the best times: {best:.2f}"
        )
        print(f"reading the log: {read / whole:.0%} of the monitor's time")
        env = {**os.environ, "PYTHONPATH": str(REPO / "solutions")}
        cmd = [sys.executable, "-m", "mlpipe", "monitor", "--last", str(args.lines)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        print(
            f"python -m mlpipe monitor (a fresh process, Evidently's import included): {wall:.1f} s"
        )
    print(f"load average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
