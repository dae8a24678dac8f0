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
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpipe.config import Dataset, PrepareParams, ValidateParams, dataset_for
from mlpipe.errors import DataError
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
        DataError: When the file is missing, empty, not a CSV table, or has a
            header line but no data rows.
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
    return check_table(df, path)


def check_table(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Refuse a frame read from ``path`` that is not a table of data rows.

    Returns:
        ``df`` itself.

    Raises:
        DataError: When it has a single column (a wrong separator) or no rows.
    """
    if df.shape[1] < 2:
        raise DataError(
            f"Data file '{path}' cannot be parsed as CSV: it has a single column "
            f"'{df.columns[0]}' (is the separator a comma?)."
        )
    if df.empty:
        raise DataError(f"Data file '{path}' has a header line but no data rows.")
    return df


def _as_float(value: Any) -> float:
    """``value`` as Python reads a number (``"1e309"`` is infinity), or NaN."""
    try:
        return float(str(value).strip())
    except ValueError:
        return float("nan")


def first_bad_rows(values: pd.Series, low: float, high: float) -> tuple[int, int, int]:
    """Find the first data row of a column that is empty, not a number, or out of range.

    Returns:
        ``(empty, text, outside)``: the 0-based position of the first empty
        cell, of the first value that is not a number, and of the first number
        outside ``[low, high]`` (infinity included); ``-1`` where there is none.
    """
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, copy=True)
    empty = values.isna().to_numpy()
    for i in np.flatnonzero(np.isnan(numbers) & ~empty):  # e.g. "1e309", which is infinity
        numbers[i] = _as_float(values.iloc[i])
    text = np.isnan(numbers) & ~empty
    with np.errstate(invalid="ignore"):
        outside = ~np.isnan(numbers) & ~((numbers >= low) & (numbers <= high))

    def first(mask: np.ndarray) -> int:
        hits = np.flatnonzero(mask)
        return int(hits[0]) if hits.size else -1

    return first(empty), first(text), first(outside)


def check_training_data(
    df: pd.DataFrame,
    params: ValidateParams,
    test_size: float,
    path: str | Path,
    dataset: Dataset | None = None,
) -> pd.DataFrame:
    """Refuse data that training cannot use, before anything is fitted or written.

    ``python -m mlpipe train --data FILE`` calls it, so that bad data stops
    with one sentence naming the column and the data row (rows counted from 1,
    the header line not counted: data row 1 is line 2 of the CSV) instead of a
    traceback from scikit-learn. It refuses, in this order: a missing column;
    in each feature, in the order of ``FEATURES``, an empty cell, a value
    that is not a number, or one outside ``[params.feature_min,
    params.feature_max]`` (the range validation uses; ``1e309`` reads as
    infinity and is outside too); in the label column, an empty cell or a
    label not in ``params.categories``; a label with fewer than 2 rows (a
    stratified split needs 2); and too few rows for ``test_size`` to put one
    row of every label in the test set and in the training set.

    ``dataset`` describes the columns (``None``: Iris with ``params``' ranges and
    labels, :func:`mlpipe.config.dataset_for`): each numeric feature is checked
    against its own range, each categorical one against its categories, and the
    labels against ``dataset.labels``.

    Returns:
        ``df`` itself.

    Raises:
        DataError: The first problem found, in one sentence.
    """
    where = f"Data file '{path}'"
    iris = dataset_for(params)
    dataset = dataset or iris
    features, target = dataset.feature_names, dataset.target
    missing = [c for c in features + [target] if c not in df.columns]
    if missing:
        raise DataError(
            f"{where} has no column {missing[0]}; training needs {features + [target]}."
        )
    for feature in dataset.features:
        column = feature.name
        if not feature.numeric:
            _check_categories(df[column], feature.categories, where, column)
            continue
        low, high = feature.min, feature.max
        keys = (
            "validate.feature_min and feature_max"
            if dataset == iris
            else f"dataset.features.{column}"
        )
        empty, text, outside = first_bad_rows(df[column], low, high)
        if empty >= 0:
            raise DataError(f"{where} has no value in column {column}, data row {empty + 1}.")
        if text >= 0:
            raise DataError(
                f"{where} has {df[column].iloc[text]!r}, not a number, in column {column}, "
                f"data row {text + 1}."
            )
        if outside >= 0:
            value = _as_float(df[column].iloc[outside])
            raise DataError(
                f"{where} has {value!r} in column {column}, data row {outside + 1}, outside "
                f"the valid range [{low}, {high}] ({keys})."
            )
    text = _check_categories(df[target], dataset.labels, where, target, "label")
    counts = text.value_counts()
    rare = counts[counts < 2]
    if len(rare):
        label = str(rare.index[0])
        row = int(np.flatnonzero(text.to_numpy() == label)[0]) + 1
        raise DataError(
            f"{where} has only 1 row of the label {label!r} in column {target} "
            f"(data row {row}); a stratified split needs at least 2 rows of each label."
        )
    n_test = math.ceil(test_size * len(df))
    if min(n_test, len(df) - n_test) < len(counts):
        raise DataError(
            f"{where} has only {len(df)} data rows: with train.test_size {test_size}, "
            f"{n_test} test row(s) and {len(df) - n_test} training row(s) cannot each hold "
            f"a row of each of the {len(counts)} labels."
        )
    return df


def _check_categories(
    values: pd.Series, known: Any, where: str, column: str, what: str = "category"
) -> pd.Series:
    """Refuse an empty cell or a value not in ``known``; return the values as text.

    Raises:
        DataError: Naming the column and the data row (counted from 1).
    """
    empty = np.flatnonzero(values.isna().to_numpy())
    if empty.size:
        raise DataError(f"{where} has no value in column {column}, data row {empty[0] + 1}.")
    text = values.astype(str)
    unknown = np.flatnonzero(~text.isin(list(known)).to_numpy())
    if unknown.size:
        raise DataError(
            f"{where} has the unknown {what} {text.iloc[unknown[0]]!r} in column {column}, "
            f"data row {unknown[0] + 1}; known: {', '.join(known)}."
        )
    return text


def raw_columns(dataset: Dataset | None = None) -> dict[str, str]:
    """The raw file's columns, mapped to the pipeline's names.

    Iris (``None``, or a data set with Iris's columns): the provider's names of
    :data:`RAW_COLUMNS`. Any other data set: its described features and target,
    named as they are.
    """
    if dataset is None or (dataset.feature_names, dataset.target) == (FEATURES, TARGET):
        return RAW_COLUMNS
    names = [*dataset.feature_names, dataset.target]
    return dict(zip(names, names, strict=True))


def clean(raw: pd.DataFrame, params: PrepareParams, dataset: Dataset | None = None) -> pd.DataFrame:
    """Turn a raw frame into the pipeline's columns and label names.

    Args:
        raw: The frame read from the raw file, with the ``RAW_COLUMNS`` names.
        params: ``label_prefix`` is stripped from every label.
        dataset: The data's description (week 8); ``None`` is Iris, whose raw
            columns have the provider's names (see :func:`raw_columns`).

    Returns:
        A new frame with the columns ``FEATURES + [TARGET]`` in that order
        (any other column dropped) and labels stripped of surrounding spaces
        and the prefix. Values are not converted: a feature that is not
        numeric stays so, for validation to report.

    Raises:
        DataError: When a raw column is missing, naming it.
    """
    columns = raw_columns(dataset)
    features, target = list(columns.values())[:-1], list(columns.values())[-1]
    ### BEGIN SOLUTION
    missing = [name for name in columns if name not in raw.columns]
    if missing:
        raise DataError(
            f"The raw data has no column {missing[0]!r}; found: {', '.join(map(str, raw.columns))}."
        )
    df = raw[list(columns)].rename(columns=columns)
    labels = df[target].astype(str).str.strip()
    df[target] = labels.str.removeprefix(params.label_prefix)
    return df[features + [target]].reset_index(drop=True)
    ### END SOLUTION


def file_md5(path: str | Path) -> str:
    """Return the MD5 of a file's bytes, the hash DVC uses for a data version."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare(
    raw_path: str | Path,
    out_path: str | Path,
    params: PrepareParams,
    dataset: Dataset | None = None,
) -> dict[str, Any]:
    """Run the stage: read raw data, clean it, write it with its fingerprint.

    Args:
        raw_path: The raw CSV.
        out_path: The processed CSV to write; ``fingerprint.json`` is written
            next to it.
        params: The ``prepare`` parameters.
        dataset: The data's description; ``None`` is Iris (see :func:`clean`).

    Returns:
        What ``fingerprint.json`` holds: ``fingerprint`` (of the cleaned frame
        in memory, the one written: :func:`mlpipe.train.fingerprint` of
        :func:`clean`'s result), ``rows``, ``columns`` and ``source`` (the raw
        file's path and ``md5``).

    Raises:
        DataError: When the raw file cannot be read (see :func:`read_csv`:
            missing, empty, not CSV, or a header line without data rows) or
            lacks a column; nothing is written then.
    """
    ### BEGIN SOLUTION
    df = clean(read_csv(raw_path), params, dataset)
    info = {
        "fingerprint": fingerprint(df),
        "rows": len(df),
        "columns": list(df.columns),
        "source": {"path": Path(raw_path).as_posix(), "md5": file_md5(raw_path)},
    }
    out_path = Path(out_path)
    write_text_atomic(out_path, df.to_csv(index=False, lineterminator="\n"))
    write_json(out_path.parent / FINGERPRINT_FILE, info)
    return info
    ### END SOLUTION


def read_processed(path: str | Path) -> pd.DataFrame:
    """Read processed data written by :func:`prepare` (one sentence on failure)."""
    return read_csv(path)


def read_described(path: str | Path, dataset: Dataset) -> pd.DataFrame:
    """Read processed data that must hold the described target and features.

    Raises:
        DataError: When the file cannot be read, or lacks the target or a feature
            (the sentence names the column and the ``dataset`` key that names it).
    """
    df = read_processed(path)
    dataset.require_columns(df.columns, f"Data file '{path}'")
    return df


def lineage(processed_path: str | Path) -> dict[str, Any]:
    """Describe the data version a model is trained on, for its metadata.

    Args:
        processed_path: The processed CSV the model is trained on.

    Returns:
        ``path``, ``md5`` (the file's MD5, as in ``dvc.lock``), ``fingerprint``
        (of its content: :func:`mlpipe.train.fingerprint` of the CSV read back
        with :func:`read_processed`, not of a frame in memory; for the Iris
        data it equals the one :func:`prepare` recorded) and ``source`` (the
        raw file's path and MD5, read from ``fingerprint.json`` next to it, or
        ``None`` when that file is absent).
    """
    ### BEGIN SOLUTION
    processed_path = Path(processed_path)
    info_file = processed_path.parent / FINGERPRINT_FILE
    source = None
    if info_file.is_file():
        source = json.loads(info_file.read_text(encoding="utf-8")).get("source")
    return {
        "path": processed_path.as_posix(),
        "md5": file_md5(processed_path),
        "fingerprint": fingerprint(read_processed(processed_path)),
        "source": source,
    }
    ### END SOLUTION


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
