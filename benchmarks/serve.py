"""Benchmark: one registered model served by ``mlpipe.serve`` and by ``mlflow models serve``.

In a temporary folder the Iris model is trained with week 1's functions, logged
with ``mlpipe.track`` to an SQLite store and registered as ``iris-classifier``
with the alias ``champion``. Then, on loopback and with one worker each:

1. ``uvicorn mlpipe.serve:create_app --factory`` (the course's app);
2. ``mlflow models serve -m models:/iris-classifier@champion --env-manager local``;
3. ``uvicorn bare_app:app`` (``benchmarks/bare_app.py``): the same framework and
   server with no model, no validation and no log, the physical reference of
   single-row throughput (it takes no batch and predicts nothing).

The same wrk run (same threads, connections and duration, after a warm-up)
hits each server with single-row requests and reports requests per second and
the p50 and p99 latency. A 1,000-row batch is timed on both: the median round
trip, and for the app its server time (read from its Prometheus request-duration
histogram around each request) and its handler time (the inference log's
``latency_ms``). The in-process predict of one row is the floor: in onnxruntime
(what the app runs after its parity check) and in scikit-learn, as a NumPy row
(the app's fallback) and as a DataFrame (MLflow's pyfunc). Both servers must answer a few known rows
correctly before anything is timed.

    .venv/bin/python benchmarks/serve.py                 # -t1 -c8 -d10s
    .venv/bin/python benchmarks/serve.py --rounds 3      # alternate, keep the median
    make bench-serve                                     # installs wrk first

Goals: at least 4x the requests per second of ``mlflow models serve``, and at
least 80 % of the bare uvicorn endpoint's; p99 under 20 ms at that load; a
1,000-row batch under 50 ms (server time) and a round trip no slower than
mlflow's. A
missed goal is a measurement, not a failure: the script exits 0 unless
something failed to run. It needs wrk (``sudo apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.config import NO_TELEMETRY

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "solutions"))  # the reference package, as the tests use it

BIN = Path(sys.executable).parent
NAME = "iris-classifier"
ALIAS = "champion"
#: Rows checked on both servers before timing: one of each species.
CHECK_ROWS = (0, 50, 100)
#: The row every wrk request sends (a virginica).
LOAD_ROW = 100
BATCH_ROWS = 1000
GOAL_SPEEDUP = 4.0
GOAL_OF_BARE = 0.80
BARE = "bare uvicorn (no model)"
GOAL_P99_MS = 20.0
GOAL_BATCH_MS = 50.0
#: The app's Prometheus histogram of request durations (see ``mlpipe.serve.Metrics``).
DURATION = "mlpipe_http_request_duration_seconds"


@dataclass(frozen=True)
class Load:
    """What one wrk run measured."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: str


@dataclass(frozen=True)
class Target:
    """One server: how to reach it and how it wants its rows."""

    label: str
    port: int
    ready_path: str
    one_path: str
    batch_path: str
    metrics_path: str | None = None

    def one_body(self, row: dict[str, float]) -> bytes:
        raise NotImplementedError

    def batch_body(self, rows: list[dict[str, float]]) -> bytes:
        raise NotImplementedError


class AppTarget(Target):
    """``mlpipe.serve``: one row as a JSON object, a batch as ``{"rows": [...]}``."""

    def one_body(self, row: dict[str, float]) -> bytes:
        return json.dumps(row).encode()

    def batch_body(self, rows: list[dict[str, float]]) -> bytes:
        return json.dumps({"rows": rows}).encode()


class MlflowTarget(Target):
    """``mlflow models serve``: ``{"dataframe_split": ...}`` on ``/invocations``."""

    def one_body(self, row: dict[str, float]) -> bytes:
        return self.batch_body([row])

    def batch_body(self, rows: list[dict[str, float]]) -> bytes:
        columns = list(rows[0])
        data = [[row[c] for c in columns] for row in rows]
        return json.dumps({"dataframe_split": {"columns": columns, "data": data}}).encode()


def machine() -> str:
    """The CPU model, cores, OS and Python, in one line."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def versions() -> str:
    """The versions of what is measured, in one line."""
    from importlib.metadata import version

    packages = ("mlflow", "fastapi", "uvicorn", "pydantic", "scikit-learn", "numpy")
    wrk_line = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    wrk_version = wrk_line.split()[1] if wrk_line.startswith("wrk ") else "?"
    return ", ".join([*(f"{p} {version(p)}" for p in packages), f"wrk {wrk_version}"])


def server_env(tmp: Path, tracking_uri: str) -> dict[str, str]:
    """The environment both servers run in: telemetry off, the reference package first."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env['PATH']}",
        PYTHONPATH=str(REPO / "solutions"),
        MLPIPE_HOME=str(tmp),
        MLFLOW_TRACKING_URI=tracking_uri,
        MLPIPE_SERVE_MODEL_NAME=NAME,
        MLPIPE_SERVE_MODEL_ALIAS=ALIAS,
        MLPIPE_SERVE_INFERENCE_LOG=str(tmp / "inference.jsonl"),
        **NO_TELEMETRY,
    )
    return env


def register_model(tmp: Path) -> tuple[str, Any]:
    """Train with week 1's functions, log with ``mlpipe.track``, register as champion.

    Returns:
        The tracking URI and the fitted scikit-learn model.
    """
    os.environ.update(NO_TELEMETRY, MLPIPE_HOME=str(tmp))
    import mlflow

    from mlpipe import track, train
    from mlpipe.config import TrackParams, TrainParams

    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    params = TrainParams()
    track.connect(TrackParams(tracking_uri=uri))
    df = train.load_data()
    X_train, X_test, y_train, y_test = train.split_data(df, params.test_size, params.seed)
    model = train.build_pipeline(params).fit(X_train, y_train)
    metrics = train.evaluate(model, X_test, y_test)
    tags = {"data_fingerprint": train.fingerprint(df), "git_commit": train.git_commit()}
    with mlflow.start_run(run_name="bench-serve") as run:
        model_uri = track.log_training_run(model, params, metrics, X_test.head(3), tags)
    version = track.register(NAME, model_uri, run.info.run_id, "serving benchmark")
    mlflow.MlflowClient().set_registered_model_alias(NAME, ALIAS, version.version)
    return uri, model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Run a server in its own process group; stop the group on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=env["MLPIPE_HOME"], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 30.0
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a fresh connection: status, lower-cased headers, body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_ready(target: Target, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> float:
    """Poll the readiness path until it answers 200.

    Returns:
        Seconds from the call (just after the start) until ready.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            sys.exit(f"{target.label} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if request(target.port, "GET", target.ready_path, timeout=2)[0] == 200:
                return time.perf_counter() - start
        time.sleep(0.25)
    sys.exit(f"{target.label} was not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def labels_of(payload: Any) -> list[str]:
    """The predicted labels in either server's answer, as strings."""
    if isinstance(payload, dict):
        for key in ("predictions", "prediction"):
            if key in payload:
                return labels_of(payload[key])
        raise ValueError(f"no prediction in {payload!r}")
    if isinstance(payload, list):
        return [label for item in payload for label in labels_of(item)]
    return [str(payload)]


def check_predictions(target: Target, rows: list[dict[str, float]], expected: list[str]) -> None:
    """Exit unless the server predicts ``expected`` for ``rows``, one by one and as a batch."""
    got = []
    for row in rows:
        status, _, data = request(target.port, "POST", target.one_path, target.one_body(row))
        if status != 200:
            sys.exit(f"{target.label} {target.one_path} answered {status}: {data[:500]!r}")
        got += labels_of(json.loads(data))
    status, _, data = request(target.port, "POST", target.batch_path, target.batch_body(rows))
    if status != 200:
        sys.exit(f"{target.label} {target.batch_path} answered {status}: {data[:500]!r}")
    batch = labels_of(json.loads(data))
    if got != expected or batch != expected:
        sys.exit(f"{target.label} predicted {got} (batch {batch}), expected {expected}.")


def write_lua(path: Path, body: bytes) -> Path:
    """A wrk script that POSTs ``body`` as JSON."""
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", value).groups()
    return float(number) * _UNITS_MS[unit]


def parse_wrk(text: str) -> Load:
    """Requests/sec, the 50% and 99% latency, and the errors of ``wrk --latency`` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    total = re.search(r"^\s+(\d+) requests in", text, re.M)
    if not (rps and p50 and p99 and total):
        raise ValueError(f"unexpected wrk output:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:\s+(.+)", text)
    return Load(
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1).strip() if errors else "",
    )


def wrk(target: Target, lua: Path, args: argparse.Namespace, seconds: float) -> Load:
    """Run wrk against ``target``'s single-row path for ``seconds``."""
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s", "--latency"]
    cmd += ["--timeout", "10s", "-s", str(lua), f"http://127.0.0.1:{target.port}{target.one_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"wrk failed ({proc.returncode}): {proc.stderr.strip()}")
    load = parse_wrk(proc.stdout)
    if load.non_2xx or load.socket_errors:
        sys.exit(
            f"{target.label}: {load.non_2xx} non-2xx answers, socket errors: "
            f"{load.socket_errors or 'none'}."
        )
    return load


def histogram_total(target: Target) -> tuple[float, float] | None:
    """Sum (s) and count of the app's request-duration histogram for the batch path.

    Returns:
        ``None`` when the server has no Prometheus metrics.
    """
    if target.metrics_path is None:
        return None
    status, _, data = request(target.port, "GET", target.metrics_path)
    if status != 200:
        return None
    found = {}
    pattern = rf'^{DURATION}_(sum|count)\{{endpoint="{re.escape(target.batch_path)}"\}} (\S+)$'
    for match in re.finditer(pattern, data.decode(), re.M):
        found[match.group(1)] = float(match.group(2))
    return (found["sum"], found["count"]) if len(found) == 2 else None


def time_batch(target: Target, body: bytes, repeats: int) -> tuple[float, float | None]:
    """Time a batch on one kept-alive connection, after two warm-up requests.

    Returns:
        The median round trip and the median server time (from the app's
        request-duration histogram, read before and after each request; ``None``
        without one), in ms.
    """
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
    trips, server = [], []
    try:
        for i in range(repeats + 2):
            before = histogram_total(target)
            start = time.perf_counter()
            conn.request("POST", target.batch_path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            elapsed = (time.perf_counter() - start) * 1e3
            if resp.status != 200:
                sys.exit(f"{target.label} batch answered {resp.status}.")
            after = histogram_total(target)
            if i < 2:
                continue
            trips.append(elapsed)
            if before and after and after[1] - before[1] == 1:
                server.append((after[0] - before[0]) * 1e3)
    finally:
        conn.close()
    return statistics.median(trips), statistics.median(server) if server else None


def handler_ms(log: Path, rows: int) -> float | None:
    """Median ``latency_ms`` of the inference log's requests of ``rows`` rows (``None`` if none).

    The app writes one line per prediction, all lines of a request sharing its
    ``request_id`` and ``latency_ms`` (the handler's time, after the body was parsed).
    """
    if not log.exists():
        return None
    counts: dict[str, int] = {}
    latency: dict[str, float] = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        counts[record["request_id"]] = counts.get(record["request_id"], 0) + 1
        latency[record["request_id"]] = float(record["latency_ms"])
    values = [latency[rid] for rid, count in counts.items() if count == rows]
    return statistics.median(values) if values else None


def _median_ms(call: Callable[[], Any], calls: int) -> float:
    call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def floor_ms(model: Any, row: dict[str, float], calls: int) -> tuple[float, float, float]:
    """Median in-process predict time of one row, in ms.

    Returns:
        The time of ``model.predict`` for a NumPy row (the features in order,
        ``mlpipe.serve``'s fallback) and for a one-row DataFrame (as MLflow's
        pyfunc does), and of the model's ONNX conversion in onnxruntime (what
        ``mlpipe.serve`` runs once its parity check passed).
    """
    import numpy as np
    import pandas as pd

    from mlpipe import export, serve

    frame = pd.DataFrame([row])
    matrix = np.array([list(row.values())])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no feature names: expected
        array = _median_ms(lambda: model.predict(matrix), calls)
    onnx = serve.OnnxPredictor(export.to_onnx(model, matrix.shape[1]))
    return (
        array,
        _median_ms(lambda: model.predict(frame), calls),
        _median_ms(lambda: onnx.predict(matrix), calls),
    )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(
    args: argparse.Namespace,
    loads: dict[str, Load],
    batches: dict[str, tuple[float, float | None]],
    handler: float | None,
    floor: tuple[float, float, float],
    ready: dict[str, float],
) -> None:
    """Print the table, the goals and the machine."""
    app, ref = loads["mlpipe.serve"], loads["mlflow models serve"]
    load = os.getloadavg()
    print(f"machine: {machine()}")
    print(f"versions: {versions()}")
    print(f"load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency "
        f"(after a {args.warmup:g} s warm-up), one-row POSTs on loopback, one worker each"
    )
    if args.rounds > 1:
        print(f"{args.rounds} rounds, alternating servers; each row is its round of median req/s")
    print()
    head = f"{'':21}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
    print(f"{head}{'batch round trip':>18}{'server':>8}{'ready s':>9}")
    for label, one in loads.items():
        trip, own = batches.get(label, (None, None))
        own_txt = f"{own:8.1f}" if own is not None else f"{'-':>8}"
        trip_txt = f"{trip:15.1f} ms" if trip is not None else f"{'-':>15}   "
        print(
            f"{label:21}{one.rps:8.0f}{one.p50_ms:8.2f}{one.p99_ms:8.2f}"
            f"{trip_txt}{own_txt}{ready[label]:9.1f}"
        )
    if handler is not None:
        print(
            f"mlpipe.serve handler time of the batch (inference log latency_ms): {handler:.1f} ms"
        )
    print(f"floor, in-process predict of one row: {floor[2]:.3f} ms in onnxruntime (the app's)")
    print(f"{'':37}{floor[0]:.3f} ms scikit-learn, NumPy row (the app's fallback)")
    print(f"{'':37}{floor[1]:.3f} ms scikit-learn, DataFrame (pyfunc's)")
    print()
    speedup = app.rps / ref.rps
    of_bare = app.rps / loads[BARE].rps
    ref_trip = batches["mlflow models serve"][0]
    trip, own = batches["mlpipe.serve"]
    batch, kind = (own, "server time") if own is not None else (trip, "round trip")
    goals = [
        ("throughput vs mlflow models serve", f"{speedup:.2f}x", f">= {GOAL_SPEEDUP:g}x",
         speedup >= GOAL_SPEEDUP),
        ("throughput vs bare uvicorn", f"{of_bare:.0%}", f">= {GOAL_OF_BARE:.0%}",
         of_bare >= GOAL_OF_BARE),
        (f"p99 at -c{args.connections}", f"{app.p99_ms:.2f} ms", f"< {GOAL_P99_MS:g} ms",
         app.p99_ms < GOAL_P99_MS),
        (f"{BATCH_ROWS}-row batch ({kind})", f"{batch:.1f} ms", f"< {GOAL_BATCH_MS:g} ms",
         batch < GOAL_BATCH_MS),
        (f"{BATCH_ROWS}-row round trip vs mlflow", f"{trip:.1f} ms", f"<= {ref_trip:.1f} ms",
         trip <= ref_trip),
    ]  # fmt: skip
    for name, value, goal, ok in goals:
        print(f"{name + ':':36}{value:>10}  (goal {goal:>8})  {_verdict(ok)}")
    print(
        f"p50 / floor: {app.p50_ms / floor[2]:.0f}x for mlpipe.serve (onnxruntime), "
        f"{ref.p50_ms / floor[1]:.0f}x for mlflow (DataFrame)"
    )


def commands(app: Target, ref: Target, bare: Target) -> dict[Target, list[str]]:
    """How each server starts: one worker, loopback, the champion from the registry.

    The app runs as ``python -m mlpipe serve`` runs it, without uvicorn's access log
    (the inference log and the metrics cover each request), and so does the bare app,
    which stays the floor; uvicorn picks uvloop and httptools (in the lock) for both.
    ``mlflow models serve`` keeps its own defaults.
    """
    return {
        bare: [
            str(BIN / "python"), "-m", "uvicorn", "bare_app:app", "--app-dir",
            str(REPO / "benchmarks"), "--host", "127.0.0.1", "--port", str(bare.port),
            "--workers", "1", "--no-access-log",
        ],
        app: [
            str(BIN / "python"), "-m", "uvicorn", "mlpipe.serve:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(app.port), "--workers", "1", "--no-access-log",
        ],
        ref: [
            str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{NAME}@{ALIAS}",
            "--env-manager", "local", "--host", "127.0.0.1", "--port", str(ref.port),
            "--workers", "1",
        ],
    }  # fmt: skip


def start_servers(
    stack: contextlib.ExitStack, tmp: Path, env: dict[str, str]
) -> tuple[list[Target], dict[str, float]]:
    """Start the servers one after the other, each once the previous one is ready.

    Returns:
        The targets, and the seconds each took from its start to ready.
    """
    app = AppTarget("mlpipe.serve", free_port(), "/ready", "/predict", "/predict/batch", "/metrics")
    ref = MlflowTarget("mlflow models serve", free_port(), "/ping", "/invocations", "/invocations")
    bare = AppTarget(BARE, free_port(), "/ready", "/predict", "/predict/batch")
    ready = {}
    for target, cmd in commands(app, ref, bare).items():
        log = tmp / f"server-{target.port}.log"
        ready[target.label] = wait_ready(target, stack.enter_context(running(cmd, env, log)), log)
    return [app, ref, bare], ready


def sample_rows() -> tuple[list[dict[str, float]], dict[str, float], list[dict[str, float]]]:
    """The rows to check, the row wrk sends, and the 1,000-row batch (Iris rows, seeded)."""
    from mlpipe import train

    features = train.load_data()[train.FEATURES]
    check = [features.iloc[i].to_dict() for i in CHECK_ROWS]
    batch = features.sample(BATCH_ROWS, replace=True, random_state=0).to_dict(orient="records")
    return check, features.iloc[LOAD_ROW].to_dict(), batch


def check(targets: list[Target], model: Any) -> None:
    """Exit unless every server predicts what the in-process model predicts."""
    import pandas as pd

    rows = sample_rows()[0]
    expected = [str(label) for label in model.predict(pd.DataFrame(rows))]
    for target in targets:
        check_predictions(target, rows, expected)


def measure_load(targets: list[Target], tmp: Path, args: argparse.Namespace) -> dict[str, Load]:
    """wrk on each server in turn, ``--rounds`` times; per server the round of median req/s."""
    one = sample_rows()[1]
    scripts = {t: write_lua(tmp / f"{t.port}.lua", t.one_body(one)) for t in targets}
    rounds: dict[str, list[Load]] = {t.label: [] for t in targets}
    for _ in range(args.rounds):
        for target in targets:
            wrk(target, scripts[target], args, args.warmup)
            rounds[target.label].append(wrk(target, scripts[target], args, args.duration))
    return {
        label: sorted(runs, key=lambda r: r.rps)[len(runs) // 2] for label, runs in rounds.items()
    }


def wrk_arguments(parser: argparse.ArgumentParser, rounds: int, per: str) -> None:
    """The wrk options of the serving benchmarks (``--rounds``: runs per ``per``)."""
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default: 1)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default: 8)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per run (default: 10)")
    parser.add_argument(
        "--rounds", type=int, default=rounds, help=f"wrk runs per {per} (default: {rounds})"
    )
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds (default: 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    wrk_arguments(parser, rounds=1, per="server")
    parser.add_argument("--repeats", type=int, default=20, help="timed batches (default: 20)")
    parser.add_argument("--calls", type=int, default=1000, help="floor predicts (default: 1000)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run `sudo apt-get install wrk` (or `make bench-serve`).")

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        uri, model = register_model(tmp)
        targets, ready = start_servers(stack, tmp, server_env(tmp, uri))
        models = [t for t in targets if t.label != BARE]
        check(models, model)
        loads = measure_load(targets, tmp, args)
        batch = sample_rows()[2]
        batches = {t.label: time_batch(t, t.batch_body(batch), args.repeats) for t in models}
        handler = handler_ms(tmp / "inference.jsonl", BATCH_ROWS)
        floor = floor_ms(model, sample_rows()[1], args.calls)
    report(args, loads, batches, handler, floor, ready)


if __name__ == "__main__":
    main()
