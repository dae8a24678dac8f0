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

from mlpipe.config import TrainParams

#: The four measurements, in centimetres, in the order the model expects them.
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
#: The label column.
TARGET = "species"
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
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.train.load_data")


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
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.train.fingerprint")


def split_data(
    df: pd.DataFrame, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Split into train and test rows, stratified by species, deterministically.

    Args:
        df: Data with ``FEATURES`` and ``TARGET``.
        test_size: Fraction of rows for the test set.
        seed: Random seed; the same seed gives the same split.

    Returns:
        ``(X_train, X_test, y_train, y_test)``.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.train.split_data")


def build_pipeline(params: TrainParams) -> Pipeline:
    """Build the untrained model: a scaler, then a logistic regression.

    Args:
        params: ``C``, ``max_iter`` and ``seed`` configure the classifier.

    Returns:
        A scikit-learn ``Pipeline`` with the steps ``scaler`` and ``clf``.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.train.build_pipeline")


def evaluate(model: Pipeline, X: pd.DataFrame, y: pd.Series) -> dict[str, Any]:
    """Score a fitted model.

    Args:
        model: The fitted pipeline.
        X: Features.
        y: True labels.

    Returns:
        ``accuracy`` and ``f1_macro`` as floats, ``labels`` (sorted class
        names) and ``confusion_matrix`` as a list of lists of ints, rows being
        the true labels in the order of ``labels``.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.train.evaluate")


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
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.train.collect_metadata")


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
    params: TrainParams, out_dir: str | Path, data: pd.DataFrame | None = None
) -> TrainResult:
    """Run the whole stage: load, split, fit, evaluate, save.

    Args:
        params: Validated training parameters.
        out_dir: Folder the model and its metadata are written to.
        data: The rows to train on; ``None`` loads them with :func:`load_data`
            (from week 2 on, the pipeline passes its processed, validated data).

    Returns:
        The :class:`TrainResult`.
    """
    df = load_data() if data is None else data
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.train.train")
