"""Visible component tests of week 7, task 3: the canary analysis of ``mlpipe.rollout``.

Each backend's ``/metrics`` page is written by the serving app's own metrics
registry (see ``conftest.py``): a 10 % step in which the stable answered 270
requests and each canary 30.
"""

import pytest
from conftest import bucket_of

from mlpipe import rollout
from mlpipe.config import RolloutParams


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_delta_counts_only_what_happened_between_the_scrapes(step):
    before = rollout.parse_metrics(step["before"]["stable"])
    after = rollout.parse_metrics(step["after"]["stable"])
    found = rollout.delta(before, after)
    assert found.total == 270, (
        f"delta() of the stable's two scrapes counts {found.total:g} requests, expected 270: "
        "subtract the first scrape's counters from the second's (3,000 came before the step)"
    )
    assert found.requests.get("500") == 0 and found.requests.get("200") == 270, found.requests
    assert found.predictions == dict.fromkeys(("setosa", "versicolor", "virginica"), 90)
    assert found.buckets[float("inf")] == 270, "delta() subtracts the histogram's buckets too"


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_error_rate_and_p99_come_from_the_canarys_counters(step):
    bad = rollout.parse_metrics(step["after"]["bad"])  # a fresh canary: its page is the step
    rate = rollout.error_rate(bad)
    assert rate == pytest.approx(0.1), (
        f"error_rate() of 3 answers of 500 in 30 is {rate}, expected 0.1 (5xx / all answers)"
    )
    assert rollout.error_rate(rollout.Counts()) == 0.0, "error_rate() of no requests is 0.0"
    low, high = bucket_of(step["latencies"]["bad"])
    p99 = rollout.quantile_ms(bad)
    assert low < p99 <= high, (
        f"quantile_ms() of the broken canary is {p99:.2f} ms, but its 99th-percentile request "
        f"is in the bucket ({low:g}, {high:g}] ms: take the first bucket whose cumulative "
        "count reaches 0.99 x the total, and interpolate inside it"
    )


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_distribution_distance_is_the_total_variation_distance():
    same = rollout.distribution_distance({"a": 10, "b": 30}, {"a": 100, "b": 300})
    assert same == pytest.approx(0.0), f"the same shares are at distance 0, got {same}"
    moved = rollout.distribution_distance({"a": 30, "b": 10}, {"a": 10, "b": 30})
    assert moved == pytest.approx(0.5), (
        f"shares 75/25 against 25/75 are at distance 0.5 (half the sum of |differences|), "
        f"got {moved}"
    )
    apart = rollout.distribution_distance({"a": 5}, {"b": 5})
    assert apart == pytest.approx(1.0), f"no class in common is distance 1, got {apart}"


@pytest.mark.points(2)
@pytest.mark.task(3)
def test_a_healthy_canary_is_promoted_and_a_broken_one_rolled_back_with_reasons(counts):
    policy = RolloutParams()
    good = rollout.decide(counts["good"], counts["stable"], policy)
    assert good.allowed, f"the healthy canary must be promoted, but decide() says {good.reasons}"
    assert [c.name for c in good.checks] == ["traffic", "error_rate", "p99_latency", "predictions"]
    bad = rollout.decide(counts["bad"], counts["stable"], policy)
    failed = [c.name for c in bad.checks if not c.passed]
    assert failed == ["error_rate", "p99_latency", "predictions"], (
        f"the broken canary (10 % errors, three times slower, mostly virginica) must fail "
        f"error_rate, p99_latency and predictions; decide() failed {failed}"
    )
    assert all(c.detail for c in bad.checks), "every check says what it measured"
