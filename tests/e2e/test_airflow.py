"""The week 6 DAGs with Airflow itself: DagBag's view, and ``dag.test()`` on the real stages.

Airflow runs in processes of its own (tests/airflow_runner.py) with a temporary
``AIRFLOW_HOME``: SQLite metadata made once by ``airflow db migrate`` and copied for
each test, no examples, the DAG file copied into a temporary DAGs folder. Never
``airflow standalone`` (its log servers listen on all interfaces).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import SOLUTIONS, airflow_env, run_airflow

from autograder.testkit import aliases, iris_frame, pipeline_env

pytestmark = pytest.mark.slow

DAG_FILE = SOLUTIONS / "dags" / "mlpipe.py"
MODEL = "iris-classifier"
TRAINING = {
    "prepare": ["validate"],
    "validate": ["train", "tune"],
    "train": ["evaluate"],
    "tune": ["gate"],
    "evaluate": ["gate"],
    "gate": ["promote"],
    "promote": [],
}
MONITORING = {"monitor": ["decide"], "decide": ["healthy", "retrain"], "retrain": [], "healthy": []}
#: A test double of ``python -m mlpipe monitor --check`` that exits with $STANDIN_EXIT
#: (any other command runs in the real Python): it steers the monitoring DAG's branch.
STANDIN = """#!{python}
import os, sys
if sys.argv[1:4] == ["-m", "mlpipe", "monitor"]:
    print("stand-in monitor:", " ".join(sys.argv[4:]))
    sys.exit(int(os.environ["STANDIN_EXIT"]))
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


@pytest.fixture(scope="module")
def metadata_db(tmp_path_factory) -> Path:
    """An Airflow SQLite database after ``airflow db migrate`` (made once, copied by tests)."""
    home = tmp_path_factory.mktemp("airflow-template")
    env = airflow_env(home, home / "dags")
    airflow = str(Path(sys.executable).with_name("airflow"))
    proc = subprocess.run(
        [airflow, "db", "migrate"], env=env, cwd=home, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return home / "airflow.db"


@pytest.fixture(scope="module")
def project_template(tmp_path_factory) -> Path:
    """A project folder with raw and processed Iris, its schema, and a quick tuning."""
    home = tmp_path_factory.mktemp("project-template")
    params = yaml.safe_load((SOLUTIONS / "params.yaml").read_text(encoding="utf-8"))
    params["track"].update(n_trials=2, cv_folds=3)
    (home / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    env = pipeline_env(None, MLPIPE_HOME=str(home))
    for stage in (["fetch"], ["prepare"], ["schema"]):
        cmd = [sys.executable, "-m", "mlpipe", *stage]
        proc = subprocess.run(cmd, cwd=home, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    shutil.rmtree(home / "data" / "processed")  # the DAG's prepare makes it again
    return home


@pytest.fixture
def airflow(tmp_path, metadata_db, project_template):
    """``(run, project)``: ``run(DAG_ID, *exits, **env)`` runs ``dag.test()`` in a fresh home."""
    home, dags, project = tmp_path / "airflow", tmp_path / "dags", tmp_path / "project"
    home.mkdir()
    dags.mkdir()
    shutil.copy(metadata_db, home / "airflow.db")
    shutil.copy(DAG_FILE, dags)
    shutil.copytree(project_template, project)

    def run(dag_id: str, *exits: str, **extra: str) -> dict:
        env = airflow_env(home, dags, MLPIPE_HOME=str(project), **extra)
        return run_airflow("test", str(dags), dag_id, *exits, env=env, cwd=project)

    return run, project


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-parse")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(DAG_FILE, dags)
    return run_airflow("parse", str(dags), env=airflow_env(home, dags), cwd=home)


# --- DagBag: the file as the scheduler sees it ----------------------------------------------


def test_the_dag_file_imports_without_errors(parsed):
    assert parsed["import_errors"] == {}
    assert sorted(parsed["dags"]) == ["mlpipe_monitoring", "mlpipe_training"]


def test_the_training_dag_runs_the_stages_in_order(parsed):
    tasks = parsed["dags"]["mlpipe_training"]["tasks"]
    assert {task: info["downstream"] for task, info in tasks.items()} == TRAINING


def test_the_monitoring_dag_branches_to_a_training_run_or_stops(parsed):
    tasks = parsed["dags"]["mlpipe_monitoring"]["tasks"]
    assert {task: info["downstream"] for task, info in tasks.items()} == MONITORING


@pytest.mark.parametrize("dag_id", ["mlpipe_training", "mlpipe_monitoring"])
def test_each_dag_has_a_schedule_no_catchup_retries_and_timeouts(parsed, dag_id):
    dag = parsed["dags"][dag_id]
    assert dag["schedule"] and dag["catchup"] is False and dag["max_active_runs"] == 1
    for task, info in dag["tasks"].items():
        assert info["retries"] >= 1, task
        assert info["execution_timeout"] and info["execution_timeout"] <= 3600, task


def test_parsing_takes_under_a_second_and_does_no_work(parsed):
    """The scheduler parses the file often: no mlpipe import, no process started."""
    assert list(parsed["files"]) == ["mlpipe.py"]
    assert parsed["files"]["mlpipe.py"] < 1.0
    assert parsed["mlpipe_imported"] == []


# --- dag.test() on the real stages ---------------------------------------------------------------


def test_the_training_dag_trains_gates_and_promotes_a_champion(airflow):
    run, project = airflow
    [result] = run("mlpipe_training")["runs"]
    assert result["state"] == "success", result
    assert result["tasks"] == {task: "success" for task in TRAINING}
    assert (project / "models" / MODEL / "model.joblib").is_file()
    assert (project / "metrics.json").is_file()
    assert yaml.safe_load((project / "reports" / "gate.json").read_text())["allowed"] is True
    assert "champion" in aliases(project, MODEL)


def test_a_blocked_challenger_is_a_recorded_refusal_not_a_failed_run(airflow):
    run, project = airflow
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["gates"]["max_size_kb"] = 0.001  # no model is that small
    (project / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    [result] = run("mlpipe_training")["runs"]
    assert result["state"] == "success", result
    assert result["tasks"]["gate"] == "success" and result["tasks"]["promote"] == "skipped"
    report = yaml.safe_load((project / "reports" / "gate.json").read_text())
    assert report["allowed"] is False and report["reasons"]
    assert "champion" not in aliases(project, MODEL)


def test_bad_raw_data_fails_the_run_at_once_without_retries(airflow):
    run, project = airflow
    raw = project / "data" / "raw" / "iris.csv"
    lines = raw.read_text(encoding="utf-8").splitlines()
    raw.write_text("\n".join(",".join(line.split(",")[1:]) for line in lines) + "\n")
    [result] = run("mlpipe_training")["runs"]
    assert result["state"] == "failed"
    assert result["tasks"]["prepare"] == "failed"
    assert {result["tasks"][t] for t in TRAINING if t != "prepare"} == {"upstream_failed"}
    assert result["seconds"] < 120, "a user error must not be retried"


def test_the_monitoring_dag_retrains_on_drift_and_stops_otherwise(airflow, tmp_path):
    run, _ = airflow
    standin = tmp_path / "standin-python"
    standin.write_text(STANDIN.format(python=sys.executable), encoding="utf-8")
    standin.chmod(0o755)
    found = run("mlpipe_monitoring", "1", "0", "2", MLPIPE_PYTHON=str(standin))
    breached, healthy, error = found["runs"]
    assert breached["state"] == "success", breached
    assert breached["tasks"] == {
        "monitor": "success", "decide": "success", "retrain": "success", "healthy": "skipped"
    }  # fmt: skip
    assert healthy["state"] == "success", healthy
    assert healthy["tasks"]["healthy"] == "success" and healthy["tasks"]["retrain"] == "skipped"
    assert error["state"] == "failed" and error["tasks"]["monitor"] == "failed"
    training = [r for r in found["all_runs"] if r["dag_id"] == "mlpipe_training"]
    assert len(training) == 1, found["all_runs"]  # only the breached policy triggered one
    assert training[0]["conf"] == {"reason": "drift"}


def write_log(path: Path, rows: int, phase) -> None:
    """An inference log of ``rows`` predictions in week 5's format, measured as ``phase``."""
    import random

    flowers = iris_frame().to_dict("records")
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as log:
        for i in range(rows):
            flower = rng.choice(flowers)
            record = {
                "request_id": f"r{i}",
                "time": f"2026-12-01T10:{i // 60:02d}:{i % 60:02d}.000+00:00",
                "model_name": MODEL,
                "model_version": "1",
                "inputs": phase.apply(flower),
                "output": flower["species"],
                "latency_ms": 1.0,
            }
            log.write(json.dumps(record) + "\n")


def test_the_monitoring_dag_judges_a_drifted_log_and_triggers_training(airflow):
    """The real ``python -m mlpipe monitor --check`` on a log of shifted flowers."""
    from mlpipe import simulate

    run, project = airflow
    (project / "data" / "processed").mkdir(parents=True, exist_ok=True)
    iris_frame().to_csv(project / "data" / "processed" / "iris.csv", index=False)
    (project / "logs").mkdir()
    write_log(project / "logs" / "inference.jsonl", 200, simulate.SHIFT)
    found = run("mlpipe_monitoring")
    [result] = found["runs"]
    assert result["state"] == "success", result
    assert result["tasks"]["retrain"] == "success" and result["tasks"]["healthy"] == "skipped"
    summary = json.loads((project / "reports" / "monitoring" / "summary.json").read_text())
    assert summary["drift_detected"] is True and summary["rows"] == 200
    assert [r["dag_id"] for r in found["all_runs"]].count("mlpipe_training") == 1
