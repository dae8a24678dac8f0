"""Visible tests of the pipeline's GitHub Actions workflow (``.github/workflows/pipeline.yml``)."""

from __future__ import annotations

import pytest
from conftest import (
    PIPELINE_DIR,
    WATCHED,
    WORKFLOW,
    load_workflow,
    required_steps,
    runs_on_change,
    steps,
    triggers,
)

from autograder.testkit import assert_ran, run, tool


@pytest.mark.points(1)
@pytest.mark.task(6)
def test_workflow_is_a_valid_github_workflow():
    checker = tool("check-jsonschema")
    schema = ("--builtin-schema", "vendor.github-workflows", "--color", "never")
    proc = run(checker, *schema, WORKFLOW, cwd=PIPELINE_DIR, timeout=120)
    assert_ran(proc, hint=f"{WORKFLOW} must follow GitHub's schema")
    assert steps(load_workflow()), "the workflow has no steps"


@pytest.mark.points(1)
@pytest.mark.task(6)
def test_workflow_runs_on_changes_to_data_params_and_code():
    events = triggers(load_workflow())
    assert "workflow_dispatch" in events, "allow starting the workflow by hand"
    for event in ("push", "pull_request"):
        assert event in events, f"run the pipeline on {event}"
        missed = [path for path in WATCHED if not runs_on_change(events[event], path)]
        assert not missed, f"a {event} that changes {missed[0]} does not start the pipeline"


@pytest.mark.points(2)
@pytest.mark.task(6)
def test_workflow_steps_set_up_rebuild_test_gate_and_promote_in_order():
    found = required_steps()
    missing = [kind for kind, index in found.items() if index < 0]
    assert not missing, f"no step for: {', '.join(missing)}"
    order = list(found.values())
    assert order == sorted(order), f"steps out of order: {found}"
    assert found["gate"] < found["promote"], "run the gates before promoting"
