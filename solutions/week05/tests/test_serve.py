"""Visible component tests of week 5: ``mlpipe.serve``, in-process and under real uvicorn."""

import httpx
import pytest
from conftest import MODEL, SETOSA, VIRGINICA, make_settings, read_log

from mlpipe import serve

#: Fixtures start MLflow stores and servers; the first test to use one waits for it.
pytestmark = pytest.mark.timeout(120)


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_unknown_alias_refuses_to_start_with_one_sentence(registry, tmp_path):
    settings = make_settings(registry, tmp_path / "log.jsonl", model_alias="no-such-alias")
    try:
        serve.create_app(settings)
    except serve.ServeError as err:
        assert "no model 'iris-classifier' with the alias" in str(err), (
            f"create_app() for the alias 'no-such-alias' raised ServeError({str(err)!r}), "
            "expected a sentence saying the registry has no model 'iris-classifier' with the alias"
        )
    except Exception as err:
        raise AssertionError(
            f"create_app() for the alias 'no-such-alias' raised {type(err).__name__}: "
            f"{str(err)[:200]}; expected a ServeError whose one sentence names the model and "
            "the alias (catch the registry's error)"
        ) from None
    else:
        pytest.fail("create_app() started for the alias 'no-such-alias', which has no model")


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_health_ready_and_metadata(app_client):
    app, client, _ = app_client
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    meta = client.get("/metadata").json()
    assert meta["model_name"] == MODEL and meta["model_alias"] == "champion"
    assert meta["model_version"] == "1"
    assert set(meta["input_schema"]["properties"]) == set(SETOSA)
    assert sorted(meta["input_schema"]["required"]) == sorted(SETOSA)


@pytest.mark.points(2)
@pytest.mark.task(2)
def test_predict_one_row(app_client):
    _, client, _ = app_client
    response = client.post("/predict", json=SETOSA)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = {"request_id", "model_version", "prediction"}
    assert expected <= set(body), (
        f"POST /predict answered the keys {sorted(body)}, expected {sorted(expected)}"
    )
    assert body["prediction"] == "setosa" and body["model_version"] == "1"
    assert body["request_id"]
    assert client.post("/predict", json=VIRGINICA).json()["prediction"] == "virginica"


@pytest.mark.points(2)
@pytest.mark.task(1)
def test_bad_input_is_a_422_naming_the_field(app_client):
    _, client, _ = app_client
    missing = {k: v for k, v in SETOSA.items() if k != "petal_width"}
    response = client.post("/predict", json=missing)
    assert response.status_code == 422
    assert "petal_width" in response.text
    response = client.post("/predict", json={**SETOSA, "sepal_width": "wide"})
    assert response.status_code == 422
    assert "sepal_width" in response.text


@pytest.mark.points(2)
@pytest.mark.task(2)
def test_batch_predicts_in_order_and_refuses_too_many_rows(app_client):
    app, client, _ = app_client
    response = client.post("/predict/batch", json={"rows": [SETOSA, VIRGINICA, SETOSA]})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == ["setosa", "virginica", "setosa"]
    limit = app.state.serve.settings.max_batch
    response = client.post("/predict/batch", json={"rows": [SETOSA] * (limit + 1)})
    assert response.status_code == 413, response.text


@pytest.mark.points(2)
@pytest.mark.task(2)
def test_every_prediction_is_one_log_line(app_client):
    _, client, log = app_client
    one = client.post("/predict", json=VIRGINICA).json()
    many = client.post("/predict/batch", json={"rows": [SETOSA, VIRGINICA]}).json()
    lines = read_log(log)
    mine = [line for line in lines if line["request_id"] == one["request_id"]]
    assert len(mine) == 1, f"one POST /predict wrote {len(mine)} lines to the inference log"
    line = mine[0]
    expected = {"request_id", "time", "model_name", "model_version", "inputs", "output"}
    missing = sorted((expected | {"latency_ms"}) - set(line))
    assert not missing, (
        f"an inference log line has the keys {sorted(line)}; it lacks {', '.join(missing)}"
    )
    assert line["inputs"] == VIRGINICA and line["output"] == "virginica", (
        f"the log line of one POST /predict has inputs={line['inputs']} and "
        f"output={line['output']!r}, expected the request's one row {VIRGINICA} and 'virginica'"
    )
    assert line["model_name"] == MODEL and line["model_version"] == "1"
    assert line["latency_ms"] >= 0 and line["time"].startswith("20")
    batch = [line for line in lines if line["request_id"] == many["request_id"]]
    assert [b["output"] for b in batch] == ["setosa", "virginica"]


def samples(text: str, name: str) -> dict[tuple, float]:
    """The samples of one metric in Prometheus' text format, by their sorted labels."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def _virginica(text: str) -> float:
    found = samples(text, "mlpipe_predictions_total")
    return sum(v for labels, v in found.items() if ("label", "virginica") in labels)


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_metrics_count_requests_and_predictions(app_client):
    _, client, _ = app_client
    before = client.get("/metrics").text
    client.post("/predict", json=VIRGINICA)
    client.post("/predict/batch", json={"rows": [VIRGINICA, VIRGINICA]})
    after = client.get("/metrics").text
    counted = _virginica(after) - _virginica(before)
    assert counted == 3, (
        f"mlpipe_predictions_total for the label virginica rose by {counted}, expected 3 "
        "(one POST /predict and a batch of two): count every prediction, by label"
    )
    counts = samples(after, "mlpipe_http_requests_total")
    assert any(
        ("endpoint", "/predict") in labels and ("status", "200") in labels for labels in counts
    )
    assert samples(after, "mlpipe_http_request_duration_seconds_count")


@pytest.mark.points(2)
@pytest.mark.task(2)
@pytest.mark.timeout(120)
def test_real_uvicorn_serves_predictions_over_loopback(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/health").status_code == 200
        response = client.post("/predict", json=SETOSA)
        assert response.status_code == 200, response.text
        request_id = response.json()["request_id"]
        extra = client.post("/predict", json={**SETOSA, "extra": 1})
        assert extra.status_code == 422, (
            f"POST /predict with an unknown field 'extra' answered {extra.status_code}, "
            "expected 422: refuse fields the model does not know"
        )
    assert [
        line["output"] for line in read_log(server.log) if line["request_id"] == request_id
    ] == ["setosa"]


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_cli_refuses_an_unknown_model_in_one_sentence(registry, tmp_path, monkeypatch, capsys):
    from mlpipe.__main__ import main

    monkeypatch.setenv("MLPIPE_SERVE_TRACKING_URI", f"sqlite:///{registry / 'mlflow.db'}")
    monkeypatch.setenv("MLPIPE_SERVE_MODEL_NAME", "no-such-model")
    monkeypatch.setenv("MLPIPE_SERVE_INFERENCE_LOG", str(tmp_path / "log.jsonl"))
    assert main(["serve", "--port", "9"]) == 2
    err = capsys.readouterr().err
    assert "no-such-model" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_a_prediction_the_log_cannot_record_is_a_503(registry, tmp_path, monkeypatch):
    import errno
    import os

    from fastapi.testclient import TestClient

    app = serve.create_app(make_settings(registry, tmp_path / "log.jsonl"))
    with TestClient(app) as client:
        assert app.state.serve.loaded.wait(60)
        write = os.write

        def full(fd, data):  # the disk is full, for the inference log only
            if fd == app.state.serve.log.fd:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write(fd, data)

        monkeypatch.setattr(os, "write", full)
        response = client.post("/predict", json=SETOSA)
        assert response.status_code == 503, response.text
        assert "inference log" in response.json()["detail"]
        assert client.get("/ready").status_code == 503
