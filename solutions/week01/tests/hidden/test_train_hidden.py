"""Hidden component tests of week 1 (never released to students)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from autograder.testkit import assert_ran, run_mlpipe
from mlpipe import train
from mlpipe.config import TrainParams


class _FixedModel:
    """A stand-in model whose predictions are known in advance."""

    def __init__(self, predictions):
        self.predictions = np.asarray(predictions)

    def predict(self, X):
        return self.predictions


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_evaluate_confusion_matrix_on_known_predictions():
    y = pd.Series(["setosa", "setosa", "versicolor", "virginica"])
    metrics = train.evaluate(
        _FixedModel(["setosa", "versicolor", "versicolor", "virginica"]), None, y
    )
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert isinstance(metrics["accuracy"], float)


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_metadata_records_lineage(tmp_path):
    result = train.train(TrainParams(seed=3), tmp_path / "m")
    meta = json.loads((tmp_path / "m" / train.METADATA_FILE).read_text())
    assert meta["data_fingerprint"] == train.fingerprint(train.load_data())
    assert meta["params"] == {**TrainParams(seed=3).__dict__}
    assert meta["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", meta["git_commit"])
    assert meta["model_fingerprint"] == result.metadata["model_fingerprint"]


@pytest.mark.points(2)
@pytest.mark.task(4)
def test_training_reproduces_across_processes(tmp_path, trained_by_cli):
    first, out = trained_by_cli  # one process; the second runs here, with the same params
    assert_ran(first)
    fingerprints = [json.loads((out / train.METADATA_FILE).read_text())]
    params = out.parent / "params.yaml"
    proc = run_mlpipe("train", "--params", str(params), "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert_ran(proc)
    fingerprints.append(json.loads((tmp_path / "b" / train.METADATA_FILE).read_text()))
    assert fingerprints[0]["model_fingerprint"] == fingerprints[1]["model_fingerprint"]
    assert fingerprints[0]["metrics"] == fingerprints[1]["metrics"]
    other = train.train(TrainParams(seed=7), tmp_path / "c")
    assert other.metadata["model_fingerprint"] != fingerprints[0]["model_fingerprint"]
