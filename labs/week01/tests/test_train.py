"""Visible component tests of week 1: ``mlpipe.train`` and the training image."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import DOCKERFILE, PIPELINE_DIR

from autograder.testkit import assert_ran, docker_cmd, dockerfile_instructions, hadolint, run_mlpipe
from mlpipe import train
from mlpipe.config import TrainParams


@pytest.mark.points(1)
def test_load_data_has_iris_shape_and_columns():
    df = train.load_data()
    assert df.shape == (150, 5)
    assert list(df.columns) == train.FEATURES + [train.TARGET]
    assert sorted(df[train.TARGET].unique()) == ["setosa", "versicolor", "virginica"]


@pytest.mark.points(1)
def test_fingerprint_is_stable_and_sensitive():
    df = train.load_data()
    assert train.fingerprint(df) == train.fingerprint(df.copy())
    changed = df.copy()
    changed.loc[0, "petal_width"] += 1.0
    assert train.fingerprint(changed) != train.fingerprint(df)


@pytest.mark.points(1)
def test_split_is_stratified_and_deterministic():
    df = train.load_data()
    first = train.split_data(df, test_size=0.2, seed=1)
    second = train.split_data(df, test_size=0.2, seed=1)
    assert len(first[1]) == 30
    assert first[3].value_counts().to_dict() == {"setosa": 10, "versicolor": 10, "virginica": 10}
    assert list(first[1].index) == list(second[1].index)


@pytest.mark.points(1)
def test_build_pipeline_uses_params():
    model = train.build_pipeline(TrainParams(C=0.5, max_iter=50, seed=3))
    assert [name for name, _ in model.steps] == ["scaler", "clf"]
    assert model.named_steps["clf"].C == 0.5
    assert model.named_steps["clf"].max_iter == 50


@pytest.mark.points(1)
def test_evaluate_returns_the_documented_metrics():
    df = train.load_data()
    X_train, X_test, y_train, y_test = train.split_data(df, 0.2, 42)
    model = train.build_pipeline(TrainParams()).fit(X_train, y_train)
    metrics = train.evaluate(model, X_test, y_test)
    assert 0.9 <= metrics["accuracy"] <= 1.0
    assert 0.9 <= metrics["f1_macro"] <= 1.0
    assert metrics["labels"] == ["setosa", "versicolor", "virginica"]
    assert len(metrics["confusion_matrix"]) == 3


@pytest.mark.points(2)
def test_cli_trains_and_writes_model_with_metadata(trained_by_cli):
    proc, out = trained_by_cli
    assert_ran(proc)
    meta = json.loads((out / train.METADATA_FILE).read_text())
    assert (out / train.MODEL_FILE).is_file()
    assert meta["params"]["seed"] == 42
    assert meta["data_fingerprint"].startswith("sha256:")
    assert set(meta["versions"]) >= {"python", "scikit-learn", "pandas", "numpy"}


@pytest.mark.points(1)
def test_dockerfile_is_complete_and_passes_hadolint():
    words = [word for word, _ in dockerfile_instructions(DOCKERFILE)]
    for needed in ("FROM", "COPY", "RUN", "USER", "CMD"):
        assert needed in words, f"the Dockerfile has no {needed} instruction yet"
    hadolint(DOCKERFILE)


@pytest.mark.points(1)
def test_dockerfile_runs_as_non_root_and_trains():
    instructions = dockerfile_instructions(DOCKERFILE)
    users = [args for word, args in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must switch to a non-root USER"
    assert docker_cmd(DOCKERFILE)[:4] == ["python", "-m", "mlpipe", "train"]


@pytest.mark.points(2)
def test_dockerfile_command_works_outside_docker(tmp_path):
    """Run the image's CMD in a folder laid out like the image's /app."""
    shutil.copyfile(PIPELINE_DIR / "params.yaml", tmp_path / "params.yaml")
    cmd = docker_cmd(DOCKERFILE)
    assert_ran(
        run_mlpipe(*cmd[3:], cwd=tmp_path), hint="the image's CMD, run in a folder like /app"
    )
    assert list(tmp_path.glob(f"models/*/{train.MODEL_FILE}")), "the CMD wrote no model"
