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
    expected = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    assert list(df.columns) == expected, (
        f"clean() returned the columns {list(df.columns)}, expected {expected}"
    )
    labels = df["species"].tolist()
    assert labels == ["setosa", "versicolor"], (
        f"clean() turned the raw labels {RAW['class'].tolist()} into {labels}, expected "
        "['setosa', 'versicolor']: strip the spaces around a label and the prefix in the params"
    )
    assert df["petal_length"].tolist() == [1.4, 4.7]


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_clean_names_a_missing_column():
    try:
        data.clean(RAW.drop(columns=["petal width (cm)"]), PrepareParams())
    except data.DataError as err:
        assert "petal width" in str(err), (
            f"clean() raised DataError({str(err)!r}) for raw data without the column "
            "'petal width (cm)': the message must name the missing column"
        )
    except Exception as err:
        raise AssertionError(
            f"clean() raised {type(err).__name__}: {err} for raw data without the column "
            "'petal width (cm)', expected a DataError that names the missing column: check "
            "the columns before you use them"
        ) from None
    else:
        pytest.fail(
            "clean() accepted raw data without the column 'petal width (cm)', expected a "
            "DataError that names it"
        )


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_prepare_writes_processed_data_and_fingerprint(tmp_path):
    raw = data.write_raw(tmp_path / "raw.csv")
    out = tmp_path / "processed" / "iris.csv"
    info = data.prepare(raw, out, PrepareParams())
    written = json.loads((out.parent / data.FINGERPRINT_FILE).read_text())
    assert written == info, (
        f"{data.FINGERPRINT_FILE} holds {written}, but prepare() returned {info}"
    )
    assert info["rows"] == 150
    assert info["fingerprint"].startswith("sha256:")
    assert info["source"]["md5"] == data.file_md5(raw), (
        f"prepare(): source md5 is {info['source']['md5']}, expected the MD5 of the raw file "
        f"{raw.name}, {data.file_md5(raw)}"
    )
    written_df = pd.read_csv(out)
    assert written_df.shape == (150, 5), (
        f"prepare() wrote {out.name} with the shape {written_df.shape} and the columns "
        f"{list(written_df.columns)}, expected (150, 5) (is the index written too?)"
    )
    content = data.fingerprint(written_df)
    assert info["fingerprint"] == content, (
        f"prepare(): the fingerprint {info['fingerprint'][:20]}... is not that of the processed "
        f"rows it wrote ({content[:20]}...): fingerprint the cleaned data, not a path or the raw file"
    )


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
    assert lineage["md5"] == data.file_md5(out), (
        f"lineage(): md5 is {lineage['md5']}, expected the MD5 of the processed file "
        f"{out.name} ({data.file_md5(out)}), as dvc.lock records it"
    )
    assert lineage["fingerprint"] == info["fingerprint"], (
        "lineage(): fingerprint differs from the one prepare() recorded for the same file"
    )
    assert lineage["source"] == info["source"], (
        f"lineage(): source is {lineage['source']}, expected {info['source']}, read from "
        f"{data.FINGERPRINT_FILE} next to the processed file"
    )
