"""``autograder.check``: ``course check``, the student's instant feedback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import LABS, SOLUTIONS
from submissions import reference

from autograder.check import SKIPPED, check
from autograder.cli import build_parser, main
from autograder.sources import pytest_items

#: The week 1 component tests of task 1 (load_data and fingerprint).
TASK1_TESTS = {
    "test_train.py::test_load_data_has_iris_shape_and_columns",
    "test_train.py::test_fingerprint_is_stable_and_sensitive",
}


def test_check_on_the_untouched_lab_fails_every_item_with_a_reason():
    result = check(1, labs=LABS)
    coded = [t for t in result.tests if t.status != "manual"]
    assert coded and all(t.score == 0 and t.output for t in coded)
    assert {t.source for t in coded} == {"notebook", "pytest"}
    assert not any("hidden" in t.name for t in result.tests)


def test_check_on_the_reference_passes_every_visible_item(tmp_path):
    sub = reference(tmp_path / "me")
    arrivals: list[tuple[float, str]] = []
    result = check(
        1, labs=sub / "labs", on_row=lambda r: arrivals.append((time.monotonic(), r.name))
    )
    ended = time.monotonic()
    failed = [(t.name, t.output) for t in result.tests if t.status not in ("passed", "manual")]
    assert not failed
    assert result.score == result.max_score > 0
    # Streamed: every row was handed over as it finished, the first long before the end.
    assert sorted(name for _, name in arrivals) == sorted(t.name for t in result.tests)
    assert arrivals[0][0] < ended - 2


def test_task_runs_only_that_tasks_cells_and_tests(tmp_path):
    sub = reference(tmp_path / "me")
    result = check(1, labs=sub / "labs", task=1)
    assert {t.name for t in result.tests} == {"test_task1_data", *TASK1_TESTS}
    assert all(t.status == "passed" for t in result.tests)
    assert "setup" in result.cell_seconds and "task1_answer" in result.cell_seconds
    assert "task2_answer" not in result.cell_seconds  # no cell of a later task ran


def test_a_task_the_week_does_not_have_is_one_sentence(capsys):
    assert main(["check", "1", "--task", "9"]) == 2
    err = capsys.readouterr().err
    assert "has no task 9" in err and "1, 2, 3, 4, 5, 6" in err and "Traceback" not in err


def test_every_graded_component_test_belongs_to_a_task():
    for tests in sorted(SOLUTIONS.glob("week*/tests")):
        untasked = [i.name for i in pytest_items(tests) if i.task is None]
        assert not untasked, f"{tests}: add @pytest.mark.task(K) to {untasked}"


def test_check_limits_parse_and_bad_ones_are_refused(capsys):
    args = build_parser().parse_args(
        ["check", "2", "--task", "3", "--cell-timeout", "90", "--test-timeout", "120.5"]
    )
    assert (args.task, args.cell_timeout, args.test_timeout) == (3, 90, 120.5)
    defaults = build_parser().parse_args(["check", "2"])
    assert defaults.cell_timeout >= 120 and defaults.test_timeout >= 120  # a slow laptop
    with pytest.raises(SystemExit):
        build_parser().parse_args(["check", "2", "--cell-timeout", "0"])
    assert "not a positive number of seconds" in capsys.readouterr().err


def _set_cells(notebook: Path, sources: dict[str, str]) -> None:
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id in sources:
            cell["source"] = sources[grade_id]
    notebook.write_text(json.dumps(nb, indent=1))


def test_a_cell_past_its_limit_is_a_row_with_the_cell_the_limit_and_advice(
    tmp_path, monkeypatch, capsys
):
    sub = reference(tmp_path / "me")
    week = sub / "labs" / "week01"
    shutil.rmtree(week / "tests")  # the notebook only
    _set_cells(week / "lab.ipynb", {"setup": "import time", "task1_answer": "time.sleep(120)"})
    monkeypatch.chdir(sub)
    started = time.monotonic()
    assert main(["check", "1", "--task", "1", "--cell-timeout", "3"]) == 1
    assert time.monotonic() - started < 60
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "CellTimeoutError" not in out + err
    row = next(line for line in out.splitlines() if line.startswith("task1_answer"))
    assert row.split()[-1] == "timeout"
    assert "task1_answer did not finish within the 3 s limit" in out
    assert "--cell-timeout" in out
    assert "test_task1_data" in out and "visible score: 0 / 2" in out


def test_a_skipped_test_is_checked_by_the_grader_and_not_subtracted(tmp_path, monkeypatch, capsys):
    sub = reference(tmp_path / "me")
    week = sub / "labs" / "week01"
    shutil.rmtree(week / "tests")
    (week / "tests").mkdir()
    reason = "your own data.py differs from the reference, " * 6 + "so the grader plants it."
    (week / "tests" / "test_x.py").write_text(
        "import time\nimport pytest\n\n"
        f"@pytest.mark.points(2)\ndef test_planted():\n    pytest.skip({reason!r})\n\n"
        "@pytest.mark.points(1)\ndef test_fine():\n    pass\n\n"
        "@pytest.mark.points(1)\ndef test_slow():\n    time.sleep(60)\n\n"
        # week 4 runs your suite with pytest in a tmp_path: no pytest.ini of check's above it
        "@pytest.mark.points(1)\ndef test_alone(tmp_path):\n"
        "    assert not [p for p in tmp_path.parents if (p / 'pytest.ini').exists()]\n"
    )
    nb = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (week / "lab.ipynb").write_text(json.dumps(nb))
    monkeypatch.chdir(sub)
    assert main(["check", "1", "--test-timeout", "3"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    planted = next(line for line in out.splitlines() if "test_planted" in line)
    assert "failed" not in planted and SKIPPED in planted and " - " in planted
    assert "so the grader plants it." in out  # the whole message, not cut at the table's width
    slow = next(line for line in out.splitlines() if "test_slow" in line)
    assert slow.split()[-1] == "timeout" and "--test-timeout" in out
    alone = next(line for line in out.splitlines() if "test_alone" in line)
    assert alone.split()[-1] == "passed"
    assert "visible score: 2 / 3" in out  # the skipped test's 2 points are not subtracted


def _tagged(tag: str) -> list[tuple[int, str]]:
    """The processes whose environment holds ``tag``: (pid, command line)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if tag.encode() in (proc / "environ").read_bytes():
                found.append(
                    (int(proc.name), (proc / "cmdline").read_bytes().decode(errors="replace"))
                )
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_ctrl_c_ends_every_process_check_started(tmp_path):
    sub = reference(tmp_path / "me")
    tag = f"COURSE_CHECK_TEST={uuid.uuid4().hex}"
    env = dict(os.environ, **dict([tag.split("=")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "autograder.cli", "check", "1"],
        cwd=sub, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            commands = [cmd for pid, cmd in _tagged(tag) if pid != proc.pid]
            if any("pytest" in c for c in commands) and any("ipykernel" in c for c in commands):
                break
            time.sleep(0.2)
        else:
            pytest.fail("course check started no kernel and no pytest within 120 s")
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    time.sleep(0.5)
    assert _tagged(tag) == []
