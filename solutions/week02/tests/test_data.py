"""Visible component tests of week 2: ``mlpipe.data`` (prepare and lineage)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mlpipe import data
from mlpipe.config import PrepareParams

RAW = pd.DataFrame(
    {
        "sepal length (cm)": [5.1, 7.0],
        "sepal width (cm)": [3.5, 3.2],
        "petal length (cm)": [1.4, 4.7],
        "petal width (cm)": [0.2, 1.4],
        "class": [" Iris-setosa", "Iris-versicolor "],
        "comment": ["", "x"],
    }
)


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_clean_renames_columns_and_labels():
    df = data.clean(RAW, PrepareParams())
    assert list(df.columns) == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
        "species",
    ]
    assert df["species"].tolist() == ["setosa", "versicolor"]
    assert df["petal_length"].tolist() == [1.4, 4.7]


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_clean_names_a_missing_column():
    with pytest.raises(data.DataError, match="petal width"):
        data.clean(RAW.drop(columns=["petal width (cm)"]), PrepareParams())


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_prepare_writes_processed_data_and_fingerprint(tmp_path):
    raw = data.write_raw(tmp_path / "raw.csv")
    out = tmp_path / "processed" / "iris.csv"
    info = data.prepare(raw, out, PrepareParams())
    written = json.loads((out.parent / data.FINGERPRINT_FILE).read_text())
    assert written == info
    assert info["rows"] == 150
    assert info["fingerprint"].startswith("sha256:")
    assert info["source"]["md5"] == data.file_md5(raw)
    assert pd.read_csv(out).shape == (150, 5)


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_prepare_leaves_nothing_behind_for_an_unparsable_file(tmp_path):
    raw = tmp_path / "raw.csv"
    raw.write_bytes(b'"unterminated,quote\n1,2\n\x00\xff')
    out = tmp_path / "processed" / "iris.csv"
    with pytest.raises(data.DataError, match="raw.csv"):
        data.prepare(raw, out, PrepareParams())
    assert not out.exists()
    assert not (out.parent / data.FINGERPRINT_FILE).exists()


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_lineage_names_the_data_version(tmp_path):
    raw = data.write_raw(tmp_path / "raw.csv", per_class=40)
    out = tmp_path / "iris.csv"
    info = data.prepare(raw, out, PrepareParams())
    lineage = data.lineage(out)
    assert lineage["md5"] == data.file_md5(out)
    assert lineage["fingerprint"] == info["fingerprint"]
    assert lineage["source"] == info["source"]
