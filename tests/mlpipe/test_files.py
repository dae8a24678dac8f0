"""Code tests of the reference ``mlpipe.files`` and of the files the stages read back."""

from __future__ import annotations

import json

import pytest

from mlpipe import data, files, validate


def test_write_json_is_sorted_indented_and_leaves_no_temporary_file(tmp_path):
    path = files.write_json(tmp_path / "deep" / "m.json", {"b": 1, "a": [1, 2]})
    assert path.read_text() == json.dumps({"a": [1, 2], "b": 1}, indent=2) + "\n"
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary_one(tmp_path):
    path = files.write_text_atomic(tmp_path / "m.json", "old\n")
    with pytest.raises(UnicodeEncodeError):  # fails half-way through writing
        files.write_text_atomic(path, "new text, then a lone surrogate \ud800")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "does not exist"), ("{", "cannot be read as JSON"), ('{"a": 1}', "lacks 'columns'")],
)
def test_a_bad_reference_schema_is_one_sentence(tmp_path, content, words):
    path = tmp_path / "schema.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(data.DataError, match=words) as err:
        validate.read_schema(path)
    assert str(err.value).count(". ") == 0 and str(err.value).endswith((".", ")."))
