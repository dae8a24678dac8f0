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

from mlpipe.config import ValidateParams
from mlpipe.data import DataError
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


class ValidationError(ValueError):
    """Data that failed validation; the message names every failed check."""

    def __init__(self, result: ValidationResult) -> None:
        self.result = result
        details = "; ".join(f"{check.name}: {check.message}" for check in result.failed)
        super().__init__(
            f"Data failed {len(result.failed)} validation check(s), so training stops: {details}"
        )


def infer_schema(df: pd.DataFrame) -> dict[str, Any]:
    """Describe clean training data, to compare later data against.

    Returns:
        ``columns`` (names in order), ``types`` (``"number"`` or ``"text"``
        per column), ``categories`` (sorted labels) and ``stats``: the
        ``mean`` and ``std`` of each feature.
    """
    return {
        "columns": list(df.columns),
        "types": {col: _kind(df[col]) for col in df.columns},
        "categories": sorted(str(v) for v in df[TARGET].dropna().unique()),
        "stats": {
            col: {"mean": float(df[col].mean()), "std": float(df[col].std())} for col in FEATURES
        },
    }


def _kind(series: pd.Series) -> str:
    return "number" if ptypes.is_numeric_dtype(series) else "text"


def _numeric(df: pd.DataFrame) -> list[str]:
    """The features that are present and numeric (the others fail schema checks)."""
    return [c for c in FEATURES if c in df.columns and ptypes.is_numeric_dtype(df[c])]


def check_columns(df: pd.DataFrame, params: ValidateParams) -> CheckResult:
    """``schema.columns``: the required columns, in the expected order."""
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.validate.check_columns")


def check_types(df: pd.DataFrame, params: ValidateParams) -> CheckResult:
    """``schema.types``: the features are numeric, the label is text."""
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.validate.check_types")


def check_missing(df: pd.DataFrame, params: ValidateParams) -> CheckResult:
    """``missing_values``: the share of empty cells is small enough."""
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.validate.check_missing")


def check_ranges(df: pd.DataFrame, params: ValidateParams) -> CheckResult:
    """``domain.ranges``: every feature within the plausible range."""
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.validate.check_ranges")


def check_categories(df: pd.DataFrame, params: ValidateParams) -> CheckResult:
    """``domain.categories``: every label is one the model knows."""
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.validate.check_categories")


def check_duplicates(df: pd.DataFrame, params: ValidateParams) -> CheckResult:
    """``duplicates``: the share of repeated rows is small enough."""
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.validate.check_duplicates")


def check_balance(df: pd.DataFrame, params: ValidateParams) -> CheckResult:
    """``label_balance``: every known label has enough rows."""
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.validate.check_balance")


def check_rows(df: pd.DataFrame, params: ValidateParams) -> CheckResult:
    """``row_count``: enough rows to train on."""
    if len(df) < params.min_rows:
        return CheckResult(
            "row_count", False, f"{len(df)} rows; at least {params.min_rows} needed."
        )
    return CheckResult("row_count", True, f"{len(df)} rows.")


def check_drift(
    df: pd.DataFrame, params: ValidateParams, reference: dict[str, Any] | None
) -> CheckResult:
    """``drift``: the data still looks like the reference (training) schema.

    Compares the columns and their kinds with ``reference`` (from
    :func:`infer_schema`), and each feature's mean: a shift of more than
    ``max_drift`` reference standard deviations fails (a changed unit, a
    broken sensor), and so does a feature with no values at all. Labels are
    ``domain.categories``' job. Without a reference the check passes and says so.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.validate.check_drift")


def validate(
    df: pd.DataFrame, params: ValidateParams, reference: dict[str, Any] | None = None
) -> ValidationResult:
    """Run every check of :data:`CHECKS` on ``df``.

    Args:
        df: Processed data (the columns of :func:`mlpipe.data.clean`).
        params: The thresholds.
        reference: The training schema from :func:`infer_schema`, or ``None``.

    Returns:
        A result with one :class:`CheckResult` per check, in the order of
        :data:`CHECKS`, whether or not earlier checks failed.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.validate.validate")


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


def write_schema(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the schema of ``df`` (see :func:`infer_schema`) as JSON."""
    return write_json(path, infer_schema(df))
