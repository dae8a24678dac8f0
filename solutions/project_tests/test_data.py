"""Data tests of the pipeline: what ``prepare`` and ``validate`` must always do.

This suite is yours (week 4). It runs in CI on every change to data, params or
code (``pytest project_tests``), before the gates. It is graded by mutation: it must
pass on a correct ``mlpipe`` and fail when a realistic bug is planted in
``mlpipe/data.py``, ``mlpipe/validate.py`` or ``mlpipe/train.py``. So assert
behaviour, precisely: a test that only checks that a function returns
something catches nothing. Keep it fast (seconds) and free of network access.

The fixtures below are given; write the body of each test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpipe import data, train, validate
from mlpipe.config import PrepareParams, ValidateParams

SPECIES = {"setosa", "versicolor", "virginica"}


@pytest.fixture()
def raw_csv(tmp_path: Path) -> Path:
    """The raw Iris file as the provider delivers it (``Iris-setosa``, names with units)."""
    return data.write_raw(tmp_path / "raw" / "iris.csv")


@pytest.fixture()
def clean(raw_csv: Path, tmp_path: Path) -> pd.DataFrame:
    """The raw file after ``prepare``, read back as the pipeline reads it."""
    out = tmp_path / "processed" / "iris.csv"
    data.prepare(raw_csv, out, PrepareParams())
    return data.read_processed(out)


def test_prepare_gives_the_pipeline_columns_and_plain_labels(clean):
    """``prepare`` keeps all 150 rows, the columns ``FEATURES + [TARGET]`` in that
    order, and labels without the provider's prefix (exactly the three species)."""
    ### BEGIN SOLUTION
    assert len(clean) == 150
    assert list(clean.columns) == train.FEATURES + [train.TARGET]
    assert set(clean[train.TARGET]) == SPECIES
    ### END SOLUTION


def test_prepare_is_deterministic(raw_csv, tmp_path):
    """Preparing the same raw file twice gives the same bytes and the same fingerprint."""
    ### BEGIN SOLUTION
    first = data.prepare(raw_csv, tmp_path / "a" / "iris.csv", PrepareParams())
    second = data.prepare(raw_csv, tmp_path / "b" / "iris.csv", PrepareParams())
    assert first["fingerprint"] == second["fingerprint"]
    assert (tmp_path / "a/iris.csv").read_bytes() == (tmp_path / "b/iris.csv").read_bytes()
    ### END SOLUTION


def test_fingerprint_changes_with_one_value(clean):
    """``train.fingerprint`` is the same for an identical copy of the data and
    different as soon as one measurement changes."""
    ### BEGIN SOLUTION
    assert train.fingerprint(clean.copy()) == train.fingerprint(clean)
    changed = clean.copy()
    changed.loc[0, "sepal_length"] += 0.1
    assert train.fingerprint(changed) != train.fingerprint(clean)
    ### END SOLUTION


def test_validate_passes_clean_data(clean):
    """Every check of ``validate.validate`` passes on the prepared Iris data."""
    ### BEGIN SOLUTION
    result = validate.validate(clean, ValidateParams())
    assert result.passed, [check.message for check in result.failed]
    assert [check.name for check in result.checks] == list(validate.CHECKS)
    ### END SOLUTION


def test_validate_catches_a_missing_value(clean):
    """One empty cell is enough to fail the ``missing_values`` check (the
    default params allow none), and the whole result then fails."""
    ### BEGIN SOLUTION
    broken = clean.copy()
    broken.loc[3, "petal_width"] = np.nan
    result = validate.validate(broken, ValidateParams())
    assert not result.passed
    assert "missing_values" in [check.name for check in result.failed]
    ### END SOLUTION


def test_validate_catches_an_unseen_label(clean):
    """A label the model does not know (e.g. ``tulip`` in one row) fails the
    ``domain.categories`` check."""
    ### BEGIN SOLUTION
    broken = clean.copy()
    broken.loc[0, train.TARGET] = "tulip"
    result = validate.validate(broken, ValidateParams())
    assert "domain.categories" in [check.name for check in result.failed]
    ### END SOLUTION
