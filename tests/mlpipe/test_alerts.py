"""The monitoring files of week 6 without Prometheus: ``solutions/monitoring/``.

``alerts.yml`` (alert rules), ``prometheus.yml`` (the scrape config) and
``dashboard.json`` (Grafana) must name metrics that exist: week 5's ``Metrics`` of
the serving app and the drift gauges of the monitor (the contract of week 6).
promtool and a real Prometheus server check them further in the slow tier
(tests/e2e/test_prometheus.py).
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import SOLUTIONS

from mlpipe import serve

MONITORING = SOLUTIONS / "monitoring"
#: The gauges ``python -m mlpipe monitor`` publishes (the week-6 contract).
DRIFT_GAUGES = {
    "mlpipe_drift_share",
    "mlpipe_drift_detected",
    "mlpipe_monitor_rows",
    "mlpipe_feature_drift_score",
    "mlpipe_feature_drifted",
    "mlpipe_prediction_share",
    "mlpipe_monitor_last_run_timestamp_seconds",
}
ALERTS = {
    "DataDriftDetected",
    "DriftMonitorStale",
    "PredictionLatencyHigh",
    "ServerErrorRateHigh",
    "APIDown",
}
#: Words of PromQL that look like metric names.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "by", "without", "rate", "irate", "increase", "time",
    "histogram_quantile", "le", "and", "or", "unless", "on", "ignoring",
}  # fmt: skip
#: Panel types of Grafana's core panels that the dashboard may use.
PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "text"}


def served_metrics() -> set[str]:
    """Every sample name the serving app's ``/metrics`` exposes (week 5's ``Metrics``)."""
    ref = serve.ModelRef("m", "champion", "1", None, "file:///unused", "file:///unused", ())
    metrics = serve.Metrics(ref)
    metrics.observe("GET", "/health", 200, 0.001)
    metrics.count_predictions(["setosa"])
    return {sample.name for family in metrics.registry.collect() for sample in family.samples}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (label values and keywords left out)."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"by\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr))
    return {w for w in words if w not in PROMQL_WORDS}


@pytest.fixture(scope="module")
def known() -> set[str]:
    return served_metrics() | DRIFT_GAUGES | {"up"}


@pytest.fixture(scope="module")
def rules() -> dict[str, dict]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8"))


def test_the_rules_cover_drift_latency_errors_and_a_down_api(rules):
    assert set(rules) == ALERTS


def test_every_rule_waits_has_a_severity_and_says_what_happened(rules):
    for name, rule in rules.items():
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: no for:"
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_the_rules_read_metrics_that_the_api_and_the_monitor_publish(rules, known):
    for name, rule in rules.items():
        names = metric_names(rule["expr"])
        assert names and names <= known, f"{name} reads unknown metrics: {names - known}"


def test_the_drift_rule_is_the_policy_of_params_yaml(rules):
    params = yaml.safe_load((SOLUTIONS / "params.yaml").read_text(encoding="utf-8"))
    policy = params.get("monitor", {}).get("max_drift_share", 0.5)  # the contract's default
    assert rules["DataDriftDetected"]["expr"].strip() == f"mlpipe_drift_share >= {policy}"


def test_the_latency_rule_reads_the_p99_of_the_prediction_endpoints(rules):
    expr = " ".join(rules["PredictionLatencyHigh"]["expr"].split())
    assert expr.startswith("histogram_quantile(0.99,")
    assert "mlpipe_http_request_duration_seconds_bucket" in expr and "/predict" in expr
    assert expr.endswith(f"> {serve.LATENCY_BUCKETS[5]}")  # the 20 ms budget is a bucket edge


def test_prometheus_scrapes_the_api_and_loads_the_rules():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]
    [job] = config["scrape_configs"]
    assert job["job_name"] == "mlpipe-api" and job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8000"]  # `mlpipe serve`'s default


def test_the_dashboard_has_the_fields_grafana_needs(dashboard):
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    assert dashboard["time"] == {"from": "now-6h", "to": "now"}
    [variable] = dashboard["templating"]["list"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        assert panel["type"] in PANEL_TYPES and panel["title"], panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def test_the_panels_fit_the_grid_without_overlapping(dashboard):
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["h"] > 0 and pos["x"] + pos["w"] <= 24
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_the_panels_show_the_api_and_every_drift_gauge(dashboard, known):
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names <= known, f"{panel['title']}: unknown metrics {names - known}"
            used |= names
    assert DRIFT_GAUGES - {"mlpipe_drift_detected"} <= used
    assert {"up", "mlpipe_http_requests_total", "mlpipe_predictions_total"} <= used
    assert "mlpipe_http_request_duration_seconds_bucket" in used
