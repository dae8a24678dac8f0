"""Visible component tests of week 3: ``mlpipe.track``, checked by querying MLflow."""

from __future__ import annotations

import mlflow
import pytest
from conftest import MODEL, N_TRIALS, iris_frame, run_tune, write_project

from autograder.testkit import assert_ran
from mlpipe import track
from mlpipe.config import TrackParams, TrainParams


@pytest.mark.points(1)
def test_tracking_uri_defaults_to_sqlite_in_the_project(store, monkeypatch):
    assert track.tracking_uri(TrackParams()) == f"sqlite:///{store / 'mlflow.db'}"
    assert track.tracking_uri(TrackParams(tracking_uri="http://127.0.0.1:5000")).startswith("http")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert track.tracking_uri(TrackParams(tracking_uri="http://x")) == "sqlite:///elsewhere.db"


@pytest.mark.points(2)
def test_log_training_run_records_params_metrics_figure_tags_and_model(store):
    from sklearn.linear_model import LogisticRegression

    track.connect(TrackParams(experiment="unit"))
    df = iris_frame()
    X, y = df.drop(columns="species"), df["species"]
    model = LogisticRegression(max_iter=300).fit(X, y)
    metrics = {
        "accuracy": 0.9,
        "f1_macro": 0.8,
        "labels": ["setosa", "versicolor", "virginica"],
        "confusion_matrix": [[10, 0, 0], [0, 9, 1], [0, 2, 8]],
    }
    tags = {"data_fingerprint": "sha256:abc", "git_commit": None}
    with mlflow.start_run() as run:
        uri = track.log_training_run(model, TrainParams(C=0.7), metrics, X.head(3), tags)
    client = mlflow.MlflowClient()
    data = client.get_run(run.info.run_id).data
    assert data.params["C"] == "0.7" and data.params["seed"] == "42"
    assert data.metrics == {"accuracy": 0.9, "f1_macro": 0.8}
    assert data.tags["data_fingerprint"] == "sha256:abc"
    assert data.tags["git_commit"] == "none"
    assert track.FIGURE_FILE in [a.path for a in client.list_artifacts(run.info.run_id)]
    info = mlflow.models.get_model_info(uri)
    assert info.signature is not None and info.signature.inputs.input_names()[0] == "sepal_length"
    assert info.saved_input_example_info is not None
    assert mlflow.sklearn.load_model(uri).predict(X.head(2)).tolist() == ["setosa", "setosa"]


@pytest.mark.points(2)
def test_tune_nests_every_trial_under_one_parent_run(tuned):
    _, client = tuned
    experiment = client.get_experiment_by_name("iris")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(trials) == N_TRIALS
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}
    assert all("C" in r.data.params and "cv_accuracy" in r.data.metrics for r in trials)
    assert len({r.data.params["C"] for r in trials}) == N_TRIALS


@pytest.mark.points(2)
def test_best_trial_is_registered_as_challenger(tuned):
    _, client = tuned
    version = client.get_model_version_by_alias(MODEL, track.CHALLENGER)
    assert version.description, "the registered version has no description"
    trials = client.search_runs(
        [client.get_experiment_by_name("iris").experiment_id],
        "tags.mlflow.parentRunId != ''",
    )
    best_score = max(r.data.metrics["cv_accuracy"] for r in trials)
    registered = client.get_run(version.run_id).data
    assert registered.tags.get("mlflow.parentRunId"), "register the best trial's run"
    assert registered.metrics["cv_accuracy"] == best_score
    assert registered.tags["data_fingerprint"].startswith("sha256:")


@pytest.mark.points(1)
def test_load_by_alias_returns_a_model_that_predicts(tuned, monkeypatch):
    home, _ = tuned
    monkeypatch.setenv("MLPIPE_HOME", str(home))
    track.connect(TrackParams())
    model = track.load_by_alias(MODEL)
    X = iris_frame().drop(columns="species")
    assert (model.predict(X) == iris_frame()["species"]).mean() > 0.9


@pytest.mark.points(1)
def test_unreachable_tracking_server_is_one_sentence(tmp_path):
    write_project(tmp_path)
    proc = run_tune(tmp_path, tracking_uri="http://127.0.0.1:9")
    assert_ran(proc, 2, cwd=tmp_path)
    assert "Cannot reach the MLflow tracking server" in proc.stderr
    assert "Traceback" not in proc.stderr
