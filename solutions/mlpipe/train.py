"""Week 1: train the Iris classifier and save it with its metadata.

The stage is a chain of short functions, each one testable on its own::

    load_data -> split_data -> build_pipeline -> fit -> evaluate -> save_model

``train`` runs the chain. Everything that decides the result (the data, the
parameters, the seed, the library versions, the code's git commit) goes into
the model's metadata, so that anyone can tell how a model was made and make it
again.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlpipe.config import IRIS, Dataset, TrainParams

#: The four measurements of Iris, in centimetres, in the order the model expects them.
FEATURES = IRIS.feature_names
#: The label column of Iris.
TARGET = IRIS.target
#: File names inside a model folder.
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced.

    Attributes:
        model_dir: Folder holding ``model.joblib`` and ``metadata.json``.
        metrics: The evaluation metrics on the held-out rows.
        metadata: Everything recorded about the run.
    """

    model_dir: Path
    metrics: dict[str, Any]
    metadata: dict[str, Any]


def load_data() -> pd.DataFrame:
    """Load the Iris data set shipped with scikit-learn (no download).

    Returns:
        150 rows with the columns ``FEATURES`` (floats) and ``TARGET``
        (the species name as a string: setosa, versicolor or virginica).
    """
    ### BEGIN SOLUTION
    iris = load_iris(as_frame=True)
    df = iris.data.copy()
    df.columns = FEATURES
    df[TARGET] = iris.target_names[iris.target].astype(str)
    return df
    ### END SOLUTION


def fingerprint(df: pd.DataFrame) -> str:
    """Return a content fingerprint of a data frame.

    The same rows and columns in the same order give the same fingerprint on
    any machine; changing one value changes it.

    Args:
        df: The data.

    Returns:
        ``"sha256:"`` followed by the hex digest of the frame written as CSV
        without its index.
    """
    ### BEGIN SOLUTION
    payload = df.to_csv(index=False, lineterminator="\n").encode("utf-8")
    return "sha256:" + hashlib.sha256(payload).hexdigest()
    ### END SOLUTION


def columns(dataset: Dataset | None = None) -> tuple[list[str], str]:
    """The feature columns and the label column of a data set (``None``: Iris)."""
    dataset = dataset or IRIS
    return dataset.feature_names, dataset.target


def split_data(
    df: pd.DataFrame, test_size: float, seed: int, dataset: Dataset | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Split into train and test rows, stratified by the label, deterministically.

    Args:
        df: Data with the features and the label column.
        test_size: Fraction of rows for the test set.
        seed: Random seed; the same seed gives the same split.
        dataset: Which columns are the features and the label (see
            :func:`columns`); ``None`` is Iris: ``FEATURES`` and ``TARGET``.

    Returns:
        ``(X_train, X_test, y_train, y_test)``.
    """
    features, target = columns(dataset)
    ### BEGIN SOLUTION
    return train_test_split(
        df[features], df[target], test_size=test_size, random_state=seed, stratify=df[target]
    )
    ### END SOLUTION


def preprocessing(dataset: Dataset | None = None) -> tuple[str, Any]:
    """The first step of the model's pipeline, from the data set's description.

    An all-numeric data set (Iris) is standardised: ``("scaler", StandardScaler())``,
    as in week 1. With a categorical feature, a ``ColumnTransformer`` standardises
    the numeric features and one-hot encodes the categorical ones with the
    categories of the description, in order (a category the description does not
    list is encoded as all zeros, never an error): ``("preprocess", ...)``.
    """
    dataset = dataset or IRIS
    if not dataset.categorical:
        return "scaler", StandardScaler()
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    categories = [list(dataset.feature(name).categories) for name in dataset.categorical]
    onehot = OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False)
    steps = [("categorical", onehot, dataset.categorical)]
    if dataset.numeric:
        steps.insert(0, ("numeric", StandardScaler(), dataset.numeric))
    return "preprocess", ColumnTransformer(steps)


def build_pipeline(params: TrainParams, dataset: Dataset | None = None) -> Pipeline:
    """Build the untrained model: a scaler, then a logistic regression.

    Args:
        params: ``C``, ``max_iter`` and ``seed`` configure the classifier.
        dataset: The data set; ``None`` (Iris) or any all-numeric one gives the
            steps ``scaler`` and ``clf``; one with a categorical feature gives
            ``preprocess`` and ``clf`` (see :func:`preprocessing`).

    Returns:
        A scikit-learn ``Pipeline`` with the steps ``scaler`` and ``clf``.
    """
    ### BEGIN SOLUTION
    clf = LogisticRegression(C=params.C, max_iter=params.max_iter, random_state=params.seed)
    return with_threshold(Pipeline([preprocessing(dataset), ("clf", clf)]), dataset)
    ### END SOLUTION


def evaluate(
    model: Pipeline, X: pd.DataFrame, y: pd.Series, dataset: Dataset | None = None
) -> dict[str, Any]:
    """Score a fitted model.

    Args:
        model: The fitted pipeline.
        X: Features.
        y: True labels.
        dataset: The data's description; for a binary one with a positive class
            the metrics of :func:`binary_metrics` are added (week 8).

    Returns:
        ``accuracy`` and ``f1_macro`` as floats, ``labels`` (sorted
        class names) and ``confusion_matrix`` as a list of lists of ints, rows
        being the true labels in the order of ``labels``.
    """
    ### BEGIN SOLUTION
    pred = model.predict(X)
    labels = sorted(str(label) for label in np.unique(y))
    metrics = {
        "accuracy": float(accuracy_score(y, pred)),
        "f1_macro": float(f1_score(y, pred, average="macro")),
        "labels": labels,
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
    }
    ### END SOLUTION
    if dataset is not None and dataset.positive is not None:
        metrics.update(binary_metrics(model, X, y, dataset))
    return metrics


def threshold(dataset: Dataset) -> float:
    """The probability of the positive class above which a row is predicted positive.

    With the cost of a false negative ``cost_ratio`` times that of a false
    positive, predicting positive costs less in expectation exactly when
    ``p * cost_ratio > (1 - p)``, i.e. ``p > 1 / (1 + cost_ratio)`` (for
    calibrated probabilities, which a logistic regression gives). No cost ratio: 0.5.
    """
    return 0.5 if dataset.cost_ratio is None else 1.0 / (1.0 + dataset.cost_ratio)


def with_threshold(model: Any, dataset: Dataset | None) -> Any:
    """Wrap an unfitted classifier so that it predicts with :func:`threshold` (binary only).

    Returns:
        ``model`` itself unless the data set is binary with a cost ratio; then a
        ``FixedThresholdClassifier`` around it, whose ``predict`` (used by the
        gates, the API and the ONNX parity check) applies the threshold.
    """
    if dataset is None or dataset.positive is None or dataset.cost_ratio is None:
        return model
    from sklearn.model_selection import FixedThresholdClassifier

    return FixedThresholdClassifier(
        model,
        threshold=threshold(dataset),
        pos_label=dataset.positive,
        response_method="predict_proba",
    )


def binary_metrics(model: Any, X: pd.DataFrame, y: pd.Series, dataset: Dataset) -> dict[str, Any]:
    """The metrics of a binary problem, for its positive class.

    Returns:
        ``roc_auc`` and ``pr_auc`` (average precision) of the positive class's
        probability, ``f1_positive`` of the predictions, ``threshold`` (see
        :func:`threshold`) and ``cost``: the mean cost of a held-out row, a false
        positive costing 1 and a false negative ``cost_ratio`` (1 without one).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    positive = dataset.positive
    classes = [str(c) for c in model.classes_]
    score = model.predict_proba(X)[:, classes.index(positive)]
    truth = (y.astype(str) == positive).to_numpy()
    pred = np.asarray(model.predict(X)).astype(str) == positive
    ratio = dataset.cost_ratio or 1.0
    cost = (np.sum(pred & ~truth) + ratio * np.sum(~pred & truth)) / max(len(truth), 1)
    return {
        "roc_auc": float(roc_auc_score(truth, score)),
        "pr_auc": float(average_precision_score(truth, score)),
        "f1_positive": float(f1_score(truth, pred)),
        "threshold": threshold(dataset),
        "cost": float(cost),
    }


def model_fingerprint(model: Pipeline) -> str:
    """Return a fingerprint of a fitted model's learned state.

    Two models fitted on the same data with the same parameters and seed have
    the same fingerprint.
    """
    return "joblib:" + joblib.hash(model)


def git_commit(path: Path | None = None) -> str | None:
    """Return the git commit of the code, or ``None`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def collect_metadata(
    params: TrainParams, data_fingerprint: str, metrics: dict[str, Any], model_fp: str
) -> dict[str, Any]:
    """Gather what is needed to explain and reproduce a model.

    Args:
        params: The training parameters.
        data_fingerprint: Fingerprint of the full data set used.
        metrics: The evaluation metrics.
        model_fp: Fingerprint of the fitted model.

    Returns:
        A JSON-serialisable mapping with the keys ``params`` (a dict),
        ``data_fingerprint``, ``metrics``, ``model_fingerprint``, ``versions``
        (python, scikit-learn, pandas, numpy) and ``git_commit`` (a string or
        ``None``).
    """
    ### BEGIN SOLUTION
    return {
        "params": asdict(params),
        "data_fingerprint": data_fingerprint,
        "metrics": metrics,
        "model_fingerprint": model_fp,
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "git_commit": git_commit(),
    }
    ### END SOLUTION


def save_model(model: Pipeline, metadata: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``model.joblib`` and ``metadata.json`` into ``out_dir``.

    Args:
        model: The fitted pipeline.
        metadata: The mapping from :func:`collect_metadata`.
        out_dir: Target folder, created if needed.

    Returns:
        The folder.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / MODEL_FILE)
    text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    (out / METADATA_FILE).write_text(text, encoding="utf-8")
    return out


def load_model(model_dir: str | Path) -> tuple[Pipeline, dict[str, Any]]:
    """Load a model folder written by :func:`save_model`."""
    model_dir = Path(model_dir)
    metadata = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))
    return joblib.load(model_dir / MODEL_FILE), metadata


def train(
    params: TrainParams,
    out_dir: str | Path,
    data: pd.DataFrame | None = None,
    dataset: Dataset | None = None,
) -> TrainResult:
    """Run the whole stage: load, split, fit, evaluate, save.

    Args:
        params: Validated training parameters.
        out_dir: Folder the model and its metadata are written to.
        data: The rows to train on; ``None`` loads them with :func:`load_data`
            (from week 2 on, the pipeline passes its processed, validated data).
        dataset: The data's description (week 8); ``None`` is Iris.

    Returns:
        The :class:`TrainResult`.
    """
    df = load_data() if data is None else data
    ### BEGIN SOLUTION
    X_train, X_test, y_train, y_test = split_data(df, params.test_size, params.seed, dataset)
    model = build_pipeline(params, dataset).fit(X_train, y_train)
    metrics = evaluate(model, X_test, y_test, dataset)
    metadata = collect_metadata(params, fingerprint(df), metrics, model_fingerprint(model))
    model_dir = save_model(model, metadata, out_dir)
    return TrainResult(model_dir=model_dir, metrics=metrics, metadata=metadata)
    ### END SOLUTION
