"""The dataset-generic path: a tiny synthetic binary frame with a categorical feature.

Iris is covered by the weeks' own tests; these run every stage that reads the
``dataset`` description on data that is not Iris (fast tier: each test well under 1 s).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from mlpipe import data, evaluate, train, validate
from mlpipe.config import TrainParams, ValidateParams, load_dataset, parse_dataset
from mlpipe.errors import DataError

SPEC = {
    "name": "toy",
    "target": "churned",
    "labels": ["no", "yes"],
    "positive": "yes",
    "cost_ratio": 4,
    "features": {
        "tenure": {"kind": "numeric", "min": 0, "max": 100, "unit": "months"},
        "charges": {"kind": "numeric", "min": 0, "max": 200},
        "contract": {"kind": "categorical", "categories": ["monthly", "yearly"]},
    },
}
DATASET = parse_dataset(SPEC)
PARAMS = ValidateParams(min_class_fraction=0.1)


def frame(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    """Churn-like rows: short tenure on a monthly contract churns more often."""
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(0, 100, rows).round(1)
    contract = rng.choice(["monthly", "yearly"], rows)
    charges = rng.uniform(10, 150, rows).round(2)
    risk = 1 / (1 + np.exp((tenure - 30) / 8)) * np.where(contract == "monthly", 1.0, 0.2)
    churned = np.where(rng.uniform(size=rows) < risk, "yes", "no")
    return pd.DataFrame(
        {"tenure": tenure, "charges": charges, "contract": contract, "churned": churned}
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    return train.train(TrainParams(), out, data=frame(), dataset=DATASET)


def test_the_model_one_hot_encodes_and_ignores_unknown_categories(trained):
    model, _ = train.load_model(trained.model_dir)
    first = model.estimator.steps[0] if hasattr(model, "estimator") else model.steps[0]
    assert first[0] == "preprocess"
    odd = pd.DataFrame({"tenure": [5.0], "charges": [50.0], "contract": ["weekly"]})
    assert model.predict(odd)[0] in DATASET.labels


def test_binary_metrics_and_the_cost_threshold(trained):
    metrics = trained.metrics
    assert metrics["threshold"] == pytest.approx(1 / (1 + 4))
    for key in ("roc_auc", "pr_auc", "f1_positive"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["roc_auc"] > 0.7
    model, _ = train.load_model(trained.model_dir)
    X = frame(400, seed=1)[DATASET.feature_names]
    p = model.predict_proba(X)[:, list(model.classes_).index("yes")]
    assert ((p > metrics["threshold"]) == (model.predict(X) == "yes")).all()


def test_evaluate_saved_writes_the_binary_metrics(trained):
    got = evaluate.evaluate_saved(trained.model_dir, frame(), DATASET)
    assert set(evaluate.BINARY_METRICS) <= got.keys()
    assert got["test_rows"] == 24


def test_multiclass_iris_keeps_its_metrics():
    assert "roc_auc" not in train.evaluate(*_iris_model())


def _iris_model():
    df = train.load_data()
    X_train, X_test, y_train, y_test = train.split_data(df, 0.2, 0)
    return train.build_pipeline(TrainParams()).fit(X_train, y_train), X_test, y_test


def test_validation_reads_ranges_and_categories_from_the_description():
    assert validate.validate(frame(), PARAMS, dataset=DATASET).passed
    bad = frame()
    bad.loc[3, "contract"] = "weekly"
    bad.loc[4, "tenure"] = 130.0
    bad.loc[5, "churned"] = "maybe"
    result = validate.validate(bad, PARAMS, dataset=DATASET)
    failed = {c.name: c.message for c in result.failed}
    assert failed.keys() == {"domain.ranges", "domain.categories"}
    assert (
        failed["domain.ranges"]
        == "values outside the valid range in tenure (1 rows outside [0.0, 100.0])."
    )
    assert "unknown label(s) maybe" in failed["domain.categories"]
    assert "unknown contract weekly; known: monthly, yearly" in failed["domain.categories"]


def test_the_reference_schema_has_the_numeric_features_only():
    schema = validate.infer_schema(frame(), DATASET)
    assert schema["stats"].keys() == {"tenure", "charges"}
    assert schema["categories"] == ["no", "yes"]
    assert validate.validate(frame(seed=2), PARAMS, schema, DATASET).passed


@pytest.mark.parametrize(
    ("row", "column", "value", "sentence"),
    [
        (
            2,
            "contract",
            "weekly",
            "has the unknown category 'weekly' in column contract, data row 3; known: monthly, yearly.",
        ),
        (
            0,
            "tenure",
            -1.0,
            "has -1.0 in column tenure, data row 1, outside the valid range [0.0, 100.0] "
            "(dataset.features.tenure).",
        ),
        (1, "churned", "maybe", "has the unknown label 'maybe' in column churned, data row 2"),
    ],
)
def test_training_refuses_bad_rows_naming_the_description(row, column, value, sentence):
    df = frame()
    df.loc[row, column] = value
    with pytest.raises(DataError) as caught:
        data.check_training_data(df, PARAMS, 0.2, "toy.csv", DATASET)
    assert str(caught.value).startswith(f"Data file 'toy.csv' {sentence}"), str(caught.value)


def test_a_missing_target_is_named():
    with pytest.raises(DataError, match="has no column churned"):
        data.check_training_data(frame().drop(columns="churned"), PARAMS, 0.2, "t.csv", DATASET)


@pytest.mark.slow
def test_cli_trains_and_evaluates_the_described_data(tmp_path, capsys):
    from mlpipe.__main__ import main

    params = tmp_path / "params.yaml"
    sections = {"dataset": SPEC, "validate": {"min_class_fraction": 0.1}}
    params.write_text(yaml.safe_dump(sections, sort_keys=False))
    assert load_dataset(params) == DATASET
    csv = tmp_path / "toy.csv"
    frame().to_csv(csv, index=False)
    model = tmp_path / "models" / "toy-classifier"
    assert main(["train", "--params", str(params), "--data", str(csv), "--out", str(model)]) == 0
    assert capsys.readouterr().out.startswith("trained toy-classifier")
    metrics = tmp_path / "metrics.json"
    argv = ["evaluate", "--params", str(params), "--model", str(model), "--data", str(csv)]
    assert main([*argv, "--metrics", str(metrics)]) == 0
    assert "roc_auc" in metrics.read_text()
    assert main(["train", "--params", str(params), "--out", str(model)]) == 2
    assert "train needs --data for the dataset 'toy'" in capsys.readouterr().err


# --- gates -----------------------------------------------------------------------------------

GATES = {
    "invariance_features": ["charges"],
    "directional": [{"feature": "tenure", "decreases": "positive"}],
    "examples": [
        {"features": {"tenure": 95.0, "charges": 50.0, "contract": "yearly"}, "label": "no"},
        {"features": {"tenure": 1.0, "charges": 50.0, "contract": "monthly"}, "label": "yes"},
    ],
    "directional_shift": 10.0,
    "perturbation": 1.0,
    "min_accuracy": 0.5,
    "min_f1_macro": 0.5,
}


def _gate_params(**changes):
    from mlpipe.config import GateParams, check_gates, parse_section

    return check_gates(parse_section("gates", {**GATES, **changes}, GateParams), DATASET)


def test_behavioural_gates_come_from_params(trained):
    from mlpipe import gates

    model, _ = train.load_model(trained.model_dir)
    X, params = frame()[DATASET.feature_names], _gate_params()
    checks = {
        c.name: c
        for c in (
            gates.invariance(model, X, params, DATASET),
            gates.directional(model, X, params, DATASET),
            gates.minimum_functionality(model, params, DATASET),
        )
    }
    assert checks["invariance"].passed, checks["invariance"].detail
    assert checks["directional"].passed, checks["directional"].detail
    assert checks["minimum_functionality"].passed, checks["minimum_functionality"].detail
    assert "tenure grew by 10.0 months" in checks["directional"].detail

    class Backwards:
        """Longer tenure means more churn: breaks the rule."""

        classes_ = np.array(["no", "yes"])

        def predict(self, X):
            return np.where(X["tenure"] > 50, "yes", "no")

    broken = gates.directional(Backwards(), frame()[DATASET.feature_names], _gate_params(), DATASET)
    assert not broken.passed
    assert "moved down the reverse order of the positive class when tenure grew" in broken.detail
    missed = gates.minimum_functionality(Backwards(), _gate_params(), DATASET)
    assert not missed.passed and "a textbook no was predicted yes" in missed.detail


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"invariance_features": ["contract"]}, "gates.invariance_features names 'contract'"),
        (
            {"directional": [{"feature": "petal_length", "increases": "label_rank"}]},
            "gates.directional names 'petal_length'",
        ),
        ({"directional": [{"feature": "tenure", "grows": "positive"}]}, "gates.directional rule"),
        (
            {"examples": [{"features": {"tenure": 1.0}, "label": "no"}]},
            "gates.examples: the example of 'no' must give exactly",
        ),
        (
            {"examples": [{**GATES["examples"][0], "label": "maybe"}]},
            "gates.examples: 'maybe' is not one of dataset.labels.",
        ),
    ],
)
def test_gates_that_do_not_fit_the_dataset_are_one_sentence(changes, sentence):
    from mlpipe.config import ParamsError

    with pytest.raises(ParamsError) as caught:
        _gate_params(**changes)
    assert str(caught.value).startswith(sentence), str(caught.value)


def test_iris_default_gates_reproduce_the_week_4_gates():
    from mlpipe import gates
    from mlpipe.config import GateParams

    model, X, _ = _iris_model()
    assert gates.minimum_functionality(model) == gates.minimum_functionality(model, GateParams())
    assert gates.invariance(model, X, GateParams()).passed
    assert gates.directional(model, X, GateParams()).detail == (
        "no prediction moved down when petal_length and petal_width grew by 1.0 cm."
    )


# --- serving ---------------------------------------------------------------------------------


@pytest.mark.slow  # importing the app costs seconds
def test_served_rows_have_categorical_fields_as_enums(tmp_path, monkeypatch):
    from pydantic import ValidationError

    from mlpipe import serve

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"dataset": SPEC}, sort_keys=False))
    settings = serve.Settings(params_file=params)
    categories = serve.feature_categories(settings)
    assert categories == {"contract": ("monthly", "yearly")}
    assert serve.feature_range(settings) == (0.0, 200.0)
    features = (("tenure", "double"), ("charges", "double"), ("contract", "string"))
    row = serve.row_schema(features, categories)
    assert row.model_json_schema()["properties"]["contract"]["enum"] == ["monthly", "yearly"]
    row.model_validate({"tenure": 3.0, "charges": 20.0, "contract": "yearly"})
    with pytest.raises(ValidationError):
        row.model_validate({"tenure": 3.0, "charges": 20.0, "contract": "weekly"})
    monkeypatch.setenv("MLPIPE_HOME", str(tmp_path / "empty"))
    iris = serve.Settings(params_file=None)
    assert (serve.feature_categories(iris), serve.feature_range(iris)) == ({}, (0.0, 10.0))


# --- monitoring ------------------------------------------------------------------------------


def _log(path, df: pd.DataFrame) -> None:
    import json

    lines = [
        json.dumps(
            {
                "request_id": f"r{i}",
                "time": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00",
                "model_name": "toy-classifier",
                "model_version": "1",
                "inputs": {f: row[f] for f in DATASET.feature_names},
                "output": row["churned"],
                "latency_ms": 1.0,
            }
        )
        for i, row in enumerate(df.to_dict("records"))
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow  # Evidently takes seconds to import
@pytest.mark.parametrize("drifted", [False, True])
def test_monitor_tests_categorical_features_with_chi_square(tmp_path, drifted):
    from mlpipe import monitor
    from mlpipe.config import MonitorParams

    reference = tmp_path / "reference.csv"
    frame(400).to_csv(reference, index=False)
    schema = validate.write_schema(frame(400), tmp_path / "schema.json", DATASET)
    window = frame(200, seed=5)
    if drifted:
        window["contract"] = "monthly"
    _log(tmp_path / "log.jsonl", window)
    result = monitor.monitor(
        tmp_path / "log.jsonl",
        reference,
        schema,
        tmp_path / "out",
        MonitorParams(),
        dataset=DATASET,
    )
    features = result.summary.features
    assert list(features) == ["tenure", "charges", "contract"]
    assert (features["tenure"].test, features["contract"].test) == ("ks", "chisquare")
    assert features["contract"].drifted is drifted
    assert not features["tenure"].drifted


@pytest.mark.slow  # MLflow: a real SQLite store, a search, the registry and the gates
def test_tune_and_gate_the_described_data_through_the_registry(tmp_path, monkeypatch, capsys):
    from mlpipe.__main__ import main

    monkeypatch.setenv("MLPIPE_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sections = {
        "dataset": SPEC,
        "validate": {"min_class_fraction": 0.1},
        "track": {"n_trials": 2, "cv_folds": 3, "experiment": "toy"},
        "gates": {**GATES, "max_latency_ms": 5000.0},  # this proves the wiring, not the speed
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(sections, sort_keys=False))
    csv = tmp_path / "toy.csv"
    frame(200).to_csv(csv, index=False)
    assert main(["tune", "--params", str(params), "--data", str(csv)]) == 0
    assert "registered toy-classifier version 1 as 'challenger'" in capsys.readouterr().out
    assert main(["gate", "--params", str(params), "--data", str(csv), "--promote"]) == 0, (
        capsys.readouterr()
    )
    assert "promoted: 'champion' now points at version 1" in capsys.readouterr().out


def test_prepare_keeps_the_described_columns_and_strips_the_labels(tmp_path):
    from mlpipe.config import PrepareParams

    raw = frame(40).assign(extra=1, churned=lambda d: " " + d["churned"])
    raw[["extra", *DATASET.feature_names, "churned"]].to_csv(tmp_path / "raw.csv", index=False)
    info = data.prepare(tmp_path / "raw.csv", tmp_path / "out.csv", PrepareParams(""), DATASET)
    assert info["columns"] == [*DATASET.feature_names, "churned"]
    processed = data.read_processed(tmp_path / "out.csv")
    assert set(processed["churned"]) <= {"no", "yes"}
    with pytest.raises(DataError, match="The raw data has no column 'churned'"):
        data.clean(raw.drop(columns="churned"), PrepareParams(""), DATASET)
