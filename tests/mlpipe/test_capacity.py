"""The capacity plan (``mlpipe.capacity``, ``python -m mlpipe capacity``).

Fast tier: the arithmetic on numbers worked by hand, Locust's CSV files (a real
run's output, committed under ``data/``: Locust 2.47, 4 users, 10 s, one replica
of the API on loopback) and every bad input, in-process. Slow tier: a real
Locust run against the real API, then the stage on its CSV.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from conftest import SOLUTIONS

from autograder.testkit import (
    assert_ran,
    create_store,
    free_port,
    pipeline_env,
    register_model,
    run,
    run_mlpipe,
    sqlite_uri,
    stop_process,
    wait_http,
)
from mlpipe import capacity, manifests
from mlpipe.__main__ import main
from mlpipe.config import CapacityParams, ParamsError

DATA = Path(__file__).parent / "data"
STATS = DATA / "locust_stats.csv"
HISTORY = DATA / "locust_stats_history.csv"
HPA = SOLUTIONS / "k8s" / "hpa.yaml"
LOCUSTFILE = SOLUTIONS / "loadtest" / "locustfile.py"


# --- the arithmetic, on numbers worked by hand -------------------------------------------------


def test_littles_law_gives_the_requests_in_flight():
    # L = lambda x W: 200 req/s x 0.015 s = 3 requests; 50 req/s x 0.2 s = 10.
    assert capacity.concurrency(200.0, 15.0) == pytest.approx(3.0)
    assert capacity.concurrency(50.0, 200.0) == pytest.approx(10.0)
    assert capacity.concurrency(0.0, 15.0) == 0.0


def test_only_a_run_within_the_objective_is_sustainable():
    assert capacity.sustainable_rps(234.0, 47.0, 100.0) == 234.0
    assert capacity.sustainable_rps(234.0, 100.0, 100.0) == 234.0  # at the objective: meets it
    assert capacity.sustainable_rps(234.0, 120.0, 100.0) is None


@pytest.mark.parametrize(
    ("target", "per_replica", "utilisation", "replicas"),
    [
        (500.0, 200.0, 0.6, 5),  # 200 x 0.6 = 120 per replica; 500 / 120 = 4.17 -> 5
        (420.0, 200.0, 0.7, 3),  # 200 x 0.7 = 140; 420 / 140 = 3 exactly -> 3, not 4
        (480.0, 200.0, 0.6, 4),  # 480 / 120 = 4 exactly -> 4
        (481.0, 200.0, 0.6, 5),  # 481 / 120 = 4.008 -> 5
        (1.0, 1000.0, 0.5, 1),  # 1 / 500 = 0.002 -> 1: never 0 replicas
    ],
)
def test_replicas_are_the_ceiling_of_target_over_planned_throughput(
    target, per_replica, utilisation, replicas
):
    assert capacity.replicas_needed(target, per_replica, utilisation) == replicas


@pytest.mark.parametrize(
    ("replicas", "floor", "headroom", "bounds"),
    [
        (5, 2, 1.5, (2, 8)),  # ceil(5 x 1.5) = ceil(7.5) = 8
        (4, 2, 1.5, (2, 6)),  # ceil(6.0) = 6
        (1, 2, 1.5, (2, 2)),  # ceil(1.5) = 2, never below the floor
        (4, 3, 1.0, (3, 4)),  # no headroom: the planned count
        (1, 3, 1.0, (3, 3)),
    ],
)
def test_replica_bounds_keep_the_availability_floor_and_the_headroom(
    replicas, floor, headroom, bounds
):
    assert capacity.replica_bounds(replicas, floor, headroom) == bounds


def test_failure_ratio():
    assert capacity.failure_ratio(5, 1000) == pytest.approx(0.005)
    assert capacity.failure_ratio(0, 0) == 0.0


# --- Locust's CSV files ------------------------------------------------------------------------


def test_the_aggregated_row_of_a_real_locust_run_is_read():
    stats = capacity.read_stats(STATS)
    assert (stats.requests, stats.failures) == (1896, 0)
    assert (stats.median_ms, stats.p99_ms) == (12.0, 47.0)
    assert stats.mean_ms == pytest.approx(14.0295, abs=1e-4)
    assert stats.rps == pytest.approx(233.9456, abs=1e-4)
    assert capacity.peak_users(HISTORY) == 4


def test_the_plan_of_the_real_run():
    # 233.95 req/s with p99 47 ms <= 100 ms: sustainable. Planned at 60 %: 140.37 req/s.
    # 500 / 140.37 = 3.56 -> 4 replicas; max = ceil(4 x 1.5) = 6; min = 2.
    # Little: 233.95 x 0.01403 s = 3.28 in flight (4 users, the rest is Locust's own time).
    stats = capacity.read_stats(STATS)
    plan = capacity.plan(stats, CapacityParams())
    assert plan.per_replica_rps == pytest.approx(233.9456, abs=1e-4)
    assert plan.planned_rps == pytest.approx(140.3673, abs=1e-4)
    assert (plan.replicas, plan.min_replicas, plan.max_replicas) == (4, 2, 6)
    assert plan.in_flight == pytest.approx(3.282, abs=1e-3)
    assert plan.target_in_flight == pytest.approx(7.015, abs=1e-3)
    assert plan.utilisation_percent == 60


def params_file(tmp_path: Path, **values) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"capacity": values}), encoding="utf-8")
    return path


@pytest.fixture
def hpa(tmp_path, monkeypatch) -> Path:
    """A copy of k8s/hpa.yaml, and a project folder without a params.yaml."""
    monkeypatch.setenv("MLPIPE_HOME", str(tmp_path))
    path = tmp_path / "hpa.yaml"
    shutil.copyfile(HPA, path)
    return path


def test_the_stage_prints_the_arithmetic_and_writes_only_the_replicas(hpa, tmp_path, capsys):
    params = params_file(tmp_path, target_rps=1000.0, headroom=2.0, min_replicas=3)
    before = hpa.read_text(encoding="utf-8")
    args = ["capacity", "--params", str(params), "--stats", str(STATS), "--history", str(HISTORY)]
    assert main([*args, "--write-hpa", str(hpa)]) == 0
    out = capsys.readouterr().out
    # 1000 / 140.37 = 7.12 -> 8 replicas; max = ceil(8 x 2) = 16; min = 3.
    assert "load test (4 users, one replica): 1896 requests, 0 failed, 233.9 req/s" in out
    assert "Little's law: in flight = 233.9 req/s x 0.0140 s = 3.28 requests" in out
    assert "replicas = ceil(1000 / 140.4) = ceil(7.12) = 8" in out
    assert "maxReplicas = max(3, ceil(8 x headroom 2)) = 16" in out
    after = hpa.read_text(encoding="utf-8")
    changed = [
        (old, new)
        for old, new in zip(before.splitlines(), after.splitlines(), strict=True)
        if old != new
    ]
    assert [new.strip() for _, new in changed] == ["minReplicas: 3", "maxReplicas: 16"]
    [doc] = manifests.validate_file(hpa)
    assert (doc["spec"]["minReplicas"], doc["spec"]["maxReplicas"]) == (3, 16)


def test_without_write_hpa_nothing_is_written(hpa, tmp_path, capsys):
    assert main(["capacity", "--stats", str(STATS)]) == 0
    assert "users unknown (--history)" in capsys.readouterr().out
    assert hpa.read_bytes() == HPA.read_bytes()


# --- bad input: one sentence, exit 2, the HPA file unchanged -----------------------------------


def edited(tmp_path: Path, change) -> Path:
    lines = STATS.read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "stats.csv"
    path.write_text("".join(change(lines)), encoding="utf-8")
    return path


def with_failures(lines: list[str]) -> list[str]:
    aggregated = lines[-1].split(",")
    aggregated[3] = "100"  # Failure Count: 100 of 1896 = 5.3 %
    return [*lines[:-1], ",".join(aggregated)]


BAD = {
    "missing": (lambda t: t / "nope_stats.csv", "does not exist; run Locust with --csv"),
    "empty": (lambda t: edited(t, lambda lines: []), "is empty"),
    "header only": (lambda t: edited(t, lambda lines: lines[:1]), "is empty"),
    "no Aggregated row": (lambda t: edited(t, lambda lines: lines[:-1]), "has no Aggregated row"),
    "the history file": (lambda t: HISTORY, "has no 'Request Count' column"),
    "failures": (
        lambda t: edited(t, with_failures),
        "100 of 1896 requests failed (5.3%, above capacity.max_failure_ratio 1.0%)",
    ),
    "not a number": (
        lambda t: edited(t, lambda lines: [*lines[:-1], lines[-1].replace(",47,", ",fast,")]),
        "The '99%' column of the Aggregated row",
    ),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_statistics_file_is_one_sentence_and_leaves_the_hpa(hpa, tmp_path, capsys, case):
    make, words = BAD[case]
    code = main(["capacity", "--stats", str(make(tmp_path)), "--write-hpa", str(hpa)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
    assert hpa.read_bytes() == HPA.read_bytes()


def test_a_p99_above_the_objective_is_refused(hpa, tmp_path, capsys):
    params = params_file(tmp_path, p99_objective_ms=40.0)
    code = main(
        ["capacity", "--params", str(params), "--stats", str(STATS), "--write-hpa", str(hpa)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "p99 of 47 ms is already above the objective of 40 ms" in err
    assert err.count("\n") == 1 and hpa.read_bytes() == HPA.read_bytes()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (None, "does not exist"),
        ("kind: HorizontalPodAutoscaler\nspec: {}\n", "is not a Kubernetes object"),
        (HPA.read_text(encoding="utf-8").replace("  minReplicas: 2\n", ""), "one 'minReplicas:'"),
        (
            HPA.read_text(encoding="utf-8")
            + "---\n"
            + (SOLUTIONS / "k8s" / "pdb.yaml").read_text(),
            "one HorizontalPodAutoscaler and nothing else",
        ),
        (
            HPA.read_text(encoding="utf-8").replace(
                "averageUtilization: 60", "averageUtilization: high"
            ),
            "at spec.metrics.0.resource.target.averageUtilization: 'high' is not of type 'integer'",
        ),
    ],
)
def test_an_hpa_file_that_cannot_be_written_is_one_sentence(
    tmp_path, monkeypatch, capsys, text, words
):
    monkeypatch.setenv("MLPIPE_HOME", str(tmp_path))
    path = tmp_path / "hpa.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    code = main(["capacity", "--stats", str(STATS), "--write-hpa", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert path.read_text(encoding="utf-8") == text if text is not None else not path.exists()


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"min_replicas": 1}, "capacity.min_replicas must be at least 2"),
        ({"utilisation": 1.5}, "capacity.utilisation must be above 0 and at most 1"),
        ({"headroom": 0.5}, "capacity.headroom must be at least 1"),
        ({"target_rps": 0}, "capacity.target_rps must be greater than 0"),
        ({"p99_objectiv_ms": 50}, "did you mean 'p99_objective_ms'?"),
    ],
)
def test_bad_params_are_refused(tmp_path, values, words):
    from mlpipe.config import load_params

    with pytest.raises(ParamsError, match=words.replace("?", r"\?")):
        load_params(params_file(tmp_path, **values), "capacity", CapacityParams)


# --- slow: a real Locust run against the real API ---------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_real_locust_run_plans_the_replicas_into_a_valid_hpa(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    create_store(project)
    register_model(project)
    port = free_port()
    env = pipeline_env(
        {k: v for k, v in os.environ.items() if not k.startswith("MLPIPE_SERVE_")},
        MLPIPE_HOME=str(project),
        MLPIPE_SERVE_TRACKING_URI=sqlite_uri(project),
    )
    output = tmp_path / "serve.out"
    with open(output, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlpipe", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    prefix = tmp_path / "load"
    try:
        wait_http(f"{url}/ready", server, output, 180)
        locust = run(
            sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--headless", "-u", "4", "-r", "4",
            "-t", "10s", "--host", url, "--csv", prefix, "--only-summary",
            cwd=tmp_path, env=env, timeout=120,
        )  # fmt: skip
    finally:
        stop_process(server)
    assert_ran(locust, cwd=tmp_path)
    stats = capacity.read_stats(f"{prefix}_stats.csv")
    assert stats.requests > 50 and stats.failures == 0, stats
    hpa = tmp_path / "hpa.yaml"
    shutil.copyfile(HPA, hpa)
    # The course's objective, loosened: on a loaded machine the p99 of a healthy run can pass it.
    params = params_file(tmp_path, p99_objective_ms=2000.0)
    proc = run_mlpipe(
        "capacity", "--params", params, "--stats", f"{prefix}_stats.csv",
        "--history", f"{prefix}_stats_history.csv", "--write-hpa", hpa, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert_ran(proc, cwd=tmp_path)
    print(proc.stdout)  # the measured figures, for the record (pytest -s)
    assert "load test (4 users, one replica)" in proc.stdout
    [doc] = manifests.validate_file(hpa, "1.33")
    plan = capacity.plan(stats, CapacityParams(p99_objective_ms=2000.0))
    assert (doc["spec"]["minReplicas"], doc["spec"]["maxReplicas"]) == (
        plan.min_replicas,
        plan.max_replicas,
    )
    assert (
        manifests.policy_problems([*manifests.read_manifests(SOLUTIONS / "k8s" / "api.yaml"), doc])
        == []
    )


class WrongAnswers(http.server.BaseHTTPRequestHandler):
    """Answers every prediction with 200 and a species the model does not know."""

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        length = int(self.headers.get("Content-Length", 0))
        rows = json.loads(self.rfile.read(length)).get("rows")
        answer = {"request_id": "r1"}
        answer.update({"predictions": ["rose"] * len(rows)} if rows else {"prediction": "rose"})
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_wrong_answers_are_locust_failures_and_no_plan_is_made_from_them(tmp_path):
    # A stand-in server (not the API): the load test's own checks are what is tested.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WrongAnswers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    prefix = tmp_path / "load"
    try:
        locust = run(
            sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--headless", "-u", "2", "-r", "2",
            "-t", "3s", "--host", f"http://127.0.0.1:{server.server_port}", "--csv", prefix,
            "--only-summary", cwd=tmp_path, env=pipeline_env(), timeout=60,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert locust.returncode == 1, locust.stderr[-2000:]  # Locust exits 1 when requests failed
    stats = capacity.read_stats(f"{prefix}_stats.csv")
    assert stats.requests > 0 and stats.failures == stats.requests
    failures = (tmp_path / "load_failures.csv").read_text(encoding="utf-8")
    assert "unknown species 'rose'" in failures
    hpa = tmp_path / "hpa.yaml"
    shutil.copyfile(HPA, hpa)
    proc = run_mlpipe(
        "capacity", "--stats", f"{prefix}_stats.csv", "--write-hpa", hpa, cwd=tmp_path,
        env=pipeline_env(MLPIPE_HOME=str(tmp_path)),
    )  # fmt: skip
    assert proc.returncode == 2 and "requests failed" in proc.stderr, proc.stderr
    assert hpa.read_bytes() == HPA.read_bytes()
