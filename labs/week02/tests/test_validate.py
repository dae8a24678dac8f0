"""Visible component tests of week 2: ``mlpipe.validate``.

Each bad-data case must be stopped by validation with a message naming the
check. The hidden tests try more cases than these.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import stopped_by

from mlpipe import validate


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_clean_data_passes_every_check(clean_df, vparams, reference):
    result = validate.validate(clean_df, vparams, reference)
    assert [c.name for c in result.checks] == list(validate.CHECKS)
    assert result.passed, [f"{c.name}: {c.message}" for c in result.failed]
    validate.require_valid(result)


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_missing_column_is_stopped(clean_df, vparams, reference):
    message = stopped_by(
        clean_df.drop(columns=["sepal_width"]), vparams, reference, "schema.columns"
    )
    assert "sepal_width" in message


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_swapped_columns_are_stopped(clean_df, vparams, reference):
    swapped = clean_df[["sepal_width", "sepal_length", "petal_length", "petal_width", "species"]]
    stopped_by(swapped, vparams, reference, "schema.columns")


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_missing_values_are_stopped(clean_df, vparams, reference):
    df = clean_df.copy()
    df.loc[[3, 60, 120], "petal_length"] = np.nan
    message = stopped_by(df, vparams, reference, "missing_values")
    assert "petal_length" in message, (
        f"the missing_values check must name the column(s) with gaps; its message: {message!r}"
    )


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_every_failed_check_is_listed(clean_df, vparams, reference):
    df = clean_df.drop(columns=["sepal_width"])
    df.loc[0, "petal_length"] = np.nan
    result = validate.validate(df, vparams, reference)
    names = {c.name for c in result.failed}
    assert {"schema.columns", "missing_values"} <= names, (
        f"validate() of data without sepal_width and with a gap in petal_length listed the "
        f"failed checks {sorted(names)}, expected schema.columns and missing_values among them: "
        "run every check and report every failure, not only the first"
    )
    assert len(result.checks) == len(validate.CHECKS), (
        f"validate() ran {len(result.checks)} checks, expected all {len(validate.CHECKS)}"
    )
