"""Week 2: data validation that stops bad data before it reaches training.

``validate`` runs every check and returns a :class:`ValidationResult` listing
each one, so a student or an on-call engineer sees all that is wrong at once.
``require_valid`` turns a failed result into a :class:`ValidationError`, which
the pipeline's ``validate`` stage reports with a non-zero exit: DVC then stops
before ``train``.

The checks, each named in every message:

=================== =====================================================
``schema.columns``  the required columns are there, in the expected order
``schema.types``    features are numbers, the label is text
``missing_values``  share of empty cells at most ``max_missing_fraction``
``domain.ranges``   features within ``[feature_min, feature_max]`` cm
``domain.categories`` labels are known ones
``duplicates``      share of duplicated rows at most ``max_duplicate_fraction``
``label_balance``   every label has at least ``min_class_fraction`` of rows
``row_count``       at least ``min_rows`` rows
``drift``           columns, types and feature means match the
                    reference (training) schema
=================== =====================================================
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.api import types as ptypes

from mlpipe.config import Dataset, ValidateParams, dataset_for
from mlpipe.errors import DataError, ValidationError
from mlpipe.files import write_json
from mlpipe.train import FEATURES, TARGET

#: Every check, in the order they run.
CHECKS = (
    "schema.columns",
    "schema.types",
    "missing_values",
    "domain.ranges",
    "domain.categories",
    "duplicates",
    "label_balance",
    "row_count",
    "drift",
)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        name: One of :data:`CHECKS`.
        passed: Whether the data passed.
        message: One sentence: what was found (on failure, what is wrong).
    """

    name: str
    passed: bool
    message: str


@dataclass
class ValidationResult:
    """Every check run on one data set."""

    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that failed, in order."""
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (the stage's report)."""
        return {"passed": self.passed, "checks": [asdict(check) for check in self.checks]}


def infer_schema(df: pd.DataFrame, dataset: Dataset | None = None) -> dict[str, Any]:
    """Describe clean training data, to compare later data against.

    Args:
        df: The training data.
        dataset: Its description; ``None`` is Iris.

    Returns:
        ``columns`` (names in order), ``types`` (``"number"`` or ``"text"``
        per column), ``categories`` (sorted labels) and ``stats``: the
        ``mean`` and ``std`` of each numeric feature.
    """
    ds = _described(None, dataset)
    return {
        "columns": list(df.columns),
        "types": {col: _kind(df[col]) for col in df.columns},
        "categories": sorted(str(v) for v in df[ds.target].dropna().unique()),
        "stats": {
            col: {"mean": float(df[col].mean()), "std": float(df[col].std())} for col in ds.numeric
        },
    }


def _described(params: ValidateParams | None, dataset: Dataset | None) -> Dataset:
    """The data set checked: ``dataset``, else Iris with ``params``' ranges and labels."""
    if dataset is not None:
        return dataset
    return dataset_for(params or ValidateParams())


def _kind(series: pd.Series) -> str:
    return "number" if ptypes.is_numeric_dtype(series) else "text"


def _numeric(df: pd.DataFrame, dataset: Dataset | None = None) -> list[str]:
    """The numeric features that are present and numbers (the others fail schema checks)."""
    names = FEATURES if dataset is None else dataset.numeric
    return [c for c in names if c in df.columns and ptypes.is_numeric_dtype(df[c])]


def check_columns(
    df: pd.DataFrame, params: ValidateParams, dataset: Dataset | None = None
) -> CheckResult:
    """``schema.columns``: the required columns, in the expected order.

    Fails when a column of ``FEATURES + [TARGET]`` is missing (the message names
    each missing column) or when those columns are in another order. Extra
    columns are allowed here: ``drift`` compares every column with the
    training schema.
    """
    ds = _described(params, dataset)
    ### BEGIN SOLUTION
    expected = ds.feature_names + [ds.target]
    missing = [c for c in expected if c not in df.columns]
    if missing:
        return CheckResult("schema.columns", False, f"missing column(s): {', '.join(missing)}.")
    present = [c for c in df.columns if c in expected]
    if present != expected:
        return CheckResult(
            "schema.columns",
            False,
            f"columns are in the order {', '.join(present)}; expected {', '.join(expected)}.",
        )
    return CheckResult("schema.columns", True, "all required columns, in order.")
    ### END SOLUTION


def check_types(
    df: pd.DataFrame, params: ValidateParams, dataset: Dataset | None = None
) -> CheckResult:
    """``schema.types``: the features are numeric, the label is text.

    A missing column is ``schema.columns``' job: only the columns present are
    checked. On failure the message names each column of the wrong type.
    """
    ds = _described(params, dataset)
    ### BEGIN SOLUTION
    wrong = [c for c in ds.numeric if c in df.columns and not ptypes.is_numeric_dtype(df[c])]
    if ds.target in df.columns and ptypes.is_numeric_dtype(df[ds.target]):
        wrong.append(ds.target)
    if wrong:
        return CheckResult("schema.types", False, f"wrong type in column(s): {', '.join(wrong)}.")
    return CheckResult("schema.types", True, "features are numeric and labels are text.")
    ### END SOLUTION


def check_missing(
    df: pd.DataFrame, params: ValidateParams, dataset: Dataset | None = None
) -> CheckResult:
    """``missing_values``: the share of empty cells is small enough.

    The share is taken over every cell of ``df``; on failure the message
    names each column that has an empty cell.
    """
    ### BEGIN SOLUTION
    cells = max(df.size, 1)
    missing = int(df.isna().sum().sum())
    share = missing / cells
    if share > params.max_missing_fraction:
        columns = [str(c) for c in df.columns if df[c].isna().any()]
        return CheckResult(
            "missing_values",
            False,
            f"{missing} missing value(s) in {', '.join(columns)} "
            f"({share:.1%} > {params.max_missing_fraction:.1%}).",
        )
    return CheckResult("missing_values", True, f"{missing} missing value(s).")
    ### END SOLUTION


def check_ranges(
    df: pd.DataFrame, params: ValidateParams, dataset: Dataset | None = None
) -> CheckResult:
    """``domain.ranges``: every feature within the plausible range.

    Only the numeric features present are checked (empty cells are
    ``missing_values``' job); on failure the message names each feature with
    a value outside ``[feature_min, feature_max]``.
    """
    ds = _described(params, dataset)
    ### BEGIN SOLUTION
    bad = {}
    for col in _numeric(df, ds):
        feature = ds.feature(col)
        outside = df[col].notna() & ~df[col].between(feature.min, feature.max)
        if outside.any():
            bad[col] = int(outside.sum())
    return _ranges_result(bad, ds)
    ### END SOLUTION


def _ranges_result(bad: dict[str, int], dataset: Dataset) -> CheckResult:
    """``domain.ranges``' verdict from the rows outside each feature's range.

    When every numeric feature has the same range (Iris: 0 to 10 cm), the
    sentences name it once; otherwise each failing feature's range is named.
    """
    ranges = {(f.min, f.max, f.unit) for f in dataset.features if f.numeric}
    if len(ranges) == 1:
        low, high, unit = next(iter(ranges))
        span = f"[{low}, {high}]" + (f" {unit}" if unit else "")
        where = ", ".join(f"{col} ({n} rows)" for col, n in bad.items())
        if bad:
            return CheckResult("domain.ranges", False, f"values outside {span} in {where}.")
        return CheckResult("domain.ranges", True, f"all features within {span}.")
    if bad:
        where = ", ".join(
            f"{col} ({n} rows outside [{dataset.feature(col).min}, {dataset.feature(col).max}])"
            for col, n in bad.items()
        )
        return CheckResult("domain.ranges", False, f"values outside the valid range in {where}.")
    return CheckResult("domain.ranges", True, "all features within their valid ranges.")


def check_categories(
    df: pd.DataFrame, params: ValidateParams, dataset: Dataset | None = None
) -> CheckResult:
    """``domain.categories``: every label is one the model knows.

    Fails when a label is not in ``params.categories`` (the message names
    each unknown label), and when ``df`` has no ``TARGET`` column at all.
    Empty labels are ``missing_values``' job.
    """
    ds = _described(params, dataset)
    ### BEGIN SOLUTION
    if ds.target not in df.columns:
        return CheckResult("domain.categories", False, f"no {ds.target} column to check.")
    labels = df[ds.target].dropna().astype(str)
    unseen = sorted(set(labels) - set(ds.labels))
    problems = []
    if unseen:
        problems.append(f"unknown label(s) {', '.join(unseen)}; known: {', '.join(ds.labels)}")
    for col in ds.categorical:
        if col in df.columns:
            known = ds.feature(col).categories
            odd = sorted(set(df[col].dropna().astype(str)) - set(known))
            if odd:
                problems.append(f"unknown {col} {', '.join(odd)}; known: {', '.join(known)}")
    if problems:
        return CheckResult("domain.categories", False, f"{'; '.join(problems)}.")
    if ds.categorical:
        return CheckResult("domain.categories", True, "all labels and categories are known.")
    return CheckResult("domain.categories", True, "all labels are known.")
    ### END SOLUTION


def check_duplicates(
    df: pd.DataFrame, params: ValidateParams, dataset: Dataset | None = None
) -> CheckResult:
    """``duplicates``: the share of repeated rows is small enough."""
    ### BEGIN SOLUTION
    repeated = int(df.duplicated().sum())
    share = repeated / max(len(df), 1)
    if share > params.max_duplicate_fraction:
        return CheckResult(
            "duplicates",
            False,
            f"{repeated} duplicated row(s) ({share:.1%} > {params.max_duplicate_fraction:.1%}).",
        )
    return CheckResult("duplicates", True, f"{repeated} duplicated row(s).")
    ### END SOLUTION


def check_balance(
    df: pd.DataFrame, params: ValidateParams, dataset: Dataset | None = None
) -> CheckResult:
    """``label_balance``: every known label has enough rows.

    Each label of ``params.categories`` needs at least ``min_class_fraction``
    of the rows; fails (naming each label short of rows) when one has fewer,
    and when ``df`` has no ``TARGET`` column or no rows.
    """
    ds = _described(params, dataset)
    ### BEGIN SOLUTION
    if ds.target not in df.columns or df.empty:
        return CheckResult("label_balance", False, "no labels to count.")
    shares = df[ds.target].astype(str).value_counts(normalize=True)
    rare = {
        label: float(shares.get(label, 0.0))
        for label in ds.labels
        if shares.get(label, 0.0) < params.min_class_fraction
    }
    if rare:
        where = ", ".join(f"{label} {share:.1%}" for label, share in rare.items())
        return CheckResult(
            "label_balance",
            False,
            f"too few rows of {where} (minimum {params.min_class_fraction:.1%}).",
        )
    return CheckResult("label_balance", True, "every label has enough rows.")
    ### END SOLUTION


def check_rows(
    df: pd.DataFrame, params: ValidateParams, dataset: Dataset | None = None
) -> CheckResult:
    """``row_count``: enough rows to train on."""
    return _row_count(len(df), params)


def _row_count(rows: int, params: ValidateParams) -> CheckResult:
    if rows < params.min_rows:
        return CheckResult("row_count", False, f"{rows} rows; at least {params.min_rows} needed.")
    return CheckResult("row_count", True, f"{rows} rows.")


def check_drift(
    df: pd.DataFrame,
    params: ValidateParams,
    reference: dict[str, Any] | None,
    dataset: Dataset | None = None,
) -> CheckResult:
    """``drift``: the data still looks like the reference (training) schema.

    Compares the columns and their kinds with ``reference`` (from
    :func:`infer_schema`), and each feature's mean: a shift of more than
    ``max_drift`` reference standard deviations fails (a changed unit, a
    broken sensor), and so does a feature with no values at all. Labels are
    ``domain.categories``' job. Without a reference the check passes and says so.
    """
    ### BEGIN SOLUTION
    if reference is None:
        return CheckResult("drift", True, "no reference schema given; drift not checked.")
    current = {col: _kind(df[col]) for col in df.columns}
    if list(df.columns) != reference["columns"] or current != reference["types"]:
        return CheckResult("drift", False, "columns or types differ from the training schema.")
    shifted = []
    for col in _numeric(df, dataset):
        ref = reference["stats"][col]
        shift = abs(float(df[col].mean()) - ref["mean"]) / (ref["std"] or 1.0)
        if shift != shift:  # NaN: the column has no values at all
            shifted.append(f"{col} has no values")
        elif shift > params.max_drift:
            shifted.append(f"{col} mean moved {shift:.1f} std")
    if shifted:
        return CheckResult("drift", False, f"{'; '.join(shifted)} (limit {params.max_drift} std).")
    return CheckResult("drift", True, "matches the training schema.")
    ### END SOLUTION


def validate(
    df: pd.DataFrame,
    params: ValidateParams,
    reference: dict[str, Any] | None = None,
    dataset: Dataset | None = None,
) -> ValidationResult:
    """Run every check of :data:`CHECKS` on ``df``.

    Args:
        df: Processed data (the columns of :func:`mlpipe.data.clean`).
        params: The thresholds.
        reference: The training schema from :func:`infer_schema`, or ``None``.
        dataset: The data's description (columns, ranges, categories, labels);
            ``None`` is Iris with ``params``' ranges and labels.

    Returns:
        A result with one :class:`CheckResult` per check, in the order of
        :data:`CHECKS`, whether or not earlier checks failed.
    """
    ### BEGIN SOLUTION
    checks = [
        check(df, params, dataset)
        for check in (
            check_columns,
            check_types,
            check_missing,
            check_ranges,
            check_categories,
            check_duplicates,
            check_balance,
            check_rows,
        )
    ]
    checks.append(check_drift(df, params, reference, dataset))
    return ValidationResult(checks)
    ### END SOLUTION


#: Files up to this size are read whole and checked by :func:`validate`; larger
#: ones are checked in chunks by :func:`validate_file`.
STREAM_BYTES = 64 * 2**20
#: Rows read at a time when a file is checked in chunks.
CHUNK_ROWS = 250_000


def validate_file(
    path: str | Path,
    params: ValidateParams,
    reference: dict[str, Any] | None = None,
    stream_bytes: int = STREAM_BYTES,
    dataset: Dataset | None = None,
) -> ValidationResult:
    """Run every check on a processed CSV file; a large file is never held whole.

    A file up to ``stream_bytes`` is read with :func:`mlpipe.data.read_processed`
    and checked by :func:`validate`. A larger one is read ``CHUNK_ROWS`` rows at
    a time, the features as float64 and the label as a category, and each
    check's numbers (missing cells, values out of range, labels, label counts,
    row hashes for duplicates, feature sums for drift) are added up chunk by
    chunk, so memory stays near one chunk plus 8 bytes a row. The verdicts and
    messages are those of :func:`validate` on the whole file (duplicates are
    found by 64-bit row hashes, and means are summed by chunk, which can differ
    from pandas' in the last bits). Files whose columns are not exactly
    ``FEATURES`` and ``TARGET``, or whose features are not all numbers, or
    whose labels all look like numbers, are read whole as above: they fail a
    schema check anyway, which needs the whole frame to be worded. So is a file
    of a ``dataset`` other than Iris (the chunked checks know Iris's columns only).

    Raises:
        DataError: When the file cannot be read (see :func:`mlpipe.data.read_csv`).
    """
    from mlpipe import data

    path = Path(path)
    other = dataset is not None and dataset != dataset_for(params)
    if other or not path.is_file() or path.stat().st_size <= stream_bytes:
        return validate(data.read_processed(path), params, reference, dataset)
    try:
        return _validate_chunks(path, params, reference)
    except _NotStreamable:
        return validate(data.read_processed(path), params, reference)


class _NotStreamable(Exception):
    """The file needs the whole-frame checks (see :func:`validate_file`)."""


def _looks_numeric(labels: pd.Index) -> bool:
    """Whether pandas would have read labels like these as numbers or booleans."""
    flags = {"true", "false"}
    if all(str(v).strip().lower() in flags for v in labels):
        return True
    return bool(pd.to_numeric(pd.Series(labels, dtype=object), errors="coerce").notna().all())


def _validate_chunks(
    path: Path, params: ValidateParams, reference: dict[str, Any] | None
) -> ValidationResult:
    import numpy as np

    from mlpipe.data import check_table

    expected = FEATURES + [TARGET]
    try:
        header = pd.read_csv(path, nrows=0)
    except (ValueError, OSError):
        raise _NotStreamable from None
    columns = [str(c) for c in header.columns]
    if sorted(columns) != sorted(expected) or len(set(columns)) != len(columns):
        raise _NotStreamable
    with open(path, "rb") as handle:  # rows estimated from the first MiB, 8 bytes of hash each
        head = handle.read(1 << 20)
    estimate = int(path.stat().st_size * (head.count(b"\n") + 1) / max(len(head), 1) * 1.05)
    hashes = np.empty(estimate + 1024, dtype=np.uint64)
    rows = 0
    missing = np.zeros(len(columns), dtype=np.int64)
    outside = np.zeros(len(FEATURES), dtype=np.int64)
    sums = np.zeros(len(FEATURES))
    counts = np.zeros(len(FEATURES), dtype=np.int64)
    labels: dict[str, int] = {}
    dtypes = {**dict.fromkeys(FEATURES, "float64"), TARGET: "category"}
    first = None
    low, high = params.feature_min, params.feature_max
    try:
        for chunk in pd.read_csv(path, dtype=dtypes, chunksize=CHUNK_ROWS):
            if first is None:
                first = chunk.head(1)
            n = len(chunk)
            if rows + n > len(hashes):  # longer rows at the start than later: grow
                hashes = np.resize(hashes, int((rows + n) * 1.25))
            hashes[rows : rows + n] = pd.util.hash_pandas_object(chunk, index=False).to_numpy()
            rows += n
            values = chunk[FEATURES].to_numpy(dtype=np.float64)
            empty = np.isnan(values)
            with np.errstate(invalid="ignore"):
                outside += ((values < low) | (values > high)).sum(axis=0)
            sums += np.where(empty, 0.0, values).sum(axis=0)
            counts += len(chunk) - empty.sum(axis=0)
            for i, col in enumerate(columns):
                missing[i] += (
                    empty[:, FEATURES.index(col)].sum()
                    if col in FEATURES
                    else chunk[col].isna().sum()
                )
            for label, count in chunk[TARGET].value_counts(dropna=False).items():
                key = str(label)
                labels[key] = labels.get(key, 0) + int(count)
    except (ValueError, OverflowError, pd.errors.ParserError):
        raise _NotStreamable from None  # a feature that is not a number: whole-frame checks
    if first is None or not rows:
        check_table(header, path)  # no data rows: the same sentence as read_csv
    known = [label for label in labels if label != "nan"]
    if _looks_numeric(pd.Index(known)):
        raise _NotStreamable
    return ValidationResult(
        [
            check_columns(first, params),
            check_types(first, params),
            _streamed_missing(pd.Series(missing, index=columns), rows, params),
            _streamed_ranges(dict(zip(FEATURES, outside.tolist(), strict=True)), params),
            _streamed_categories(known, params),
            _streamed_duplicates(hashes[:rows], params),
            _streamed_balance(labels, rows, params),
            _row_count(rows, params),
            _streamed_drift(first, sums.tolist(), counts.tolist(), params, reference),
        ]
    )


def _streamed_missing(missing: pd.Series, rows: int, params: ValidateParams) -> CheckResult:
    cells = max(rows * len(missing), 1)
    total = int(missing.sum())
    share = total / cells
    if share > params.max_missing_fraction:
        columns = [str(c) for c, n in missing.items() if n]
        return CheckResult(
            "missing_values",
            False,
            f"{total} missing value(s) in {', '.join(columns)} "
            f"({share:.1%} > {params.max_missing_fraction:.1%}).",
        )
    return CheckResult("missing_values", True, f"{total} missing value(s).")


def _streamed_ranges(outside: dict[str, int], params: ValidateParams) -> CheckResult:
    bad = {col: n for col, n in outside.items() if n}
    return _ranges_result(bad, dataset_for(params))


def _streamed_categories(known: list[str], params: ValidateParams) -> CheckResult:
    unseen = sorted(set(known) - set(params.categories))
    if unseen:
        return CheckResult(
            "domain.categories",
            False,
            f"unknown label(s) {', '.join(unseen)}; known: {', '.join(params.categories)}.",
        )
    return CheckResult("domain.categories", True, "all labels are known.")


def _streamed_duplicates(hashes: Any, params: ValidateParams) -> CheckResult:
    hashes.sort()
    repeated = int((hashes[1:] == hashes[:-1]).sum())
    share = repeated / max(len(hashes), 1)
    if share > params.max_duplicate_fraction:
        return CheckResult(
            "duplicates",
            False,
            f"{repeated} duplicated row(s) ({share:.1%} > {params.max_duplicate_fraction:.1%}).",
        )
    return CheckResult("duplicates", True, f"{repeated} duplicated row(s).")


def _streamed_balance(labels: dict[str, int], rows: int, params: ValidateParams) -> CheckResult:
    rare = {
        label: labels.get(label, 0) / rows
        for label in params.categories
        if labels.get(label, 0) / rows < params.min_class_fraction
    }
    if rare:
        where = ", ".join(f"{label} {share:.1%}" for label, share in rare.items())
        return CheckResult(
            "label_balance",
            False,
            f"too few rows of {where} (minimum {params.min_class_fraction:.1%}).",
        )
    return CheckResult("label_balance", True, "every label has enough rows.")


def _streamed_drift(
    first: pd.DataFrame,
    sums: list[float],
    counts: list[int],
    params: ValidateParams,
    reference: dict[str, Any] | None,
) -> CheckResult:
    if reference is None:
        return CheckResult("drift", True, "no reference schema given; drift not checked.")
    current = {col: _kind(first[col]) for col in first.columns}
    if list(first.columns) != reference["columns"] or current != reference["types"]:
        return CheckResult("drift", False, "columns or types differ from the training schema.")
    shifted = []
    for i, col in enumerate(FEATURES):
        ref = reference["stats"][col]
        mean = sums[i] / counts[i] if counts[i] else float("nan")
        shift = abs(mean - ref["mean"]) / (ref["std"] or 1.0)
        if shift != shift:  # NaN: the column has no values at all
            shifted.append(f"{col} has no values")
        elif shift > params.max_drift:
            shifted.append(f"{col} mean moved {shift:.1f} std")
    if shifted:
        return CheckResult("drift", False, f"{'; '.join(shifted)} (limit {params.max_drift} std).")
    return CheckResult("drift", True, "matches the training schema.")


def require_valid(result: ValidationResult) -> None:
    """Raise :class:`ValidationError` unless every check passed."""
    if not result.passed:
        raise ValidationError(result)


def read_schema(path: str | Path) -> dict[str, Any]:
    """Read a reference schema written by :func:`write_schema`.

    Raises:
        DataError: When the file is missing or not a schema, in one sentence.
    """
    path = Path(path)
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"Reference schema '{path}' does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"Reference schema '{path}' cannot be read as JSON ({err}).") from None
    if not isinstance(schema, dict) or not {"columns", "types", "stats"} <= schema.keys():
        raise DataError(
            f"Reference schema '{path}' lacks 'columns', 'types' or 'stats'; "
            "write it with `python -m mlpipe schema`."
        )
    return schema


def write_schema(df: pd.DataFrame, path: str | Path, dataset: Dataset | None = None) -> Path:
    """Write the schema of ``df`` (see :func:`infer_schema`) as JSON."""
    return write_json(path, infer_schema(df, dataset))
