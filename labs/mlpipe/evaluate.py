"""The ``evaluate`` stage: score a saved model on its held-out rows.

The rows are the test split of :func:`mlpipe.train.split_data` with the
model's own ``test_size`` and ``seed`` (read from its metadata), so the
metrics DVC tracks are those of data the model never saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mlpipe import train
from mlpipe.config import Dataset
from mlpipe.files import write_json

#: The metrics of a binary problem that are written too (see :func:`mlpipe.train.binary_metrics`).
BINARY_METRICS = ("roc_auc", "pr_auc", "f1_positive", "threshold", "cost")


def evaluate_saved(
    model_dir: str | Path, df: pd.DataFrame, dataset: Dataset | None = None
) -> dict[str, Any]:
    """Score the model in ``model_dir`` on the held-out rows of ``df``.

    Args:
        model_dir: The model folder.
        df: The processed data.
        dataset: Its description; ``None`` is Iris.

    Returns:
        ``accuracy``, ``f1_macro`` and ``test_rows``; for a binary data set with a
        positive class also :data:`BINARY_METRICS`.
    """
    model, metadata = train.load_model(model_dir)
    params = metadata["params"]
    _, X_test, _, y_test = train.split_data(df, params["test_size"], params["seed"], dataset)
    metrics = train.evaluate(model, X_test, y_test, dataset)
    return {
        "accuracy": metrics["accuracy"],
        "f1_macro": metrics["f1_macro"],
        "test_rows": len(X_test),
        **{key: metrics[key] for key in BINARY_METRICS if key in metrics},
    }


def write_metrics(metrics: dict[str, Any], path: str | Path) -> Path:
    """Write metrics as the JSON file DVC reads (``dvc metrics show``)."""
    return write_json(path, metrics)
