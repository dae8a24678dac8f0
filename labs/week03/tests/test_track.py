"""Visible component tests of week 3: ``mlpipe.track``, checked by querying MLflow."""

from __future__ import annotations

import mlflow
import pytest
from conftest import MODEL, N_TRIALS, iris_frame, run_tune, write_project

from autograder.testkit import assert_ran
from mlpipe import track
from mlpipe.config import TrackParams, TrainParams


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_tracking_uri_defaults_to_sqlite_in_the_project(store, monkeypatch):
    expected = f"sqlite:///{store / 'mlflow.db'}"
    got = track.tracking_uri(TrackParams())
    assert got == expected, (
        f"tracking_uri(TrackParams()) returned {got!r}, expected {expected!r}: without a URI in "
        "the params, the store is mlflow.db in the project folder (an absolute path)"
    )
    got = track.tracking_uri(TrackParams(tracking_uri="http://127.0.0.1:5000"))
    assert got.startswith("http"), (
        f"tracking_uri(TrackParams(tracking_uri='http://127.0.0.1:5000')) returned {got!r}, "
        "expected the URI of the params"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    got = track.tracking_uri(TrackParams(tracking_uri="http://x"))
    assert got == "sqlite:///elsewhere.db", (
        f"with MLFLOW_TRACKING_URI=sqlite:///elsewhere.db set, tracking_uri(TrackParams("
        f"tracking_uri='http://x')) returned {got!r}, expected 'sqlite:///elsewhere.db': "
        "the environment variable wins over params.yaml"
    )


@pytest.mark.points(2)
@pytest.mark.task(1)
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
    fields = set(TrainParams.__dataclass_fields__)
    assert set(data.params) >= fields, (
        f"log_training_run(): the run's params are {sorted(data.params)}, expected every field "
        f"of TrainParams ({', '.join(sorted(fields))})"
    )
    assert data.params["C"] == "0.7" and data.params["seed"] == "42"
    assert data.metrics == {"accuracy": 0.9, "f1_macro": 0.8}, (
        f"log_training_run(): the run's metrics are {data.metrics}, expected "
        "{'accuracy': 0.9, 'f1_macro': 0.8}: the two scores, under their names in metrics"
    )
    assert data.tags.get("data_fingerprint") == "sha256:abc", (
        f"log_training_run(): the run's tags are {sorted(data.tags)}: every entry of tags, "
        "e.g. data_fingerprint, must be set as a tag"
    )
    assert data.tags["git_commit"] == "none", (
        f"log_training_run(): the tag git_commit is {data.tags['git_commit']!r} for the value "
        "None, expected 'none'"
    )
    assert track.FIGURE_FILE in [a.path for a in client.list_artifacts(run.info.run_id)]
    info = mlflow.models.get_model_info(uri)
    assert info.signature is not None, (
        "log_training_run(): the logged model has no signature; infer it from the input "
        "example and the model's predictions on it"
    )
    assert info.signature.inputs.input_names()[0] == "sepal_length"
    assert info.saved_input_example_info is not None, (
        "log_training_run(): the logged model has no input example; log X_example with it"
    )
    assert mlflow.sklearn.load_model(uri).predict(X.head(2)).tolist() == ["setosa", "setosa"]


@pytest.mark.points(2)
@pytest.mark.task(2)
def test_tune_nests_every_trial_under_one_parent_run(tuned):
    _, client = tuned
    experiment = client.get_experiment_by_name("iris")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(trials) == N_TRIALS, (
        f"tune() with n_trials={N_TRIALS} made {len(parents)} top-level run(s) and "
        f"{len(trials)} nested one(s), expected 1 parent run and {N_TRIALS} trials nested in it"
    )
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}
    assert all("C" in r.data.params and "cv_accuracy" in r.data.metrics for r in trials), (
        "tune(): every trial's run must log its params (C among them) and its cv_accuracy"
    )
    tried = sorted({r.data.params["C"] for r in trials})
    assert len(tried) == N_TRIALS, (
        f"tune(): the {N_TRIALS} trial runs logged the values of C {tried}, expected "
        f"{N_TRIALS} different ones: log the params each trial was scored with"
    )


@pytest.mark.points(2)
@pytest.mark.task(3)
def test_best_trial_is_registered_as_challenger(tuned):
    _, client = tuned
    aliases = {a for m in client.search_registered_models() for a in m.aliases}
    assert track.CHALLENGER in aliases, (
        f"after tune, no version of {MODEL} has the alias '{track.CHALLENGER}' (aliases in the "
        f"registry: {sorted(aliases)}): register_challenger must set it"
    )
    version = client.get_model_version_by_alias(MODEL, track.CHALLENGER)
    assert version.description, (
        "the registered version has no description: say in one sentence which run and score "
        "it comes from"
    )
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
@pytest.mark.task(3)
def test_load_by_alias_returns_a_model_that_predicts(tuned, monkeypatch):
    home, _ = tuned
    monkeypatch.setenv("MLPIPE_HOME", str(home))
    track.connect(TrackParams())
    model = track.load_by_alias(MODEL)
    X = iris_frame().drop(columns="species")
    assert (model.predict(X) == iris_frame()["species"]).mean() > 0.9


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_unreachable_tracking_server_is_one_sentence(tmp_path):
    write_project(tmp_path)
    proc = run_tune(tmp_path, tracking_uri="http://127.0.0.1:9")
    assert_ran(proc, 2, cwd=tmp_path)
    assert "Cannot reach the MLflow tracking server" in proc.stderr
    assert "Traceback" not in proc.stderr
