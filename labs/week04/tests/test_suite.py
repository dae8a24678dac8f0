"""Visible tests of your own suite (``project_tests/test_data.py``, ``test_model.py``).

Your suite is graded by mutation. The grader copies your pipeline project,
plants one realistic bug in a copy of ``mlpipe`` (the reference modules of
weeks 1 and 2, so your own earlier work does not matter), and runs your
``project_tests/`` there with ``python -m pytest``. A bug counts as caught when your
suite passes on the pipeline as it is and fails on the copy with the bug.
The hidden tests plant other bugs than the one below, and also check that a
harmless change (one that changes no behaviour) does not make your suite fail.
"""

from __future__ import annotations

import pytest
from conftest import PIPELINE_DIR, REFERENCE, Mutant, require_suite_passes

#: The visible planted bug: ``prepare`` forgets to strip the provider's label prefix.
KEEPS_PREFIX = Mutant(
    "clean-keeps-the-label-prefix",
    "mlpipe/data.py",
    "df[target] = labels.str.removeprefix(params.label_prefix)",
    "df[target] = labels",
)


@pytest.mark.points(1)
@pytest.mark.task(5)
@pytest.mark.timeout(180)  # runs your suite in a fresh process
def test_your_suite_passes_and_has_data_and_model_tests(suites):
    run = suites.run([None])[REFERENCE]
    require_suite_passes(run)
    assert run.passed.get("test_data", 0) >= 3, "write at least three data tests in test_data.py"
    assert run.passed.get("test_model", 0) >= 3, "write at least three model tests in test_model.py"


@pytest.mark.points(2)
@pytest.mark.task(5)
@pytest.mark.timeout(180)
def test_your_suite_catches_a_label_prefix_left_in_place(suites):
    target = (PIPELINE_DIR / KEEPS_PREFIX.file).read_text(encoding="utf-8")
    if target.count(KEEPS_PREFIX.old) != 1:
        pytest.skip(
            f"{KEEPS_PREFIX.file} has no line `{KEEPS_PREFIX.old}` to plant the bug in "
            "(your own version differs from the reference); the grader plants it in the "
            "reference file."
        )
    runs = suites.run([None, KEEPS_PREFIX])
    require_suite_passes(runs[REFERENCE])
    assert not runs[KEEPS_PREFIX.name].ok, (
        "your suite passed on a pipeline whose prepared labels keep the 'Iris-' prefix; "
        "test what prepare writes"
    )
