"""What the grader checks in a submission before any of its code runs.

* :func:`find_notebook`: the lab notebook, or the one notebook it was renamed to;
* :func:`read_notebook`: a notebook that is valid JSON and nbformat 4, or a reason;
* :func:`repair_locked_cells`: locked cells put back as the instructor wrote them,
  with the list of those the student edited or deleted, and the kernel name;
* :func:`copy_labs`: the student's ``labs/`` copied into a sandbox without what
  could change how grading works (conftest files, pytest configuration, site
  hooks, modules that shadow installed ones, symbolic links), with the list of
  what was left out;
* :func:`digest`: a fingerprint of the submission, to notice a changed one.

Everything here reads the submission as data only.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.config import (
    MAX_FILE,
    MAX_NOTEBOOK,
    MAX_TOTAL,
    SUBMISSION_LITTER,
    SUITE_DIR,
    is_litter,
)

if TYPE_CHECKING:
    import nbformat

PYTEST_CONFIG = {"pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml"}
SITE_HOOKS = {"sitecustomize.py", "usercustomize.py"}


def _safe(path: Path, root: Path) -> bool:
    """True when ``path`` is a real file inside ``root`` reached without symbolic links."""
    try:
        real = path.resolve(strict=True)
    except OSError:
        return False
    inside = str(real).startswith(str(root.resolve()) + os.sep)
    return inside and real == path.absolute() and path.is_file()


def find_notebook(labs: Path, lab: str) -> tuple[Path | None, str, str]:
    """Find ``labs/<lab>/lab.ipynb``, or the single notebook it was renamed to.

    Returns:
        The notebook (or None), a flag (``""``, ``notebook-renamed`` or
        ``missing-notebook``) and a one-sentence reason.
    """
    folder = labs / lab
    expected = folder / "lab.ipynb"
    if _safe(expected, labs):
        return expected, "", ""
    found = sorted(p for p in folder.glob("*.ipynb") if _safe(p, labs)) if folder.is_dir() else []
    if len(found) == 1:
        reason = (
            f"labs/{lab}/lab.ipynb is missing; labs/{lab}/{found[0].name} was graded in its place."
        )
        return found[0], "notebook-renamed", reason
    names = ", ".join(p.name for p in found)
    extra = f" (there are {names}: keep exactly one, named lab.ipynb)" if found else ""
    return None, "missing-notebook", f"labs/{lab}/lab.ipynb is missing{extra}."


def read_notebook(path: Path, lab: str) -> tuple[nbformat.NotebookNode | None, str]:
    """Read a submitted notebook; return it, or None and why it cannot be graded."""
    bad = f"labs/{lab}/{path.name} is not a valid notebook"
    if path.stat().st_size > MAX_NOTEBOOK:
        return None, f"{bad}: it is larger than {MAX_NOTEBOOK // 2**20} MB."
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, f"{bad} (its JSON cannot be read)."
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None, f"{bad} (it has no list of cells)."
    import nbformat

    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)
        for cell in nb.cells:
            cell.setdefault("metadata", {})
            if not isinstance(cell.get("source", ""), str) or "cell_type" not in cell:
                raise ValueError("bad cell")
    except Exception:  # nbformat raises many types for malformed notebooks
        return None, f"{bad} (its cells are malformed)."
    return nb, ""


def _grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if isinstance(meta, dict) else None


def _norm(source: str) -> str:
    """A cell's source without hidden tests (nbgrader puts those back) or trailing spaces."""
    source = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", source, flags=re.S)
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


@dataclass
class Repair:
    """The notebook to grade and what had to be put back in it."""

    notebook: nbformat.NotebookNode
    edited: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kernel: str = ""


def repair_locked_cells(submitted, release) -> Repair:
    """Put the instructor's locked code cells back; note which were edited or deleted.

    Cells are matched by their nbgrader ``grade_id``. Locked markdown cells are put
    back too but not reported. The kernel is set to the release notebook's.
    """
    locked = {
        _grade_id(c): c
        for c in release.cells
        if _grade_id(c) and c.get("metadata", {}).get("nbgrader", {}).get("locked")
    }
    repair = Repair(copy.deepcopy(submitted))
    cells, placed = [], set()
    for cell in repair.notebook.cells:
        gid = _grade_id(cell)
        if gid in locked:
            if gid in placed:
                continue
            original = locked[gid]
            changed = cell.get("cell_type") != original.cell_type or _norm(
                cell.get("source", "")
            ) != _norm(original.source)
            if changed and original.cell_type == "code":
                repair.edited.append(gid)
            cells.append(copy.deepcopy(original))
            placed.add(gid)
        else:
            cells.append(cell)
    order = [_grade_id(c) for c in release.cells]
    for position, gid in enumerate(order):
        if gid not in locked or gid in placed:
            continue
        ids = [_grade_id(c) for c in cells]
        previous = [g for g in order[:position] if g and g in ids]
        index = len(ids) - ids[::-1].index(previous[-1]) if previous else 0
        cells.insert(index, copy.deepcopy(locked[gid]))
        placed.add(gid)
        if locked[gid].cell_type == "code":
            repair.deleted.append(gid)
    repair.notebook.cells = cells
    asked = submitted.metadata.get("kernelspec", {}).get("name")
    wanted = release.metadata.get("kernelspec", {}).get("name")
    if asked and wanted and asked != wanted:
        repair.kernel = str(asked)
    if "kernelspec" in release.metadata:
        repair.notebook.metadata["kernelspec"] = copy.deepcopy(release.metadata["kernelspec"])
    return repair


def _shadows(name: str) -> bool:
    """True when a top-level module of this name exists outside the submission."""
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _planted(rel: Path, path: Path) -> str:
    """Why a file or folder of ``labs/`` must not reach the grader, or ``""``."""
    name = rel.name
    if path.is_symlink():
        return "a symbolic link"
    if name == "conftest.py":
        if rel.as_posix() == f"{SUITE_DIR}/conftest.py":
            # The student's own suite (week 4): its conftest is theirs and runs only in the
            # suite's own process, never in the grader's pytest (whose rootdir is elsewhere).
            return ""
        return "" if rel.parent.name == "tests" and len(rel.parts) == 3 else "a pytest conftest"
    if name in SITE_HOOKS or name.endswith(".pth"):
        return "a Python start-up hook"
    if name.endswith((".dist-info", ".egg-info")) and path.is_dir():
        return "package metadata (entry points)"
    if name in PYTEST_CONFIG:
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        if name in ("pytest.ini", ".pytest.ini") or "pytest" in text:
            return "pytest configuration"
    if len(rel.parts) == 1 and name not in ("mlpipe", SUITE_DIR):
        stem = name[:-3] if name.endswith(".py") else name
        is_module = name.endswith(".py") or (path / "__init__.py").is_file()
        if is_module and stem.isidentifier() and _shadows(stem):
            return f"it shadows the module {stem}"
    return ""


def copy_labs(src: Path, dest: Path) -> list[str]:
    """Copy a student's ``labs/`` into ``dest``, leaving out what could alter grading.

    Returns:
        One entry per left-out path, ``labs/<path> (<why>)``; conftest files of a
        week's own ``tests/`` folder and build litter are left out silently.
    """
    left_out: list[str] = []
    total = 0
    dest.mkdir(parents=True, exist_ok=True)
    for folder, dirs, files in os.walk(src, followlinks=False):
        here = Path(folder)
        rel_dir = here.relative_to(src)
        keep = []
        for name in sorted(dirs):
            rel = rel_dir / name
            if is_litter(name, SUBMISSION_LITTER):
                continue
            why = _planted(rel, here / name)
            if why:
                left_out.append(f"labs/{rel.as_posix()} ({why})")
                continue
            keep.append(name)
            (dest / rel).mkdir(exist_ok=True)
        dirs[:] = keep
        for name in sorted(files):
            rel = rel_dir / name
            path = here / name
            if is_litter(name, SUBMISSION_LITTER):
                continue
            if name == "conftest.py" and len(rel.parts) == 3 and not _planted(rel, path):
                continue
            why = _planted(rel, path)
            if not why and path.stat().st_size > MAX_FILE:
                why = f"larger than {MAX_FILE // 2**20} MB"
            if not why and total + path.stat().st_size > MAX_TOTAL:
                why = f"the copy would exceed {MAX_TOTAL // 2**20} MB"
            if why:
                left_out.append(f"labs/{rel.as_posix()} ({why})")
                continue
            total += path.stat().st_size
            shutil.copyfile(path, dest / rel)
    return left_out


def digest(labs: Path) -> str:
    """A fingerprint of everything under ``labs/`` (paths and contents)."""
    hasher = hashlib.sha256()
    if not labs.is_dir():
        return "none"
    for folder, dirs, files in os.walk(labs, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not is_litter(d, SUBMISSION_LITTER))
        for name in sorted(files):
            path = Path(folder, name)
            if is_litter(name, SUBMISSION_LITTER):
                continue
            hasher.update(path.relative_to(labs).as_posix().encode() + b"\0")
            if path.is_symlink():
                hasher.update(os.readlink(path).encode())
            elif path.stat().st_size > MAX_FILE:
                hasher.update(f"{path.stat().st_size}:{path.stat().st_mtime_ns}".encode())
            else:
                hasher.update(hashlib.sha256(path.read_bytes()).digest())
    return hasher.hexdigest()[:16]
