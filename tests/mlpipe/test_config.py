"""The provided configuration modules: paths, errors, the registry rules, the dataset section."""

from __future__ import annotations

import shlex

import pytest
import yaml
from conftest import SOLUTIONS
from test_generic import SPEC

from mlpipe import errors, registry
from mlpipe.config import (
    IRIS,
    PATHS,
    Feature,
    ParamsError,
    TrainParams,
    load_dataset,
    load_train_params,
    parse_dataset,
)

# --- paths ----------------------------------------------------------------------------------


def _options(cmd: str) -> dict[str, str]:
    """The ``--option value`` pairs of one dvc.yaml command."""
    words = shlex.split(cmd)
    return {w: v for w, v in zip(words, words[1:], strict=False) if w.startswith("--")}


def test_dvc_yaml_names_the_files_of_paths():
    stages = yaml.safe_load((SOLUTIONS / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    model = PATHS.model(TrainParams().model_name)
    expected = {
        "prepare": {"--raw": PATHS.raw, "--out": PATHS.processed},
        "validate": {
            "--data": PATHS.processed,
            "--reference": PATHS.schema,
            "--report": PATHS.validation_report,
        },
        "train": {"--data": PATHS.processed, "--out": model},
        "evaluate": {"--model": model, "--data": PATHS.processed, "--metrics": PATHS.metrics},
    }
    for stage, options in expected.items():
        got = _options(stages[stage]["cmd"])
        for option, path in options.items():
            assert got.get(option) == path, f"dvc.yaml {stage} {option}: {got.get(option)}"
    assert PATHS.processed in stages["prepare"]["outs"]
    assert model in stages["train"]["outs"]
    assert {PATHS.metrics: {"cache": False}} in stages["evaluate"]["metrics"]


def test_cli_defaults_come_from_paths():
    from mlpipe.__main__ import _build_parser

    parser = _build_parser()
    assert parser.parse_args(["prepare"]).raw == PATHS.raw
    assert parser.parse_args(["prepare"]).out == PATHS.processed
    assert parser.parse_args(["evaluate", "--model", "m"]).metrics == PATHS.metrics
    assert parser.parse_args(["schema"]).out == PATHS.schema


# --- errors and registry --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.ParamsError, ValueError),
        (errors.DataError, ValueError),
        (errors.TrackingError, RuntimeError),
        (errors.ServeError, RuntimeError),
    ],
)
def test_every_user_error_is_a_pipeline_error(cls, builtin):
    assert issubclass(cls, errors.PipelineError)
    assert issubclass(cls, builtin)


def test_stage_modules_raise_the_shared_errors():
    from mlpipe import capacity, data, validate

    assert data.DataError is errors.DataError
    assert validate.ValidationError is errors.ValidationError
    assert issubclass(capacity.CapacityError, errors.PipelineError)


def test_cli_exits_2_with_one_sentence_for_a_pipeline_error(tmp_path, capsys):
    from mlpipe.__main__ import main

    assert main(["prepare", "--raw", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Data file") and err.count("\n") == 1


def test_tracking_uri_rule(monkeypatch, tmp_path):
    monkeypatch.delenv(registry.URI_ENV, raising=False)
    monkeypatch.setenv("MLPIPE_HOME", str(tmp_path))
    assert registry.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert registry.tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    monkeypatch.setenv(registry.URI_ENV, "sqlite:///elsewhere.db")
    assert registry.tracking_uri("http://127.0.0.1:5000") == "sqlite:///elsewhere.db"


def test_the_model_name_default_is_the_registry_s():
    assert TrainParams().model_name == registry.DEFAULT_MODEL_NAME == "iris-classifier"


@pytest.mark.slow  # imports MLflow and the app: seconds
def test_one_model_name_and_one_set_of_aliases():
    from mlpipe import gates, serve, track

    assert TrainParams().model_name == serve.Settings().model_name == registry.DEFAULT_MODEL_NAME
    assert registry.DEFAULT_MODEL_NAME == "iris-classifier"
    assert serve.Settings().model_alias == gates.CHAMPION == registry.CHAMPION
    assert track.CHALLENGER == registry.CHALLENGER


# --- the dataset section --------------------------------------------------------------------

CHURN = SPEC  # a binary data set with a categorical feature (test_generic.py)


def _write(tmp_path, sections: dict):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")
    return path


def test_no_dataset_section_is_iris_as_in_weeks_1_to_7(tmp_path):
    assert load_dataset(None) == IRIS
    assert load_dataset(SOLUTIONS / "params.yaml") == IRIS
    assert IRIS.feature_names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert (IRIS.target, IRIS.labels, IRIS.binary) == (
        "species",
        ("setosa", "versicolor", "virginica"),
        False,
    )
    narrow = load_dataset(_write(tmp_path, {"validate": {"feature_max": 8.0}}))
    assert {f.max for f in narrow.features} == {8.0}


def test_a_categorical_binary_dataset_is_parsed(tmp_path):
    path = _write(tmp_path, {"dataset": CHURN})
    ds = load_dataset(path)
    assert (ds.name, ds.target, ds.labels, ds.positive, ds.cost_ratio) == (
        "toy",
        "churned",
        ("no", "yes"),
        "yes",
        4.0,
    )
    assert (ds.numeric, ds.categorical, ds.binary) == (["tenure", "charges"], ["contract"], True)
    assert ds.feature("tenure") == Feature("tenure", "numeric", 0.0, 100.0, "months")
    assert ds.feature("contract").categories == ("monthly", "yearly")
    assert load_train_params(path).model_name == "toy-classifier"
    named = _write(tmp_path, {"dataset": CHURN, "train": {"model_name": "mine"}})
    assert load_train_params(named).model_name == "mine"


def _with(**changes):
    spec = yaml.safe_load(yaml.safe_dump(CHURN))
    for key, value in changes.items():
        node, *path = key.split("__")
        target = spec
        for part in [node, *path][:-1]:
            target = target[part]
        target[[node, *path][-1]] = value
    return spec


@pytest.mark.parametrize(
    ("spec", "sentence"),
    [
        (
            _with(features__tenure__kind="text"),
            "dataset.features.tenure.kind must be numeric or categorical, got 'text'.",
        ),
        (
            _with(features__tenure__min=10, features__tenure__max=1),
            "dataset.features.tenure.min (10.0) is greater than dataset.features.tenure.max (1.0).",
        ),
        (
            _with(features__contract__categories=[]),
            "dataset.features.contract.categories must list the feature's categories.",
        ),
        (
            _with(positive="maybe"),
            "dataset.positive 'maybe' is not one of dataset.labels (no, yes).",
        ),
        (
            _with(features__tenure={"kind": "numeric", "max": 3}),
            "dataset.features.tenure.min is required",
        ),
        (_with(colour="red"), "Unknown key 'dataset.colour'"),
        (_with(labels=["a", "b", "c"]), "dataset.positive is for binary problems"),
        (_with(cost_ratio=0), "dataset.cost_ratio must be greater than 0"),
    ],
)
def test_bad_dataset_descriptions_are_one_sentence_naming_the_key(tmp_path, spec, sentence):
    with pytest.raises(ParamsError) as caught:
        load_dataset(_write(tmp_path, {"dataset": spec}))
    message = str(caught.value)
    assert message.startswith(sentence), message
    assert message.count(". ") == 0 and message.endswith(".")


def test_validate_keys_the_dataset_replaces_are_refused(tmp_path):
    path = _write(tmp_path, {"dataset": CHURN, "validate": {"feature_max": 3.0}})
    with pytest.raises(ParamsError, match=r"^validate.feature_max is replaced by the dataset"):
        load_dataset(path)


def test_a_target_missing_from_the_data_is_named():
    ds = parse_dataset(CHURN)
    with pytest.raises(errors.DataError, match=r"has no column 'churned', the dataset.target"):
        ds.require_columns(["tenure", "contract"], "Data file 'x.csv'")


def test_cli_refuses_a_bad_dataset_before_any_stage_runs(tmp_path, capsys):
    from mlpipe.__main__ import main

    path = _write(tmp_path, {"dataset": _with(positive="maybe")})
    out = tmp_path / "processed.csv"
    assert main(["prepare", "--params", str(path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "error: dataset.positive 'maybe' is not one of dataset.labels (no, yes).\n"
    )
    assert not out.exists()
