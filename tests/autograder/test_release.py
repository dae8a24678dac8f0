"""``course release``: labs/ is generated from solutions/, in sync, without hidden tests."""

from __future__ import annotations

import json

import pytest
from conftest import LABS, REPO

from autograder import CourseError
from autograder.release import release, stub_python, stub_text


def test_labs_is_in_sync_with_solutions():
    result = release(check=True)
    assert result.in_sync, f"run `course release`: stale {result.changed}, extra {result.removed}"


def test_check_notices_a_stale_file(tmp_path):
    import shutil

    shutil.copytree(
        REPO / "solutions", tmp_path / "solutions", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(LABS, tmp_path / "labs", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "labs/mlpipe/train.py").write_text("# edited by hand\n")
    (tmp_path / "labs/stray.txt").write_text("x")
    result = release(root=tmp_path, check=True)
    assert result.changed == ["mlpipe/train.py"] and result.removed == ["stray.txt"]
    assert release(root=tmp_path).changed == ["mlpipe/train.py"]
    assert release(root=tmp_path, check=True).in_sync


def test_no_hidden_test_or_solution_reaches_labs():
    files = [p for p in LABS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert not [p for p in files if "hidden" in p.parts]
    for path in files:
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, path
    nb = json.loads((LABS / "week01/lab.ipynb").read_text())
    assert all(not cell.get("outputs") for cell in nb["cells"])


def test_stub_python_keeps_signature_and_names_the_function():
    source = (
        'def f(x):\n    """Doc."""\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n'
    )
    stub = stub_python(source, "mlpipe.demo")
    assert stub == (
        'def f(x):\n    """Doc."""\n    # YOUR CODE HERE\n    raise NotImplementedError("mlpipe.demo.f")\n'
    )


def test_stub_text_for_dockerfiles():
    assert (
        stub_text('FROM x\n### BEGIN SOLUTION\nCMD ["a"]\n### END SOLUTION\n')
        == "FROM x\n# YOUR CODE HERE\n"
    )


@pytest.mark.parametrize(
    "source",
    [
        "### BEGIN SOLUTION\nx\n",
        "x\n### END SOLUTION\n",
        "### BEGIN SOLUTION\n### BEGIN SOLUTION\n",
    ],
)
def test_malformed_markers_are_reported(source):
    with pytest.raises(CourseError):
        stub_python(source, "m")


def test_release_of_an_unknown_week_is_refused():
    with pytest.raises(CourseError, match="no lab for week '9'"):
        release(week=9, check=True)
