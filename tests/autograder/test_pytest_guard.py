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
