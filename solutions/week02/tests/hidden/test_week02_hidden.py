"""Hidden component tests of week 2 (never released to students)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import model_fingerprint, run, stages_run, stopped_by

from autograder.testkit import assert_failed, assert_ran
from mlpipe import data, validate
from mlpipe.config import PrepareParams


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_unit_change_is_stopped(clean_df, vparams, reference):
    df = clean_df.copy()
    df["petal_length"] = df["petal_length"] * 10  # millimetres
    stopped_by(df, vparams, reference, "domain.ranges")


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_small_unit_change_is_caught_as_drift(clean_df, vparams, reference):
    df = clean_df.copy()
    df["petal_width"] = df["petal_width"] * 2.54  # inches mistaken for cm, still in range
    stopped_by(df, vparams, reference, "drift")


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_unseen_category_is_stopped(clean_df, vparams, reference):
    df = clean_df.copy()
    df.loc[:9, "species"] = "iris-unknown"
    message = stopped_by(df, vparams, reference, "domain.categories")
    assert "iris-unknown" in message


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_duplicated_rows_are_stopped(clean_df, vparams, reference):
    df = clean_df.copy()
    df = pd.concat([df, df.iloc[:20]], ignore_index=True)
    stopped_by(df, vparams, reference, "duplicates")


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_text_in_a_numeric_column_is_stopped(clean_df, vparams, reference):
    df = clean_df.copy().astype({"sepal_length": object})
    df.loc[5, "sepal_length"] = "5,1"
    stopped_by(df, vparams, reference, "schema.types")


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_label_imbalance_is_stopped(clean_df, vparams, reference):
    df = clean_df[(clean_df["species"] != "virginica") | (clean_df.index % 10 == 0)]
    stopped_by(df, vparams, reference, "label_balance")


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_thresholds_come_from_params(clean_df, vparams, reference):
    from dataclasses import replace

    df = clean_df.copy()
    df.loc[0, "petal_length"] = np.nan
    assert not validate.validate(df, vparams, reference).passed
    lenient = replace(vparams, max_missing_fraction=0.01)
    assert validate.validate(df, lenient, reference).passed


@pytest.mark.points(2)
@pytest.mark.task(4)
@pytest.mark.timeout(150)  # a real git + DVC repository; slow on a busy machine
def test_bad_raw_data_stops_dvc_before_training(repo):
    raw = repo / "data/raw/iris.csv"
    lines = raw.read_text().splitlines()
    lines[5] = ",".join(["", *lines[5].split(",")[1:]])  # an empty measurement
    raw.write_text("\n".join(lines) + "\n")
    proc = run("dvc", "repro", cwd=repo, check=False)
    assert_failed(proc, cwd=repo, hint="validation must stop the pipeline")
    assert "missing_values" in proc.stdout + proc.stderr
    assert "train" not in stages_run(proc.stdout)
    meta = json.loads((repo / "models/iris-classifier/metadata.json").read_text())
    assert meta["data"]["source"]["md5"] != data.file_md5(raw), "a model was trained on bad data"


@pytest.mark.points(2)
@pytest.mark.task(4)
@pytest.mark.timeout(150)  # a real git + DVC repository; slow on a busy machine
def test_previous_data_version_reproduces_the_previous_model(repo):
    v1 = model_fingerprint(repo)
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", "model v1", cwd=repo)
    run("mlpipe", "fetch", cwd=repo)  # the provider delivers all 150 rows
    run("dvc", "add", "-q", "data/raw/iris.csv", cwd=repo)
    run("dvc", "repro", "train", cwd=repo)  # the stages up to the model (evaluate is not needed)
    v2 = model_fingerprint(repo)
    assert v2 != v1
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", "data v2", cwd=repo)
    run("git", "checkout", "-q", "HEAD~1", "--", "data/raw/iris.csv.dvc", cwd=repo)
    run("dvc", "checkout", "data/raw/iris.csv.dvc", cwd=repo)
    run("dvc", "repro", "--force", "train", cwd=repo)  # rerun prepare, validate, train for real
    assert model_fingerprint(repo) == v1


@pytest.mark.points(1)
@pytest.mark.task(4)
@pytest.mark.timeout(150)  # a real git + DVC repository; slow on a busy machine
def test_params_typo_and_unparsable_data_are_one_sentence(repo):
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("max_drift:", "max_drfit:"))
    proc = run("mlpipe", "validate", "--params", "params.yaml", cwd=repo, check=False)
    assert_ran(proc, 2, cwd=repo)
    assert proc.returncode == 2 and "did you mean 'max_drift'" in proc.stderr
    assert "Traceback" not in proc.stderr
    (repo / "bad.csv").write_text("a;b;c\n1;2;3\n")
    proc = run("mlpipe", "prepare", "--raw", "bad.csv", "--out", "out.csv", cwd=repo, check=False)
    assert_ran(proc, 2, cwd=repo)
    assert proc.returncode == 2 and "bad.csv" in proc.stderr and "Traceback" not in proc.stderr
    assert not (repo / "out.csv").exists()


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_prepare_refuses_a_header_only_raw_file(tmp_path):
    raw = data.write_raw(tmp_path / "raw.csv")
    raw.write_text(raw.read_text().splitlines()[0] + "\n")  # the header line, no data rows
    out = tmp_path / "processed" / "iris.csv"
    with pytest.raises(data.DataError, match="no data rows"):
        data.prepare(raw, out, PrepareParams())
    assert not out.exists()
    assert not (out.parent / data.FINGERPRINT_FILE).exists()
