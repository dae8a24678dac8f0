"""Airflow, in a process of its own, for tests/mlpipe/test_dags.py and tests/e2e/test_airflow.py.

Airflow reads its configuration (``AIRFLOW_HOME``, ``AIRFLOW__*``) when it is first
imported and configures logging for the whole process, so the tests never import it
themselves: they run this script with a temporary ``AIRFLOW_HOME`` and read the one
JSON line it prints last (prefixed ``RESULT``)::

    python tests/airflow_runner.py parse DAGS_FOLDER
    python tests/airflow_runner.py test DAGS_FOLDER DAG_ID [EXIT_CODE ...]

``parse`` loads the folder with Airflow's ``DagBag`` (refusing any subprocess at import
time) and prints each DAG's structure. ``test`` runs ``dag.test()`` once, or once per
``EXIT_CODE`` with ``STANDIN_EXIT`` set to it (for the stand-in monitor of the tests),
and prints each run's state, its tasks' states and the runs of every DAG in the database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def _no_subprocess(*args, **kwargs):
    raise AssertionError("the DAG file starts a process at import time")


def parse(folder: str) -> dict:
    """Load ``folder`` with DagBag; each DAG's schedule, settings and task graph."""
    started = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    imported = time.perf_counter() - started
    real_run, real_popen = subprocess.run, subprocess.Popen
    subprocess.run = subprocess.Popen = _no_subprocess  # type: ignore[assignment, misc]
    try:
        bag = DagBag(dag_folder=folder)
    finally:
        subprocess.run, subprocess.Popen = real_run, real_popen  # type: ignore[misc]
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "schedule": str(dag.schedule) if dag.schedule is not None else None,
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "tasks": {
                t.task_id: {
                    "downstream": sorted(t.downstream_task_ids),
                    "retries": t.retries,
                    "execution_timeout": t.execution_timeout.total_seconds()
                    if t.execution_timeout
                    else None,
                }
                for t in dag.tasks
            },
        }
    return {
        "import_errors": bag.import_errors,
        "airflow_import_seconds": imported,
        "files": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats},
        "dags": dags,
        "mlpipe_imported": sorted(m for m in sys.modules if m.split(".")[0] == "mlpipe"),
    }


def test(folder: str, dag_id: str, exits: list[str]) -> dict:
    """Run ``dag.test()`` once per stand-in exit code (once when there is none)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun

    bag = DagBag(dag_folder=folder)
    if bag.import_errors:
        return {"import_errors": bag.import_errors}
    dag = bag.dags[dag_id]
    runs = []
    for code in exits or [None]:
        if code is not None:
            os.environ["STANDIN_EXIT"] = code
        started = time.perf_counter()
        run = dag.test()
        runs.append(
            {
                "exit": code,
                "state": str(run.state),
                "seconds": round(time.perf_counter() - started, 1),
                "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()},
            }
        )
    everything = [
        {"dag_id": r.dag_id, "state": str(r.state), "run_type": str(r.run_type), "conf": r.conf}
        for r in DagRun.find()
    ]
    return {"runs": runs, "all_runs": everything}


if __name__ == "__main__":
    mode, folder, *rest = sys.argv[1:]
    result = parse(folder) if mode == "parse" else test(folder, rest[0], rest[1:])
    print("RESULT " + json.dumps(result, default=str))
