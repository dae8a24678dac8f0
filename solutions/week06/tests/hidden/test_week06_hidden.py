"""Hidden component tests of week 6 (never released to students)."""

import json
import shutil
import subprocess
from datetime import timedelta

import pytest
import yaml
from conftest import (
    ALERTS,
    FEATURES,
    ROWS,
    START,
    copy_project,
    monitor_cli,
    write_lines,
)

from autograder.testkit import assert_ran
from mlpipe import monitor
from mlpipe.config import MonitorParams

#: The first test to use the monitoring runs waits for Evidently's import and reports.
pytestmark = pytest.mark.timeout(180)


def _lines(project) -> list[str]:
    return (project / "logs" / "normal.jsonl").read_text(encoding="utf-8").splitlines()


def _refused(path, *words: str, schema="schema.json") -> str:
    with pytest.raises(monitor.MonitorError) as caught:
        monitor.read_log(path, FEATURES, schema)
    message = str(caught.value)
    for word in words:
        assert word in message, (word, message)
    return message


# --- task 1: reading the log ---------------------------------------------------------------


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_missing_empty_and_torn_only_logs_are_refused_in_one_sentence(tmp_path):
    _refused(tmp_path / "gone.jsonl", "gone.jsonl", "does not exist")
    _refused(write_lines(tmp_path / "empty.jsonl", []), "empty.jsonl", "empty")
    torn = tmp_path / "torn.jsonl"
    torn.write_text('{"request_id": "x", "ti', encoding="utf-8")
    _refused(torn, "torn.jsonl", "empty")


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_bad_records_name_their_line(project, tmp_path):
    lines = _lines(project)
    cases = {
        "Line 4": [*lines[:3], lines[3].replace('"output": "', '"output": 3, "x": "')],
        "Line 2": [lines[0], lines[1].replace('"request_id"', '"request"')],
        "Line 3": [*lines[:2], "[1, 2]"],
        "Line 5": [*lines[:4], lines[4].replace(": 1.5}", ': 1.5, "inputs": {"a": 1}}')],
    }
    for expected, content in cases.items():
        path = write_lines(tmp_path / "records.jsonl", content)
        _refused(path, expected, "records.jsonl")


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_a_log_of_other_columns_names_the_schema(project, tmp_path):
    lines = [line.replace('"sepal_width"', '"sepal_wide"') for line in _lines(project)[:5]]
    message = _refused(write_lines(tmp_path / "cols.jsonl", lines), "sepal_wide", "cols.jsonl")
    assert "schema.json" in message


# --- task 2: the window ---------------------------------------------------------------------


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_since_and_last_together_and_the_edge_of_min_rows(project):
    frame = monitor.read_log(project / "logs" / "normal.jsonl", FEATURES).frame
    both = monitor.select_window(frame, START + timedelta(seconds=100), 60, 10)
    assert list(both["request_id"][[0, 59]]) == ["req-0240", "req-0299"]
    assert len(monitor.select_window(frame, None, None, ROWS)) == ROWS
    with pytest.raises(monitor.MonitorError, match="needs at least 301"):
        monitor.select_window(frame, None, None, ROWS + 1)
    assert frame["request_id"].iloc[0] == "req-0000", "select_window must not change its input"


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_the_command_honours_since(project, tmp_path):
    folder = copy_project(project, tmp_path / "since")
    log = folder / "logs" / "normal.jsonl"
    since = (START + timedelta(seconds=270)).isoformat()
    proc = monitor_cli(folder, "--log", str(log), "--since", since, "--check")
    assert_ran(proc, 2, cwd=folder, hint="30 rows since the given time")
    assert "30 rows" in proc.stderr and "Not enough data" in proc.stderr, proc.stderr


# --- task 3: the report and the summary ------------------------------------------------------


@pytest.mark.points(2)
@pytest.mark.task(3)
def test_summaries_hold_each_test_and_the_shares(runs):
    for name, run in runs.items():
        summary = run.summary
        assert summary.rows == ROWS and summary.model_versions == ["1"], name
        assert {t.test for t in summary.features.values()} == {monitor.FEATURE_TEST}
        assert summary.prediction.test == monitor.LABEL_TEST
        assert abs(sum(summary.prediction_share.values()) - 1) < 1e-9
        assert all(t.drifted == (t.score < 0.05) for t in summary.features.values())
        share = sum(t.drifted for t in summary.features.values()) / len(FEATURES)
        assert summary.drift_share == share, name
        assert summary.window_start.startswith("2026-03-02T09:00:00")
        assert summary.window_end.startswith("2026-03-02T09:04:59")
    assert runs["shifted"].summary.features["sepal_width"].drifted
    assert runs["shifted"].summary.drift_share == 0.25
    assert runs["mm"].summary.prediction.drifted and not runs["normal"].summary.prediction.drifted
    assert runs["drift"].summary.drift_share == 0.75 and runs["drift"].summary.drift_detected


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_a_stricter_threshold_is_used_by_the_report(runs):
    run = runs["mm"]
    strict = MonitorParams(drift_threshold=1e-300)
    summary = monitor.summarise(run.report, run.window, FEATURES, strict)
    assert summary.drift_threshold == 1e-300
    assert all(t.drifted == (t.score < 1e-300) for t in summary.features.values())


# --- task 4: the policy and a whole run -------------------------------------------------------


@pytest.mark.points(1)
@pytest.mark.task(4)
def test_policy_breached_follows_the_share_rule(runs):
    run = runs["shifted"]
    for share, expected in ((0.25, True), (0.5, False), (1.0, False)):
        params = MonitorParams(max_drift_share=share)
        summary = monitor.summarise(run.report, run.window, FEATURES, params)
        assert monitor.policy_breached(summary) is expected, (share, summary.drift_share)


@pytest.mark.points(1)
@pytest.mark.task(4)
def test_normal_traffic_breaches_nothing_and_its_summary_is_saved(runs):
    run = runs["normal"]
    assert monitor.policy_breached(run.summary) is False
    saved = json.loads((run.files[0].parent / monitor.SUMMARY_FILE).read_text(encoding="utf-8"))
    assert saved["drift_share"] == 0 and saved["rows"] == ROWS and not saved["drift_detected"]


@pytest.mark.points(1)
@pytest.mark.task(4)
def test_the_drift_alert_fires_on_the_monitors_own_gauge(runs, tmp_path):
    """promtool evaluates the DataDriftDetected rule on the gauges the monitor wrote."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package provides it).")
    values = {}
    for name in ("normal", "drift"):
        text = (runs[name].files[0].parent / monitor.PROM_FILE).read_text(encoding="utf-8")
        check = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
        )
        assert check.returncode == 0, f"mlpipe.prom is not valid Prometheus text: {check.stdout}"
        (line,) = [x for x in text.splitlines() if x.startswith("mlpipe_drift_share ")]
        values[name] = float(line.split()[1])
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    (rule,) = [
        r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "DataDriftDetected"
    ]
    rule.pop("annotations", None)  # the test below checks when it fires, not its wording
    (tmp_path / "rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "drift", "rules": [rule]}]}), encoding="utf-8"
    )
    labels = {**rule.get("labels", {}), "job": "mlpipe-api"}
    series = lambda name: f'mlpipe_drift_share{{job="mlpipe-api", instance="{name}"}}'  # noqa: E731
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": series(name), "values": f"{values[name]}x300"} for name in values
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "280m",
                        "alertname": "DataDriftDetected",
                        "exp_alerts": [{"exp_labels": {**labels, "instance": "drift"}}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "rules_test.yml").write_text(yaml.safe_dump(test), encoding="utf-8")
    proc = subprocess.run(
        [promtool, "test", "rules", "rules_test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, (
        f"the drift alert must fire on the drifted run's gauge and not on the normal one's "
        f"(drift shares {values}): {proc.stdout[-1500:]}"
    )
