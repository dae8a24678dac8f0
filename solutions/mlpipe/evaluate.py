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
from mlpipe.files import write_json


def evaluate_saved(model_dir: str | Path, df: pd.DataFrame) -> dict[str, Any]:
    """Score the model in ``model_dir`` on the held-out rows of ``df``.

    Returns:
        ``accuracy``, ``f1_macro`` and ``test_rows``.
    """
    model, metadata = train.load_model(model_dir)
    params = metadata["params"]
    _, X_test, _, y_test = train.split_data(df, params["test_size"], params["seed"])
    metrics = train.evaluate(model, X_test, y_test)
    return {
        "accuracy": metrics["accuracy"],
        "f1_macro": metrics["f1_macro"],
        "test_rows": len(X_test),
    }


def write_metrics(metrics: dict[str, Any], path: str | Path) -> Path:
    """Write metrics as the JSON file DVC reads (``dvc metrics show``)."""
    return write_json(path, metrics)
