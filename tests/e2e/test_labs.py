"""The lab sources run clean with the reference, and nbgrader's Validate gives the right verdict."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import LABS, SOLUTIONS
from nbclient import NotebookClient

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "lab", sorted(SOLUTIONS.glob("week*/lab.ipynb")), ids=lambda p: p.parent.name
)
def test_lab_source_runs_clean_with_the_reference(lab):
    nb = nbformat.read(lab, as_version=4)
    env = dict(os.environ, PYTHONPATH=str(SOLUTIONS))
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(lab.parent)}}
    ).execute(env=env)
    errors = [
        o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors


@pytest.mark.parametrize(
    ("pythonpath", "notebook", "verdict"),
    [
        (SOLUTIONS, SOLUTIONS / "week01/lab.ipynb", "Success! Your notebook passes all the tests."),
        (LABS, LABS / "week01/lab.ipynb", "VALIDATION FAILED ON 5 CELL(S)!"),
    ],
    ids=["reference", "untouched"],
)
def test_nbgrader_validate_button_verdict(tmp_path, pythonpath, notebook, verdict):
    """What JupyterLab's Validate button says: nbgrader's own validate command."""
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), "validate", str(notebook)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert verdict in proc.stdout + proc.stderr
