"""Paths, the week registry and every constant of the grader, in one place.

Each block below is one kind of setting; the modules import them from here:

* paths of the course repository;
* limits: the defaults of :class:`autograder.sandbox.Limits` (``course grade``'s
  ``--cell-timeout``, ``--test-timeout``, ``--memory-mb``) and what ``course check``
  uses, the size of what the grader reads from a submission, retries;
* output caps: how much of a test's or a cell's output a report keeps;
* litter: names that are never part of a release, a comparison or a grade;
* the ``pytest.ini`` of every pytest run over a student's code;
* telemetry: read from ``autograder/telemetry.env``, the one definition;
* identifiers shared by the grader's modules (nbgrader course id, kernel name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from autograder import CourseError

# --- paths ---------------------------------------------------------------------------------

#: The course repository: the folder holding autograder/, solutions/ and labs/.
REPO_ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = "solutions"
LABS = "labs"
#: Folder (inside a week's tests) whose tests are never released to students.
HIDDEN_DIR = "hidden"
#: Pristine release notebooks shipped in a student template, used as the
#: grading source when the instructor's solutions/ is not there.
REFERENCE_DIR = "autograder/reference"
#: The student's own pytest suite of the pipeline (week 4, graded by mutation), in
#: solutions/ and labs/; named apart from the repository's tests/ and the weeks' tests.
SUITE_DIR = "project_tests"

# --- limits ----------------------------------------------------------------------------------
# Defaults of ``Limits`` (autograder/sandbox.py), which every sandboxed process of a
# student's code gets; ``course check`` uses the timeouts too.

#: Per-cell execution limit when grading a notebook, in seconds.
CELL_TIMEOUT = 30
#: Per-test limit of a component test, in seconds (unless its own ``timeout`` mark says more).
TEST_TIMEOUT = 60
#: Limit of the whole pytest run over a week's component tests, in seconds.
PYTEST_TIMEOUT = 600
#: ``course check``'s limits (``--cell-timeout``, ``--test-timeout``): on a student's own,
#: possibly slow and busy laptop. The slowest locked set-up cell (week 3's, which imports
#: MLflow and registers a model) took 35 s on a loaded 2-core machine: far below these.
CHECK_CELL_TIMEOUT = 300
#: Per-test limit of ``course check``; a test's own ``timeout`` mark may raise it.
CHECK_TEST_TIMEOUT = 300
#: Backstop of ``course check``'s whole pytest run, in seconds.
CHECK_RUN_TIMEOUT = 3600
#: ``course check`` runs the component tests beside the notebook's kernel (one pytest
#: process, no workers: two busy processes for two cores) rather than after it.
CHECK_OVERLAP = True
#: Private memory of each process of the student's code (``RLIMIT_DATA``), in MB.
MEMORY_MB = 4096
#: Largest file a process of the student's code may write, in MB.
FILE_MB = 512
#: Output a notebook may print before the rest is dropped, in KB.
OUTPUT_KB = 2048
#: Processes and threads the student's user id may have at once.
PROCESSES = 256
#: CPU time of each process, a backstop behind the timeouts, in seconds.
CPU_SECONDS = 1800
#: Seconds a sandboxed notebook kernel may take to start.
KERNEL_STARTUP_TIMEOUT = 120
#: Kernel restarts (a dead or stuck kernel) before the notebook's remaining cells are skipped.
MAX_KERNEL_RESTARTS = 3
#: Fresh pytest processes for the tests left when one dies or hangs.
MAX_PYTEST_ATTEMPTS = 5
#: Largest notebook the grader reads, in bytes.
MAX_NOTEBOOK = 20 * 1024 * 1024
#: Largest single file copied from a submission into a sandbox, in bytes.
MAX_FILE = 50 * 1024 * 1024
#: Most bytes copied from a submission into a sandbox in total.
MAX_TOTAL = 500 * 1024 * 1024
#: First user id of the grading slots; each run claims free ids from here.
SLOT_UID_BASE = 61000
#: Flags of a job that may come from a loaded machine rather than from the student's code:
#: such a job is graded again, alone, with doubled time limits, and only that grade counts.
CONFIRM_FLAGS = frozenset({"timeout", "memory-limit", "process-limit"})

# --- the wall --------------------------------------------------------------------------------
# bubblewrap (Debian's ``bubblewrap`` package, ``make sandbox-setup``) around every process of
# a student's code (autograder/sandbox.py, ``wall``): what it lets in, read-only.

#: The wall's program.
WALL_PROGRAM = "bwrap"
#: System folders bound read-only into the wall (those that are links stay links).
WALL_SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32")
#: The wall's private temporary folders, fresh for each process (DVC keeps a cache in /var/tmp).
WALL_TMP = ("/tmp", "/var/tmp", "/dev/shm")
#: Size of each of the wall's temporary folders, in MB.
WALL_TMP_MB = 256
#: The capabilities the process inside keeps until it becomes the slot's user.
WALL_CAPS = ("CAP_SETUID", "CAP_SETGID")

# --- output caps -----------------------------------------------------------------------------

#: Characters of a test's or cell's output a report keeps (the end of it).
MAX_OUTPUT = 4000
#: Characters kept of an error's value and of each traceback line in a graded notebook.
MAX_ERROR_TEXT = 4000
#: Bytes of a pytest results file the grader reads (a flood is cut short).
MAX_RESULTS = 8 * 1024 * 1024
#: Hidden-test lines shorter than this are not scrubbed from feedback (too common to leak).
MIN_HIDDEN = 12
#: What a notebook shows once its output limit is reached.
OUTPUT_LIMIT_MARKER = "[course grade: output limit reached; further output was dropped]"

# --- litter ----------------------------------------------------------------------------------

#: Build litter (``fnmatch`` patterns): never part of a release, a comparison or an export.
LITTER = ("__pycache__", ".ipynb_checkpoints", ".pytest_cache", "*.pyc", ".DS_Store")
#: What the grader also skips in a submission: its git folder (a student's checkout has one).
SUBMISSION_LITTER = (*LITTER, ".git")


def is_litter(name: str, patterns: tuple[str, ...] = LITTER) -> bool:
    """True when a file or folder name matches one of the litter ``patterns``."""
    return any(fnmatch(name, pattern) for pattern in patterns)


# --- version-control metadata ----------------------------------------------------------------
# Git-aware libraries (MLflow records the run's commit through GitPython; DVC) look up
# the repository above the code that runs, the grader's own checkout included. The
# sandbox refuses a read of a protected git folder but does not report it as the
# student's (autograder/sandbox.py, ``is_vcs_metadata``), except its file contents.

#: The folder of a git repository (in a worktree, the file that names it).
VCS_DIR = ".git"
#: Folders of a git folder that hold the files' contents: reading them is reported.
VCS_CONTENT = ("objects", "lfs", "modules")


# --- the pytest.ini of a grading run -------------------------------------------------------

#: The course test kit (a pytest plugin: markers, shared fixtures, commands whose failures
#: teach) that every pytest run over the component tests loads with ``-p``.
TESTKIT = "autograder.testkit"
#: Set to 1 to run every test even when its task's functions are still the released stubs
#: (the test kit otherwise fails them at once; the slow tier proves they fail on their own).
RUN_STUBS_VAR = "COURSE_RUN_STUBS"


def pytest_ini(labs: Path | str) -> str:
    """The ``pytest.ini`` of every pytest run over a student's code.

    ``course check`` and ``course grade`` write it beside the tests and pass it
    with ``-c``, so that no configuration of the submission applies; ``labs`` is
    the folder whose ``mlpipe`` the tests import.
    """
    return (
        f"[pytest]\npythonpath = {labs}\nmarkers =\n    points(n): points a graded test is worth\n"
        "    task(k): the lab task the test belongs to (course check N --task K)\n"
    )


# --- telemetry -------------------------------------------------------------------------------

#: The one definition of the variables that turn every tool's telemetry off. It ships
#: with the package (package data, so the grader finds it in any install and a student
#: template has it); the Makefile includes it, .ci/run and scripts/demo.sh source it,
#: and tests/test_setup.py checks that the files which cannot read it (the
#: devcontainer, the workflows, the grading image) carry the same variables.
TELEMETRY_FILE = Path(__file__).with_name("telemetry.env")
_ENV_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)")


def read_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of ``path``; blank lines and ``#`` comments are skipped.

    Raises:
        ValueError: For a line that make, sh and this function would not all read
            the same way (quotes, spaces, ``export``).
    """
    env = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(line)
        if not match:
            raise ValueError(f"{path}:{number}: not a plain KEY=VALUE line: {line!r}")
        env[match.group(1)] = match.group(2)
    return env


#: Environment that turns every tool's telemetry off (read from :data:`TELEMETRY_FILE`).
NO_TELEMETRY = read_env_file(TELEMETRY_FILE)

# --- identifiers -----------------------------------------------------------------------------

#: nbgrader's course id: in every gradebook the grader writes.
COURSE_ID = "mlops-roadmap"
#: Name of the kernel spec that starts a student's notebook in the sandbox.
KERNEL_NAME = "course-grader"

# --- the weeks -------------------------------------------------------------------------------


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
            f"{SUITE_DIR}/test_data.py",
            f"{SUITE_DIR}/test_model.py",
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
    6: Week(
        6,
        "06-orchestration-monitoring",
        "Orchestration and monitoring: drift of the served model, alerts and a retraining DAG",
        files=("mlpipe/monitor.py",),
    ),
    7: Week(
        7,
        "07-cloud-scaling",
        "Cloud and scaling: a capacity plan, Kubernetes manifests, a canary that decides and "
        "the artefact store as code",
        files=(
            "mlpipe/capacity.py",
            "mlpipe/rollout.py",
            "k8s/api.yaml",
            "k8s/canary.yaml",
            "k8s/hpa.yaml",
            "infra/artifacts.yaml",
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
