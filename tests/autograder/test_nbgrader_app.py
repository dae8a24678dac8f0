"""The thin layer over nbgrader's API (``autograder/nbgrader_app.py``)."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import nbgrader

from autograder import nbgrader_app

VERSIONS = Path(nbgrader.__file__).parent / "alembic" / "versions"


def _assigned(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    return None


def _heads_by_reading_the_scripts() -> set[str]:
    """The revisions no other migration script builds on: what ``alembic heads`` prints."""
    revisions, parents = set(), set()
    for script in VERSIONS.glob("*.py"):
        tree = ast.parse(script.read_text(encoding="utf-8"))
        revisions.add(_assigned(tree, "revision"))
        down = _assigned(tree, "down_revision")
        parents |= set(down) if isinstance(down, tuple) else {down}
    return revisions - parents


def test_alembic_head_is_the_only_head_of_nbgraders_migrations():
    assert {nbgrader_app.alembic_head()} == _heads_by_reading_the_scripts()


def test_a_new_gradebook_is_stamped_with_that_head(tmp_path):
    from nbgrader.api import Gradebook

    nbgrader_app.api(tmp_path)  # installs the in-process lookup
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}"):
        pass
    with sqlite3.connect(tmp_path / "gradebook.db") as db:
        stamped = db.execute("SELECT version_num FROM alembic_version").fetchall()
    assert stamped == [(nbgrader_app.alembic_head(),)]
