"""Paths and parameters, in one place.

Every stage reads its parameters from the ``params.yaml`` file of the pipeline,
one section per stage. Parameters are validated when they are loaded, so that a
typo in a key or a value of the wrong type stops the run with one clear
sentence instead of a traceback deep inside scikit-learn.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_origin, get_type_hints

import yaml

from mlpipe.errors import ParamsError
from mlpipe.registry import DEFAULT_MODEL_NAME, model_name

#: Environment variable that moves every artifact the pipeline writes.
HOME_ENV = "MLPIPE_HOME"

P = TypeVar("P")


def project_dir() -> Path:
    """Return the folder the pipeline reads from and writes to.

    Returns:
        ``$MLPIPE_HOME`` when it is set, otherwise the current working folder.
    """
    return Path(os.environ.get(HOME_ENV, ".")).resolve()


def models_dir() -> Path:
    """Return the default folder for trained models (``<project>/models``)."""
    return project_dir() / PATHS.models


@dataclass(frozen=True)
class Paths:
    """The pipeline's files, relative to the project folder (the one place that names them).

    The command line's defaults come from :data:`PATHS`, and ``dvc.yaml`` names the
    same files (a test checks that the two agree).

    Attributes:
        raw: The raw data as the provider delivers it (``fetch`` writes it).
        processed: The cleaned data every later stage reads (``prepare`` writes it).
        schema: The reference (training) schema ``validate`` compares against.
        validation_report: The checks ``validate`` ran, as JSON.
        models: The folder of trained model folders (``models/<model name>``).
        metrics: The metrics ``evaluate`` writes for DVC.
        onnx: The ONNX file ``export-onnx`` writes.
        predictions: The CSV ``score`` writes.
        inference_log: The JSON lines ``serve`` appends every prediction to.
        labels: The ground truth ``simulate`` writes for the monitor.
        monitoring: The folder of the monitor's reports.
        big: The large generated file ``scale`` scores.
    """

    raw: str = "data/raw/iris.csv"
    processed: str = "data/processed/iris.csv"
    schema: str = "data/schema.json"
    validation_report: str = "reports/validation.json"
    models: str = "models"
    metrics: str = "metrics.json"
    onnx: str = "models/model.onnx"
    predictions: str = "predictions.csv"
    inference_log: str = "logs/inference.jsonl"
    labels: str = "logs/labels.csv"
    monitoring: str = "reports/monitoring"
    big: str = "data/big.csv"

    def model(self, name: str) -> str:
        """The folder of the trained model ``name`` (``models/<name>``)."""
        return f"{self.models}/{name}"


#: The pipeline's files (see :class:`Paths`).
PATHS = Paths()
#: The four measurements of the default data set, Iris, in centimetres.
_IRIS = ("sepal_length", "sepal_width", "petal_length", "petal_width")


@dataclass(frozen=True)
class TrainParams:
    """Parameters of the ``train`` stage (section ``train`` of params.yaml).

    Attributes:
        seed: Seed for the split and the model; same seed, same model.
        test_size: Fraction of rows held out for evaluation, in (0, 1).
        C: Inverse regularisation strength of the logistic regression, > 0.
        max_iter: Iteration limit of the solver, > 0.
        model_name: Name the model is saved and (later) registered under.
    """

    seed: int = 42
    test_size: float = 0.2
    C: float = 1.0
    max_iter: int = 200
    model_name: str = DEFAULT_MODEL_NAME

    def __post_init__(self) -> None:
        if not 0.0 < self.test_size < 1.0:
            raise ParamsError(f"train.test_size must be between 0 and 1, got {self.test_size}.")
        if self.C <= 0:
            raise ParamsError(f"train.C must be greater than 0, got {self.C}.")
        if self.max_iter <= 0:
            raise ParamsError(f"train.max_iter must be greater than 0, got {self.max_iter}.")


@dataclass(frozen=True)
class PrepareParams:
    """Parameters of the ``prepare`` stage (week 2).

    Attributes:
        label_prefix: Prefix stripped from raw labels (``Iris-setosa`` -> ``setosa``).
    """

    label_prefix: str = "Iris-"


@dataclass(frozen=True)
class ValidateParams:
    """Thresholds of the ``validate`` stage (week 2).

    Attributes:
        min_rows: Fewest rows a usable data set has.
        feature_min: Smallest plausible measurement, in centimetres.
        feature_max: Largest plausible measurement, in centimetres.
        categories: The labels the model knows.
        max_missing_fraction: Largest share of missing cells allowed.
        max_duplicate_fraction: Largest share of duplicated rows allowed.
        min_class_fraction: Smallest share of rows any label may have.
        max_drift: Largest shift of a feature's mean from the reference
            schema, in reference standard deviations.
    """

    min_rows: int = 30
    feature_min: float = 0.0
    feature_max: float = 10.0
    categories: list[str] = field(default_factory=lambda: ["setosa", "versicolor", "virginica"])
    max_missing_fraction: float = 0.0
    max_duplicate_fraction: float = 0.02
    min_class_fraction: float = 0.2
    max_drift: float = 1.0

    def __post_init__(self) -> None:
        if self.feature_min >= self.feature_max:
            raise ParamsError("validate.feature_min must be smaller than validate.feature_max.")
        for name in ("max_missing_fraction", "max_duplicate_fraction", "min_class_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ParamsError(f"validate.{name} must be between 0 and 1, got {value}.")


@dataclass(frozen=True)
class TrackParams:
    """Parameters of experiment tracking and tuning (week 3).

    Attributes:
        tracking_uri: Where MLflow keeps runs; empty means an SQLite file
            ``mlflow.db`` in the project folder. ``MLFLOW_TRACKING_URI`` wins.
        experiment: Name of the MLflow experiment.
        n_trials: Number of Optuna trials in a search.
        seed: Seed of the Optuna sampler; same seed, same trials.
        C_min: Lower bound of the searched regularisation strength.
        C_max: Upper bound of the searched regularisation strength.
        cv_folds: Cross-validation folds that score each trial.
    """

    tracking_uri: str = ""
    experiment: str = "iris"
    n_trials: int = 8
    seed: int = 42
    C_min: float = 0.01
    C_max: float = 100.0
    cv_folds: int = 5

    def __post_init__(self) -> None:
        if self.n_trials <= 0:
            raise ParamsError(f"track.n_trials must be greater than 0, got {self.n_trials}.")
        if not 0 < self.C_min < self.C_max:
            raise ParamsError("track.C_min must be greater than 0 and smaller than track.C_max.")
        if self.cv_folds < 2:
            raise ParamsError(f"track.cv_folds must be at least 2, got {self.cv_folds}.")


def _coerce(section: str, key: str, value: Any, expected: type) -> Any:
    """Check one value against the type its dataclass field declares."""
    where = f"{section}.{key}"
    expected = get_origin(expected) or expected
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, expected):
        raise ParamsError(
            f"{where} must be {expected.__name__}, got {type(value).__name__} {value!r}."
        )
    return value


def parse_section(section: str, values: dict[str, Any] | None, cls: type) -> Any:
    """Build a params dataclass from one section of params.yaml.

    Args:
        section: Name of the section, used in error messages.
        values: The mapping read from the file (``None`` means all defaults).
        cls: The frozen dataclass describing the section.

    Returns:
        An instance of ``cls``.

    Raises:
        ParamsError: For an unknown key or a value of the wrong type.
    """
    values = values or {}
    if not isinstance(values, dict):
        raise ParamsError(f"Section '{section}' must be a mapping of key: value pairs.")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = (
                f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(names)})"
            )
            raise ParamsError(f"Unknown key '{section}.{key}'{hint}.")
        kwargs[key] = _coerce(section, key, value, hints[key])
    return cls(**kwargs)


def read_params_file(path: str | Path) -> dict[str, Any]:
    """Read a params.yaml file into a mapping of sections.

    Raises:
        ParamsError: When the file is missing or is not a YAML mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"Params file '{path}' does not exist.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"Params file '{path}' is not valid YAML{line}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"Params file '{path}' must be a mapping of sections such as 'train:'.")
    return data


def load_params(path: str | Path | None, section: str, cls: type[P]) -> P:
    """Load one section of a params file.

    Args:
        path: The params.yaml file; ``None`` gives the defaults.
        section: The section's name, e.g. ``"validate"``.
        cls: The params dataclass of that section.

    Returns:
        The validated parameters.
    """
    if path is None:
        return cls()
    return parse_section(section, read_params_file(path).get(section), cls)


def load_train_params(path: str | Path | None = None) -> TrainParams:
    """Load the ``train`` section of a params file (``None``: the defaults).

    Without a ``train.model_name``, the model is named after the data set
    (``<dataset.name>-classifier``, :func:`mlpipe.registry.model_name`).
    """
    params = load_params(path, "train", TrainParams)
    if path is None or "model_name" in (read_params_file(path).get("train") or {}):
        return params
    return dataclasses.replace(params, model_name=model_name(load_dataset(path).name))


# --- the data set (week 8: a dataset-generic pipeline) ----------------------------------------

#: The kinds a feature can have.
FEATURE_KINDS = ("numeric", "categorical")
#: The keys of one feature's description, per kind (``unit`` is optional).
FEATURE_KEYS = {"numeric": ("kind", "min", "max", "unit"), "categorical": ("kind", "categories")}
#: The keys of the ``dataset`` section.
DATASET_KEYS = ("name", "target", "labels", "positive", "cost_ratio", "features")
#: The keys of ``validate`` that a ``dataset`` section replaces (per-feature ranges, labels).
REPLACED_BY_DATASET = ("feature_min", "feature_max", "categories")


@dataclass(frozen=True)
class Feature:
    """One input column of the model.

    Attributes:
        name: The column's name.
        kind: ``numeric`` or ``categorical``.
        min: Smallest valid value (numeric).
        max: Largest valid value (numeric).
        unit: The unit of a numeric feature, for people (``cm``, ``months``), or ``None``.
        categories: Every valid value of a categorical feature, in order.
    """

    name: str
    kind: str
    min: float | None = None
    max: float | None = None
    unit: str | None = None
    categories: tuple[str, ...] = ()

    @property
    def numeric(self) -> bool:
        """Whether the feature is a number."""
        return self.kind == "numeric"


def _iris_features(low: float = 0.0, high: float = 10.0) -> tuple[Feature, ...]:
    return tuple(Feature(n, "numeric", low, high, "cm") for n in _IRIS)


@dataclass(frozen=True)
class Dataset:
    """What the data is: the ``dataset`` section of params.yaml (Iris when absent).

    Attributes:
        name: Short name, used in file names and the model name's default.
        target: The label column.
        labels: Every label, in canonical order (for the directional gate, the order of rank).
        positive: Binary problems only: the positive class (one of ``labels``).
        cost_ratio: Binary problems only: the cost of a false negative divided by
            the cost of a false positive; the decision threshold on the positive
            class's probability minimises the cost (``None``: 0.5).
        features: The input columns, in the order the model expects them.
    """

    name: str = "iris"
    target: str = "species"
    labels: tuple[str, ...] = ("setosa", "versicolor", "virginica")
    positive: str | None = None
    cost_ratio: float | None = None
    features: tuple[Feature, ...] = field(default_factory=_iris_features)

    @property
    def feature_names(self) -> list[str]:
        """The input columns' names, in order."""
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[str]:
        """The numeric features' names, in order."""
        return [f.name for f in self.features if f.numeric]

    @property
    def categorical(self) -> list[str]:
        """The categorical features' names, in order."""
        return [f.name for f in self.features if not f.numeric]

    @property
    def binary(self) -> bool:
        """Whether there are exactly two labels."""
        return len(self.labels) == 2

    def feature(self, name: str) -> Feature:
        """The feature called ``name``."""
        return next(f for f in self.features if f.name == name)

    def require_columns(self, columns: Any, where: str) -> None:
        """Refuse data without the target or a feature, before any stage uses it.

        Args:
            columns: The data's column names.
            where: The data's name for the sentence, e.g. ``Data file 'x.csv'``.

        Raises:
            DataError: Naming the first missing column and the key that names it.
        """
        from mlpipe.errors import DataError

        present = {str(c) for c in columns}
        if self.target not in present:
            raise DataError(f"{where} has no column '{self.target}', the dataset.target.")
        for name in self.feature_names:
            if name not in present:
                raise DataError(f"{where} has no column '{name}', a feature of dataset.features.")


#: The default data set: Iris, as weeks 1 to 7 use it.
IRIS = Dataset()


def _string_list(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ParamsError(f"{where} must be a non-empty list of strings, got {value!r}.")
    if len(set(value)) != len(value):
        raise ParamsError(f"{where} lists a value twice: {value!r}.")
    return tuple(value)


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParamsError(f"{where} must be a number, got {value!r}.")
    return float(value)


def _unknown_key(where: str, key: Any, names: tuple[str, ...]) -> ParamsError:
    close = difflib.get_close_matches(str(key), names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(names)})"
    return ParamsError(f"Unknown key '{where}.{key}'{hint}.")


def parse_feature(name: str, values: Any) -> Feature:
    """Build one :class:`Feature` from ``dataset.features.<name>``.

    Raises:
        ParamsError: For an unknown kind or key, a numeric feature without a
            range or with ``min > max``, or a categorical one without categories.
    """
    where = f"dataset.features.{name}"
    if not isinstance(values, dict):
        raise ParamsError(f"{where} must be a mapping such as {{kind: numeric, min: 0, max: 1}}.")
    kind = values.get("kind")
    if kind not in FEATURE_KINDS:
        raise ParamsError(f"{where}.kind must be numeric or categorical, got {kind!r}.")
    for key in values:
        if key not in FEATURE_KEYS[kind]:
            raise _unknown_key(where, key, FEATURE_KEYS[kind])
    if kind == "categorical":
        if not values.get("categories"):
            raise ParamsError(f"{where}.categories must list the feature's categories.")
        return Feature(
            name, kind, categories=_string_list(f"{where}.categories", values["categories"])
        )
    for key in ("min", "max"):
        if key not in values:
            raise ParamsError(f"{where}.{key} is required for a numeric feature.")
    low, high = _number(f"{where}.min", values["min"]), _number(f"{where}.max", values["max"])
    if low > high:
        raise ParamsError(f"{where}.min ({low}) is greater than {where}.max ({high}).")
    unit = values.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise ParamsError(f"{where}.unit must be text, got {unit!r}.")
    return Feature(name, kind, low, high, unit)


def parse_dataset(values: Any) -> Dataset:
    """Build the :class:`Dataset` from the ``dataset`` section (``None``: Iris).

    Raises:
        ParamsError: In one sentence naming the key: an unknown key or feature
            kind, a range with ``min > max``, a categorical feature without
            categories, a positive class that is not a label (or on a problem
            that is not binary), a cost ratio that is not above 0.
    """
    if values is None:
        return IRIS
    if not isinstance(values, dict):
        raise ParamsError("Section 'dataset' must be a mapping of key: value pairs.")
    for key in values:
        if key not in DATASET_KEYS:
            raise _unknown_key("dataset", key, DATASET_KEYS)
    for key in ("name", "target", "labels", "features"):
        if key not in values:
            raise ParamsError(f"dataset.{key} is required in a dataset section.")
    for key in ("name", "target"):
        if not isinstance(values[key], str) or not values[key]:
            raise ParamsError(f"dataset.{key} must be a non-empty string, got {values[key]!r}.")
    labels = _string_list("dataset.labels", values["labels"])
    if len(labels) < 2:
        raise ParamsError(f"dataset.labels must list at least 2 labels, got {list(labels)}.")
    features = values["features"]
    if not isinstance(features, dict) or not features:
        raise ParamsError("dataset.features must map each feature's name to its description.")
    parsed = tuple(parse_feature(str(name), spec) for name, spec in features.items())
    if values["target"] in features:
        raise ParamsError(f"dataset.target '{values['target']}' is also one of dataset.features.")
    positive = values.get("positive")
    if positive is not None:
        if len(labels) != 2:
            raise ParamsError(
                f"dataset.positive is for binary problems; dataset.labels has {len(labels)}."
            )
        if positive not in labels:
            raise ParamsError(
                f"dataset.positive {positive!r} is not one of dataset.labels ({', '.join(labels)})."
            )
    cost_ratio = values.get("cost_ratio")
    if cost_ratio is not None:
        cost_ratio = _number("dataset.cost_ratio", cost_ratio)
        if positive is None or cost_ratio <= 0:
            raise ParamsError(
                "dataset.cost_ratio must be greater than 0, and needs dataset.positive."
            )
    return Dataset(values["name"], values["target"], labels, positive, cost_ratio, parsed)


def load_dataset(path: str | Path | None = None) -> Dataset:
    """Load the ``dataset`` section of a params file.

    Without a file, Iris; without a section, Iris with the ranges and labels of
    the ``validate`` section (``feature_min``, ``feature_max``, ``categories``),
    as in weeks 1 to 7.

    Raises:
        ParamsError: As :func:`parse_dataset`; also when the file's ``validate``
            section still sets a key the dataset replaces (``feature_min``,
            ``feature_max``, ``categories``): ranges and labels then live in one place.
    """
    if path is None:
        return IRIS
    sections = read_params_file(path)
    if sections.get("dataset") is None:
        return dataset_for(parse_section("validate", sections.get("validate"), ValidateParams))
    validate = sections.get("validate") or {}
    for key in REPLACED_BY_DATASET:
        if isinstance(validate, dict) and key in validate:
            raise ParamsError(
                f"validate.{key} is replaced by the dataset section (ranges in "
                f"dataset.features, labels in dataset.labels); remove it."
            )
    return parse_dataset(sections["dataset"])


def dataset_for(params: ValidateParams) -> Dataset:
    """The Iris data set with ``validate``'s ranges and labels (the weeks 1-7 behaviour)."""
    if (params.feature_min, params.feature_max, params.categories) == (
        0.0,
        10.0,
        list(IRIS.labels),
    ):
        return IRIS
    return dataclasses.replace(
        IRIS,
        labels=tuple(params.categories),
        features=_iris_features(params.feature_min, params.feature_max),
    )


@dataclass(frozen=True)
class GateParams:
    """Thresholds of the promotion gates (week 4, section ``gates``).

    Attributes:
        min_accuracy: Lowest accuracy on the held-out rows a challenger may have.
        min_f1_macro: Lowest macro F1 on the held-out rows.
        min_improvement: How much higher the challenger's accuracy must be than
            the champion's (0: at least as good).
        tolerance: How much lower than the champion's the challenger's macro F1
            may be.
        perturbation: Largest measurement noise, in centimetres, added to every
            feature by the invariance test.
        min_invariance: Smallest share of predictions that must not change
            under that noise.
        directional_shift: Centimetres added to the petal length and width by
            the directional test.
        max_latency_ms: Budget for the median time of one single-row prediction.
        max_size_kb: Budget for the size of the pickled model.
        seed: Seed of the invariance test's noise; same seed, same noise.
        invariance_features: The numeric features the invariance test adds noise
            to (``perturbation``, in each feature's unit); empty: every numeric feature.
        directional: The directional rules, each ``{features: [...], increases: R}``
            or ``{features: [...], decreases: R}`` (``feature: name`` for one):
            adding ``directional_shift`` to those features must never move a
            prediction the other way. ``R`` is ``label_rank`` (the position of the
            predicted label in ``dataset.labels``) or ``positive`` (whether the
            positive class is predicted; binary data sets only).
        examples: The minimum-functionality examples, each ``{features: {name:
            value, ...}, label: L}`` with every feature: each must be predicted ``L``.
    """

    min_accuracy: float = 0.9
    min_f1_macro: float = 0.9
    min_improvement: float = 0.0
    tolerance: float = 0.02
    perturbation: float = 0.05
    min_invariance: float = 0.9
    directional_shift: float = 1.0
    max_latency_ms: float = 50.0
    max_size_kb: float = 256.0
    seed: int = 0
    invariance_features: list[str] = field(default_factory=list)
    directional: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"features": ["petal_length", "petal_width"], "increases": "label_rank"}
        ]
    )
    examples: list[dict[str, Any]] = field(default_factory=lambda: list(IRIS_EXAMPLES))

    def __post_init__(self) -> None:
        for rule in self.directional:
            _check_rule(rule)
        for example in self.examples:
            if not isinstance(example, dict) or sorted(example) != ["features", "label"]:
                raise ParamsError(
                    "gates.examples must each be {features: {name: value, ...}, label: L}, "
                    f"got {example!r}."
                )
        for name in ("min_accuracy", "min_f1_macro", "tolerance", "min_invariance"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ParamsError(f"gates.{name} must be between 0 and 1, got {value}.")
        if not -1.0 <= self.min_improvement <= 1.0:
            raise ParamsError(
                f"gates.min_improvement must be between -1 and 1, got {self.min_improvement}."
            )
        for name in ("perturbation", "directional_shift", "max_latency_ms", "max_size_kb"):
            value = getattr(self, name)
            if value <= 0:
                raise ParamsError(f"gates.{name} must be greater than 0, got {value}.")


#: Textbook flowers (close to each species' mean, in cm) every Iris model must recognise.
IRIS_EXAMPLES = (
    {"features": dict(zip(_IRIS, (5.0, 3.4, 1.5, 0.2), strict=True)), "label": "setosa"},
    {"features": dict(zip(_IRIS, (5.9, 2.8, 4.3, 1.3), strict=True)), "label": "versicolor"},
    {"features": dict(zip(_IRIS, (6.6, 3.0, 5.6, 2.1), strict=True)), "label": "virginica"},
)
#: What a directional rule may say moves (see :attr:`GateParams.directional`).
RULE_TARGETS = ("label_rank", "positive")


def _check_rule(rule: Any) -> None:
    """Refuse a directional rule that is not ``{features: [...], increases|decreases: R}``."""
    shape = "{features: [names], increases: label_rank}"
    if not isinstance(rule, dict):
        raise ParamsError(f"gates.directional rules must each be a mapping like {shape}.")
    moves = [k for k in ("increases", "decreases") if k in rule]
    named = [k for k in ("feature", "features") if k in rule]
    if len(moves) != 1 or len(named) != 1 or len(rule) != 2:
        raise ParamsError(f"gates.directional rule {rule!r} must be shaped {shape}.")
    if rule[moves[0]] not in RULE_TARGETS:
        raise ParamsError(
            f"gates.directional rule {rule!r}: {moves[0]} must be label_rank or positive."
        )


def rule_features(rule: dict[str, Any]) -> list[str]:
    """The features a directional rule shifts."""
    return [rule["feature"]] if "feature" in rule else list(rule["features"])


def check_gates(params: GateParams, dataset: Dataset) -> GateParams:
    """Refuse behavioural gates that do not fit the data set, in one sentence naming the key.

    Returns:
        ``params`` itself.

    Raises:
        ParamsError: For a feature that is not a numeric feature of the data set
            (invariance, directional), a ``positive`` rule without
            ``dataset.positive``, or an example that lacks a feature, has an
            unknown one, or a label not in ``dataset.labels``.
    """
    numeric = set(dataset.numeric)
    for key, names in [("invariance_features", params.invariance_features)] + [
        ("directional", rule_features(rule)) for rule in params.directional
    ]:
        for name in names:
            if name not in numeric:
                raise ParamsError(
                    f"gates.{key} names {name!r}, which is not a numeric feature of "
                    "dataset.features."
                )
    for rule in params.directional:
        if "positive" in rule.values() and dataset.positive is None:
            raise ParamsError("gates.directional uses 'positive', which needs dataset.positive.")
    wanted = set(dataset.feature_names)
    for example in params.examples:
        given = set(example["features"]) if isinstance(example["features"], dict) else set()
        if given != wanted:
            raise ParamsError(
                f"gates.examples: the example of {example['label']!r} must give exactly the "
                f"features of dataset.features ({', '.join(dataset.feature_names)})."
            )
        if example["label"] not in dataset.labels:
            raise ParamsError(f"gates.examples: {example['label']!r} is not one of dataset.labels.")
    return params


def load_gate_params(path: str | Path | None = None) -> GateParams:
    """Load the ``gates`` section and check its behavioural gates against the data set."""
    return check_gates(load_params(path, "gates", GateParams), load_dataset(path))


@dataclass(frozen=True)
class MonitorParams:
    """The drift policy of the monitor (week 6, section ``monitor``).

    Attributes:
        max_drift_share: Share of the features that must drift for the data set
            to count as drifted (Evidently's dataset-drift rule: drifted when
            ``drift_share >= max_drift_share``); ``monitor --check`` then exits 1.
        min_rows: Fewest rows a window needs before drift is judged at all; a
            smaller window is an error, never a silent pass.
        last: Rows in the window: the latest ``last`` predictions of the log
            (``--last`` overrides it; with ``--since`` alone, every row since then).
        drift_threshold: p-value below which a column's test (K-S for the
            features, chi-square for the served labels) says it drifted.
    """

    max_drift_share: float = 0.5
    min_rows: int = 50
    last: int = 500
    drift_threshold: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.max_drift_share <= 1.0:
            raise ParamsError(
                f"monitor.max_drift_share must be above 0 and at most 1, got {self.max_drift_share}."
            )
        if not 0.0 < self.drift_threshold < 1.0:
            raise ParamsError(
                f"monitor.drift_threshold must be between 0 and 1, got {self.drift_threshold}."
            )
        if self.min_rows < 1:
            raise ParamsError(f"monitor.min_rows must be at least 1, got {self.min_rows}.")
        if self.last < self.min_rows:
            raise ParamsError(
                f"monitor.last ({self.last}) must be at least monitor.min_rows ({self.min_rows})."
            )


# --- week 7: capacity (python -m mlpipe capacity) --------------------------------------------
@dataclass(frozen=True)
class CapacityParams:
    """The capacity plan of the API (week 7, section ``capacity``).

    Attributes:
        p99_objective_ms: The latency objective: 99 % of the requests answered
            within this many milliseconds. A load test whose p99 is above it
            measured an overloaded replica, not a sustainable one.
        target_rps: The peak load to plan for, in requests per second.
        utilisation: Share of a replica's sustainable throughput it is planned
            to run at (the rest absorbs bursts and a lost pod); also the HPA's
            CPU utilisation target.
        headroom: ``maxReplicas`` is the planned replica count times this
            (room for load above the target).
        min_replicas: Fewest replicas ever (availability: with the
            PodDisruptionBudget's ``minAvailable: 1``, a drain needs two).
        max_failure_ratio: Highest share of failed requests a load test may
            have and still count.
    """

    p99_objective_ms: float = 100.0
    target_rps: float = 500.0
    utilisation: float = 0.6
    headroom: float = 1.5
    min_replicas: int = 2
    max_failure_ratio: float = 0.01

    def __post_init__(self) -> None:
        for name in ("p99_objective_ms", "target_rps"):
            value = getattr(self, name)
            if value <= 0:
                raise ParamsError(f"capacity.{name} must be greater than 0, got {value}.")
        if not 0.0 < self.utilisation <= 1.0:
            raise ParamsError(
                f"capacity.utilisation must be above 0 and at most 1, got {self.utilisation}."
            )
        if self.headroom < 1.0:
            raise ParamsError(f"capacity.headroom must be at least 1, got {self.headroom}.")
        if self.min_replicas < 2:
            raise ParamsError(
                "capacity.min_replicas must be at least 2 (the PodDisruptionBudget keeps one "
                f"pod up during a drain), got {self.min_replicas}."
            )
        if not 0.0 <= self.max_failure_ratio < 1.0:
            raise ParamsError(
                "capacity.max_failure_ratio must be at least 0 and below 1, "
                f"got {self.max_failure_ratio}."
            )


# --- end week 7: capacity ---------------------------------------------------------------------
# --- week 7: rollout (the canary's policy) -----------------------------------------------------
@dataclass(frozen=True)
class RolloutParams:
    """The canary policy of ``python -m mlpipe rollout`` (week 7, section ``rollout``).

    Attributes:
        steps: The canary's share of the traffic at each step, in percent, increasing
            (``--steps`` overrides it).
        step_requests: Requests the rollout itself sends through the router at each
            step (0: it sends none and waits ``step_seconds`` for outside traffic).
        step_seconds: How long a step lasts when ``step_requests`` is 0.
        concurrency: Requests the rollout keeps in flight while it drives a step.
        min_requests: Fewest predictions requests each side must answer in a step
            before the two are compared (a stable with fewer, as at 100 %, is judged
            over the whole rollout so far).
        max_error_rate_increase: Largest rise of the canary's 5xx share over the
            stable's (0.01: one point).
        max_p99_ratio: How many times the stable's p99 latency the canary's may be ...
        max_p99_increase_ms: ... unless it is at most this many milliseconds above it.
        max_distribution_distance: Largest total-variation distance between the
            shares of the predicted classes of the canary and of the stable (0 to 1).
    """

    steps: list[int] = field(default_factory=lambda: [10, 50, 100])
    step_requests: int = 300
    step_seconds: float = 30.0
    concurrency: int = 8
    min_requests: int = 20
    max_error_rate_increase: float = 0.01
    max_p99_ratio: float = 2.0
    max_p99_increase_ms: float = 50.0
    max_distribution_distance: float = 0.1

    def __post_init__(self) -> None:
        steps = self.steps
        if not steps or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
            raise ParamsError(f"rollout.steps must be a list of whole percentages, got {steps!r}.")
        if steps != sorted(set(steps)) or steps[0] < 1 or steps[-1] > 100:
            raise ParamsError(
                f"rollout.steps must increase strictly from 1 to at most 100, got {steps}."
            )
        for name in ("step_requests", "min_requests"):
            if getattr(self, name) < 0:
                raise ParamsError(f"rollout.{name} must be at least 0, got {getattr(self, name)}.")
        if self.concurrency < 1:
            raise ParamsError(f"rollout.concurrency must be at least 1, got {self.concurrency}.")
        for name in ("step_seconds", "max_p99_ratio", "max_p99_increase_ms"):
            if getattr(self, name) <= 0:
                raise ParamsError(
                    f"rollout.{name} must be greater than 0, got {getattr(self, name)}."
                )
        for name in ("max_error_rate_increase", "max_distribution_distance"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ParamsError(
                    f"rollout.{name} must be between 0 and 1, got {getattr(self, name)}."
                )


# --- end of week 7: rollout ----------------------------------------------------------------------
# --- week 7: scale -------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleParams:
    """Scaling out with Ray (week 7, section ``scale``).

    Attributes:
        address: The Ray cluster, ``host:port`` of its head (what ``ray start
            --head`` prints) or ``ray://host:port`` (Ray Client); empty: the
            command line's ``--address``, else ``$RAY_ADDRESS``.
        connect_timeout: Seconds to wait for the head to answer before giving up.
        workers: Scoring workers (one Ray actor each, one CPU each); 0: one per
            CPU of the cluster.
        parts_per_worker: Byte ranges of the file per worker; more parts balance
            uneven workers better (the last part's tail is shorter), each part
            costs a task and a pandas parse.
        max_concurrent_trials: Ray Tune trials run at once (one CPU each).
        rows: Rows of the generated Iris-like file (``scale generate``).
        seed: Seed of the generator; same seed, same file.
        noise: Standard deviation, in centimetres, of the noise added to every
            measurement of a sampled Iris flower.
    """

    address: str = ""
    connect_timeout: float = 10.0
    workers: int = 0
    parts_per_worker: int = 8
    max_concurrent_trials: int = 2
    rows: int = 1_000_000
    seed: int = 0
    noise: float = 0.1

    def __post_init__(self) -> None:
        if self.connect_timeout <= 0:
            raise ParamsError(
                f"scale.connect_timeout must be greater than 0, got {self.connect_timeout}."
            )
        if self.workers < 0:
            raise ParamsError(f"scale.workers must be 0 (all CPUs) or more, got {self.workers}.")
        for name in ("parts_per_worker", "max_concurrent_trials", "rows"):
            value = getattr(self, name)
            if value < 1:
                raise ParamsError(f"scale.{name} must be at least 1, got {value}.")
        if not 0.0 <= self.noise <= 1.0:
            raise ParamsError(f"scale.noise must be between 0 and 1, got {self.noise}.")


# --- end of week 7: scale ------------------------------------------------------------------
# --- week 7: infra (mlpipe.cloud) ----------------------------------------------------------
@dataclass(frozen=True)
class InfraParams:
    """The CloudFormation stack of MLflow's artefact store (week 7, section ``infra``).

    Attributes:
        stack: Name of the stack (``--stack`` overrides it).
        region: The AWS region the clients ask (a moto server accepts any).
        artifact_prefix: The template's ``ArtifactPrefix``: the folder of the bucket
            MLflow writes under, the only one the roles may read.
        timeout: Seconds a deployment or deletion may take, waiting included.
        poll: Seconds between two looks at the stack's status.
    """

    stack: str = "mlpipe-artifacts"
    region: str = "us-east-1"
    artifact_prefix: str = "mlflow"
    timeout: float = 300.0
    poll: float = 1.0

    def __post_init__(self) -> None:
        import re

        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", self.stack):
            raise ParamsError(
                f"infra.stack must start with a letter and hold only letters, digits and "
                f"hyphens (at most 128), got {self.stack!r}."
            )
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.artifact_prefix):
            raise ParamsError(
                "infra.artifact_prefix must be lower-case letters, digits and hyphens, "
                f"got {self.artifact_prefix!r}."
            )
        if self.timeout <= 0 or self.poll <= 0:
            raise ParamsError("infra.timeout and infra.poll must be greater than 0.")


# --- end of week 7: infra ------------------------------------------------------------------
