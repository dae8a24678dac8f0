"""A thin layer over nbgrader's Python API: one temporary or kept course folder.

nbgrader wants its own layout (``source/``, ``release/``, ``submitted/``,
``autograded/``, ``feedback/`` and a gradebook database). The course keeps its
files elsewhere, so each operation builds that layout in a folder of its own.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from traitlets.config import Config

from autograder import CourseError
from autograder.config import CELL_TIMEOUT, COURSE_ID


def nbgrader_config(root: Path, cell_timeout: int = CELL_TIMEOUT) -> Config:
    """Return the nbgrader configuration the course uses.

    Args:
        root: The nbgrader course folder.
        cell_timeout: Seconds a cell may run while grading before it is stopped.
    """
    config = Config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.course_id = COURSE_ID
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    config.Execute.timeout = cell_timeout
    config.Execute.interrupt_on_timeout = True
    config.Execute.allow_errors = True
    # The same stubs the course's .py files get, so students see one convention.
    config.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    return config


def ensure_tools_on_path() -> None:
    """Put this interpreter's scripts folder on PATH.

    nbgrader runs the ``alembic`` and ``jupyter`` commands by name; in a virtual
    environment that was not activated they are not on PATH otherwise.
    """
    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])


def alembic_head() -> str:
    """The gradebook schema's newest alembic revision, read in this process.

    nbgrader stamps every new gradebook with it, and finds it by running the
    ``alembic heads`` command: a fresh Python importing alembic and nbgrader,
    3 s of CPU for each ``course release`` and grading run. This reads the
    same scripts with alembic's own API, in a fifth of a second.
    """
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import _temp_alembic_ini

    with _temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
        head = ScriptDirectory.from_config(AlembicConfig(ini)).get_current_head()
    if not head:
        raise CourseError("nbgrader's gradebook migrations name no current revision.")
    return head


def api(root: Path, cell_timeout: int = CELL_TIMEOUT, extra: Config | None = None):
    """Return an ``NbGraderAPI`` bound to the course folder ``root``.

    Args:
        root: The nbgrader course folder.
        cell_timeout: Seconds a cell may run while grading.
        extra: More configuration, merged over the course's.
    """
    ensure_tools_on_path()
    import nbgrader.api
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    nbgrader.api.get_alembic_version = alembic_head  # the same answer, without a process

    config = nbgrader_config(root, cell_timeout)
    if extra is not None:
        config.merge(extra)
    coursedir = CourseDirectory(config=config)
    nb_api = NbGraderAPI(coursedir=coursedir, config=config)
    nb_api.log.setLevel(logging.ERROR)
    return nb_api


def run(result: dict, what: str) -> str:
    """Check the result dict of an ``NbGraderAPI`` call and return its log.

    Raises:
        CourseError: When nbgrader reports a failure.
    """
    if not result.get("success"):
        detail = (result.get("error") or result.get("log") or "").strip().splitlines()
        last = detail[-1] if detail else "no details"
        raise CourseError(f"nbgrader could not {what}: {last}")
    return result.get("log", "")
