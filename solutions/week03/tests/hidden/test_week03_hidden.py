"""Hidden component tests of week 3 (never released to students)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from conftest import MODEL, N_TRIALS, iris_frame, run_tune, write_project

from autograder.testkit import assert_ran
from mlpipe import track
from mlpipe.config import TrackParams, TrainParams


def _trial_cs(client, experiment: str) -> list[str]:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "tags.mlflow.parentRunId != ''")
    return sorted(r.data.params["C"] for r in runs)


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_same_seed_gives_the_same_trials(store):
    for name in ("first", "second"):
        track.connect(TrackParams(experiment=name, n_trials=3, seed=7))
        track.tune(TrainParams(), TrackParams(experiment=name, n_trials=3, seed=7), iris_frame())
    client = mlflow.MlflowClient()
    assert _trial_cs(client, "first") == _trial_cs(client, "second")
    track.connect(TrackParams(experiment="third", n_trials=3, seed=8))
    track.tune(TrainParams(), TrackParams(experiment="third", n_trials=3, seed=8), iris_frame())
    assert _trial_cs(client, "third") != _trial_cs(client, "first")


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_a_failed_run_registers_nothing(store):
    track.connect(TrackParams(experiment="failing"))
    with pytest.raises(ZeroDivisionError), mlflow.start_run() as run:
        1 / 0  # noqa: B018
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == "FAILED"
    with pytest.raises(track.TrackingError, match="FAILED"):
        track.register("never", f"runs:/{run.info.run_id}/model", run.info.run_id, "no")
    assert not mlflow.MlflowClient().search_registered_models("name = 'never'")


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_unknown_alias_is_one_sentence(tuned, monkeypatch):
    home, _ = tuned
    monkeypatch.setenv("MLPIPE_HOME", str(home))
    track.connect(TrackParams())
    with pytest.raises(track.TrackingError, match="no model 'iris-classifier' with the alias 'x'"):
        track.load_by_alias(MODEL, "x")


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_logged_model_requirements_are_explicit_not_inferred(tuned, monkeypatch):
    """Inferring requirements costs seconds per model; the course pins them instead."""
    home, client = tuned
    monkeypatch.setenv("MLPIPE_HOME", str(home))
    track.connect(TrackParams())
    version = client.get_model_version_by_alias(MODEL, track.CHALLENGER)
    path = mlflow.pyfunc.get_model_dependencies(version.source)
    lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    assert any(line.startswith("scikit-learn==") for line in lines)
    assert len(lines) <= 6, lines


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_tune_logs_the_model_in_the_best_trial_only(tuned):
    _, client = tuned
    exp = client.get_experiment_by_name("iris")
    models = client.search_logged_models(experiment_ids=[exp.experiment_id])
    assert len(models) == 1
    version = client.get_model_version_by_alias(MODEL, track.CHALLENGER)
    assert models[0].source_run_id == version.run_id


@pytest.mark.points(2)
@pytest.mark.task(2)
@pytest.mark.timeout(
    180
)  # starting a real server and four trials over HTTP; slow on a busy machine
def test_tune_against_a_real_mlflow_server(tmp_path, mlflow_server):
    write_project(tmp_path / "project")
    proc = run_tune(tmp_path / "project", tracking_uri=mlflow_server)
    assert_ran(proc, cwd=tmp_path / "project")
    assert not (tmp_path / "project" / "mlflow.db").exists(), "runs went to SQLite, not the server"
    client = mlflow.MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("iris").experiment_id])
    assert len(runs) == N_TRIALS + 1
    version = client.get_model_version_by_alias(MODEL, track.CHALLENGER)
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_registry_uri(mlflow_server)
    model = mlflow.sklearn.load_model(f"models:/{MODEL}@{track.CHALLENGER}")
    assert (
        version.version == "1" and len(model.predict(iris_frame().drop(columns="species"))) == 150
    )
