"""``autograder.pytest_guard``: what the guard plugin reads from the instructor's tests."""

from __future__ import annotations

import pytest

from autograder.pytest_guard import _own_timeouts


def test_the_guard_reads_timeout_marks_from_the_tests(tmp_path):
    (tmp_path / "test_marks.py").write_text(
        "import pytest\n\n@pytest.mark.timeout(150)\ndef test_slow():\n    pass\n\n"
        "def test_plain():\n    pass\n"
    )
    collected: list = []

    class Keep:
        def pytest_collection_modifyitems(self, items: list) -> None:
            collected.extend(items)

    args = ["-q", "--collect-only", "-p", "pytest_timeout", "-p", "no:cacheprovider"]
    assert pytest.main([*args, str(tmp_path)], plugins=[Keep()]) == 0
    own = {nodeid.rsplit("/", 1)[-1]: s for nodeid, s in _own_timeouts(collected).items()}
    assert own == {"test_marks.py::test_slow": 150.0}


def test_results_without_the_runs_signature_are_counted_as_forged(tmp_path):
    import json

    from autograder.pytest_guard import read_results, sign

    key = "k" * 32
    good = json.dumps({"t": "start", "id": "t.py::test_a"})
    lines = [
        json.dumps({"p": good, "s": sign(key.encode(), good)}),
        json.dumps({"p": good, "s": "0" * 64}),  # a forged signature
        "not json",
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(lines) + "\n")
    records, forged = read_results(path, key)
    assert records == [{"t": "start", "id": "t.py::test_a"}] and forged == 2
    assert read_results(tmp_path / "missing.jsonl", key) == ([], 0)


def test_a_helper_imported_from_the_kit_is_watched_like_one_the_test_file_defines(
    tmp_path, monkeypatch
):
    """The tests import their helpers from autograder.testkit: replacing one is tampering."""
    import sys
    import types

    from autograder import pytest_guard, testkit

    labs = tmp_path / "labs"
    (labs / "mlpipe").mkdir(parents=True)
    package = types.ModuleType("mlpipe")
    package.__file__ = str(labs / "mlpipe" / "__init__.py")
    package.train = types.ModuleType("mlpipe.train")
    monkeypatch.setitem(sys.modules, "mlpipe", package)
    fake = labs / "mlpipe" / "cheat.py"
    fake.write_text("def dockerfile_instructions(path):\n    return []\n")
    submission: dict = {}
    exec(compile(fake.read_text(), str(fake), "exec"), submission)
    test_file = tmp_path / "tests" / "test_week.py"
    test_file.parent.mkdir()
    test_file.write_text(
        "from autograder.testkit import dockerfile_instructions, hadolint\n"
        "from mlpipe import train\n\n\n"
        "def helper():\n    pass\n"
    )
    module = types.ModuleType("test_week")
    module.__file__ = str(test_file)
    exec(compile(test_file.read_text(), str(test_file), "exec"), module.__dict__)
    monkeypatch.setitem(pytest_guard._state, "labs", str(labs))
    monkeypatch.setitem(pytest_guard._state, "helpers", {})
    pytest_guard._record_helpers([module, testkit])
    assert pytest_guard._helper_problems() == []
    module.train = "changed"  # the code under test, not a helper of the tests
    module.dockerfile_instructions = submission["dockerfile_instructions"]
    monkeypatch.setattr(testkit, "hadolint", submission["dockerfile_instructions"])
    assert pytest_guard._helper_problems() == [
        "the test helper dockerfile_instructions of test_week.py was replaced",
        "the test helper hadolint of testkit.py was replaced",
    ]
    pytest_guard._state["helpers"] = {}
    pytest_guard._record_helpers([module])  # recorded after the submission replaced it
    assert pytest_guard._helper_problems() == [
        "the test helper dockerfile_instructions of test_week.py was replaced"
    ]
