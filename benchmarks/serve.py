"""Benchmark: one registered model served by ``mlpipe.serve`` and by ``mlflow models serve``.

In a temporary folder the Iris model is trained with week 1's functions, logged
with ``mlpipe.track`` to an SQLite store and registered as ``iris-classifier``
with the alias ``champion``. Then, on loopback and with one worker each:

1. ``uvicorn mlpipe.serve:create_app --factory`` (the course's app);
2. ``mlflow models serve -m models:/iris-classifier@champion --env-manager local``.

The same wrk run (same threads, connections and duration, after a warm-up)
hits each server with single-row requests and reports requests per second and
the p50 and p99 latency. A 1,000-row batch is timed on both (median round trip,
and the app's own server time when it reports one), and the in-process
``model.predict`` of one row is the floor. Both servers answer a few known rows
correctly before anything is timed.

    .venv/bin/python benchmarks/serve.py                 # -t1 -c8 -d10s
    .venv/bin/python benchmarks/serve.py --duration 30   # a steadier figure
    make bench-serve                                     # installs wrk first

Goals: at least 4x the requests per second of ``mlflow models serve``; p99
under 20 ms at that load; a 1,000-row batch under 50 ms (server time). A
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
GOAL_P99_MS = 20.0
GOAL_BATCH_MS = 50.0
#: Response headers that may carry the app's own time for a request, in ms or s.
TIME_HEADERS = ("x-process-time-ms", "x-process-time", "x-response-time", "server-timing")


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
        DVC_NO_ANALYTICS="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
    )
    return env


def register_model(tmp: Path) -> tuple[str, Any]:
    """Train with week 1's functions, log with ``mlpipe.track``, register as champion.

    Returns:
        The tracking URI and the fitted scikit-learn model.
    """
    os.environ.update(MLPIPE_HOME=str(tmp), MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
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
        Seconds from now until ready.
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
        for key in ("predictions", "prediction", "label", "species", "results", "rows"):
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


def server_ms(headers: dict[str, str]) -> float | None:
    """The app's own time for a request, from a timing header, in ms (``None`` if absent)."""
    for name in TIME_HEADERS:
        if name in headers:
            match = re.search(r"(?:dur=)?([\d.]+)", headers[name])
            if match:
                value = float(match.group(1))
                return value if name.endswith("-ms") or "dur=" in headers[name] else value * 1e3
    return None


def time_batch(target: Target, body: bytes, repeats: int) -> tuple[float, float | None]:
    """Median round trip (ms) of a batch on one kept-alive connection, and median server time."""
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
    trips, server = [], []
    try:
        for i in range(repeats + 2):  # two warm-up requests
            start = time.perf_counter()
            conn.request("POST", target.batch_path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            elapsed = (time.perf_counter() - start) * 1e3
            if resp.status != 200:
                sys.exit(f"{target.label} batch answered {resp.status}.")
            if i >= 2:
                trips.append(elapsed)
                own = server_ms({k.lower(): v for k, v in resp.getheaders()})
                if own is not None:
                    server.append(own)
    finally:
        conn.close()
    return statistics.median(trips), statistics.median(server) if server else None


def log_latency_ms(log: Path, rows: int) -> float | None:
    """Median ``latency_ms`` the app's inference log recorded for requests of ``rows`` rows."""
    if not log.exists():
        return None
    values = []
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            record = json.loads(line)
            count = record.get("n_rows", record.get("rows"))
            if isinstance(count, list):
                count = len(count)
            if count == rows and "latency_ms" in record:
                values.append(float(record["latency_ms"]))
    return statistics.median(values) if values else None


def floor_ms(model: Any, row: dict[str, float], calls: int) -> float:
    """Median in-process ``model.predict`` time of one row (a one-row DataFrame), in ms."""
    import pandas as pd

    frame = pd.DataFrame([row])
    model.predict(frame)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        model.predict(frame)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(args, loads, batches, floor, ready) -> None:
    """Print the table, the goals and the machine."""
    app, ref = loads["mlpipe.serve"], loads["mlflow models serve"]
    load1 = os.getloadavg()
    print(f"machine: {machine()}")
    print(f"load average after the run: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency "
        f"(after {args.warmup:g} s warm-up), single-row POSTs on loopback, one worker each"
    )
    print()
    print(f"{'':22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'batch rt ms':>13}{'ready s':>9}")
    for label, load in loads.items():
        trip, _ = batches[label]
        print(
            f"{label:22}{load.rps:10.0f}{load.p50_ms:9.2f}{load.p99_ms:9.2f}"
            f"{trip:13.1f}{ready[label]:9.1f}"
        )
    _, own = batches["mlpipe.serve"]
    own_txt = f"{own:.1f} ms" if own is not None else "not reported"
    print(f"mlpipe.serve server time of a {BATCH_ROWS}-row batch: {own_txt}")
    print(f"floor: in-process model.predict of one row: {floor:.3f} ms (median of {args.calls})")
    print()
    speedup = app.rps / ref.rps
    batch = own if own is not None else batches["mlpipe.serve"][0]
    batch_kind = "server time" if own is not None else "round trip"
    print(
        f"throughput vs mlflow models serve: {speedup:5.2f}x  (goal >= {GOAL_SPEEDUP:g}x)  "
        f"{_verdict(speedup >= GOAL_SPEEDUP)}"
    )
    print(
        f"p99 at -c{args.connections}:                    {app.p99_ms:5.2f} ms "
        f"(goal < {GOAL_P99_MS:g} ms)  {_verdict(app.p99_ms < GOAL_P99_MS)}"
    )
    print(
        f"{BATCH_ROWS}-row batch ({batch_kind}):        {batch:5.1f} ms "
        f"(goal < {GOAL_BATCH_MS:g} ms)  {_verdict(batch < GOAL_BATCH_MS)}"
    )
    print(
        f"p50 over the floor: {app.p50_ms / floor:.0f}x for mlpipe.serve, "
        f"{ref.p50_ms / floor:.0f}x for mlflow models serve"
    )


def commands(app: Target, ref: Target) -> dict[Target, list[str]]:
    """How each server starts: one worker, loopback, the champion from the registry."""
    return {
        app: [
            str(BIN / "python"), "-m", "uvicorn", "mlpipe.serve:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(app.port), "--workers", "1",
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
    """Start both servers together and wait until each is ready.

    Returns:
        The targets, and the seconds each took to become ready.
    """
    app = AppTarget("mlpipe.serve", free_port(), "/ready", "/predict", "/predict/batch")
    ref = MlflowTarget("mlflow models serve", free_port(), "/ping", "/invocations", "/invocations")
    started = {}
    for target, cmd in commands(app, ref).items():
        log = tmp / f"server-{target.port}.log"
        started[target] = (stack.enter_context(running(cmd, env, log)), log)
    ready = {t.label: wait_ready(t, proc, log) for t, (proc, log) in started.items()}
    return [app, ref], ready


def sample_rows() -> tuple[list[dict[str, float]], dict[str, float], list[dict[str, float]]]:
    """The rows to check, the row wrk sends, and the 1,000-row batch (Iris rows, seeded)."""
    from mlpipe import train

    features = train.load_data()[train.FEATURES]
    check = [features.iloc[i].to_dict() for i in CHECK_ROWS]
    batch = features.sample(BATCH_ROWS, replace=True, random_state=0).to_dict(orient="records")
    return check, features.iloc[LOAD_ROW].to_dict(), batch


def measure(
    target: Target, model: Any, tmp: Path, args: argparse.Namespace
) -> tuple[Load, tuple[float, float | None]]:
    """Check the answers, then time single rows under wrk and the 1,000-row batch."""
    import pandas as pd

    check, one, batch = sample_rows()
    expected = [str(label) for label in model.predict(pd.DataFrame(check))]
    check_predictions(target, check, expected)
    lua = write_lua(tmp / f"{target.port}.lua", target.one_body(one))
    wrk(target, lua, args, args.warmup)
    load = wrk(target, lua, args, args.duration)
    return load, time_batch(target, target.batch_body(batch), args.repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default: 1)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default: 8)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per run (default: 10)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds (default: 2)")
    parser.add_argument("--repeats", type=int, default=20, help="timed batches (default: 20)")
    parser.add_argument("--calls", type=int, default=1000, help="floor predicts (default: 1000)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run `sudo apt-get install wrk` (or `make bench-serve`).")

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        uri, model = register_model(tmp)
        targets, ready = start_servers(stack, tmp, server_env(tmp, uri))
        loads, batches = {}, {}
        for target in targets:
            loads[target.label], batches[target.label] = measure(target, model, tmp, args)
        trip, own = batches[targets[0].label]
        if own is None:
            own = log_latency_ms(tmp / "inference.jsonl", BATCH_ROWS)
        batches[targets[0].label] = (trip, own)
        floor = floor_ms(model, sample_rows()[1], args.calls)
    report(args, loads, batches, floor, ready)


if __name__ == "__main__":
    main()
