"""Grading a class in shards, and merging the shards' output (``course merge``).

``course grade SUBMISSIONS... --shard K/N`` grades the K-th of N slices of the class
(counted from 0, as Kubernetes' ``JOB_COMPLETION_INDEX`` and a CI matrix count): the
submissions sorted by student id, every N-th from the K-th. The slices depend on the
class list only, so a shard graded again (a retried pod) grades the same students. Each
shard writes into its own ``--out`` folder, with ``shard.json`` saying which slice of
which class it holds.

:func:`merge` puts the shards' folders together: the students' report folders, one
``grades.csv``, one set of Gradescope files and one nbgrader gradebook. It refuses, in
one sentence, a student graded in two folders, a missing shard (or a shard that did not
finish) and shards graded from different versions of the instructor's material (each
report records :func:`autograder.sources.material_digest`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from autograder import CourseError
from autograder.config import COURSE_ID
from autograder.report import Report, atomic_write, read_reports, write_class_csv

#: The file in a shard's ``--out`` folder that names its slice of the class.
SHARD_FILE = "shard.json"
#: The file in a merged folder that lists what was merged.
MERGED_FILE = "merged.json"
#: nbgrader's gradebook folder in an ``--out`` folder, and its database.
NBGRADER_DIR = "nbgrader"
GRADEBOOK = "gradebook.db"


@dataclass(frozen=True)
class Shard:
    """The slice ``index`` of ``count`` (``0 <= index < count``)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """Read ``K/N`` (``--shard``).

    Raises:
        CourseError: For anything but two whole numbers with ``0 <= K < N``.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise CourseError(
            f"--shard '{text}' is not K/N with 0 <= K < N (0/3 is the first of three shards)."
        )
    return Shard(int(match.group(1)), int(match.group(2)))


def select_shard(subs: list, shard: Shard | None) -> list:
    """The submissions of ``shard``: sorted by student id, every N-th from the K-th.

    Without a shard, every submission in the order given.
    """
    if shard is None:
        return subs
    return sorted(subs, key=lambda s: s.student)[shard.index :: shard.count]


def class_digest(students: Iterable[str]) -> str:
    """A fingerprint of a class list (the student ids, in any order)."""
    return hashlib.sha256("\n".join(sorted(students)).encode()).hexdigest()[:16]


def _key(student: str, week: int) -> str:
    return f"{student}/week{week:02d}"


def write_shard_file(out: Path, shard: Shard, everyone: list, pairs: list) -> Path:
    """Write ``<out>/shard.json``: ``shard`` of the class ``everyone``, and its reports to be.

    ``pairs`` are the shard's (submission, week) jobs, as :func:`autograder.grade.plan` gives.

    Raises:
        CourseError: When ``out`` already holds another shard or another class's shard.
    """
    data = {
        "shard": shard.index,
        "of": shard.count,
        "class": class_digest(s.student for s in everyone),
        "class_size": len(everyone),
        "reports": sorted(_key(sub.student, week.number) for sub, week in pairs),
    }
    path = out / SHARD_FILE
    old = _read_json(path) if path.is_file() else None
    if old is not None and [old.get(k) for k in ("shard", "of", "class")] != [
        data[k] for k in ("shard", "of", "class")
    ]:
        raise CourseError(
            f"'{out}' already holds shard {old.get('shard')}/{old.get('of')} of a class of "
            f"{old.get('class_size')}; give each shard its own --out folder."
        )
    atomic_write(path, json.dumps(data, indent=2) + "\n")
    return path


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CourseError(f"'{path}' is not readable JSON ({err}).") from None
    if not isinstance(data, dict):
        raise CourseError(f"'{path}' is not a JSON object.")
    return data


# --- merging ---------------------------------------------------------------------------------


@dataclass
class Piece:
    """One ``--out`` folder given to :func:`merge`: its shard (if any) and its reports."""

    out: Path
    shard: Shard | None
    class_id: str = ""
    class_size: int = 0
    planned: list[str] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"shard {self.shard} ('{self.out}')" if self.shard else f"'{self.out}'"


@dataclass
class Merged:
    """What :func:`merge` wrote."""

    dest: Path
    students: int
    reports: int
    pieces: list[Piece]

    @property
    def csv(self) -> Path:
        return self.dest / "grades.csv"


def read_piece(out: Path) -> Piece:
    """Read one ``--out`` folder of ``course grade``.

    Raises:
        CourseError: When it is not a folder of ``course grade`` or its files are broken.
    """
    out = Path(out)
    path = out / SHARD_FILE
    if not out.is_dir():
        raise CourseError(f"'{out}' is not a folder: give the --out folders of `course grade`.")
    try:
        reports = read_reports(out)
    except (ValueError, KeyError, TypeError) as err:
        raise CourseError(f"'{out}' holds a report that is not readable ({err}).") from None
    if not path.is_file():
        if not reports:
            raise CourseError(f"'{out}' holds no grade reports: give the --out folders of `course grade`.")  # fmt: skip
        return Piece(out, None, reports=reports)
    data = _read_json(path)
    try:
        shard = Shard(int(data["shard"]), int(data["of"]))
        return Piece(
            out, shard, str(data["class"]), int(data["class_size"]), list(data["reports"]), reports
        )
    except (KeyError, TypeError, ValueError):
        raise CourseError(f"'{path}' is not a shard file of `course grade --shard`.") from None


def check_shards(pieces: list[Piece]) -> None:
    """Every shard of one class once, each finished.

    Raises:
        CourseError: For shards of different classes or counts, a shard given twice, a
            missing shard, or a shard whose grading did not finish.
    """
    shards = [p for p in pieces if p.shard]
    if not shards:
        return
    first = shards[0]
    seen: dict[int, Piece] = {}
    for piece in shards:
        if (piece.shard.count, piece.class_id) != (first.shard.count, first.class_id):
            raise CourseError(
                f"{piece.name} and {first.name} are not shards of one run: one is of "
                f"{piece.shard.count} shards of {piece.class_size} submissions, the other of "
                f"{first.shard.count} of {first.class_size}."
            )
        if piece.shard.index in seen:
            raise CourseError(
                f"Shard {piece.shard} is given twice ('{seen[piece.shard.index].out}' and "
                f"'{piece.out}')."
            )
        seen[piece.shard.index] = piece
    missing = [str(k) for k in range(first.shard.count) if k not in seen]
    if missing:
        raise CourseError(
            f"Shard {missing[0]}/{first.shard.count} is missing: give the --out folder of every "
            f"shard, 0 to {first.shard.count - 1}."
        )
    for piece in shards:
        done = {_key(r.student, r.week) for r in piece.reports}
        left = [key for key in piece.planned if key not in done]
        if left:
            raise CourseError(
                f"{piece.name} did not finish ({len(left)} of {len(piece.planned)} reports "
                f"missing, e.g. {left[0]}): run that shard's `course grade` again."
            )


def check_reports(pieces: list[Piece]) -> None:
    """No student in two folders; every week graded from one version of the material.

    Raises:
        CourseError: For a duplicate student, a report without the digest of the
            instructor's material, or two digests for one week.
    """
    owner: dict[str, Piece] = {}
    digests: dict[int, tuple[str, str]] = {}
    for piece in pieces:
        for student in sorted({r.student for r in piece.reports}):
            if student in owner:
                raise CourseError(
                    f"Student '{student}' is graded in both {owner[student].name} and "
                    f"{piece.name}; each student must be in one folder only."
                )
            owner[student] = piece
        for report in piece.reports:
            where = f"{piece.out}/{report.student}/week{report.week:02d}.json"
            if not report.source_digest:
                raise CourseError(
                    f"'{where}' does not record which version of the instructor's material it "
                    "was graded from (an older `course grade`): grade it again."
                )
            first = digests.setdefault(report.week, (report.source_digest, where))
            if first[0] != report.source_digest:
                raise CourseError(
                    f"Week {report.week} was graded from different versions of solutions/ "
                    f"('{first[1]}' and '{where}'): grade every shard from the same commit."
                )


def _fresh_dest(dest: Path, pieces: list[Piece]) -> None:
    """Refuse a destination that is one of the pieces or holds anything but an earlier merge."""
    real = dest.resolve()
    for piece in pieces:
        if piece.out.resolve() == real:
            raise CourseError(f"--out '{dest}' is one of the folders to merge; choose a new one.")
    used = dest.exists() and (not dest.is_dir() or any(dest.iterdir()))
    if used and not (dest / MERGED_FILE).is_file():
        raise CourseError(
            f"'{dest}' exists and is not an earlier `course merge` output; choose a new --out."
        )


def merge(outs: list[Path], dest: Path) -> Merged:
    """Merge ``course grade`` output folders (shards) into ``dest``.

    ``dest`` gets every student's report folder (with its Gradescope ``results.json``
    files when the shards wrote them), ``grades.csv``, the nbgrader gradebook
    (``nbgrader/``: every submission and grade, manual ones included) and ``merged.json``.
    It is written beside ``dest`` and moved into place at the end: nothing half-written.

    Raises:
        CourseError: See :func:`check_shards` and :func:`check_reports`; also for a
            folder that is not ``course grade`` output and a ``dest`` in use.
    """
    if not outs:
        raise CourseError("Give the --out folders of the shards to merge.")
    pieces = [read_piece(Path(o)) for o in outs]
    dest = Path(dest)
    _fresh_dest(dest, pieces)
    check_shards(pieces)
    check_reports(pieces)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.parent / f".{dest.name}.merging-{os.getpid()}"
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    try:
        for piece in pieces:
            for student in sorted({r.student for r in piece.reports}):
                shutil.copytree(piece.out / student, work / student)
        write_class_csv(work)
        merge_gradebooks([p.out / NBGRADER_DIR for p in pieces], work / NBGRADER_DIR)
        digests = sorted({(r.week, r.source_digest) for p in pieces for r in p.reports})
        summary = {
            "pieces": [
                {"out": str(p.out.resolve()), "shard": str(p.shard) if p.shard else None}
                for p in pieces
            ],
            "source_digests": {f"week{w:02d}": d for w, d in digests},
        }
        atomic_write(work / MERGED_FILE, json.dumps(summary, indent=2) + "\n")
        if dest.exists():
            os.replace(dest, old)
        os.replace(work, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    reports = sum(len(p.reports) for p in pieces)
    students = len({r.student for p in pieces for r in p.reports})
    return Merged(dest, students, reports, pieces)


# --- the nbgrader gradebook -------------------------------------------------------------------

_ASSIGNMENT = "SELECT id FROM shard.assignment WHERE name = ?"
_NOTEBOOKS = f"SELECT id FROM shard.notebook WHERE assignment_id IN ({_ASSIGNMENT})"
_CELLS = f"SELECT id FROM shard.base_cell WHERE notebook_id IN ({_NOTEBOOKS})"
#: nbgrader's tables that define an assignment, in the order their rows depend on each
#: other, each with the condition that selects one assignment's rows (``?``: its name).
DEFINITION_TABLES = (
    ("assignment", "name = ?"),
    ("notebook", f"assignment_id IN ({_ASSIGNMENT})"),
    ("base_cell", f"notebook_id IN ({_NOTEBOOKS})"),
    ("grade_cells", f"id IN ({_CELLS})"),
    ("solution_cells", f"id IN ({_CELLS})"),
    ("task_cells", f"id IN ({_CELLS})"),
    ("source_cell", f"notebook_id IN ({_NOTEBOOKS})"),
)
#: The folders of an nbgrader course that the formgrader reads.
NBGRADER_FOLDERS = ("source", "release", "submitted", "autograded")


def _copy_assignment(db: Path, shard_db: Path, name: str) -> None:
    """Copy the definition of assignment ``name`` (notebooks, cells) from ``shard_db``."""
    con = sqlite3.connect(db)
    try:
        con.execute("ATTACH DATABASE ? AS shard", (str(shard_db),))
        for table, where in DEFINITION_TABLES:
            params = (name,) * where.count("?")
            con.execute(
                f"INSERT INTO main.{table} SELECT * FROM shard.{table} WHERE {where}", params
            )
        con.commit()
    finally:
        con.close()


def _copy_grades(target, notebook) -> None:
    """Copy one submitted notebook's grades and comments onto the same notebook in another book."""
    grades = {g.name: g for g in notebook.grades}
    for grade in target.grades:
        old = grades.get(grade.name)
        if old is not None:
            grade.auto_score, grade.manual_score = old.auto_score, old.manual_score
            grade.extra_credit, grade.needs_manual_grade = old.extra_credit, old.needs_manual_grade
    comments = {c.name: c for c in notebook.comments}
    for comment in target.comments:
        old = comments.get(comment.name)
        if old is not None:
            comment.auto_comment, comment.manual_comment = old.auto_comment, old.manual_comment
    target.flagged = notebook.flagged


def _copy_submissions(src_url: str, dst_url: str) -> None:
    """Copy every submission of one gradebook, with its grades and comments, into another."""
    from nbgrader.api import Gradebook

    with Gradebook(src_url, COURSE_ID) as src, Gradebook(dst_url, COURSE_ID) as dst:
        for assignment in src.assignments:
            for sub in src.assignment_submissions(assignment.name):
                student = sub.student.id
                dst.update_or_create_student(student)
                dst.update_or_create_submission(assignment.name, student, timestamp=sub.timestamp)
                for nb in sub.notebooks:
                    _copy_grades(
                        dst.find_submission_notebook(nb.name, assignment.name, student), nb
                    )
                dst.db.commit()


def merge_gradebooks(folders: list[Path], dest: Path) -> Path | None:
    """One nbgrader course folder from several: definitions, submissions, grades, notebooks.

    Returns:
        The merged ``gradebook.db``, or None when no folder had one.
    """
    books = [f for f in folders if (f / GRADEBOOK).is_file()]
    if not books:
        return None
    import warnings

    from nbgrader.api import Gradebook

    warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's own, harmless
    dest.mkdir(parents=True, exist_ok=True)
    db = dest / GRADEBOOK
    url = f"sqlite:///{db}"
    # The first gradebook is the start (nbgrader makes a new one only with alembic on PATH).
    shutil.copyfile(books[0] / GRADEBOOK, db)
    with Gradebook(url, COURSE_ID) as gb:
        have = {a.name for a in gb.assignments}
    for folder in books[1:]:
        source = f"sqlite:///{folder / GRADEBOOK}"
        with Gradebook(source, COURSE_ID) as gb:
            names = [a.name for a in gb.assignments]
        for name in names:
            if name not in have:
                _copy_assignment(db, folder / GRADEBOOK, name)
                have.add(name)
        _copy_submissions(source, url)
    for folder in books:
        for part in NBGRADER_FOLDERS:
            if (folder / part).is_dir():
                shutil.copytree(folder / part, dest / part, dirs_exist_ok=True)
    os.chmod(dest, 0o700)
    return db
