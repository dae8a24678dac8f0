"""Visible component tests of week 5: batch scoring, ONNX parity, the image and compose files."""

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import (
    COMPOSE,
    DOCKERFILE,
    FEATURES,
    SETOSA,
    compose_schema_errors,
    docker_cmd,
    dockerfile_instructions,
    free_port,
    iris_frame,
    local_command,
    read_log,
    serve_env,
    start_server,
    stop_server,
    wait_ready,
)

from autograder.testkit import hadolint
from mlpipe import export

#: Fixtures start MLflow stores and servers; the first test to use one waits for it.
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def model():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    df = iris_frame()
    return Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())]).fit(
        df[FEATURES], df["species"]
    )


@pytest.mark.points(2)
@pytest.mark.task(4)
def test_score_csv_adds_a_prediction_per_row(model, tmp_path):
    df = iris_frame()
    df[FEATURES[::-1]].to_csv(tmp_path / "in.csv", index=False)  # columns in another order
    rows = export.score_csv(model, FEATURES, tmp_path / "in.csv", tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert rows == len(df) == len(out)
    right = (out[export.PREDICTION] == df["species"]).mean()
    assert right > 0.9, (
        f"score_csv(): {right:.0%} of the predictions are right on a CSV whose columns are in "
        "another order than the model's, expected over 90 %: pick the columns by name"
    )
    assert list(out[export.PREDICTION]) == list(model.predict(df[FEATURES]))


@pytest.mark.points(2)
@pytest.mark.task(4)
def test_onnx_export_matches_scikit_learn(model):
    X = iris_frame()[FEATURES].to_numpy()
    onnx_bytes = export.to_onnx(model, len(FEATURES))
    labels, probabilities = export.onnx_predict(onnx_bytes, X)
    assert probabilities.shape == (len(X), 3)
    parity = export.check_parity(model, onnx_bytes, X)
    assert parity.passed and parity.rows == len(X) and parity.label_mismatches == 0
    assert parity.max_proba_diff < export.PROBA_TOLERANCE
    assert np.array_equal(labels.astype(str), model.predict(iris_frame()[FEATURES]).astype(str))


@pytest.mark.points(1)
@pytest.mark.task(6)
def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck_and_passes_hadolint():
    instructions = dockerfile_instructions(DOCKERFILE)
    words = [word for word, _ in instructions]
    assert words.count("FROM") >= 2, "build in one stage, run in another (multi-stage)"
    users = [args for word, args in instructions if word == "USER"]
    last = users[-1] if users else "(none)"
    assert users and last not in ("root", "0"), (
        f"the image must switch to a non-root USER before its CMD; its last USER is {last}"
    )
    checks = [args for word, args in instructions if word == "HEALTHCHECK"]
    assert checks and "/health" in checks[-1], "add a HEALTHCHECK that asks /health"
    hadolint(DOCKERFILE)


@pytest.mark.points(2)
@pytest.mark.task(6)
@pytest.mark.timeout(120)
def test_dockerfile_command_serves_outside_docker(registry, tmp_path):
    cmd = docker_cmd(DOCKERFILE)
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0", "listen on every interface in the image"
    port = free_port()
    log = tmp_path / "inference.jsonl"
    server = start_server(local_command(cmd, port), serve_env(registry, log), log, port, tmp_path)
    try:
        wait_ready(server)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/health").json() == {"status": "ok"}
            response = client.post("/predict", json=SETOSA)
            assert response.status_code == 200, response.text
            assert response.json()["prediction"] == "setosa"
    finally:
        stop_server(server)
    assert [line["output"] for line in read_log(log)] == ["setosa"]


@pytest.mark.points(1)
@pytest.mark.task(6)
def test_compose_file_runs_the_api_after_a_healthy_mlflow_server():
    compose = yaml.safe_load(COMPOSE.read_text())
    errors = compose_schema_errors(compose)
    assert not errors, errors
    services = compose["services"]
    assert {"api", "mlflow"} <= set(services)
    api, mlflow = services["api"], services["mlflow"]
    assert "dockerfile" in api.get("build", {}) and "serve.Dockerfile" in api["build"]["dockerfile"]
    depends = api.get("depends_on", {})
    condition = depends.get("mlflow", {}).get("condition") if isinstance(depends, dict) else None
    assert condition == "service_healthy", (
        f"compose.yaml: the api starts when mlflow is {condition!r}, expected 'service_healthy' "
        "(depends_on: mlflow: condition:), so it never asks a server that is not ready"
    )
    assert "healthcheck" in api and "healthcheck" in mlflow
    assert "sqlite" in " ".join(map(str, mlflow.get("command", []))), "an SQLite backend store"
    assert "mlflow:5000" in str(api.get("environment", {})), "point the API at the mlflow service"
