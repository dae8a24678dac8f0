"""Shared fixtures of the week 1 component tests.

These tests import ``mlpipe`` as installed: in your checkout that is your own
``labs/mlpipe``. Run them with ``course check 1`` (or ``pytest labs/week01/tests``).
The course's test kit (``autograder/testkit.py``) provides the markers, running
``python -m mlpipe`` and reading a Dockerfile.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from autograder.testkit import pipeline_dir, run_mlpipe

pytest_plugins = ("autograder.testkit",)

#: The folder holding the mlpipe package under test (labs/ or solutions/).
PIPELINE_DIR = pipeline_dir()
DOCKERFILE = PIPELINE_DIR / "docker" / "train.Dockerfile"


@pytest.fixture(scope="session")
def trained_by_cli(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """``python -m mlpipe train`` run once, params.yaml with ``test_size: 0.3``: (run, model folder).

    Every test that needs it shares this one run (training in a fresh
    process mostly pays for importing scikit-learn); check it with ``assert_ran``.
    """
    home = tmp_path_factory.mktemp("cli")
    params = (PIPELINE_DIR / "params.yaml").read_text(encoding="utf-8")
    # Not the default 0.2: a train() that ignores its params' test_size is caught.
    (home / "params.yaml").write_text(params.replace("test_size: 0.2", "test_size: 0.3"))
    out = home / "model"
    return run_mlpipe("train", "--params", "params.yaml", "--out", str(out), cwd=home), out
