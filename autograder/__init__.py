"""The course's grading engine and the Python API behind the ``course`` CLI.

Every CLI verb is one function here, so tests call the same code the CLI runs:

* :func:`autograder.release.release` — ``course release``
* :func:`autograder.check.check` — ``course check``
* :func:`autograder.grade.grade` — ``course grade``
* :func:`autograder.export.export_student` — ``course export-student``
"""

import sys

__all__ = ["CourseError", "skip_iri_grammar"]


class CourseError(Exception):
    """A problem the user can fix; the CLI prints the message as one sentence."""


def skip_iri_grammar() -> None:
    """Keep jsonschema from compiling rfc3987-syntax's IRI grammar in this process.

    nbformat imports jsonschema, which imports ``rfc3987_syntax`` when it is installed
    (jupyter-events asks for ``jsonschema[format-nongpl]``); that module builds 38 Lark
    parsers at import, about 2.3 s of CPU, for the ``iri`` formats no notebook schema
    uses. Marking it absent makes jsonschema skip those two format checkers, nothing
    else. Call it first thing in an entry point; it changes nothing once jsonschema
    is imported.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
