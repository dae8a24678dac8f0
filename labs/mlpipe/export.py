"""Week 5: batch scoring of a CSV file and ONNX export with a parity check.

* :func:`score_frame` / :func:`score_csv` score many rows at once, offline: the
  same model as the API, checked against the same columns, written atomically;
* :func:`to_onnx` converts the scikit-learn pipeline to ONNX (float32 input of
  the signature's columns), :func:`check_parity` runs the ONNX graph with
  onnxruntime and compares it with scikit-learn's predictions on the same rows.

The model comes from the registry as for serving (:func:`mlpipe.serve.resolve_model`
and :func:`mlpipe.serve.load_model`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpipe.errors import ServeError
from mlpipe.files import write_text_atomic

#: Column the predictions are written to.
PREDICTION = "prediction"
#: Largest difference allowed between ONNX and scikit-learn probabilities (float32).
PROBA_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Parity:
    """How an ONNX model compares with its scikit-learn original.

    Attributes:
        rows: Rows compared.
        label_mismatches: Rows whose predicted label differs.
        max_proba_diff: Largest absolute difference of a class probability.
        passed: No label differs and every probability is within the tolerance.
    """

    rows: int
    label_mismatches: int
    max_proba_diff: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """The comparison as a JSON-ready dict."""
        return asdict(self)


def first_not_finite(df: pd.DataFrame, column: str) -> int | None:
    """Position of the first value of ``column`` that is not a finite number (``None``: none)."""
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    return int(bad[0]) if bad.size else None


def not_a_number(column: str, row: int, value: Any) -> ServeError:
    """The error of a value that is not a finite number in data row ``row`` (counted from 1)."""
    return ServeError(
        f"Column {column} has a value that is not a finite number in row {row} ({value!r})."
    )


def feature_matrix(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The rows of ``df`` as a float matrix with ``columns`` in order.

    Raises:
        ServeError: When a column is missing, or a value is not a finite number
            (the message names the column and the first bad row).
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.export.feature_matrix")


def score_frame(model: Any, df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Score every row of ``df``.

    Returns:
        A copy of ``df`` with the predicted label in the column ``prediction``.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.export.score_frame")


def read_csv(path: str | Path, nrows: int | None = None) -> pd.DataFrame:
    """Read a CSV file to score.

    Args:
        path: The file.
        nrows: Read only its first ``nrows`` data rows (default: all).

    Raises:
        ServeError: When the file is missing, empty or not CSV.
    """
    path = Path(path)
    if not path.is_file():
        raise ServeError(f"The file to score, {path}, does not exist.")
    try:
        df = pd.read_csv(path, nrows=nrows)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ServeError(f"{path} is not a readable CSV file ({err}).") from None
    if df.empty:
        raise ServeError(f"{path} has no rows to score.")
    return df


def check_range(df: pd.DataFrame, columns: list[str], low: float, high: float) -> None:
    """Refuse a number outside ``[low, high]`` in ``columns``, as validation does.

    A model extrapolates silently far outside the data it was trained on
    (``1e308`` gets a confident label), so batch scoring refuses such rows.

    Raises:
        ServeError: Naming the column and the data row (counted from 1, the
            header line not counted) of the first value outside the range.
    """
    for column in columns:
        found = first_outside(df, column, low, high)
        if found is not None:
            raise outside_range(column, found[1], found[0] + 1, low, high)


def first_outside(
    df: pd.DataFrame, column: str, low: float, high: float
) -> tuple[int, float] | None:
    """The position and value of the first number of ``column`` outside ``[low, high]``.

    Returns:
        ``(position, value)``, or ``None`` when every number is inside (values
        that are not numbers are :func:`feature_matrix`'s to report).
    """
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        outside = np.flatnonzero(~np.isnan(values) & ((values < low) | (values > high)))
    if not outside.size:
        return None
    return int(outside[0]), float(values[outside[0]])


def outside_range(column: str, value: float, row: int, low: float, high: float) -> ServeError:
    """The error of ``value`` outside ``[low, high]`` in data row ``row`` (counted from 1)."""
    return ServeError(
        f"Column {column} has {value!r} in data row {row}, outside the valid "
        f"range [{low}, {high}] (validate.feature_min and feature_max); nothing was scored."
    )


def score_csv(
    model: Any,
    columns: list[str],
    data: str | Path | pd.DataFrame,
    out: str | Path,
    valid_range: tuple[float, float] | None = None,
) -> int:
    """Score a CSV file into another one, written atomically (never half-written).

    Args:
        model: The fitted model.
        columns: Its input columns, in order.
        data: The CSV file to score, or its rows already read with :func:`read_csv`.
        out: The CSV file to write, with a ``prediction`` column added.
        valid_range: ``(low, high)``: refuse the whole file, writing nothing,
            when a value is outside it (see :func:`check_range`).

    Returns:
        The number of rows scored.
    """
    df = data if isinstance(data, pd.DataFrame) else read_csv(data)
    feature_matrix(df, columns)  # a missing column or a value that is not a number first
    if valid_range is not None:
        check_range(df, columns, *valid_range)
    scored = score_frame(model, df, columns)
    write_text_atomic(out, scored_csv(scored))
    return len(scored)


def scored_csv(scored: pd.DataFrame, header: bool = True) -> str:
    """The CSV text of scored rows, as :func:`score_csv` writes it.

    Args:
        scored: Rows from :func:`score_frame`.
        header: Start with the header line; week 7's split scoring (``mlpipe.scale``)
            writes it only for the first part, so that the parts joined in order
            are the same bytes as the whole file scored at once.
    """
    return scored.to_csv(index=False, header=header, lineterminator="\n")


def to_onnx(model: Any, n_features: int) -> bytes:
    """Convert a fitted scikit-learn classifier to ONNX.

    The graph takes one float32 tensor ``input`` of shape ``[N, n_features]``
    and returns ``label`` and ``probabilities`` (a plain tensor, no ZipMap).

    Returns:
        The serialised ONNX model.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.export.to_onnx")


def onnx_session(onnx_bytes: bytes) -> Any:
    """An onnxruntime session of an ONNX model, on the CPU with one thread per call."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def onnx_predict(onnx_bytes: bytes, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run an ONNX classifier with onnxruntime.

    Returns:
        ``(labels, probabilities)``.
    """
    session = onnx_session(onnx_bytes)
    name = session.get_inputs()[0].name
    labels, probabilities = session.run(None, {name: X.astype(np.float32)})
    return np.asarray(labels), np.asarray(probabilities)


def check_parity(
    model: Any, onnx_bytes: bytes, X: np.ndarray, tolerance: float = PROBA_TOLERANCE
) -> Parity:
    """Compare the ONNX model's predictions with scikit-learn's on the rows ``X``.

    Args:
        model: The scikit-learn original.
        onnx_bytes: Its ONNX conversion.
        X: Rows to compare on: a 2-D numpy array of numbers (float64 or
            float32), not a DataFrame, columns in signature order, e.g.
            ``feature_matrix(df, columns)`` or ``df[columns].to_numpy()``.
            scikit-learn gets the same rows as a frame with the model's
            ``feature_names_in_`` as columns (when it has them).
        tolerance: Largest allowed difference of a probability.

    Returns:
        The :class:`Parity`.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.export.check_parity")


def export_onnx(
    model: Any, X: np.ndarray, out: str | Path, onnx_bytes: bytes | None = None
) -> Parity:
    """Convert ``model`` to ONNX, check parity on ``X`` and write the file only if it passes.

    Args:
        model: The fitted scikit-learn model.
        X: Rows to check parity on, columns in signature order.
        out: The ``.onnx`` file to write.
        onnx_bytes: An ONNX conversion made already (default: :func:`to_onnx`).

    Raises:
        ServeError: When the ONNX model disagrees with scikit-learn (nothing is written).
    """
    if onnx_bytes is None:
        onnx_bytes = to_onnx(model, X.shape[1])
    parity = check_parity(model, onnx_bytes, X)
    if not parity.passed:
        raise ServeError(
            f"The ONNX model disagrees with scikit-learn on {parity.label_mismatches} of "
            f"{parity.rows} rows (largest probability difference {parity.max_proba_diff:.2g}); "
            "nothing was written."
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(onnx_bytes)
    tmp.replace(out)
    return parity
