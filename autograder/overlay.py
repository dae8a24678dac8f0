"""Week isolation: grade week N on the student's week-N files only.

The pipeline is one package, so week 2's DVC pipeline runs week 1's training
code. A student who did not finish week 1 must still be able to earn every
point of week 2. When the instructor's ``solutions/`` is at hand, the grader
therefore builds, for each week, a copy of the submission's ``labs/`` in which
the files that *other* weeks own (``Week.files``) are the reference ones, and
grades the notebook and the component tests against that copy. Files the
week owns, and every shared file, stay the student's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from autograder.config import WEEKS, Week


def foreign_files(week: Week) -> list[str]:
    """The pipeline files owned by the other weeks, relative to labs/."""
    return sorted({f for w in WEEKS.values() if w.number != week.number for f in w.files})


def use_reference_for_other_weeks(labs: Path, week: Week, solutions: Path | None) -> list[str]:
    """In a scratch copy of a submission's labs/, put the reference files of the other weeks.

    Args:
        labs: The copy to change in place (never the student's own folder).
        week: The week being graded; its files stay the student's.
        solutions: The instructor's solutions/ folder; ``None`` (a student
            template) changes nothing.

    Returns:
        The relative paths replaced.
    """
    if solutions is None:
        return []
    replaced = []
    for rel in foreign_files(week):
        reference = solutions / rel
        if reference.is_file():
            target = labs / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            shutil.copyfile(reference, target)
            replaced.append(rel)
    return replaced
