"""Week 6: the pipeline as two Airflow DAGs (Airflow 3, ``airflow.sdk``).

``mlpipe_training`` runs the stages of ``dvc.yaml`` and weeks 3-4 as tasks::

    prepare -> validate -> train -> evaluate --+
                       \\-> tune -------------+-> gate -> promote

``mlpipe_monitoring`` watches the served model::

    monitor -> decide -> retrain   (trigger mlpipe_training: the policy is breached)
                     \\-> healthy  (nothing to do)

Every task runs the pipeline's own command line (``python -m mlpipe STAGE``) in the
project folder, so the DAG holds no pipeline logic: what a task does is what the
same command does in a terminal or in ``dvc repro``. The command's exit code says
what happened (``python -m mlpipe --help``):

* 0: done;
* 1: a verdict, not a crash: the data failed validation (the run fails, without
  retries: the same data fails again), the gates blocked the challenger (``gate``
  succeeds and ``promote`` is skipped: the refusal is in ``reports/gate.json``), or
  the drift policy is breached (``monitor`` succeeds and ``decide`` triggers training);
* 2: a mistake a person must fix (a bad params file, not enough data to judge
  drift): the task fails at once with the command's one-sentence message;
* anything else (a crash, a killed process): retried.

Where it runs: ``MLPIPE_HOME`` is the project folder (default: the folder Airflow
runs in) and ``MLPIPE_PYTHON`` the interpreter that has ``mlpipe`` installed
(default: Airflow's own). Both are read when a task runs, never when the file is
parsed: the scheduler parses this file often, so it imports nothing heavy and does
no work at import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, task

#: The two DAGs.
TRAINING_DAG = "mlpipe_training"
MONITORING_DAG = "mlpipe_monitoring"
#: Environment variables that say where the pipeline is and which Python runs it.
HOME_ENV, PYTHON_ENV = "MLPIPE_HOME", "MLPIPE_PYTHON"
#: Retraining on a schedule as well as on drift: labels arrive late, and a model
#: can go stale without its inputs drifting (concept drift).
TRAINING_SCHEDULE = "@weekly"
MONITORING_SCHEDULE = "@hourly"
#: Exit codes of ``python -m mlpipe``.
EXIT_VERDICT, EXIT_USER_ERROR = 1, 2
#: Lines of a failed command's output kept in the task's error.
TAIL_LINES = 10

DEFAULT_ARGS = {
    "owner": "mlpipe",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(minutes=30),
}

#: Each stage's command, as ``dvc.yaml`` writes it (tests compare them).
PREPARE = ["prepare", "--params", "params.yaml", "--raw", "data/raw/iris.csv"]
PREPARE += ["--out", "data/processed/iris.csv"]
VALIDATE = ["validate", "--params", "params.yaml", "--data", "data/processed/iris.csv"]
VALIDATE += ["--reference", "data/schema.json", "--report", "reports/validation.json"]
TRAIN = ["train", "--params", "params.yaml", "--data", "data/processed/iris.csv"]
TRAIN += ["--out", "models/iris-classifier"]
EVALUATE = ["evaluate", "--params", "params.yaml", "--model", "models/iris-classifier"]
EVALUATE += ["--data", "data/processed/iris.csv", "--metrics", "metrics.json"]
TUNE = ["tune", "--params", "params.yaml", "--data", "data/processed/iris.csv"]
GATE = ["gate", "--params", "params.yaml", "--data", "data/processed/iris.csv"]
GATE_REPORT = ["--report", "reports/gate.json"]
PROMOTE = [*GATE, "--promote", "--report", "reports/promotion.json"]
MONITOR = ["monitor", "--params", "params.yaml", "--check"]


class StageFailed(RuntimeError):
    """A stage's command crashed (Airflow retries the task)."""


def project_home() -> Path:
    """The project folder the stages run in: ``$MLPIPE_HOME``, else the current folder."""
    return Path(os.environ.get(HOME_ENV) or ".").resolve()


def pipeline_python() -> str:
    """The interpreter that runs ``python -m mlpipe``: ``$MLPIPE_PYTHON``, else Airflow's."""
    return os.environ.get(PYTHON_ENV) or sys.executable


def run_stage(args: list[str], verdicts: tuple[int, ...] = ()) -> int:
    """Run ``python -m mlpipe ARGS`` in the project folder, its output in the task's log.

    Args:
        args: The stage and its options.
        verdicts: Exit codes that are an answer rather than a failure (returned).

    Returns:
        The exit code: 0, or one of ``verdicts``.

    Raises:
        AirflowFailException: For exit code 1 (not a verdict here) or 2: running the
            same command again gives the same answer, so the task fails without retries.
        StageFailed: For any other exit code (Airflow retries the task).
    """
    from airflow.sdk.exceptions import AirflowFailException

    home = project_home()
    cmd = [pipeline_python(), "-m", "mlpipe", *args]
    env = {**os.environ, HOME_ENV: str(home)}
    proc = subprocess.run(cmd, cwd=home, env=env, capture_output=True, text=True, check=False)
    print(proc.stdout, end="")
    print(proc.stderr, end="", file=sys.stderr)
    if proc.returncode == 0 or proc.returncode in verdicts:
        return proc.returncode
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-TAIL_LINES:])
    message = f"`python -m mlpipe {' '.join(args)}` exited with {proc.returncode} in {home}: {tail}"
    if proc.returncode in (EXIT_VERDICT, EXIT_USER_ERROR):
        raise AirflowFailException(message)
    raise StageFailed(message)


def stage_task(task_id: str, args: list[str]):
    """A task that runs one stage (a failed stage fails the task)."""

    @task(task_id=task_id)
    def stage() -> None:
        run_stage(args)

    stage.__doc__ = f"``python -m mlpipe {' '.join(args)}``"
    return stage()


with DAG(
    dag_id=TRAINING_DAG,
    description="prepare, validate, train and tune, evaluate, gate, promote",
    schedule=TRAINING_SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    default_args=DEFAULT_ARGS,
    tags=["mlpipe", "training"],
    doc_md=__doc__,
) as training:

    @task.short_circuit(task_id="gate")
    def gate() -> bool:
        """Run the promotion gates; ``False`` (blocked) skips ``promote``."""
        return run_stage([*GATE, *GATE_REPORT], verdicts=(EXIT_VERDICT,)) == 0

    prepare = stage_task("prepare", PREPARE)
    validate = stage_task("validate", VALIDATE)
    train = stage_task("train", TRAIN)
    evaluate = stage_task("evaluate", EVALUATE)
    tune = stage_task("tune", TUNE)
    gate_task = gate()
    promote = stage_task("promote", PROMOTE)
    prepare >> validate >> [train, tune]
    train >> evaluate
    [evaluate, tune] >> gate_task >> promote


with DAG(
    dag_id=MONITORING_DAG,
    description="judge drift on the inference log; retrain when the policy is breached",
    schedule=MONITORING_SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    default_args=DEFAULT_ARGS,
    tags=["mlpipe", "monitoring"],
    doc_md=__doc__,
) as monitoring:

    @task(task_id="monitor")
    def monitor() -> bool:
        """Write the drift report and summary; return whether the policy is breached."""
        return run_stage(MONITOR, verdicts=(EXIT_VERDICT,)) == EXIT_VERDICT

    @task.branch(task_id="decide")
    def decide(breached: bool) -> str:
        """Retrain when the policy is breached, otherwise stop."""
        return "retrain" if breached else "healthy"

    retrain = TriggerDagRunOperator(
        task_id="retrain",
        trigger_dag_id=TRAINING_DAG,
        conf={"reason": "drift"},
        skip_when_already_exists=True,
    )
    healthy = EmptyOperator(task_id="healthy")
    decide(monitor()) >> [retrain, healthy]
