"""Hidden component tests of week 7 (never released to students)."""

import math
import re
import shutil

import pytest
import yaml
from conftest import (
    BUCKET_ARN,
    DEPLOYMENTS,
    MANIFESTS,
    STATS,
    app_routes,
    arn_text,
    as_list,
    container,
    read_k8s,
    resource,
    role_statements,
)

from mlpipe import capacity, manifests, rollout
from mlpipe.config import CapacityParams, RolloutParams

INF = math.inf


def _stats(**changes) -> capacity.LoadStats:
    base = dict(requests=1000, failures=0, median_ms=10.0, mean_ms=12.0, p99_ms=40.0, rps=150.0)
    return capacity.LoadStats(**{**base, **changes})


# --- task 1: the capacity plan -----------------------------------------------------------------


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_replicas_round_up_exactly_and_never_below_one():
    assert capacity.replicas_needed(480.0, 200.0, 0.6) == 4, "480 / 120 is exactly 4 replicas"
    assert capacity.replicas_needed(481.0, 200.0, 0.6) == 5, "4.01 replicas round up to 5"
    assert capacity.replicas_needed(1000.0, 233.9456, 0.6) == 8, "1000 / 140.4 = 7.12 -> 8"
    assert capacity.replicas_needed(1.0, 500.0, 0.5) == 1, "a tiny load still needs a replica"
    assert capacity.replicas_needed(300.0, 100.0, 1.0) == 3


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_replica_bounds_keep_the_floor_and_round_the_headroom_up():
    assert capacity.replica_bounds(1, 2, 1.5) == (2, 2), "maxReplicas is never below the floor"
    assert capacity.replica_bounds(4, 2, 1.5) == (2, 6), "4 x 1.5 is exactly 6"
    assert capacity.replica_bounds(3, 3, 1.2) == (3, 4), "3 x 1.2 = 3.6 rounds up to 4"
    assert capacity.replica_bounds(7, 2, 1.0) == (2, 7)
    assert capacity.concurrency(50.0, 200.0) == pytest.approx(10.0)
    assert capacity.concurrency(0.0, 15.0) == 0.0


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_the_plan_refuses_a_failing_or_overloaded_run_and_writes_the_hpa(tmp_path):
    params = CapacityParams()
    capacity.plan(_stats(failures=10), params)  # 1.0 %: at the limit, still usable
    with pytest.raises(capacity.CapacityError, match="failed"):
        capacity.plan(_stats(failures=11), params)
    capacity.plan(_stats(p99_ms=100.0), params)  # at the objective
    with pytest.raises(capacity.CapacityError, match="above the objective"):
        capacity.plan(_stats(p99_ms=100.5), params)
    hpa = tmp_path / "hpa.yaml"
    shutil.copyfile(STATS.parents[2] / "k8s" / "hpa.yaml", hpa)
    _, plan, _ = capacity.run(STATS, CapacityParams(target_rps=1000.0), hpa=hpa)
    assert (plan.replicas, plan.min_replicas, plan.max_replicas) == (8, 2, 12)
    spec = yaml.safe_load(hpa.read_text())["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 12)


# --- task 2: the manifests ---------------------------------------------------------------------


def _quantity(value) -> float:
    """A Kubernetes quantity (``500m``, ``1``, ``512Mi``, ``1Gi``, ``1G``) as a number."""
    units = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    units |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value)).groups()
    return float(number) * units[unit]


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_all_manifests_together_break_no_policy():
    docs = [doc for name in MANIFESTS for doc in read_k8s(name)]
    assert manifests.policy_problems(docs, app_routes()) == []


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_liveness_never_depends_on_the_model():
    for name in DEPLOYMENTS:
        spec = container(name)
        live = spec["livenessProbe"]["httpGet"]["path"]
        assert live != "/ready", (
            f"{name}: a liveness probe on /ready restarts a pod whose model loads"
        )
        assert spec["livenessProbe"]["httpGet"]["path"] == spec["startupProbe"]["httpGet"]["path"]


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_limits_are_at_least_the_requests():
    for name in DEPLOYMENTS:
        resources = container(name)["resources"]
        for kind in ("cpu", "memory"):
            request = _quantity(resources["requests"][kind])
            limit = _quantity(resources["limits"][kind])
            assert 0 < request <= limit, (name, kind, request, limit)


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_the_canary_runs_the_same_pods_as_the_stable():
    stable, canary = (container(name) for name in DEPLOYMENTS)
    for key in ("startupProbe", "livenessProbe", "readinessProbe", "resources", "securityContext"):
        assert stable.get(key), f"the stable's container has no {key}"
        assert canary.get(key) == stable.get(key), f"the canary's {key} differs from the stable's"


# --- task 3: the canary analysis ---------------------------------------------------------------


def _counts(ok=100, errors=0, buckets=None, predictions=None) -> rollout.Counts:
    total = ok + errors
    return rollout.Counts(
        requests={"200": ok, "500": errors} if errors else {"200": ok},
        buckets=buckets or {0.01: total * 0.5, 0.05: total * 0.99, 0.1: total, INF: total},
        predictions=predictions or {"setosa": ok / 2, "virginica": ok / 2},
    )


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_delta_after_a_restart_and_with_new_keys():
    before = rollout.Counts({"200": 50.0}, {0.1: 50.0, INF: 50.0}, {"a": 50.0})
    after = rollout.Counts(
        {"200": 80.0, "503": 2.0}, {0.1: 81.0, INF: 82.0}, {"a": 60.0, "b": 20.0}
    )
    found = rollout.delta(before, after)
    assert found.requests == {"200": 30.0, "503": 2.0}
    assert found.buckets == {0.1: 31.0, INF: 32.0} and found.predictions == {"a": 10.0, "b": 20.0}
    restarted = rollout.Counts({"200": 5.0}, {0.1: 5.0, INF: 5.0}, {"a": 5.0})
    assert rollout.delta(after, restarted) == restarted, "a restart starts the counters again"
    assert rollout.error_rate(found) == pytest.approx(2 / 32)
    assert rollout.error_rate(rollout.Counts({"200": 9.0, "404": 1.0})) == 0.0, "only 5xx"


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_quantile_interpolates_in_the_right_bucket():
    counts = rollout.Counts(buckets={0.01: 50.0, 0.02: 90.0, 0.05: 100.0, INF: 100.0})
    assert rollout.quantile_ms(counts, 0.99) == pytest.approx(20 + 30 * 9 / 10)
    assert rollout.quantile_ms(counts, 0.5) == pytest.approx(10.0)
    assert rollout.quantile_ms(counts, 0.25) == pytest.approx(5.0)
    assert rollout.quantile_ms(counts, 0.7) == pytest.approx(15.0)
    slow = rollout.Counts(buckets={0.01: 10.0, 0.1: 90.0, INF: 100.0})
    assert rollout.quantile_ms(slow, 0.99) == pytest.approx(100.0), "+Inf: the largest bound"
    assert rollout.quantile_ms(rollout.Counts()) == 0.0


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_each_check_passes_at_its_limit_and_fails_beyond_it():
    policy = RolloutParams()
    stable = _counts(1000)
    assert rollout.check_traffic(_counts(20), stable, policy).passed
    assert not rollout.check_traffic(_counts(19), stable, policy).passed
    assert not rollout.check_traffic(stable, _counts(19), policy).passed
    assert rollout.check_errors(_counts(99, 1), stable, policy).passed  # 1 point more
    assert not rollout.check_errors(_counts(98, 2), stable, policy).passed
    assert rollout.check_errors(_counts(95, 5), _counts(95, 5), policy).passed
    assert rollout.check_predictions(
        _counts(100, predictions={"setosa": 60, "virginica": 40}), stable, policy
    ).passed
    assert not rollout.check_predictions(
        _counts(100, predictions={"setosa": 61, "virginica": 39}), stable, policy
    ).passed


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_the_latency_limit_is_the_larger_of_the_ratio_and_the_increase():
    policy = RolloutParams(max_p99_ratio=2.0, max_p99_increase_ms=25.0)  # 2 x, or 25 ms more

    def p99(ms):  # every request in one bucket (0, ms / 0.99]: the p99 is ms
        bound = ms / 0.99 / 1000
        return rollout.Counts({"200": 100.0}, {bound: 100.0, INF: 100.0}, {"a": 100.0})

    fast, slow = p99(10.0), p99(100.0)
    assert rollout.check_latency(p99(34.9), fast, policy).passed  # 35 ms: + 25 ms
    assert not rollout.check_latency(p99(35.2), fast, policy).passed
    assert rollout.check_latency(p99(199.5), slow, policy).passed  # 200 ms: 2 x
    assert not rollout.check_latency(p99(201.0), slow, policy).passed


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_too_little_traffic_is_judged_by_the_traffic_check_alone(counts):
    decision = rollout.decide(_counts(5, 5), counts["stable"], RolloutParams())
    assert [c.name for c in decision.checks] == ["traffic"] and not decision.allowed
    assert "5" in decision.checks[0].detail or "10" in decision.checks[0].detail
    strict = RolloutParams(max_distribution_distance=0.0, min_requests=30)
    good = rollout.decide(counts["good"], counts["stable"], strict)
    assert good.allowed, good.reasons  # identical shares pass even a zero limit


# --- task 5: the artefact store's CloudFormation template ------------------------------------

#: The objects under the artefact prefix: all a role may read (or, the tracking server, write).
UNDER_PREFIX = BUCKET_ARN + "/${ArtifactPrefix}/*"
#: What each role may do, and no more.
ACTIONS = {
    "ServingRole": {"s3:GetObject", "s3:ListBucket"},
    "TrackingServerRole": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"},
}


@pytest.mark.points(1)
@pytest.mark.task(5)
def test_each_role_is_scoped_to_the_artifact_prefix(template):
    for role, allowed in ACTIONS.items():
        statements = role_statements(template, role)
        assert all(s.get("Effect") == "Allow" for s in statements), role
        actions = {a for s in statements for a in as_list(s.get("Action", []))}
        assert actions == allowed, f"{role} allows {sorted(actions)}, expected {sorted(allowed)}"
        for statement in statements:
            resources = {arn_text(r) for r in as_list(statement.get("Resource", []))}
            if as_list(statement["Action"]) == ["s3:ListBucket"]:
                assert resources == {BUCKET_ARN}, (role, resources)
                assert statement.get("Condition") == {
                    "StringLike": {"s3:prefix": {"Fn::Sub": "${ArtifactPrefix}/*"}}
                }, f"{role} may list the whole bucket, not only the prefix"
            else:
                assert resources == {UNDER_PREFIX}, f"{role} reaches {resources} beyond the prefix"
    trust = resource(template, "ServingRole", "AWS::IAM::Role")["AssumeRolePolicyDocument"]
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ecs-tasks.amazonaws.com"}]


@pytest.mark.points(1)
@pytest.mark.task(5)
def test_the_bucket_policy_refuses_every_request_without_tls(template):
    policy = resource(template, "ArtifactBucketPolicy", "AWS::S3::BucketPolicy")
    assert policy.get("Bucket") == {"Ref": "ArtifactBucket"}
    denials = [
        s
        for s in as_list(policy["PolicyDocument"]["Statement"])
        if s.get("Effect") == "Deny"
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denials) == 1, "no (or more than one) statement denies requests without TLS"
    [deny] = denials
    assert deny["Principal"] in ("*", {"AWS": "*"}) and as_list(deny["Action"]) == ["s3:*"]
    resources = {arn_text(r) for r in as_list(deny["Resource"])}
    assert resources == {BUCKET_ARN, BUCKET_ARN + "/*"}, resources
    bucket = (template.get("Resources") or {})["ArtifactBucket"]
    assert bucket.get("DeletionPolicy") == bucket.get("UpdateReplacePolicy") == "Retain"
