"""Week 2: raw data in, processed data with a content fingerprint out.

The stage is the first of the DVC pipeline (``dvc.yaml``)::

    data/raw/iris.csv --prepare--> data/processed/iris.csv + fingerprint.json

``write_raw`` produces the raw file the way a data provider would deliver it
(measurement names with units, labels such as ``Iris-setosa``). ``prepare``
turns it into the columns the rest of the pipeline expects. It never guesses:
a value that is not a number stays what it is, for validation to catch.
Outputs are written to a temporary file and renamed, so a failed run never
leaves processed data behind that looks finished.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from mlpipe.config import PrepareParams
from mlpipe.files import write_json, write_text_atomic
from mlpipe.train import FEATURES, METADATA_FILE, TARGET, fingerprint

#: Column names of the raw file, mapped to the pipeline's names.
RAW_COLUMNS = {
    "sepal length (cm)": "sepal_length",
    "sepal width (cm)": "sepal_width",
    "petal length (cm)": "petal_length",
    "petal width (cm)": "petal_width",
    "class": TARGET,
}
#: File, next to the processed CSV, that records its fingerprint and origin.
FINGERPRINT_FILE = "fingerprint.json"


class DataError(ValueError):
    """A data file that cannot be used; the message is one sentence."""


def write_raw(path: str | Path, per_class: int | None = None) -> Path:
    """Write the Iris data as a provider would deliver it (the raw layer).

    Args:
        path: The CSV file to write.
        per_class: Only the first ``per_class`` rows of each species (e.g. 40
            for an older, smaller version of the data); ``None`` writes all 150.

    Returns:
        The path written.
    """
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    df = iris.data.set_axis(FEATURES, axis=1)
    df[TARGET] = iris.target_names[iris.target].astype(str)
    if per_class is not None:
        df = df.groupby(TARGET, sort=False).head(per_class)
    raw = df.rename(columns={new: old for old, new in RAW_COLUMNS.items()})
    raw["class"] = "Iris-" + raw["class"]
    return write_text_atomic(path, raw.to_csv(index=False, lineterminator="\n"))


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV file, turning every way it can fail into one sentence.

    Raises:
        DataError: When the file is missing, empty or not a CSV table.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file '{path}' does not exist.")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"Data file '{path}' is empty.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"Data file '{path}' cannot be parsed as CSV ({reason}).") from None
    if df.shape[1] < 2:
        raise DataError(
            f"Data file '{path}' cannot be parsed as CSV: it has a single column "
            f"'{df.columns[0]}' (is the separator a comma?)."
        )
    return df


def clean(raw: pd.DataFrame, params: PrepareParams) -> pd.DataFrame:
    """Turn a raw frame into the pipeline's columns and label names.

    Args:
        raw: The frame read from the raw file, with the ``RAW_COLUMNS`` names.
        params: ``label_prefix`` is stripped from every label.

    Returns:
        A new frame with the columns ``FEATURES + [TARGET]`` in that order
        (any other column dropped) and labels stripped of surrounding spaces
        and the prefix. Values are not converted: a feature that is not
        numeric stays so, for validation to report.

    Raises:
        DataError: When a raw column is missing, naming it.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.data.clean")


def file_md5(path: str | Path) -> str:
    """Return the MD5 of a file's bytes, the hash DVC uses for a data version."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare(raw_path: str | Path, out_path: str | Path, params: PrepareParams) -> dict[str, Any]:
    """Run the stage: read raw data, clean it, write it with its fingerprint.

    Args:
        raw_path: The raw CSV.
        out_path: The processed CSV to write; ``fingerprint.json`` is written
            next to it.
        params: The ``prepare`` parameters.

    Returns:
        What ``fingerprint.json`` holds: ``fingerprint`` (of the processed
        frame, see :func:`mlpipe.train.fingerprint`), ``rows``, ``columns``
        and ``source`` (the raw file's path and ``md5``).

    Raises:
        DataError: When the raw file cannot be read or lacks a column;
            nothing is written then.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.data.prepare")


def read_processed(path: str | Path) -> pd.DataFrame:
    """Read processed data written by :func:`prepare` (one sentence on failure)."""
    return read_csv(path)


def lineage(processed_path: str | Path) -> dict[str, Any]:
    """Describe the data version a model is trained on, for its metadata.

    Args:
        processed_path: The processed CSV the model is trained on.

    Returns:
        ``path``, ``md5`` (the file's MD5, as in ``dvc.lock``), ``fingerprint``
        (of its content) and ``source`` (the raw file's path and MD5, read from
        ``fingerprint.json`` next to it, or ``None`` when that file is absent).
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.data.lineage")


def attach_lineage(model_dir: str | Path, info: dict[str, Any]) -> dict[str, Any]:
    """Add ``info`` as the ``data`` entry of a model's metadata.json.

    Returns:
        The updated metadata.
    """
    path = Path(model_dir) / METADATA_FILE
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata["data"] = info
    write_json(path, metadata)
    return metadata
