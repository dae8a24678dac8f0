"""Shared fixtures of the week 6 component tests.

These tests import ``mlpipe`` as installed: in your checkout that is your own
``labs/mlpipe``. Run them with ``course check 6`` (or ``pytest labs/week06/tests``).
A scratch project in a temporary folder holds the Iris training data and its schema
(the reference) and inference logs in week 5's format: normal traffic, a delivery in
millimetres (``petal_length`` times 10), one with ``sepal_width`` shifted by 1 cm,
and one with both and a shifted ``sepal_length`` (a breach of the default policy).
Evidently takes seconds to import, so each log's monitoring run is made once a
session; the bad inputs go through ``python -m mlpipe monitor``, which refuses them
before it imports Evidently. The course's test kit (``autograder/testkit.py``)
provides the markers and runs the command line.
"""

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autograder import testkit
from autograder.testkit import iris_frame, run_mlpipe

pytest_plugins = ("autograder.testkit",)

#: The functions each task asks for (a test of the task needs at least one of them).
#: While all of a task's functions are still the released stubs, the course's test
#: kit fails its tests at once, before their fixtures, saying which to write.
TASK_FUNCTIONS = {
    1: (
        "monitor.read_log",
        "monitor.records_frame",
    ),
    2: ("monitor.select_window",),
    3: (
        "monitor.read_log",
        "monitor.select_window",
        "monitor.build_report",
        "monitor.summarise",
    ),
    4: (
        "monitor.summarise",
        "monitor.policy_breached",
    ),
}

#: The folder holding the mlpipe package under test (labs/ or solutions/).
PIPELINE_DIR = testkit.pipeline_dir()
ALERTS = PIPELINE_DIR / "monitoring" / "alerts.yml"
FEATURES = list(testkit.FEATURES)
ROWS = 300
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
#: The kit's, for the test files.
__all__ = ["iris_frame", "run_mlpipe"]


def traffic(rows: int = ROWS, seed: int = 6) -> pd.DataFrame:
    """Requests like the training data: Iris rows with a little measurement noise."""
    rng = np.random.default_rng(seed)
    df = iris_frame()[FEATURES]
    picked = df.iloc[rng.integers(0, len(df), rows)].reset_index(drop=True)
    return (picked + rng.normal(0, 0.03, picked.shape)).clip(0.1).round(3)


def deliveries() -> dict[str, pd.DataFrame]:
    """Normal traffic and the drifted deliveries of week 2."""
    normal = traffic()
    mm = normal.assign(petal_length=normal["petal_length"] * 10)
    return {
        "normal": normal,
        "mm": mm,
        "shifted": normal.assign(sepal_width=normal["sepal_width"] + 1.0),
        "drift": mm.assign(
            sepal_width=normal["sepal_width"] + 1.0, sepal_length=normal["sepal_length"] + 2.0
        ),
    }


def log_lines(rows: pd.DataFrame, labels, version: str = "1") -> list[str]:
    """``rows`` as week 5's API logs them, one second apart from :data:`START`."""
    return [
        json.dumps(
            {
                "request_id": f"req-{i:04d}",
                "time": (START + timedelta(seconds=i)).isoformat(),
                "model_name": "iris-classifier",
                "model_version": version,
                "inputs": {f: float(row[f]) for f in FEATURES},
                "output": str(label),
                "latency_ms": 1.5,
            }
        )
        for i, (row, label) in enumerate(zip(rows.to_dict("records"), labels, strict=True))
    ]


def write_lines(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + end if lines else "", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def model():
    from sklearn.linear_model import LogisticRegression

    df = iris_frame()
    return LogisticRegression(max_iter=500).fit(df[FEATURES], df["species"])


@pytest.fixture(scope="session")
def project(tmp_path_factory, model) -> Path:
    """A project folder: the reference data and schema, and one log per delivery."""
    root = tmp_path_factory.mktemp("monitor-project")
    df = iris_frame()
    (root / "data" / "processed").mkdir(parents=True)
    df.to_csv(root / "data" / "processed" / "iris.csv", index=False)
    schema = {
        "columns": [*FEATURES, "species"],
        "types": {**{f: "number" for f in FEATURES}, "species": "text"},
        "categories": sorted(df["species"].unique()),
        "stats": {f: {"mean": df[f].mean(), "std": df[f].std()} for f in FEATURES},
    }
    (root / "data" / "schema.json").write_text(json.dumps(schema), encoding="utf-8")
    for name, rows in deliveries().items():
        write_lines(root / "logs" / f"{name}.jsonl", log_lines(rows, model.predict(rows)))
    return root


def copy_project(project: Path, folder: Path) -> Path:
    """A fresh copy of ``project`` (a command's outputs must not leak into the next test)."""
    shutil.copytree(project, folder, dirs_exist_ok=True)
    return folder


def monitor_cli(project: Path, *args: str):
    """``python -m mlpipe monitor ARGS`` in ``project`` (its project folder)."""
    env = testkit.pipeline_env(MLPIPE_HOME=str(project))
    return run_mlpipe("monitor", *args, cwd=project, env=env)


def run_monitor(project: Path, name: str, **kwargs):
    """``monitor.monitor`` on the log ``name`` into ``reports/<name>``."""
    from mlpipe import monitor
    from mlpipe.config import MonitorParams

    return monitor.monitor(
        log=project / "logs" / f"{name}.jsonl",
        reference=project / "data" / "processed" / "iris.csv",
        schema=project / "data" / "schema.json",
        out=project / "reports" / name,
        params=kwargs.pop("params", MonitorParams()),
        **kwargs,
    )


@pytest.fixture(scope="session")
def runs(project) -> dict:
    """One in-process monitoring run per delivery (Evidently is imported once)."""
    return {name: run_monitor(project, name) for name in deliveries()}
