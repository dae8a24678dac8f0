"""The Airflow DAGs of week 6 (``solutions/dags/mlpipe.py``), without Airflow.

Importing Airflow costs 5-6 s of CPU, so everything that needs it (DagBag's view of the
task graph, the parse time, ``dag.test()`` on the real stages) is in the slow tier:
tests/e2e/test_airflow.py.
"""

from __future__ import annotations

import shlex

import yaml
from conftest import SOLUTIONS

DAG_FILE = SOLUTIONS / "dags" / "mlpipe.py"


def test_the_tasks_run_the_commands_of_dvc_yaml():
    """The DAG and ``dvc repro`` run the same commands (no second copy of the pipeline)."""
    namespace: dict = {}
    source = DAG_FILE.read_text(encoding="utf-8")
    constants = source[source.index("PREPARE = ") : source.index("class StageFailed")]
    exec(compile(constants, str(DAG_FILE), "exec"), namespace)  # plain lists of strings
    stages = yaml.safe_load((SOLUTIONS / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for name in ("prepare", "validate", "train", "evaluate"):
        dvc_cmd = shlex.split(stages[name]["cmd"])
        assert dvc_cmd == ["python", "-m", "mlpipe", *namespace[name.upper()]], name
