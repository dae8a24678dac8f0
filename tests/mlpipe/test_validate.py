"""Code tests of the reference ``mlpipe.validate``: a large file is checked in chunks.

``validate_file`` reads a file larger than ``STREAM_BYTES`` in chunks; these
tests force that path on small files (``stream_bytes=0``, chunks of 7 rows) and
pin that it gives exactly the verdicts and messages of ``validate`` on the whole
frame.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SOLUTIONS, run_module

from mlpipe import data, train, validate
from mlpipe.config import ValidateParams

REFERENCE = json.loads((SOLUTIONS / "data" / "schema.json").read_text())


def _iris():
    return train.load_data()


def _variants():
    df = _iris()
    yield "clean", df
    nan = df.copy()
    nan.loc[[3, 60, 120], "petal_length"] = np.nan
    yield "missing", nan
    big = df.copy()
    big.loc[[5, 99], "sepal_width"] = [1e308, -1.0]
    yield "ranges", big
    unknown = df.copy()
    unknown.loc[:9, "species"] = "iris-unknown"
    yield "categories", unknown
    empty_label = df.copy()
    empty_label.loc[[0, 77], "species"] = np.nan
    yield "empty-label", empty_label
    yield "duplicates", df.iloc[list(range(150)) + list(range(0, 150, 5))]
    yield "balance", df[(df["species"] != "virginica") | (df.index % 10 == 0)]
    drift = df.copy()
    drift["petal_width"] = drift["petal_width"] * 2.54
    yield "drift", drift
    yield "few-rows", df.iloc[::10]
    no_values = df.copy()
    no_values["sepal_length"] = np.nan
    yield "a-feature-without-values", no_values
    yield "swapped", df[["sepal_width", "sepal_length", "petal_length", "petal_width", "species"]]


#: Files the chunks cannot check exactly; validate_file reads them whole.
def _whole_file_variants():
    df = _iris()
    yield "missing-column", df.drop(columns=["sepal_width"])
    yield "extra-column", df.assign(comment="x")
    text = df.astype({"sepal_length": object})
    text.loc[5, "sepal_length"] = "5,1"
    yield "text-in-a-feature", text
    yield "numeric-labels", df.assign(species=df["species"].astype("category").cat.codes)
    yield "boolean-labels", df.assign(species=df.index % 2 == 0)


@pytest.fixture()
def small_chunks(monkeypatch):
    monkeypatch.setattr(validate, "CHUNK_ROWS", 7)


@pytest.mark.parametrize("reference", [REFERENCE, None], ids=["reference", "no-reference"])
@pytest.mark.parametrize(("name", "df"), list(_variants()), ids=[n for n, _ in _variants()])
def test_chunks_give_the_verdicts_and_messages_of_the_whole_frame(
    tmp_path, small_chunks, name, df, reference
):
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    params = ValidateParams()
    whole = validate.validate(data.read_processed(path), params, reference)
    streamed = validate._validate_chunks(path, params, reference)  # no fallback to the frame
    assert streamed.to_dict() == whole.to_dict()
    assert validate.validate_file(path, params, reference, stream_bytes=0) == whole


@pytest.mark.parametrize(
    ("name", "df"), list(_whole_file_variants()), ids=[n for n, _ in _whole_file_variants()]
)
def test_files_the_chunks_cannot_check_are_read_whole(tmp_path, small_chunks, name, df):
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    params = ValidateParams()
    with pytest.raises(validate._NotStreamable):
        validate._validate_chunks(path, params, REFERENCE)
    whole = validate.validate(data.read_processed(path), params, REFERENCE)
    assert not whole.passed
    assert validate.validate_file(path, params, REFERENCE, stream_bytes=0) == whole


def test_a_header_only_file_is_one_sentence(tmp_path):
    path = tmp_path / "data.csv"
    _iris().head(0).to_csv(path, index=False)
    with pytest.raises(data.DataError, match="has a header line but no data rows"):
        validate._validate_chunks(path, ValidateParams(), REFERENCE)
    proc = run_module(
        "mlpipe", "validate", "--data", "data.csv", cwd=tmp_path, pythonpath=SOLUTIONS
    )
    assert proc.returncode == 2
    assert proc.stderr == "error: Data file 'data.csv' has a header line but no data rows.\n"
