"""Hidden component tests of week 5 (never released to students)."""

import json
import multiprocessing
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import (
    FEATURES,
    SETOSA,
    VIRGINICA,
    free_port,
    iris_frame,
    make_settings,
    read_log,
    serve_env,
    sqlite_uri,
    start_server,
    stop_server,
)

from mlpipe import export, serve

#: Fixtures start MLflow stores and servers; the first test to use one waits for it.
pytestmark = pytest.mark.timeout(120)


def _post_raw(client, path: str, body: bytes) -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": "application/json"})


# --- bad input: a clear 4xx, never a 5xx ---------------------------------------------------------


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_nan_and_infinite_values_are_422s_naming_the_field(app_client):
    _, client, _ = app_client
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        body = json.dumps(SETOSA).replace("1.4", literal).encode()
        response = _post_raw(client, "/predict", body)
        assert response.status_code == 422, (literal, response.text)
        assert "petal_length" in response.text
    rows = [SETOSA, {**SETOSA, "sepal_width": 1.0}]
    body = json.dumps({"rows": rows}).replace("1.0", "NaN").encode()
    response = _post_raw(client, "/predict/batch", body)
    assert response.status_code == 422 and "sepal_width" in response.text


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_extra_fields_wrong_types_and_strings_for_numbers_are_422s(app_client):
    _, client, _ = app_client
    cases = {
        "colour": {**SETOSA, "colour": "blue"},
        "sepal_length": {**SETOSA, "sepal_length": "5.1"},
        "petal_width": {**SETOSA, "petal_width": None},
        "sepal_width": {**SETOSA, "sepal_width": [3.5]},
    }
    for field, body in cases.items():
        response = client.post("/predict", json=body)
        assert response.status_code == 422, (field, response.text)
        assert field in response.text, (field, response.text)
    assert client.post("/predict", json={**SETOSA, "sepal_length": 5}).status_code == 200


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_empty_batch_malformed_json_and_wrong_shapes_are_4xx(app_client):
    _, client, _ = app_client
    assert client.post("/predict/batch", json={"rows": []}).status_code == 422
    assert client.post("/predict/batch", json=[SETOSA]).status_code == 422
    assert client.post("/predict/batch", json={"rows": [SETOSA], "x": 1}).status_code == 422
    for body in (b"{bad json", b"", b'{"sepal_length": 5.1,', b"[]", b"null", b"\xff\xfe"):
        response = _post_raw(client, "/predict", body)
        assert 400 <= response.status_code < 500, (body, response.status_code, response.text)
    response = client.post("/predict", content=json.dumps(SETOSA), headers={"content-type": "x/y"})
    assert 400 <= response.status_code < 500


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_values_outside_the_valid_range_are_422s_naming_the_field(app_client):
    _, client, log = app_client
    before = len(read_log(log))
    for value in (1e308, -1.0, 10.5, 10**400):
        response = client.post("/predict", json={**SETOSA, "petal_width": value})
        assert response.status_code == 422, (value, response.text)
        assert "petal_width" in response.json()["detail"], response.text
    rows = [SETOSA, VIRGINICA, {**SETOSA, "sepal_length": 1e308}]
    response = client.post("/predict/batch", json={"rows": rows})
    assert response.status_code == 422 and "rows.2.sepal_length" in response.text
    assert len(read_log(log)) == before
    edge = {**SETOSA, "sepal_length": 0.0, "petal_width": 10.0}
    assert client.post("/predict", json=edge).status_code == 200


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_bad_bodies_are_one_capped_sentence_saying_what_and_where(app_client):
    _, client, _ = app_client

    def detail(response: httpx.Response, code: int) -> str:
        assert response.status_code == code, response.text
        text = response.json()["detail"]
        assert isinstance(text, str) and text.endswith(".") and "\n" not in text, text
        assert len(response.content) < 2000, len(response.content)
        return text

    huge = "k" * 900_000
    for body in ({**SETOSA, huge: 1}, {"rows": [{**SETOSA, huge: 1}]}):
        path = "/predict" if "rows" not in body else "/predict/batch"
        assert "kkkk" in detail(client.post(path, json=body), 422)
    text = detail(_post_raw(client, "/predict", b'{\n  "sepal_length": 5.1,\n  oops}'), 400)
    assert "line 3" in text and "column 3" in text, text
    assert "UTF-8" in detail(_post_raw(client, "/predict", b'{"sepal_length": "\xff"}'), 400)
    assert "deep" in detail(_post_raw(client, "/predict", b"[" * 100_000), 400)
    plain = client.post(
        "/predict", content=json.dumps(SETOSA), headers={"content-type": "text/plain"}
    )
    assert "application/json" in detail(plain, 415)
    duplicate = b'{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, '
    duplicate += b'"petal_width": 0.2, "petal_width": 9.9}'
    assert "petal_width" in detail(_post_raw(client, "/predict", duplicate), 422)
    batch = b'{"rows": [' + duplicate + b"]}"
    assert "petal_width" in detail(_post_raw(client, "/predict/batch", batch), 422)


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_a_prediction_the_log_cannot_record_is_a_503_and_not_ready(registry, tmp_path, monkeypatch):
    import errno
    import os

    from fastapi.testclient import TestClient

    log = tmp_path / "log.jsonl"
    app = serve.create_app(make_settings(registry, log))
    with TestClient(app) as client:
        assert app.state.serve.loaded.wait(60)
        assert client.post("/predict", json=SETOSA).status_code == 200
        write = os.write

        def full(fd, data):
            if fd == app.state.serve.log.fd:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write(fd, data)

        monkeypatch.setattr(os, "write", full)
        for path, body in (("/predict", SETOSA), ("/predict/batch", {"rows": [VIRGINICA]})):
            response = client.post(path, json=body)
            assert response.status_code == 503, response.text
            assert "inference log" in response.json()["detail"]
            assert "Traceback" not in response.text
        assert client.get("/ready").status_code == 503
        monkeypatch.undo()
        assert client.post("/predict", json=VIRGINICA).status_code == 200
        assert client.get("/ready").status_code == 200
    assert [line["output"] for line in read_log(log)] == ["setosa", "virginica"]


@pytest.mark.points(1)
@pytest.mark.task(2)
@pytest.mark.timeout(120)
def test_oversized_bodies_are_413_even_without_a_content_length(server):
    row = json.dumps(SETOSA).encode()
    big = b'{"rows": [' + b",".join([row] * 20_000) + b"]}"  # about 1.6 MB
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = _post_raw(client, "/predict/batch", big)
        assert response.status_code == 413, response.text

        def chunks():
            for start in range(0, len(big), 65536):
                yield big[start : start + 65536]

        response = client.post(
            "/predict/batch", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413, response.text
        assert client.get("/health").status_code == 200


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_batch_limit_comes_from_the_settings(registry, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setenv("MLPIPE_SERVE_MAX_BATCH", "2")
    monkeypatch.setenv("MLPIPE_SERVE_TRACKING_URI", sqlite_uri(registry))
    monkeypatch.setenv("MLPIPE_SERVE_INFERENCE_LOG", str(tmp_path / "log.jsonl"))
    app = serve.create_app()
    assert app.state.serve.settings.max_batch == 2
    with TestClient(app) as client:
        assert app.state.serve.loaded.wait(60)
        assert client.post("/predict/batch", json={"rows": [SETOSA] * 2}).status_code == 200
        response = client.post("/predict/batch", json={"rows": [SETOSA] * 3})
        assert response.status_code == 413 and "2" in response.text


# --- start-up ---------------------------------------------------------------------------------------


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_start_up_refusals_are_one_sentence(registry, tmp_path):
    log = tmp_path / "log.jsonl"
    with pytest.raises(serve.ServeError, match="alias 'gone'"):
        serve.create_app(make_settings(registry, log, model_alias="gone"))
    with pytest.raises(serve.ServeError, match="no model 'nope'"):
        serve.create_app(make_settings(registry, log, model_name="nope"))
    missing = tmp_path / "missing"
    settings = serve.Settings(tracking_uri=sqlite_uri(missing), inference_log=log)
    with pytest.raises(serve.ServeError) as err:
        serve.create_app(settings)
    assert "\n" not in str(err.value) and str(err.value).endswith(".")
    assert not (missing / "mlflow.db").exists(), "do not create an empty store"
    settings = serve.Settings(tracking_uri="http://127.0.0.1:9", inference_log=log)
    with pytest.raises(serve.ServeError, match="Cannot reach"):
        serve.create_app(settings)


@pytest.mark.points(1)
@pytest.mark.task(1)
@pytest.mark.timeout(120)
def test_uvicorn_with_an_unknown_alias_exits_instead_of_serving(registry, tmp_path):
    port = free_port()
    log = tmp_path / "inference.jsonl"
    env = serve_env(registry, log, MLPIPE_SERVE_MODEL_ALIAS="does-not-exist")
    cmd = [
        sys.executable, "-m", "uvicorn", "mlpipe.serve:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    srv = start_server(cmd, env, log, port, tmp_path)
    try:
        code = srv.proc.wait(timeout=90)
    finally:
        stop_server(srv)
    assert code != 0
    assert "alias 'does-not-exist'" in srv.output.read_text()


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_ready_is_503_until_the_model_is_loaded_and_health_answers_at_once(
    registry, tmp_path, monkeypatch
):
    from fastapi.testclient import TestClient

    gate = threading.Event()
    real_load = serve.load_model

    def slow_load(ref):
        gate.wait(30)
        return real_load(ref)

    monkeypatch.setattr(serve, "load_model", slow_load)
    app = serve.create_app(make_settings(registry, tmp_path / "log.jsonl"))
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503
        response = client.post("/predict", json=SETOSA)
        assert response.status_code == 503, response.text
        assert client.get("/metadata").json()["model_version"] == "1"
        gate.set()
        assert app.state.serve.loaded.wait(60)
        assert client.get("/ready").status_code == 200
        assert client.post("/predict", json=SETOSA).status_code == 200


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_a_model_that_fails_to_load_keeps_ready_at_503_with_the_reason(
    registry, tmp_path, monkeypatch
):
    from fastapi.testclient import TestClient

    def broken(ref):
        raise OSError("artifact store on fire")

    monkeypatch.setattr(serve, "load_model", broken)
    app = serve.create_app(make_settings(registry, tmp_path / "log.jsonl"))
    with TestClient(app) as client:
        assert app.state.serve.loaded.wait(30)
        response = client.get("/ready")
        assert response.status_code == 503 and "on fire" in response.text
        assert client.post("/predict", json=SETOSA).status_code == 503


# --- inference log and metrics ---------------------------------------------------------------------


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_log_lines_have_utc_times_numbers_and_batch_order(app_client):
    _, client, log = app_client
    rows = [VIRGINICA, SETOSA, VIRGINICA]
    answer = client.post("/predict/batch", json={"rows": rows}).json()
    lines = [line for line in read_log(log) if line["request_id"] == answer["request_id"]]
    assert [line["inputs"] for line in lines] == rows
    assert [line["output"] for line in lines] == answer["predictions"]
    for line in lines:
        stamp = pd.Timestamp(line["time"])
        assert stamp.tzinfo is not None and stamp.utcoffset().total_seconds() == 0
        assert abs((pd.Timestamp.now(tz="UTC") - stamp).total_seconds()) < 120
        assert isinstance(line["latency_ms"], int | float) and line["latency_ms"] >= 0
        assert line["model_version"] == "1"


@pytest.mark.points(2)
@pytest.mark.task(2)
@pytest.mark.timeout(120)
def test_log_never_holds_a_half_written_line_under_concurrent_requests(server):
    before = len(read_log(server.log))

    def hit(i: int) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            if i % 3 == 0:
                body = {"rows": [SETOSA, VIRGINICA] * 40}
                assert client.post("/predict/batch", json=body).status_code == 200
                return 80
            assert client.post("/predict", json=VIRGINICA).status_code == 200
            return 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        expected = sum(pool.map(hit, range(60)))
    lines = read_log(server.log)
    assert len(lines) - before == expected


def _write_many(path: str, worker: int) -> None:
    log = serve.InferenceLog(path)
    record = {"request_id": f"w{worker}", "inputs": {"blob": "x" * 3000}, "output": "y"}
    for _ in range(200):
        log.write([record] * 10)
    log.close()


@pytest.mark.points(1)
@pytest.mark.task(2)
@pytest.mark.timeout(120)
def test_log_writes_from_several_processes_never_interleave(tmp_path):
    path = str(tmp_path / "shared.jsonl")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_many, args=(path, i)) for i in range(4)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(60)
        assert proc.exitcode == 0
    lines = read_log(tmp_path / "shared.jsonl")
    assert len(lines) == 4 * 200 * 10
    assert all(len(line["inputs"]["blob"]) == 3000 for line in lines)


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_two_apps_in_one_process_keep_their_own_metrics(registry, tmp_path):
    from fastapi.testclient import TestClient

    first = serve.create_app(make_settings(registry, tmp_path / "a.jsonl"))
    second = serve.create_app(make_settings(registry, tmp_path / "b.jsonl"))
    with TestClient(first) as one, TestClient(second) as two:
        assert first.state.serve.loaded.wait(60) and second.state.serve.loaded.wait(60)
        for _ in range(3):
            one.post("/predict", json=VIRGINICA)
        one.post("/predict", json={"bad": 1})
        two.post("/predict", json=SETOSA)
        text_one, text_two = one.get("/metrics").text, two.get("/metrics").text
    assert 'label="virginica"' in text_one and 'label="virginica"' not in text_two
    assert 'status="422"' in text_one and 'status="422"' not in text_two
    assert len(read_log(tmp_path / "a.jsonl")) == 3 and len(read_log(tmp_path / "b.jsonl")) == 1


# --- fuzzing from the app's own OpenAPI ----------------------------------------------------------


@pytest.mark.points(2)
@pytest.mark.task(2)
@pytest.mark.timeout(150)
def test_schemathesis_fuzzing_finds_no_server_error(server):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    openapi = httpx.get(server.url + "/openapi.json").json()
    row = openapi["components"]["schemas"]["Row"]
    assert set(row["required"]) == set(FEATURES)
    assert row.get("additionalProperties") is False
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=schema.as_strategy(mode))
        def fuzz(case):
            case.call_and_validate(base_url=server.url, checks=[not_a_server_error], timeout=10)

        fuzz()
    assert httpx.get(server.url + "/health").status_code == 200


# --- batch scoring and ONNX -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_models():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    df = iris_frame()
    fitted = []
    for C in (1.0, 0.01):
        steps = [("scaler", StandardScaler()), ("clf", LogisticRegression(C=C))]
        fitted.append(Pipeline(steps).fit(df[FEATURES], df["species"]))
    return fitted


@pytest.mark.points(1)
@pytest.mark.task(4)
def test_parity_fails_for_a_different_model_and_nothing_is_written(two_models, tmp_path):
    good, other = two_models
    X = iris_frame()[FEATURES].to_numpy()
    onnx_bytes = export.to_onnx(good, len(FEATURES))
    assert not export.check_parity(other, onnx_bytes, X).passed
    assert export.check_parity(good, onnx_bytes, X).passed
    with pytest.raises(serve.ServeError, match="disagrees"):
        export.export_onnx(other, X, tmp_path / "other.onnx", onnx_bytes=onnx_bytes)
    assert not (tmp_path / "other.onnx").exists()
    parity = export.export_onnx(good, X, tmp_path / "model.onnx")
    written = (tmp_path / "model.onnx").read_bytes()
    assert parity.passed and export.check_parity(good, written, X).passed
    assert export.check_parity(good, onnx_bytes, X[:5].astype(np.float32)).passed


@pytest.mark.points(1)
@pytest.mark.task(4)
def test_batch_scoring_refuses_missing_columns_and_bad_values(two_models, tmp_path):
    good, _ = two_models
    df = iris_frame()
    df.drop(columns="petal_width").to_csv(tmp_path / "missing.csv", index=False)
    with pytest.raises(serve.ServeError, match="petal_width"):
        export.score_csv(good, FEATURES, tmp_path / "missing.csv", tmp_path / "out.csv")
    bad = df.copy()
    bad["sepal_width"] = bad["sepal_width"].astype(object)
    bad.loc[7, "sepal_width"] = "wide"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(serve.ServeError, match="sepal_width"):
        export.score_csv(good, FEATURES, tmp_path / "bad.csv", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.points(1)
@pytest.mark.task(4)
@pytest.mark.timeout(150)
def test_score_and_export_onnx_commands_use_the_registered_model(
    registry, tmp_path, monkeypatch, capsys
):
    from mlpipe.__main__ import main

    iris_frame().to_csv(tmp_path / "iris.csv", index=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLPIPE_SERVE_TRACKING_URI", sqlite_uri(registry))
    monkeypatch.setenv("MLPIPE_SERVE_INFERENCE_LOG", str(tmp_path / "log.jsonl"))
    assert main(["score", "--data", "iris.csv", "--out", "scored.csv"]) == 0
    assert main(["export-onnx", "--data", "iris.csv", "--out", "models/iris.onnx"]) == 0
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert (scored[export.PREDICTION] == scored["species"]).mean() > 0.9
    onnx_bytes = (tmp_path / "models" / "iris.onnx").read_bytes()
    labels, _ = export.onnx_predict(onnx_bytes, iris_frame()[FEATURES].to_numpy())
    assert list(labels.astype(str)) == list(scored[export.PREDICTION])
    capsys.readouterr()
    assert main(["score", "--data", "nowhere.csv"]) == 2
    assert "nowhere.csv" in capsys.readouterr().err
    monkeypatch.setenv("MLPIPE_SERVE_MODEL_NAME", "not-registered")
    assert main(["export-onnx", "--data", "iris.csv"]) == 2
    assert "not-registered" in capsys.readouterr().err


@pytest.mark.points(1)
@pytest.mark.task(2)
@pytest.mark.timeout(120)
def test_single_row_round_trip_is_fast(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(30):
            client.post("/predict", json=SETOSA)
        times = []
        for _ in range(200):
            start = time.perf_counter()
            assert client.post("/predict", json=SETOSA).status_code == 200
            times.append(time.perf_counter() - start)
    times.sort()
    assert times[len(times) // 2] < 0.05, f"median {times[len(times) // 2] * 1000:.1f} ms"
