"""Tests of week 7's canary rollout (``mlpipe.rollout``, ``python -m mlpipe rollout``).

Fast tier: the decision on known counts, the parsing of the real app's metrics, the
sticky hash, the params, and the router in-process (``httpx.ASGITransport``) in front
of two small fake ASGI backends. Slow tier: the router under uvicorn in front of
real ``mlpipe.serve`` backends serving models from an MLflow registry.
"""

from __future__ import annotations

import asyncio
import collections
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from mlpipe import rollout
from mlpipe.__main__ import main
from mlpipe.config import ParamsError, RolloutParams, load_params

POLICY = RolloutParams()


def counts(ok=200, errors=0, slow=False, labels=(34, 33, 33)) -> rollout.Counts:
    """Counts of a backend that answered ``ok`` 200s and ``errors`` 500s."""
    total = ok + errors
    if slow:  # everything between 250 and 500 ms
        buckets = {0.005: 0, 0.01: 0, 0.25: 0, 0.5: total, math.inf: total}
    else:  # 90 % under 5 ms, the rest under 10 ms
        buckets = {0.005: 0.9 * total, 0.01: total, 0.25: total, 0.5: total, math.inf: total}
    requests = {"200": ok, "500": errors} if errors else {"200": ok}
    return rollout.Counts(
        requests, buckets, dict(zip(("setosa", "versicolor", "virginica"), labels, strict=True))
    )


STABLE = counts(ok=900, labels=(300, 300, 300))


# --- the decision ------------------------------------------------------------------------------


def test_a_good_canary_passes_every_check():
    decision = rollout.decide(counts(), STABLE, POLICY)
    assert decision.allowed, decision.reasons
    assert [c.name for c in decision.checks] == [
        "traffic", "error_rate", "p99_latency", "predictions",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("canary", "failed", "words"),
    [
        (counts(ok=150, errors=50), "error_rate", ["25.0%", "1.0", "max_error_rate_increase"]),
        (counts(slow=True), "p99_latency", ["497.5 ms", "9.5 ms", "59.5 ms", "max_p99_ratio"]),
        (counts(labels=(100, 0, 100)), "predictions", ["0.333", "0.1", "canary: setosa 50%"]),
    ],
)
def test_a_bad_canary_is_blocked_with_a_sentence_naming_the_metric_value_and_limit(
    canary, failed, words
):
    decision = rollout.decide(canary, STABLE, POLICY)
    assert not decision.allowed
    [reason] = decision.reasons
    assert reason.startswith(f"{failed}: the ") and reason.endswith(").")
    for word in words:
        assert word in reason, reason


def test_too_little_traffic_is_not_judged_at_all():
    decision = rollout.decide(counts(ok=5, errors=5), STABLE, POLICY)
    assert [c.name for c in decision.checks] == ["traffic"]
    assert decision.reasons == [
        "traffic: the canary answered 10 predictions requests and the stable 900, fewer than "
        "the 20 each needs (rollout.min_requests)."
    ]


def test_the_p99_is_interpolated_in_its_bucket_as_prometheus_does():
    hist = rollout.Counts({"200": 100}, {0.001: 0, 0.0025: 50, 0.005: 100, math.inf: 100})
    assert rollout.quantile_ms(hist, 0.5) == pytest.approx(2.5)
    assert rollout.quantile_ms(hist, 0.99) == pytest.approx(4.95)
    beyond = rollout.Counts({"200": 10}, {0.001: 0, 0.5: 5, math.inf: 10})
    assert rollout.quantile_ms(beyond, 0.99) == pytest.approx(500.0)  # the largest finite bound
    assert rollout.quantile_ms(rollout.Counts()) == 0.0


def test_the_distance_is_total_variation_over_every_class():
    assert rollout.distribution_distance({"a": 1, "b": 1}, {"a": 5, "b": 5}) == 0.0
    assert rollout.distribution_distance({"a": 1}, {"b": 3}) == 1.0
    assert rollout.distribution_distance({"a": 3, "b": 1}, {"a": 1, "b": 1}) == pytest.approx(0.25)
    assert rollout.distribution_distance({}, {"a": 1}) == 0.0


def test_a_delta_subtracts_and_a_restart_counts_from_zero():
    before = rollout.Counts({"200": 10}, {0.01: 10, math.inf: 10}, {"setosa": 10})
    after = rollout.Counts({"200": 15, "500": 2}, {0.01: 16, math.inf: 17}, {"setosa": 15})
    assert rollout.delta(before, after) == rollout.Counts(
        {"200": 5, "500": 2}, {0.01: 6, math.inf: 7}, {"setosa": 5}
    )
    restarted = rollout.Counts({"200": 3}, {0.01: 3, math.inf: 3}, {"setosa": 3})
    assert rollout.delta(before, restarted) == restarted
    assert rollout.error_rate(rollout.delta(before, after)) == pytest.approx(2 / 7)


def test_the_counts_are_read_from_the_real_apps_metrics():
    from mlpipe import serve

    ref = serve.ModelRef("m", "champion", "3", None, "unused", "unused", ())
    metrics = serve.Metrics(ref)
    for code, seconds in [(200, 0.002), (200, 0.004), (500, 0.3), (422, 0.001)]:
        metrics.observe("POST", "/predict", code, seconds)
    metrics.observe("POST", "/predict/batch", 200, 0.008)
    metrics.observe("GET", "/metrics", 200, 0.001)  # not a prediction: left out
    metrics.count_predictions(["setosa", "setosa", "virginica"])
    found = rollout.parse_metrics(metrics.exposition().decode())
    assert found.requests == {"200": 3, "500": 1, "422": 1}
    assert found.predictions == {"setosa": 2, "virginica": 1}
    assert found.buckets[0.0025] == 2 and found.buckets[0.01] == 4 and found.buckets[math.inf] == 5
    assert list(found.buckets) == sorted(found.buckets)


# --- sticky routing ----------------------------------------------------------------------------


def test_a_client_keeps_its_side_and_the_share_follows_the_weight():
    keys = [f"client-{i}" for i in range(4000)]
    assert [rollout.goes_to_canary(k, 30) for k in keys] == [
        rollout.goes_to_canary(k, 30) for k in keys
    ]
    for weight in (0, 10, 50, 100):
        share = sum(rollout.goes_to_canary(k, weight) for k in keys) / len(keys)
        assert abs(share - weight / 100) < 0.03, (weight, share)
    # raising the weight only moves clients to the canary, never back
    at_10 = {k for k in keys if rollout.goes_to_canary(k, 10)}
    at_50 = {k for k in keys if rollout.goes_to_canary(k, 50)}
    assert at_10 < at_50
    # a stable hash: the same bucket in every process (no PYTHONHASHSEED)
    assert rollout.bucket("client-0") == 7559


# --- params ------------------------------------------------------------------------------------


def write_params(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_repository_params_hold_the_default_policy():
    repo = Path(__file__).resolve().parents[2]
    assert load_params(repo / "solutions" / "params.yaml", "rollout", RolloutParams) == POLICY


@pytest.mark.parametrize(
    ("text", "args", "words"),
    [
        ("rollout:\n  max_eror_rate_increase: 0.1\n", [],
         "Unknown key 'rollout.max_eror_rate_increase' (did you mean 'max_error_rate_increase'?)"),
        ("rollout:\n  steps: [50, 10]\n", [], "rollout.steps must increase strictly"),
        ("rollout:\n  max_p99_ratio: fast\n", [], "rollout.max_p99_ratio must be float"),
        ("", ["--steps", "10,half"], "--steps must be whole percentages"),
        ("", ["--steps", "0,100"], "rollout.steps must increase strictly from 1"),
    ],
)  # fmt: skip
def test_a_bad_policy_is_one_sentence_and_exit_2(tmp_path, capsys, text, args, words):
    code = main(["rollout", "--params", str(write_params(tmp_path, text)), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_policy_limit_out_of_range_is_refused():
    with pytest.raises(ParamsError, match="rollout.max_distribution_distance must be between"):
        RolloutParams(max_distribution_distance=1.5)


# --- the router, in-process in front of fake backends -----------------------------------------


def fake_backend(name: str, status: int = 200):
    """An ASGI app answering every request with ``status`` and a body naming it."""

    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(b"content-type", b"application/json"), (b"x-backend", name.encode())]
        payload = f'{{"backend": "{name}", "path": "{scope["path"]}", "got": {len(body)}}}'
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload.encode()})

    return app


class Refused(httpx.AsyncBaseTransport):
    """A backend that is down: every connection is refused."""

    async def handle_async_request(self, request):
        raise httpx.ConnectError("connection refused", request=request)


def routed(weight: float, requests: list[dict], canary=None, stable=None) -> list[httpx.Response]:
    """Send ``requests`` (keyword arguments of ``client.post``) through a router."""

    async def run():
        mounts = {
            "http://stable": stable or httpx.ASGITransport(app=fake_backend("stable")),
            "http://canary": canary or httpx.ASGITransport(app=fake_backend("canary")),
        }
        backends = httpx.AsyncClient(mounts=mounts)
        forwarder = rollout.HttpxForwarder(backends)
        router = rollout.Router("http://stable", "http://canary", weight, forwarder)
        transport = httpx.ASGITransport(app=router)
        async with backends, httpx.AsyncClient(transport=transport, base_url="http://r") as c:
            return [await c.post("/predict?x=1", **kw) for kw in requests]

    return asyncio.run(run())


def test_the_router_splits_by_client_key_and_says_which_side_answered():
    keys = [f"user-{i}" for i in range(200)]
    answers = routed(25, [{"headers": {"X-Client-Id": k}, "content": b"abc"} for k in keys])
    sides = [a.headers["x-rollout-backend"] for a in answers]
    assert sides == ["canary" if rollout.goes_to_canary(k, 25) else "stable" for k in keys]
    assert 30 <= sides.count("canary") <= 70
    assert all(a.json()["backend"] == s for a, s in zip(answers, sides, strict=True))
    assert answers[0].json() == {"backend": sides[0], "path": "/predict", "got": 3}


def test_without_a_client_id_the_address_is_the_key():
    answers = routed(50, [{}] * 20)
    assert len({a.headers["x-rollout-backend"] for a in answers}) == 1


def test_a_backend_error_is_passed_through_as_its_status():
    canary = httpx.ASGITransport(app=fake_backend("canary", status=500))
    answers = routed(100, [{"headers": {"X-Client-Id": "a"}}], canary=canary)
    assert answers[0].status_code == 500 and answers[0].json()["backend"] == "canary"


def test_a_canary_that_is_down_loses_no_request_the_stable_answers():
    answers = routed(100, [{"headers": {"X-Client-Id": str(i)}} for i in range(10)], Refused())
    assert [a.status_code for a in answers] == [200] * 10
    assert {a.headers["x-rollout-backend"] for a in answers} == {"stable"}


def test_the_aiohttp_forwarder_says_when_a_backend_is_unreachable():
    from autograder.testkit import free_port

    async def refused():
        forwarder = rollout.AiohttpForwarder()
        try:
            await forwarder.forward("GET", f"http://127.0.0.1:{free_port()}/ready", [], b"")
        finally:
            await forwarder.aclose()

    with pytest.raises(rollout.Unreachable):
        asyncio.run(refused())


def test_a_router_port_in_use_is_one_sentence_before_any_traffic():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(rollout.RolloutError, match=f"cannot listen on 127.0.0.1:{port}"):
            rollout.rollout("http://127.0.0.1:1", "http://127.0.0.1:2", POLICY, port=port)


def test_with_step_requests_0_a_step_waits_for_outside_traffic():
    router = rollout.Router("http://s", "http://c")
    router.answered.update({("canary", 200): 3})
    policy = RolloutParams(step_requests=0, step_seconds=0.05)
    said = []

    async def step():
        async def outside():  # what the router counts while the step waits
            await asyncio.sleep(0.01)
            router.answered.update({("canary", 200): 2, ("stable", 500): 5})

        await asyncio.gather(
            rollout._traffic(router, "http://unused", policy, said.append), outside()
        )

    asyncio.run(step())
    assert said == [said[0]] and said[0].startswith("  the router answered 7 requests in 0.")
    assert said[0].endswith("(canary 2, stable 5)")


def test_a_stable_that_is_down_is_a_502_naming_it():
    [answer] = routed(0, [{}], stable=Refused())
    assert answer.status_code == 502 and "stable backend cannot be reached" in answer.text


# --- slow tier: real uvicorn, real mlpipe.serve backends, a real registry -------------------------

MODEL = "iris-classifier"
HERE = Path(__file__).resolve().parent


def _registry(home: Path, skewed: bool = False) -> None:
    """champion v1 (C=1) and challenger v2 (C=0.5); with ``skewed``, v3 under ``skewed``.

    The skewed model is a real one trained on wrong labels (every versicolor
    relabelled virginica): it never predicts versicolor.
    """
    from autograder import testkit

    testkit.create_store(home)
    testkit.register_model(home, MODEL, "champion", C=1.0)
    testkit.register_model(home, MODEL, "challenger", C=0.5)
    if skewed:
        frame = testkit.iris_frame()
        frame[testkit.TARGET] = frame[testkit.TARGET].replace("versicolor", "virginica")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(testkit, "iris_frame", lambda: frame.copy())
            testkit.register_model(home, MODEL, "skewed", C=1.0)


def _env(home: Path, **extra: str) -> dict[str, str]:
    from autograder.testkit import pipeline_env, sqlite_uri

    base = {k: v for k, v in os.environ.items() if not k.startswith("MLPIPE_SERVE_")}
    return pipeline_env(
        base,
        MLPIPE_HOME=str(home),
        MLFLOW_TRACKING_URI=sqlite_uri(home),
        PYTHONUNBUFFERED="1",
        **extra,
    )


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    """A registry and four real backends: the stable, an erroring, a slow and a skewed canary."""
    from autograder.testkit import free_port, stop_process, wait_http

    home = tmp_path_factory.mktemp("rollout")
    _registry(home, skewed=True)
    kinds = {
        "stable": {"MLPIPE_SERVE_MODEL_ALIAS": "champion"},
        "erroring": {"MLPIPE_SERVE_MODEL_ALIAS": "challenger", "MLPIPE_FAULT_EVERY": "4"},
        "slow": {"MLPIPE_SERVE_MODEL_ALIAS": "challenger", "MLPIPE_FAULT_DELAY_S": "0.3"},
        "skewed": {"MLPIPE_SERVE_MODEL_ALIAS": "skewed"},
    }
    procs, urls = {}, {}
    try:
        for name, extra in kinds.items():
            port = free_port()
            cmd = [sys.executable, "-m", "uvicorn", "rollout_faults:create_app", "--factory"]
            cmd += ["--app-dir", str(HERE), "--port", str(port), "--no-access-log"]
            extra = {**extra, "MLPIPE_SERVE_INFERENCE_LOG": str(home / f"{name}.jsonl")}
            with open(home / f"{name}.out", "wb") as out:
                procs[name] = subprocess.Popen(
                    cmd, cwd=home, env=_env(home, **extra), stdout=out, stderr=subprocess.STDOUT
                )
            urls[name] = f"http://127.0.0.1:{port}"
        for name, proc in procs.items():
            wait_http(f"{urls[name]}/ready", proc, home / f"{name}.out", 180)
        yield home, urls
    finally:
        for proc in procs.values():
            stop_process(proc)


def run_rollout(home: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mlpipe", "rollout", *args]
    return subprocess.run(
        cmd, cwd=home, env=_env(home), capture_output=True, text=True, timeout=timeout
    )


def aliases(home: Path) -> dict[str, str]:
    from autograder.testkit import aliases as found

    return found(home, MODEL)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("canary", "reason"),
    [
        ("erroring", "error_rate: the canary's 5xx share is 2"),
        ("slow", "p99_latency: the canary's p99 latency is "),
        ("skewed", "predictions: the total-variation distance "),
    ],
)
def test_a_bad_canary_is_rolled_back_with_its_reason(backends, canary, reason):
    from autograder.testkit import free_port

    home, urls = backends
    before = aliases(home)
    proc = run_rollout(
        home, "--stable-url", urls["stable"], "--canary-url", urls[canary],
        "--port", str(free_port()), "--steps", "10,50,100",
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "step 1/3: 10 %" in out and "step 2/3" not in out, out
    assert f"  - {reason}" in out, out
    assert aliases(home) == before  # champion untouched
    from autograder.testkit import mlflow_client

    version = aliases(home)["skewed" if canary == "skewed" else "challenger"]
    tags = mlflow_client(home).get_model_version(MODEL, version).tags
    assert tags["gate.allowed"] == "false"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_canary_that_is_down_when_a_step_starts_is_rolled_back(backends):
    from autograder.testkit import free_port

    home, urls = backends
    down = f"http://127.0.0.1:{free_port()}"
    proc = run_rollout(home, "--stable-url", urls["stable"], "--canary-url", down)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"  - backend: the canary backend did not answer {down}/ready (ConnectError" in (
        proc.stdout
    ), proc.stdout
    assert "Traceback" not in proc.stderr


class Load(threading.Thread):
    """Outside traffic through the router until stopped: many clients, concurrent requests."""

    def __init__(self, url: str, threads: int = 4) -> None:
        super().__init__(daemon=True)
        self.url, self.threads = url, threads
        self.stop = threading.Event()
        self.statuses: collections.Counter = collections.Counter()
        self.sides: collections.Counter = collections.Counter()

    def run(self) -> None:
        workers = [threading.Thread(target=self.work, args=(i,)) for i in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def work(self, number: int) -> None:
        rows = [row for species in rollout.load_rows() for row in species[:5]]
        sent = 0
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                try:
                    answer = client.post(
                        f"{self.url}/predict",
                        json=rows[sent % len(rows)],
                        headers={"X-Client-Id": f"t{number}-{sent}"},
                    )
                except httpx.ConnectError:  # the router is not listening yet
                    self.stop.wait(0.1)
                    continue
                sent += 1
                self.statuses[answer.status_code] += 1
                self.sides[answer.headers.get("x-rollout-backend")] += 1


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_good_canary_is_promoted_and_no_request_is_dropped(tmp_path):
    from autograder.testkit import free_port, mlflow_client

    _registry(tmp_path)
    port = free_port()
    cmd = [sys.executable, "-m", "mlpipe", "rollout", "--start", "--port", str(port)]
    cmd += ["--steps", "10,50,100", "--requests", "300", "--concurrency", "8"]
    load = Load(f"http://127.0.0.1:{port}")
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines = []
    try:
        load.start()
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("step 3/3"):
                break
        for line in proc.stdout:  # the last step's analysis: the router still runs
            lines.append(line)
            if "predictions:" in line:
                load.stop.set()
                break
        load.stop.set()
        load.join(60)
        lines += proc.stdout.readlines()
        proc.wait(60)
    finally:
        load.stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert out.count("  ok   error_rate:") == 3 and "FAIL" not in out, out
    assert "promoted: 'champion' now points at iris-classifier version 2" in out, out
    assert aliases(tmp_path)["champion"] == "2"
    tags = mlflow_client(tmp_path).get_model_version(MODEL, "2").tags
    assert tags["gate.allowed"] == "true"
    import json

    recorded = json.loads(tags["gate.decision"])
    assert {c["name"] for c in recorded["checks"]} >= {"error_rate@10%", "predictions@100%"}
    # the outside traffic: concurrent, through every step, every answer a 2xx
    assert sum(load.statuses.values()) >= 50, load.statuses
    assert set(load.statuses) == {200}, load.statuses
    assert load.sides["canary"] > 0 and load.sides["stable"] > 0, load.sides
    # and the rollout's own traffic: 300 answers of 200 at each step
    assert out.count("sent 300 requests through the router: 300 x 200") == 3, out
