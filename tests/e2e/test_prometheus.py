"""Week 6's monitoring files with Debian's promtool and a real Prometheus server.

* ``promtool check config``, ``check rules`` and ``test rules`` (the rules' own unit
  tests, ``solutions/monitoring/alerts_test.yml``); every dashboard query parses as PromQL.
* A real Prometheus on 127.0.0.1 (free port, temporary data folder, 1 s intervals, a
  copy of the rules with ``for: 2s``) scrapes a real ``mlpipe.serve`` under uvicorn:
  normal traffic from ``python -m mlpipe simulate`` leaves the drift alert
  ``inactive``; drifted traffic makes it ``firing``; stopping the API fires ``APIDown``.

``make test-slow`` installs Debian's ``prometheus`` (promtool and the server); without
them these tests skip with one sentence.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import SOLUTIONS

from autograder.testkit import (
    create_store,
    free_port,
    iris_frame,
    pipeline_env,
    register_model,
    sqlite_uri,
    stop_process,
    wait_http,
)

pytestmark = pytest.mark.slow

MONITORING = SOLUTIONS / "monitoring"
MODEL = "iris-classifier"
#: Rows of each simulated phase, and the monitor's window over them.
ROWS = 120


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make test-slow installs Debian's prometheus).")
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


# --- promtool --------------------------------------------------------------------------------


def test_the_config_and_the_rules_are_valid():
    proc = promtool("check", "config", "prometheus.yml", cwd=MONITORING)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout


def test_the_rules_pass_their_unit_tests():
    proc = promtool("test", "rules", "alerts_test.yml", cwd=MONITORING)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_make_alerts_checks_the_students_files():
    binary("promtool")
    repo = SOLUTIONS.parent
    proc = subprocess.run(
        ["make", "-s", "alerts"], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_the_rule_tests_fail_when_a_threshold_is_wrong(tmp_path):
    """The unit tests can fail: drift at exactly the policy must fire (as the monitor says)."""
    shutil.copy(MONITORING / "alerts_test.yml", tmp_path)
    rules = (MONITORING / "alerts.yml").read_text(encoding="utf-8")
    (tmp_path / "alerts.yml").write_text(rules.replace("share >= 0.5", "share > 0.5"))
    proc = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert proc.returncode == 1 and "DataDriftDetected" in proc.stdout + proc.stderr


def test_every_dashboard_query_parses_as_promql(tmp_path):
    """Each panel's query becomes a recording rule, which promtool parses."""
    dashboard = json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8"))
    rules = [
        {"record": f"dashboard:panel{panel['id']}:{target['refId']}", "expr": target["expr"]}
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = promtool("check", "rules", path.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = path.with_name("broken.yml")
    rules[0]["expr"] = "sum(rate(mlpipe_http_requests_total[5m])"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert promtool("check", "rules", broken.name, cwd=tmp_path).returncode == 1


# --- a real server ------------------------------------------------------------------------------


def run_mlpipe(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = pipeline_env(None, MLPIPE_HOME=str(project))
    cmd = [sys.executable, "-m", "mlpipe", *args]
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=600)


def monitor(project: Path, drifted: bool) -> None:
    """Judge the last ``ROWS`` rows of the inference log with ``python -m mlpipe monitor``."""
    proc = run_mlpipe(project, "monitor", "--last", str(ROWS), "--check")
    assert proc.returncode == (1 if drifted else 0), proc.stdout + proc.stderr


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def alert_state(prometheus: str, name: str) -> tuple[str, float]:
    """The state of alert rule ``name`` and the time of its last evaluation."""
    rules = get_json(f"{prometheus}/api/v1/rules?type=alert")["data"]["groups"]
    for group in rules:
        for rule in group["rules"]:
            if rule["name"] == name:
                stamp = rule.get("lastEvaluation", "")
                return rule["state"], _parse_time(stamp)
    raise AssertionError(f"Prometheus has no alert rule {name}")


def _parse_time(stamp: str) -> float:
    from datetime import datetime

    if not stamp or stamp.startswith("0001"):
        return 0.0
    head = stamp.split(".")[0].rstrip("Z")
    return datetime.fromisoformat(head + "+00:00").timestamp()


def query(prometheus: str, expr: str) -> list[dict]:
    url = f"{prometheus}/api/v1/query?query={urllib.parse.quote(expr)}"
    return get_json(url)["data"]["result"]


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds:g} s")
        time.sleep(0.5)


def start(cmd: list[str], cwd: Path, env: dict[str, str], name: str) -> tuple:
    output = cwd / f"{name}.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, output


@pytest.fixture
def stack(tmp_path):
    """The API under uvicorn, the textfile server if needed, and Prometheus scraping them."""
    binary("prometheus")
    project = tmp_path / "project"
    (project / "data" / "processed").mkdir(parents=True)
    from mlpipe import validate

    iris_frame().to_csv(project / "data" / "processed" / "iris.csv", index=False)
    validate.write_schema(iris_frame(), project / "data" / "schema.json")
    create_store(project)
    register_model(project, MODEL)
    api_port, prom_port = free_port(), free_port()
    env = pipeline_env(
        {k: v for k, v in os.environ.items() if not k.startswith("MLPIPE_SERVE_")},
        MLPIPE_HOME=str(project),
        MLPIPE_SERVE_TRACKING_URI=sqlite_uri(project),
    )
    uvicorn = [sys.executable, "-m", "uvicorn", "mlpipe.serve:create_app", "--factory"]
    uvicorn += ["--host", "127.0.0.1", "--port", str(api_port), "--no-access-log"]
    procs = []
    try:
        api, api_out = start(uvicorn, project, env, "api")
        procs.append(api)
        wait_http(f"http://127.0.0.1:{api_port}/ready", api, api_out, 120)
        config = yaml.safe_load((MONITORING / "prometheus.yml").read_text(encoding="utf-8"))
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        [job] = config["scrape_configs"]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{api_port}"]}]
        rules = (MONITORING / "alerts.yml").read_text(encoding="utf-8")
        for long in ("1h", "10m", "5m", "1m"):
            rules = rules.replace(f"for: {long}\n", "for: 2s\n")
        (tmp_path / "alerts.yml").write_text(rules, encoding="utf-8")
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        cmd = [
            binary("prometheus"), "--config.file=prometheus.yml",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn",
        ]  # fmt: skip
        prom, prom_out = start(cmd, tmp_path, env, "prometheus")
        procs.append(prom)
        url = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{url}/-/ready", prom, prom_out, 60)
        yield {"project": project, "api": f"http://127.0.0.1:{api_port}", "prometheus": url,
               "api_proc": api}  # fmt: skip
    finally:
        for proc in reversed(procs):
            stop_process(proc)


def simulate(stack: dict, scenario: str) -> None:
    proc = run_mlpipe(
        stack["project"], "simulate", "--url", stack["api"], "--scenario", scenario,
        "--rows", str(ROWS), "--labels", "logs/labels.csv",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_drift_alert_stays_inactive_on_normal_traffic_and_fires_on_drift(stack):
    prometheus = stack["prometheus"]
    simulate(stack, "normal")
    monitor(stack["project"], drifted=False)
    wait_for(lambda: query(prometheus, "mlpipe_drift_share"), 30, "a scraped drift gauge")
    [share] = query(prometheus, "mlpipe_drift_share")
    assert float(share["value"][1]) < 0.5
    seen = time.time()
    # Evaluated for longer than its `for: 2s` since the gauge arrived, and never pending.
    wait_for(lambda: alert_state(prometheus, "DataDriftDetected")[1] > seen + 4, 30, "4 s of rules")
    assert alert_state(prometheus, "DataDriftDetected")[0] == "inactive"
    assert alert_state(prometheus, "APIDown")[0] == "inactive"
    [served] = query(prometheus, 'sum(mlpipe_http_requests_total{endpoint="/predict"})')
    assert float(served["value"][1]) >= ROWS

    simulate(stack, "shift")
    monitor(stack["project"], drifted=True)
    wait_for(
        lambda: alert_state(prometheus, "DataDriftDetected")[0] == "firing", 60, "a firing alert"
    )
    alerts = get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
    [drift] = [a for a in alerts if a["labels"]["alertname"] == "DataDriftDetected"]
    assert drift["state"] == "firing" and float(drift["value"]) > 0.5

    stop_process(stack["api_proc"])
    wait_for(lambda: alert_state(prometheus, "APIDown")[0] == "firing", 60, "APIDown firing")
