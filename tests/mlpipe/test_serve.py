"""Code tests of the serving app's fast paths: ONNX (``mlpipe.serve.onnx_predictor``), the
row checker, the JSON parser and encoder, the log lines and the direct dispatch of ``/predict``
(by the router, and by the guard middleware ahead of it)."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from mlflow.models import infer_signature
from pydantic import BaseModel
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from starlette.routing import Route

from mlpipe import serve


@pytest.fixture(scope="module")
def iris():
    frame = load_iris(as_frame=True)
    X = frame.data.set_axis(["sepal_length", "sepal_width", "petal_length", "petal_width"], axis=1)
    y = frame.target.map(dict(enumerate(frame.target_names)))
    return X, y


def saved(tmp_path, model, X, example: bool) -> serve.ModelRef:
    """Save ``model`` as an MLflow model folder and point a ModelRef at it."""
    path = tmp_path / "model"
    mlflow.sklearn.save_model(
        model,
        path,
        signature=infer_signature(X.head(3), model.predict(X.head(3))),
        input_example=X.iloc[[0, 60, 120]] if example else None,
        pip_requirements=["scikit-learn"],  # named: inferring them loads the model in a subprocess
    )
    features = tuple((c, "double") for c in X.columns)
    return serve.ModelRef("m", "champion", "1", None, str(path), "file:///unused", features)


def test_a_model_with_an_input_example_is_served_by_onnxruntime(tmp_path, iris):
    X, y = iris
    model = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)
    predictor, runtime = serve.onnx_predictor(model, saved(tmp_path, model, X, example=True))
    assert predictor is not None, runtime
    assert runtime.startswith("onnxruntime")
    labels = predictor.predict(X.to_numpy())
    assert labels.astype(str).tolist() == model.predict(X).tolist()


def test_a_value_too_large_for_float32_goes_back_to_scikit_learn(tmp_path, iris):
    X, y = iris
    model = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)
    predictor, _ = serve.onnx_predictor(model, saved(tmp_path, model, X, example=True))
    assert predictor.predict(np.array([[1e300, 3.0, 1.4, 0.2]])) is None


def test_without_an_input_example_scikit_learn_serves(tmp_path, iris):
    X, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    predictor, runtime = serve.onnx_predictor(model, saved(tmp_path, model, X, example=False))
    assert predictor is None
    assert runtime == "scikit-learn (the model has no logged input example to check ONNX on)"


def test_a_model_onnx_cannot_convert_is_served_by_scikit_learn(tmp_path, iris):
    X, y = iris
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(X, y)
    predictor, runtime = serve.onnx_predictor(model, saved(tmp_path, model, X, example=True))
    assert predictor is None
    assert runtime.startswith("scikit-learn (no ONNX:")


# --- request bodies: parse_body, RowChecker, write_log ---------------------------------------------

FEATURES = (
    ("sepal_length", "double"),
    ("sepal_width", "double"),
    ("petal_length", "double"),
    ("petal_width", "double"),
)
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture
def checker():
    return serve.RowChecker(FEATURES, serve.row_schema(FEATURES), 0.0, 10.0)


def test_a_batch_is_checked_by_column_and_only_bad_rows_are_described(checker):
    rows = [SETOSA, {**SETOSA, "sepal_length": 5}] * 500
    matrix = checker.check(rows, "rows.")
    assert matrix.shape == (1000, 4) and matrix[1, 0] == 5.0
    bad = [*rows, {**SETOSA, "petal_width": float("nan")}, {**SETOSA, "sepal_width": True}]
    with pytest.raises(serve.HTTPException) as caught:
        checker.check(bad, "rows.")
    assert caught.value.status_code == 422
    assert "rows.1000.petal_width" in caught.value.detail
    assert "rows.1001.sepal_width" in caught.value.detail


@pytest.mark.parametrize(
    "value", [5, 5.5, 0, 10.0, -1e-9, 10.5, float("nan"), float("inf"), True, "5", None, 10**400]
)
def test_one_row_is_checked_as_a_batch_of_rows_is(checker, value):
    row = {**SETOSA, "petal_width": value}
    try:
        alone = checker.check([row])
    except serve.HTTPException as err:
        alone = err.detail
    try:
        among = checker.check([row, SETOSA], "rows.")[:1]
    except serve.HTTPException as err:
        among = err.detail.replace("rows.0.", "")
    if isinstance(alone, str):
        assert alone == among and "petal_width" in alone
    else:
        assert alone.dtype == among.dtype and alone.tolist() == among.tolist()


def test_a_422_lists_a_few_errors_and_caps_names_and_length(checker):
    rows = [{**SETOSA, "x" * 10_000 + str(i): 1} for i in range(50)]
    with pytest.raises(serve.HTTPException) as caught:
        checker.check(rows, "rows.")
    detail = caught.value.detail
    assert detail.count("extra inputs") == serve.MAX_ERRORS and "and more" in detail
    assert len(detail) <= serve.MAX_MESSAGE and "x" * (serve.MAX_NAME + 1) not in detail


@pytest.mark.parametrize(
    ("body", "content_type", "code", "words"),
    [
        (b'{"a": 1}', "text/plain", 415, "'text/plain'"),
        (b'{"a": 1}', None, 415, "no Content-Type"),
        (b'{"a": 1,\n "b" 2}', "application/json", 400, "line 2, column 6"),
        (b'{"a": "\xe9"}', "application/json; charset=utf-8", 400, "byte 7 (0xe9)"),
        (b"[" * 50_000, "application/json", 400, "nested too deeply"),
        (b'{"a": 1, "a": 2}', "application/json", 422, "the key 'a' appears twice"),
    ],
)
def test_bad_bodies_say_what_is_wrong_and_where(body, content_type, code, words):
    with pytest.raises(serve.HTTPException) as caught:
        serve.parse_body(body, content_type)
    assert caught.value.status_code == code
    assert words in caught.value.detail, caught.value.detail


def test_the_valid_range_comes_from_params_yaml(tmp_path):
    (tmp_path / "params.yaml").write_text("validate:\n  feature_min: 1.0\n  feature_max: 8.0\n")
    settings = serve.Settings(params_file=tmp_path / "params.yaml", inference_log=tmp_path / "l")
    assert serve.feature_range(settings) == (1.0, 8.0)
    (tmp_path / "params.yaml").write_text("validate:\n  feature_max: high\n")
    with pytest.raises(serve.ServeError, match="validate.feature_max must be float"):
        serve.feature_range(settings)


@pytest.mark.parametrize("required", [True, False])
def test_an_unwritable_log_refuses_the_prediction_unless_not_required(tmp_path, required):
    settings = serve.Settings(
        inference_log=tmp_path / "log.jsonl", log_required=required, params_file=None
    )
    ref = serve.ModelRef("m", "champion", "1", None, "unused", "unused", FEATURES)
    state = serve.ServeState(settings, ref, serve.row_schema(FEATURES))
    state.log.close()  # every write now fails
    if required:
        with pytest.raises(serve.HTTPException) as caught:
            state.write_log([{"output": "setosa"}])
        assert caught.value.status_code == 503 and "inference log" in caught.value.detail
    else:
        state.write_log([{"output": "setosa"}])
    assert state.log_error is not None and "cannot be written" in state.log_error


def test_duplicate_keys_are_found_however_the_json_is_spaced():
    assert serve.parse_body(b'{"a" :1, "b":{"c": [{"d":1}]}}', "application/json")["b"]
    assert serve.parse_body(b'{"a": "x\\":", "b": 1}', "application/json") == {"a": 'x":', "b": 1}
    for body in (
        b'{"a" :1, "a"\n: 2}',
        b'{"rows": [{"x": 1}, {"y": 1, "y": 2}]}',
        b'[[{"z":1,"z":1}]]',
    ):
        with pytest.raises(serve.HTTPException) as caught:
            serve.parse_body(body, "application/json")
        assert caught.value.status_code == 422 and "appears twice" in caught.value.detail


def test_batch_log_lines_are_what_log_records_and_write_would_write(tmp_path, checker):
    ref = serve.ModelRef("m", "champion", "1", None, "unused", "unused", FEATURES)
    settings = serve.Settings(inference_log=tmp_path / "log.jsonl")
    state = serve.ServeState(settings, ref, serve.row_schema(FEATURES))
    rows = [SETOSA, {**SETOSA, "sepal_length": 1e-05, "petal_width": 10}]
    matrix = checker.check(rows)
    fast = state.log_lines("r1", rows, matrix, ["setosa", 'a "quoted" label'], 1.23456)
    slow = state.log_lines("r1", rows, None, ["setosa", 'a "quoted" label'], 1.23456)
    parsed = [json.loads(line) for line in fast.decode().splitlines()]
    expected = [json.loads(line) for line in slow.decode().splitlines()]
    for line in expected:
        line["time"] = parsed[0]["time"]
    assert parsed == expected
    assert [list(line) for line in parsed] == [list(line) for line in expected]


# --- week 6: the monitoring summary's gauges on /metrics --------------------------------------------


def _summary() -> dict:
    from mlpipe import monitor

    test = monitor.ColumnDrift(0.001, "ks", True)
    calm = monitor.ColumnDrift(0.8, "ks", False)
    return monitor.MonitorSummary(
        generated_at="2026-01-01T00:00:00+00:00",
        timestamp=1767225600.0,
        rows=500,
        window_start="2026-01-01T00:00:00.000+00:00",
        window_end="2026-01-01T00:10:00.000+00:00",
        since=None,
        last=500,
        torn_lines=0,
        features={"sepal_length": calm, "petal_length": test},
        prediction=calm,
        drift_share=0.5,
        drift_detected=True,
        max_drift_share=0.5,
        drift_threshold=0.05,
        prediction_share={"setosa": 0.25, "virginica": 0.75},
    ).to_dict()


def _gauges(text: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(
            ("mlpipe_drift", "mlpipe_monitor", "mlpipe_feature", "mlpipe_prediction_share")
        )
    }


def test_metrics_publish_the_latest_monitoring_summary(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from mlpipe import monitor

    ref = serve.ModelRef("m", "champion", "1", None, "unused", "unused", FEATURES)
    monkeypatch.setattr(serve, "resolve_model", lambda settings: ref)
    monkeypatch.setattr(serve, "load_model", lambda ref: None)
    path = tmp_path / "reports" / "monitoring" / "summary.json"
    settings = serve.Settings(inference_log=tmp_path / "log.jsonl", monitor_summary=path)
    with TestClient(serve.create_app(settings)) as client:
        assert _gauges(client.get("/metrics").text) == {}  # no summary yet
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(_summary()))
        published = _gauges(client.get("/metrics").text)
        assert published == _gauges(monitor.prometheus_text(_summary()))  # as mlpipe.prom has them
        assert published[("mlpipe_drift_share", ())] == 0.5
        assert published[("mlpipe_drift_detected", ())] == 1.0
        assert published[("mlpipe_feature_drifted", (("feature", "petal_length"),))] == 1.0
        assert published[("mlpipe_prediction_share", (("label", "virginica"),))] == 0.75
        assert published[("mlpipe_monitor_last_run_timestamp_seconds", ())] == 1767225600.0
        path.write_text("{not a summary")  # a broken file publishes nothing, /metrics still works
        answer = client.get("/metrics")
        assert answer.status_code == 200 and _gauges(answer.text) == {}
        assert "mlpipe_http_requests_total" in answer.text


def test_serving_reads_the_summary_without_evidently(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import SOLUTIONS

    path = tmp_path / "summary.json"
    path.write_text(json.dumps(_summary()))
    code = (
        "import sys; from pathlib import Path; from mlpipe import serve\n"
        "ref = serve.ModelRef('m', 'champion', '1', None, 'u', 'u', (('x', 'double'),))\n"
        f"text = serve.Metrics(ref, Path({str(path)!r})).exposition().decode()\n"
        "assert 'mlpipe_drift_share 0.5' in text, text\n"
        "assert 'evidently' not in sys.modules, 'serving imported evidently'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SOLUTIONS)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "body",
    [
        b'{"rows": [{"a": 1, "b": 2.5}, {"a": -0, "b": 1e-7}]}',
        b'{"a":1,"b":{"c":[1,2,{"d":null}]}}',
        b'{"a" : 1, "b"\n:\t2}',
        b'[{"x": "\\u00e9"}, [1, 2]]',
        b'{"nan": NaN, "inf": -Infinity}',
    ],
)
def test_the_fast_parser_gives_what_the_standard_one_gives(body, monkeypatch):
    fast = serve.parse_body(body, "application/json")
    monkeypatch.setattr(serve, "orjson", None)
    slow = serve.parse_body(body, "application/json")
    assert json.dumps(fast, sort_keys=True) == json.dumps(slow, sort_keys=True)
    assert fast == slow or fast != fast  # NaN is not equal to itself


@pytest.mark.parametrize("body", [b'{"a": 1, "a": 2}', b'{"rows": [{"a" :1, "a"\n: 2}]}'])
def test_a_repeated_key_is_a_422_on_either_parser(body, monkeypatch):
    from fastapi import HTTPException

    for parser in (serve.orjson, None):
        monkeypatch.setattr(serve, "orjson", parser)
        with pytest.raises(HTTPException) as caught:
            serve.parse_body(body, "application/json")
        assert caught.value.status_code == 422 and "'a' appears twice" in caught.value.detail


def test_an_integer_beyond_64_bits_is_read_as_the_nearest_double():
    """RFC 8259 promises no more; the model gets that double from either parser anyway."""
    body = b'{"sepal_length": 123456789012345678901234567890}'
    assert serve.parse_body(body, "application/json") == {"sepal_length": 1.2345678901234568e29}


def _direct_app(endpoint, **route) -> FastAPI:
    app = FastAPI()
    app.post("/predict", **route)(endpoint)
    serve.direct_routes(app)
    return app


class Answer(BaseModel):
    prediction: str


def test_predict_is_dispatched_directly_and_still_documented_and_validated():
    async def predict(request: Request) -> Answer:  # a student's endpoint returning a dict
        return {"prediction": (await request.json())["x"], "extra": "dropped"}

    app = _direct_app(predict, response_model=Answer)
    assert isinstance(app.router.routes[0], Route) and app.router.routes[0].path == "/predict"
    client = TestClient(app)
    assert client.post("/predict", json={"x": "setosa"}).json() == {"prediction": "setosa"}
    assert client.get("/predict").status_code == 405
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_an_endpoint_with_other_parameters_keeps_fastapis_routing():
    async def takes_a_body(row: dict) -> dict:
        return row

    def synchronous(request: Request) -> dict:
        return {}

    for endpoint in (takes_a_body, synchronous):
        app = _direct_app(endpoint)
        direct = [r for r in app.router.routes if type(r) is Route and r.path == "/predict"]
        assert not direct, endpoint.__name__
    assert TestClient(_direct_app(takes_a_body)).post("/predict", json={"a": 1}).json() == {"a": 1}


class Teapot(Exception):
    pass


def _guarded_app(tmp_path) -> tuple[FastAPI, serve.Metrics, list[type]]:
    """An app whose ``/predict`` is a direct route behind the guard, as ``create_app`` builds it."""
    seen: list[type] = []

    async def predict(request: Request) -> dict:
        seen.append(type(request))
        body = await request.json()
        if "teapot" in body:
            raise Teapot()
        if "crash" in body:
            raise RuntimeError("a bug")
        if "refuse" in body:
            raise serve.HTTPException(409, "refused", headers={"x-why": "test"})
        return {"prediction": body["x"]}

    app = FastAPI()
    app.post("/predict", response_model=Answer)(predict)
    app.add_exception_handler(Teapot, lambda request, exc: serve.JSONResponse({"tea": 1}, 418))
    serve.direct_routes(app)
    ref = serve.ModelRef("m", "champion", "1", None, "unused", "unused", FEATURES)
    metrics = serve.Metrics(ref)
    app.add_middleware(
        serve.GuardMiddleware,
        max_body_bytes=1024,
        metrics=metrics,
        router=app.router,
        exception_handlers=app.exception_handlers,
    )
    return app, metrics, seen


def _count(metrics: serve.Metrics, code: str) -> float:
    labels = {"method": "POST", "endpoint": "/predict", "status": code}
    return metrics.registry.get_sample_value("mlpipe_http_requests_total", labels) or 0.0


def test_the_guard_answers_a_direct_route_as_the_stack_below_would(tmp_path):
    app, metrics, seen = _guarded_app(tmp_path)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/predict", json={"x": "setosa"}).json() == {"prediction": "setosa"}
    assert seen == [serve._ReadRequest]  # answered by the guard, the body read already
    refused = client.post("/predict", json={"refuse": 1})
    assert (refused.status_code, refused.json(), refused.headers["x-why"]) == (
        409, {"detail": "refused"}, "test"
    )  # fmt: skip
    assert client.post("/predict", json={"teapot": 1}).json() == {"tea": 1}  # the app's handler
    crash = client.post("/predict", json={"crash": 1})
    assert crash.status_code == 500 and crash.text == "Internal Server Error"
    chunks = iter([b'{"x": "', b"a" * 2000, b'"}'])  # no Content-Length: cut off past the limit
    too_large = client.post(
        "/predict", content=chunks, headers={"content-type": "application/json"}
    )
    assert too_large.status_code == 413 and "1024 bytes" in too_large.json()["detail"]
    assert client.get("/predict").status_code == 405  # not a POST: down the stack
    counts = {code: _count(metrics, code) for code in ("200", "409", "418", "500", "413")}
    assert counts == {"200": 1, "409": 1, "418": 1, "500": 1, "413": 1}


def test_a_request_under_a_root_path_goes_down_the_stack(tmp_path):
    app, _, seen = _guarded_app(tmp_path)
    client = TestClient(app, root_path="/api")
    assert client.post("/api/predict", json={"x": "setosa"}).json() == {"prediction": "setosa"}
    assert seen and serve._ReadRequest not in seen


def test_the_compact_encoder_writes_what_the_standard_library_writes(monkeypatch):
    values = [
        {"request_id": "ab" * 16, "inputs": {"a": 1e-05, "b": 1e16, "c": -0.0, "d": 5}, "x": None},
        {"label": 'a "quoted" \\ label \u00e9\u2028\U0001f600', "n": [True, False, 2**63]},
        {1: "an integer key", "big": 2**70},
        "text",
        0.1,
    ]
    fast = serve.CompactEncoder()
    slow = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
    for value in values:
        text = fast.encode(value)
        assert json.loads(text) == json.loads(slow.encode(value)), text
        assert ": " not in text and ", " not in text
    for parser in (serve.orjson, None):
        monkeypatch.setattr(serve, "orjson", parser)
        for bad in (float("nan"), {"a": [float("inf")]}):
            with pytest.raises(ValueError):
                fast.encode(bad)
        with pytest.raises(TypeError):
            fast.encode({"when": __import__("datetime").date(2026, 1, 1)})
