"""Code tests of the reference ``mlpipe.data`` and its ``prepare`` command."""

from __future__ import annotations

import pytest
from conftest import SOLUTIONS, run_module

from mlpipe import data
from mlpipe.config import PrepareParams

RAW_HEADER = "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm),class\n"


def test_read_csv_refuses_a_header_without_rows(tmp_path):
    path = tmp_path / "raw.csv"
    path.write_text(RAW_HEADER)
    with pytest.raises(data.DataError) as err:
        data.read_csv(path)
    assert str(err.value) == f"Data file '{path}' has a header line but no data rows."


def test_prepare_writes_nothing_for_a_header_only_raw_file(tmp_path):
    (tmp_path / "raw.csv").write_text(RAW_HEADER)
    out = tmp_path / "processed" / "iris.csv"
    with pytest.raises(data.DataError, match="no data rows"):
        data.prepare(tmp_path / "raw.csv", out, PrepareParams())
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_cli_prepare_refuses_a_header_only_raw_file(tmp_path):
    (tmp_path / "raw.csv").write_text(RAW_HEADER)
    proc = run_module(
        "mlpipe", "prepare", "--raw", "raw.csv", "--out", "p/iris.csv", cwd=tmp_path,
        pythonpath=SOLUTIONS,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == "error: Data file 'raw.csv' has a header line but no data rows.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.csv"], "nothing is written"
