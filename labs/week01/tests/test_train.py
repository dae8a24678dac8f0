"""Visible component tests of week 1: ``mlpipe.train`` and the training image."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import DOCKERFILE, PIPELINE_DIR

from autograder.testkit import assert_ran, docker_cmd, dockerfile_instructions, hadolint, run_mlpipe
from mlpipe import train
from mlpipe.config import TrainParams

#: The keys evaluate() returns and collect_metadata() records (their docstrings list them).
METRIC_KEYS = {"accuracy", "f1_macro", "labels", "confusion_matrix"}
METADATA_KEYS = {
    "params",
    "data_fingerprint",
    "metrics",
    "model_fingerprint",
    "versions",
    "git_commit",
}


def not_plain_json(value, where: str) -> str | None:
    """Say where ``value`` holds something other than plain JSON types, else None."""
    if value is None or isinstance(value, (bool, str)):
        return None
    if isinstance(value, (int, float)) and type(value).__module__ == "builtins":
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = not_plain_json(item, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if isinstance(value, list):
        return next(
            filter(None, (not_plain_json(v, f"{where}[{i}]") for i, v in enumerate(value))), None
        )
    kind = type(value)
    return f"{where} is a {kind.__module__}.{kind.__qualname__}"


def missing_keys(returned: dict, expected: set[str], what: str) -> str | None:
    """Say which expected keys a returned mapping lacks, and which it has, else None."""
    missing = sorted(expected - set(returned))
    if not missing:
        return None
    return (
        f"{what} lacks the key(s) {', '.join(missing)}; it has {', '.join(sorted(map(str, returned)))}"
        f" (expected: {', '.join(sorted(expected))})"
    )


class _Predicts:
    """A stand-in model whose predictions are given in advance."""

    def __init__(self, predictions: list[str]) -> None:
        self.predictions = np.asarray(predictions)

    def predict(self, X):
        return self.predictions


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_load_data_has_iris_shape_and_columns():
    df = train.load_data()
    assert df.shape == (150, 5)
    assert list(df.columns) == train.FEATURES + [train.TARGET]
    assert sorted(df[train.TARGET].unique()) == ["setosa", "versicolor", "virginica"]


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_fingerprint_is_stable_and_sensitive():
    df = train.load_data()
    assert train.fingerprint(df) == train.fingerprint(df.copy()), (
        "fingerprint() gave two fingerprints for the same rows: it must depend on the content only"
    )
    for row in (0, 75):
        changed = df.copy()
        changed.loc[row, "petal_width"] += 1.0
        assert train.fingerprint(changed) != train.fingerprint(df), (
            f"fingerprint(): changing petal_width in row {row} did not change the fingerprint; "
            "it must depend on every value of the frame, not on a shortened text or a summary of it"
        )


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_split_is_stratified_and_deterministic():
    df = train.load_data()
    first = train.split_data(df, test_size=0.2, seed=1)
    second = train.split_data(df, test_size=0.2, seed=1)
    assert len(first[1]) == 30, (
        f"split_data(df, test_size=0.2, seed=1) returned {len(first[1])} test rows, "
        "expected 30 (20 % of 150): use the test_size argument"
    )
    counts = first[3].value_counts().to_dict()
    assert counts == {"setosa": 10, "versicolor": 10, "virginica": 10}, (
        f"split_data(df, test_size=0.2, seed=1) is not stratified: its test rows per species are "
        f"{counts}, expected 10 of each (every species keeps its share of the rows)"
    )
    assert list(first[1].index) == list(second[1].index), (
        "split_data(df, 0.2, seed=1) chose other test rows when called again: the same seed "
        "must give the same split"
    )
    other = train.split_data(df, test_size=0.2, seed=2)
    assert list(other[1].index) != list(first[1].index), (
        "split_data(df, 0.2, seed=1) and split_data(df, 0.2, seed=2) chose the same test rows: "
        "the split must depend on the seed argument (is a seed hard-coded?)"
    )


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_build_pipeline_uses_params():
    call = "build_pipeline(TrainParams(C=0.5, max_iter=50, seed=3))"
    try:
        model = train.build_pipeline(TrainParams(C=0.5, max_iter=50, seed=3))
    except TypeError as err:
        raise AssertionError(
            f"{call} raised TypeError: {err}. Check each keyword you pass against the "
            "parameters of the class you call (help(LogisticRegression) lists them)."
        ) from None
    steps = [name for name, _ in model.steps]
    assert steps == ["scaler", "clf"], f"{call} has the steps {steps}, expected ['scaler', 'clf']"
    clf = model.named_steps["clf"]
    assert clf.C == 0.5, f"{call}: the classifier's C is {clf.C}, expected 0.5 (params.C)"
    assert clf.max_iter == 50, (
        f"{call}: the classifier's max_iter is {clf.max_iter}, expected 50 (params.max_iter)"
    )
    assert clf.random_state == 3, (
        f"{call}: the classifier's random_state is {clf.random_state}, expected 3: "
        "the seed comes from the params, not from a constant"
    )


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_evaluate_returns_the_documented_metrics():
    df = train.load_data()
    X_train, X_test, y_train, y_test = train.split_data(df, 0.2, 42)
    model = train.build_pipeline(TrainParams()).fit(X_train, y_train)
    metrics = train.evaluate(model, X_test, y_test)
    assert isinstance(metrics, dict), f"evaluate() returned a {type(metrics).__name__}, not a dict"
    problem = missing_keys(metrics, METRIC_KEYS, "the dict evaluate() returned")
    assert not problem, problem
    problem = not_plain_json(metrics, "metrics")
    assert not problem, (
        f"evaluate() must return plain Python types, which metadata.json can store: {problem}, "
        "expected float for the scores and lists (of str, of lists of int) for labels and "
        "confusion_matrix; convert numpy values, e.g. with float() or .tolist()"
    )
    assert 0.9 <= metrics["accuracy"] <= 1.0
    assert 0.9 <= metrics["f1_macro"] <= 1.0
    assert metrics["labels"] == ["setosa", "versicolor", "virginica"], (
        f"evaluate(): labels is {metrics['labels']}, expected the sorted class names"
    )
    assert len(metrics["confusion_matrix"]) == 3
    # Known predictions: 4 setosa right, versicolor 1 of 2 right, virginica 2 of 2 right.
    y = pd.Series(["setosa"] * 4 + ["versicolor"] * 2 + ["virginica"] * 2)
    pred = ["setosa"] * 4 + ["versicolor", "virginica", "virginica", "virginica"]
    f1 = train.evaluate(_Predicts(pred), X_test.iloc[:8], y)["f1_macro"]
    assert f1 == pytest.approx(0.8222, abs=1e-4), (
        f"evaluate(): f1_macro is {f1:.4f} for 8 known predictions, expected 0.8222: macro F1 "
        "is the plain mean of the per-class F1 scores, each class counting the same "
        "(0.8750 would be the micro average, 0.8667 the average weighted by class size)"
    )


@pytest.mark.points(2)
@pytest.mark.task(3)
def test_cli_trains_and_writes_model_with_metadata(trained_by_cli):
    metadata = train.collect_metadata(
        TrainParams(), "sha256:0", {"accuracy": 1.0}, "joblib:0"
    )  # fmt: skip
    problem = not_plain_json(metadata, "metadata")
    assert not problem, (
        f"collect_metadata() must return what metadata.json can store: {problem}, expected "
        "dicts, lists, str, int, float, bool or None (params too must be a plain dict)"
    )
    proc, out = trained_by_cli  # trained with test_size: 0.3
    assert_ran(proc)
    meta = json.loads((out / train.METADATA_FILE).read_text())
    assert (out / train.MODEL_FILE).is_file()
    problem = missing_keys(meta, METADATA_KEYS, f"{train.METADATA_FILE} (from collect_metadata)")
    assert not problem, f"{problem}; git_commit may be None outside a git checkout"
    assert meta["params"]["seed"] == 42
    assert meta["data_fingerprint"].startswith("sha256:")
    assert set(meta["versions"]) >= {"python", "scikit-learn", "pandas", "numpy"}
    evaluated = sum(map(sum, meta["metrics"]["confusion_matrix"]))
    assert evaluated == 45, (
        f"with test_size: 0.3 in params.yaml, train() evaluated the model on {evaluated} rows, "
        "expected 45 (30 % of 150): train() must split with the test_size of its params"
    )
    model, _ = train.load_model(out)
    X_train = train.split_data(train.load_data(), 0.3, 42)[0]
    scaler = model.named_steps["scaler"]
    assert np.allclose(scaler.mean_, X_train.mean().to_numpy(), rtol=0, atol=1e-9), (
        f"train(): the saved model's scaler learnt the means {np.round(scaler.mean_, 3).tolist()}, "
        f"expected those of the training rows only, {X_train.mean().round(3).tolist()}: fit the "
        "whole pipeline on the training split, so that nothing about the test rows leaks in"
    )


@pytest.mark.points(1)
@pytest.mark.task(5)
def test_dockerfile_is_complete_and_passes_hadolint():
    words = [word for word, _ in dockerfile_instructions(DOCKERFILE)]
    for needed in ("FROM", "COPY", "RUN", "USER", "CMD"):
        assert needed in words, f"the Dockerfile has no {needed} instruction yet"
    hadolint(DOCKERFILE)


@pytest.mark.points(1)
@pytest.mark.task(5)
def test_dockerfile_runs_as_non_root_and_trains():
    instructions = dockerfile_instructions(DOCKERFILE)
    users = [args for word, args in instructions if word == "USER"]
    last = users[-1] if users else "(none)"
    assert users and last not in ("root", "0"), (
        f"the image must switch to a non-root USER before its CMD; its last USER is {last}"
    )
    assert docker_cmd(DOCKERFILE)[:4] == ["python", "-m", "mlpipe", "train"]


@pytest.mark.points(2)
@pytest.mark.task(5)
def test_dockerfile_command_works_outside_docker(tmp_path):
    """Run the image's CMD in a folder laid out like the image's /app."""
    shutil.copyfile(PIPELINE_DIR / "params.yaml", tmp_path / "params.yaml")
    cmd = docker_cmd(DOCKERFILE)
    assert_ran(
        run_mlpipe(*cmd[3:], cwd=tmp_path), hint="the image's CMD, run in a folder like /app"
    )
    assert list(tmp_path.glob(f"models/*/{train.MODEL_FILE}")), "the CMD wrote no model"
