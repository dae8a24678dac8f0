"""Visible component tests of week 2: the DVC pipeline, run for real.

Each test works in its own copy of a git + DVC repository holding your
pipeline files (see ``make_repo`` in conftest.py).
"""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run, stages_run

#: Each test builds a real git + DVC repository and runs the pipeline: slow on a busy machine.
pytestmark = pytest.mark.timeout(150)


@pytest.mark.points(2)
@pytest.mark.task(4)
def test_repro_builds_model_metrics_and_lineage(repo):
    meta = json.loads((repo / "models/iris-classifier/metadata.json").read_text())
    metrics = json.loads((repo / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.8
    dvc_file = (repo / "data/raw/iris.csv.dvc").read_text()
    assert meta["data"]["source"]["md5"] in dvc_file, "the model does not name its data version"
    assert run("dvc", "status", cwd=repo).stdout.strip().endswith("up to date.")


@pytest.mark.points(2)
@pytest.mark.task(4)
def test_changing_a_train_param_reruns_only_train_and_evaluate(repo):
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.5"))
    ran = stages_run(run("dvc", "repro", cwd=repo).stdout)
    assert ran == ["train", "evaluate"], (
        f"after train.C changed in params.yaml, `dvc repro` ran the stages {ran}, expected "
        "['train', 'evaluate']: in dvc.yaml, a stage lists the parameters it reads (params:) "
        "and the files it reads (deps:), and reruns when one of them changes"
    )


@pytest.mark.points(2)
@pytest.mark.task(4)
def test_push_then_pull_restores_the_same_data(repo):
    before = (repo / "data/processed/iris.csv").read_bytes()
    run("dvc", "push", cwd=repo)
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / "data" / "processed")
    run("dvc", "pull", cwd=repo)
    assert (repo / "data/processed/iris.csv").read_bytes() == before
