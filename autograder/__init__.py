"""The course's grading engine and the Python API behind the ``course`` CLI.

Every CLI verb is one function here, so tests call the same code the CLI runs:

* :func:`autograder.release.release` — ``course release``
* :func:`autograder.check.check` — ``course check``
* :func:`autograder.grade.grade` — ``course grade``
* :func:`autograder.export.export_student` — ``course export-student``
"""

__all__ = ["CourseError"]


class CourseError(Exception):
    """A problem the user can fix; the CLI prints the message as one sentence."""
