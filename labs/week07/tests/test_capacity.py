"""Visible component tests of week 7, task 1: the capacity plan (``mlpipe.capacity``)."""

import pytest
from conftest import STATS

from mlpipe import capacity
from mlpipe.config import CapacityParams


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_littles_law_and_the_failure_ratio():
    in_flight = capacity.concurrency(200.0, 15.0)
    assert in_flight == pytest.approx(3.0), (
        f"concurrency(200 req/s, 15 ms) is {in_flight}, expected 3.0: Little's law L = lambda x W "
        "needs W in seconds (15 ms = 0.015 s)"
    )
    ratio = capacity.failure_ratio(3, 200)
    assert ratio == pytest.approx(0.015), (
        f"failure_ratio(3 failures, 200 requests) is {ratio}, expected 0.015 (failures / requests)"
    )
    assert capacity.failure_ratio(0, 0) == 0.0, "failure_ratio() of a run without requests is 0.0"


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_only_a_run_within_its_objective_is_sustainable():
    assert capacity.sustainable_rps(234.0, 47.0, 100.0) == 234.0, (
        "sustainable_rps(): a run whose p99 (47 ms) meets the objective (100 ms) sustained its rps"
    )
    at_objective = capacity.sustainable_rps(234.0, 100.0, 100.0)
    assert at_objective == 234.0, (
        f"sustainable_rps(p99 100 ms, objective 100 ms) is {at_objective}, expected 234.0: a p99 "
        "equal to the objective meets it"
    )
    over = capacity.sustainable_rps(234.0, 120.0, 100.0)
    assert over is None, (
        f"sustainable_rps(p99 120 ms, objective 100 ms) is {over}, expected None: an overloaded "
        "run says nothing sustainable"
    )


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_replicas_are_rounded_up_and_bounded_by_the_floor_and_the_headroom():
    replicas = capacity.replicas_needed(500.0, 200.0, 0.6)
    assert replicas == 5, (
        f"replicas_needed(500 req/s, 200 per replica, utilisation 0.6) is {replicas}, expected 5: "
        "500 / (200 x 0.6) = 4.17 replicas, and 4 would not carry the load (round up)"
    )
    bounds = capacity.replica_bounds(5, 2, 1.5)
    assert bounds == (2, 8), (
        f"replica_bounds(5 replicas, floor 2, headroom 1.5) is {bounds}, expected (2, 8): "
        "(min_replicas, ceil(5 x 1.5))"
    )


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_the_plan_of_the_committed_locust_run():
    stats, plan, lines = capacity.run(STATS, CapacityParams())
    assert stats.requests == 1896 and stats.p99_ms == 47.0
    assert plan.replicas == 4, (
        f"the plan for 500 req/s from the committed run (233.9 req/s, p99 47 ms) has "
        f"{plan.replicas} replicas, expected ceil(500 / (233.9 x 0.6)) = 4"
    )
    assert (plan.min_replicas, plan.max_replicas) == (2, 6), (
        f"the plan's (minReplicas, maxReplicas) is {(plan.min_replicas, plan.max_replicas)}, "
        "expected (2, ceil(4 x 1.5)) = (2, 6)"
    )
    assert plan.in_flight == pytest.approx(233.9456 * 0.0140295, rel=1e-4)
    assert any("replicas = ceil(" in line for line in lines)
