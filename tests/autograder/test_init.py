"""The package's own helpers (``autograder/__init__.py``)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
{call}
import jsonschema, nbformat
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
nbformat.validate(nb)
checker = jsonschema.FormatChecker()
assert not checker.conforms("2026-13-45", "date") and checker.conforms("2026-12-02", "date")
print(sys.modules.get("rfc3987_syntax") is not None, "iri" in checker.checkers)
"""


def _probe(call: str) -> list[str]:
    code = PROBE.format(call=call)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_skip_iri_grammar_keeps_validation_and_drops_only_the_iri_grammar():
    """Notebooks still validate and other formats are still checked; the grammar that
    costs 2.3 s of CPU per process (measured in the note of issue 11) is never built."""
    loaded, iri = _probe("from autograder import skip_iri_grammar; skip_iri_grammar()")
    assert (loaded, iri) == ("False", "False")
