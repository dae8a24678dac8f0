"""Visible component tests of week 6: reading the log, the window, the drift report, the policy."""

import json

import pytest
from conftest import (
    FEATURES,
    ROWS,
    START,
    copy_project,
    monitor_cli,
    write_lines,
)

from autograder.testkit import assert_ran
from mlpipe import monitor

#: The first test to use the monitoring runs waits for Evidently's import and reports.
pytestmark = pytest.mark.timeout(180)


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_read_log_reads_every_record_of_a_week5_log(project):
    found = monitor.read_log(project / "logs" / "normal.jsonl", FEATURES)
    assert found.lines == len(found.frame) == ROWS and found.torn_lines == 0
    assert list(found.frame.columns[:5]) == [*FEATURES, monitor.PREDICTION], (
        "read_log(): the frame's first columns are the features, then 'prediction'"
    )
    assert found.frame["request_id"].iloc[0] == "req-0000"


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_a_torn_last_line_is_skipped_and_counted(project, tmp_path):
    lines = (project / "logs" / "normal.jsonl").read_text(encoding="utf-8").splitlines()
    path = write_lines(tmp_path / "torn.jsonl", [*lines[:60], lines[60][:30]], end="")
    found = monitor.read_log(path, FEATURES)
    assert (found.lines, found.torn_lines) == (60, 1), (
        "read_log(): a last line without its newline that is not JSON is a torn write: "
        "skip it and count it in torn_lines"
    )


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_the_command_names_the_line_that_is_not_json(project, tmp_path):
    folder = copy_project(project, tmp_path / "bad")
    lines = (folder / "logs" / "normal.jsonl").read_text(encoding="utf-8").splitlines()
    write_lines(folder / "logs" / "inference.jsonl", [*lines[:2], "{oops", *lines[3:]])
    proc = assert_ran(monitor_cli(folder), 2, cwd=folder, hint="a log whose line 3 is not JSON")
    assert "Line 3" in proc.stderr and "inference.jsonl" in proc.stderr, (
        f"the message must name the log and its line 3 (lines count from 1): {proc.stderr}"
    )
    assert "Traceback" not in proc.stderr, "a bad log is one sentence, not a traceback"
    assert not (folder / "reports" / "monitoring").exists(), (
        "nothing is written for a log that cannot be read"
    )


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_select_window_keeps_the_latest_rows_since_a_time(project):
    from datetime import timedelta

    frame = monitor.read_log(project / "logs" / "normal.jsonl", FEATURES).frame
    window = monitor.select_window(frame, None, 100, 50)
    assert len(window) == 100, f"select_window(last=100) kept {len(window)} rows"
    assert window["request_id"].iloc[0] == "req-0200", (
        f"select_window(last=100): the window starts at {window['request_id'].iloc[0]}, "
        "expected req-0200: --last N keeps the latest N rows"
    )
    assert list(window.index) == list(range(100)), (
        f"select_window(): the window's index starts at {window.index[0]}, expected 0 (re-index it)"
    )
    recent = monitor.select_window(frame, START + timedelta(seconds=240), None, 50)
    assert len(recent) == 60 and recent["request_id"].iloc[0] == "req-0240"


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_a_window_under_min_rows_is_an_error_not_a_pass(project, tmp_path):
    folder = copy_project(project, tmp_path / "small")
    log = folder / "logs" / "normal.jsonl"
    proc = monitor_cli(folder, "--log", str(log), "--last", "10", "--check")
    assert_ran(proc, 2, cwd=folder, hint="a window of 10 rows under min_rows 50")
    assert "Not enough data to judge drift" in proc.stderr, proc.stderr


@pytest.mark.points(2)
@pytest.mark.task(3)
def test_the_unit_change_drifts_and_normal_traffic_does_not(runs):
    normal, mm = runs["normal"].summary, runs["mm"].summary
    assert not any(t.drifted for t in normal.features.values()), (
        f"normal traffic must not drift, but summarise() says {normal.features}: a column "
        "drifted when its p-value is below drift_threshold"
    )
    assert normal.drift_share == 0 and not normal.drift_detected
    assert mm.features["petal_length"].drifted, (
        "a delivery in millimetres must drift petal_length (K-S p-value below the threshold)"
    )
    assert mm.rows == ROWS and list(mm.features) == FEATURES


@pytest.mark.points(2)
@pytest.mark.task(4)
def test_monitor_check_exits_1_when_the_policy_is_breached(project, tmp_path):
    folder = copy_project(project, tmp_path / "drift")
    log = folder / "logs" / "drift.jsonl"
    proc = monitor_cli(folder, "--log", str(log), "--check")
    assert_ran(proc, 1, cwd=folder, hint="three of four features drifted")
    out = folder / "reports" / "monitoring"
    summary = json.loads((out / monitor.SUMMARY_FILE).read_text(encoding="utf-8"))
    assert summary["drift_detected"] and summary["drift_share"] >= 0.5
    assert "mlpipe_drift_share" in (out / monitor.PROM_FILE).read_text(encoding="utf-8")
