"""Paths, the week registry and the defaults every ``course`` verb shares."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from autograder import CourseError

#: The course repository: the folder holding autograder/, solutions/ and labs/.
REPO_ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = "solutions"
LABS = "labs"
#: Folder (inside a week's tests) whose tests are never released to students.
HIDDEN_DIR = "hidden"
#: Pristine release notebooks shipped in a student template, used as the
#: grading source when the instructor's solutions/ is not there.
REFERENCE_DIR = "autograder/reference"

#: Per-cell execution limit when grading a notebook, in seconds.
CELL_TIMEOUT = 30
#: Limit for one pytest run over a week's component tests, in seconds.
PYTEST_TIMEOUT = 600
#: Per-test limit inside that run, in seconds.
TEST_TIMEOUT = 60

#: Environment that turns every tool's telemetry off.
NO_TELEMETRY = {
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
}

#: Names that are build litter, never part of a release or a comparison.
LITTER = ("__pycache__", ".ipynb_checkpoints", ".pytest_cache", "*.pyc", ".DS_Store")


@dataclass(frozen=True)
class Week:
    """One week of the course.

    Attributes:
        number: 1 to 8.
        slug: Folder name under weeks/, e.g. ``01-foundations``.
        title: Human title.
        files: Paths under solutions/ (and labs/) that this week's lab owns.
    """

    number: int
    slug: str
    title: str
    files: tuple[str, ...]

    @property
    def lab(self) -> str:
        """The lab's folder and nbgrader assignment id, e.g. ``week01``."""
        return f"week{self.number:02d}"


WEEKS: dict[int, Week] = {
    1: Week(
        1,
        "01-foundations",
        "Foundations: a reproducible training stage",
        files=("mlpipe/train.py", "docker/train.Dockerfile"),
    ),
    2: Week(
        2,
        "02-data",
        "Data versioning and validation: a DVC pipeline that stops bad data",
        files=(
            "mlpipe/data.py",
            "mlpipe/validate.py",
            "mlpipe/evaluate.py",
            "dvc.yaml",
            "data/schema.json",
        ),
    ),
    3: Week(
        3,
        "03-tracking",
        "Experiment tracking and the model registry with MLflow and Optuna",
        files=("mlpipe/track.py",),
    ),
    4: Week(
        4,
        "04-cicd",
        "CI/CD for ML: promotion gates, a tested pipeline and its GitHub Actions workflow",
        files=(
            "mlpipe/gates.py",
            "tests/test_data.py",
            "tests/test_model.py",
            ".github/workflows/pipeline.yml",
        ),
    ),
    5: Week(
        5,
        "05-serving",
        "Deployment and serving: a FastAPI app for the registered model",
        files=(
            "mlpipe/serve.py",
            "mlpipe/export.py",
            "docker/serve.Dockerfile",
            "compose.yaml",
        ),
    ),
}


def get_week(number: int | str) -> Week:
    """Return the week with this number, or explain which weeks exist.

    Raises:
        CourseError: For a number that is not a week with a lab.
    """
    text = str(number).strip()
    match = re.fullmatch(r"(?:week)?0*(\d+)", text)
    if match and int(match.group(1)) in WEEKS:
        return WEEKS[int(match.group(1))]
    known = ", ".join(str(n) for n in WEEKS)
    raise CourseError(f"There is no lab for week '{number}'; the weeks with labs are: {known}.")


def course_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return a copy of the environment with telemetry off, plus ``extra``."""
    env = dict(os.environ)
    env.update(NO_TELEMETRY)
    env.update(extra or {})
    return env
