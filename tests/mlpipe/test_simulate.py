"""The traffic simulator (``mlpipe.simulate``, ``python -m mlpipe simulate``).

An in-memory API (httpx's mock transport) answers like week 5's app: 200 with
predictions, 422 for a measurement outside week 2's range. The real app under
uvicorn is driven by the slow Prometheus test (tests/e2e/test_prometheus.py).
"""

from __future__ import annotations

import csv
import json

import httpx
import pytest
from conftest import SOLUTIONS, run_module

from autograder.testkit import free_port, iris_frame
from mlpipe import simulate

URL = "http://api.test"


class FakeAPI:
    """Answers /ready, /predict and /predict/batch like the serving app (range 0-10)."""

    def __init__(self, fail_every: int = 0) -> None:
        self.requests: list[tuple[str, object]] = []
        self.fail_every = fail_every

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ready":
            return httpx.Response(200, json={"status": "ready"})
        body = json.loads(request.content)
        self.requests.append((request.url.path, body))
        if self.fail_every and len(self.requests) % self.fail_every == 0:
            return httpx.Response(503, json={"detail": "the inference log cannot be written"})
        rows = body["rows"] if request.url.path == "/predict/batch" else [body]
        if any(not 0 <= v <= 10 for row in rows for v in row.values()):
            return httpx.Response(422, json={"message": "Invalid input"})
        labels = ["setosa" if row["petal_length"] < 2.5 else "virginica" for row in rows]
        rid = f"r{len(self.requests)}"
        if request.url.path == "/predict":
            return httpx.Response(200, json={"request_id": rid, "prediction": labels[0]})
        return httpx.Response(200, json={"request_id": rid, "predictions": labels})


@pytest.fixture(scope="module")
def flowers(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "iris.csv"
    iris_frame().to_csv(path, index=False)
    return simulate.read_flowers(path)


def client(api: FakeAPI) -> httpx.Client:
    return httpx.Client(base_url=URL, transport=httpx.MockTransport(api))


def test_normal_traffic_is_served_and_every_row_gets_its_true_label(flowers):
    api = FakeAPI()
    result = simulate.simulate(URL, "normal", flowers, rows=40, client=client(api))
    [phase] = result.phases
    assert (phase.sent, phase.served, phase.refused, phase.errors) == (40, 40, 0, 0)
    assert {path for path, _ in api.requests} == {"/predict"}
    assert len(result.labels) == 40 and {r["row"] for r in result.labels} == {0}
    sent = [body for _, body in api.requests]
    assert [{f: r[f] for f in simulate.FEATURES} for r in result.labels] == sent
    species = {tuple(f[c] for c in simulate.FEATURES): f["species"] for f in flowers}
    assert all(
        species[tuple(r[c] for c in simulate.FEATURES)] == r["species"] for r in result.labels
    )


def test_the_same_seed_sends_the_same_rows(flowers):
    first, second = FakeAPI(), FakeAPI()
    simulate.simulate(URL, "shift", flowers, rows=10, seed=3, client=client(first))
    simulate.simulate(URL, "shift", flowers, rows=10, seed=3, client=client(second))
    assert first.requests == second.requests


def test_millimetres_leave_the_valid_range_and_are_refused_the_rest_drifts(flowers):
    api = FakeAPI()
    result = simulate.simulate(URL, "unit-change", flowers, rows=200, client=client(api))
    normal, mm = result.phases
    assert normal.served == 200
    assert mm.refused > 0 and mm.served > 0 and mm.served + mm.refused == 200
    widths = [r["petal_width"] for r in result.labels if r["phase"] == mm.name]
    assert len(widths) == mm.served and min(widths) >= 1.0  # 0.1 cm is 1 mm
    assert all(r["sepal_length"] < 8 for r in result.labels)  # the other units are unchanged


def test_a_shift_moves_three_features_within_the_valid_range(flowers):
    result = simulate.simulate(URL, "shift", flowers, rows=100, client=client(FakeAPI()))
    normal, shifted = result.phases
    assert shifted.served == 100 and shifted.refused == 0

    def mean(phase, feature):
        values = [r[feature] for r in result.labels if r["phase"] == phase.name]
        return sum(values) / len(values)

    moved = [f for f in simulate.FEATURES if abs(mean(shifted, f) - mean(normal, f)) > 0.25]
    assert moved == ["sepal_length", "petal_length", "petal_width"]


def test_batches_go_to_the_batch_endpoint_with_the_row_positions(flowers):
    api = FakeAPI()
    result = simulate.simulate(URL, "drift", flowers, rows=25, batch=10, client=client(api))
    assert [p.sent for p in result.phases] == [25, 25, 25]
    assert {path for path, _ in api.requests} == {"/predict/batch"}
    assert len(api.requests) == 9  # 10 + 10 + 5 rows a phase
    first = [r for r in result.labels if r["request_id"] == "r1"]
    assert [r["row"] for r in first] == list(range(10))


def test_server_errors_are_counted_not_fatal(flowers):
    result = simulate.simulate(URL, "normal", flowers, rows=30, client=client(FakeAPI(3)))
    [phase] = result.phases
    assert (phase.served, phase.errors) == (20, 10)


def test_the_labels_csv_has_a_header_and_one_line_per_served_row(flowers, tmp_path):
    result = simulate.simulate(URL, "unit-change", flowers, rows=50, client=client(FakeAPI()))
    path = simulate.write_labels(tmp_path / "logs" / "labels.csv", result.labels)
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == simulate.LABEL_COLUMNS
    assert len(rows) == sum(p.served for p in result.phases)
    assert list(tmp_path.joinpath("logs").iterdir()) == [path]  # no temporary file left


def test_an_unknown_scenario_is_one_sentence_and_exit_2(tmp_path):
    proc = run_module(
        "mlpipe", "simulate", "--scenario", "chaos", cwd=tmp_path, pythonpath=SOLUTIONS
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "error: There is no scenario 'chaos'; choose one of: normal, unit-change, shift, drift."
    )
    assert not (tmp_path / "logs").exists()


def test_an_unreachable_api_is_one_sentence_and_exit_2(tmp_path):
    iris_frame().to_csv(tmp_path / "iris.csv", index=False)
    url = f"http://127.0.0.1:{free_port()}"
    args = ("mlpipe", "simulate", "--url", url, "--data", "iris.csv")
    proc = run_module(*args, cwd=tmp_path, pythonpath=SOLUTIONS)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: Cannot reach the API at {url} (ConnectError)")
    assert "python -m mlpipe serve" in line
    assert not (tmp_path / "logs").exists()


def test_missing_data_is_one_sentence_and_exit_2(tmp_path):
    proc = run_module(
        "mlpipe", "simulate", "--data", "nope.csv", cwd=tmp_path, pythonpath=SOLUTIONS
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: The data file nope.csv does not exist;")
