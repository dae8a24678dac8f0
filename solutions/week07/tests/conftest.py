"""Shared fixtures of the week 7 component tests.

These tests import ``mlpipe`` as installed: in your checkout that is your own
``labs/mlpipe``, and the manifests they read are your own ``labs/k8s/``. Run them
with ``course check 7`` (or ``pytest labs/week07/tests``). Everything is in-process
and takes seconds: no server, container or cluster starts.

* Task 1 (``mlpipe.capacity``) plans from a real Locust run, committed as
  ``labs/week07/data/locust_stats.csv`` (Locust 2.47, 4 users, 10 s, one replica of
  the API on loopback).
* Task 2 (``labs/k8s/``) validates the manifests strictly against Kubernetes 1.33
  (``mlpipe.manifests``) and checks the course's policies against the serving
  app's real routes.
* Task 3 (``mlpipe.rollout``) reads ``/metrics`` pages written by the serving app's
  own metrics registry (``mlpipe.serve.Metrics``, what ``GET /metrics`` returns),
  fed with a step of a canary rollout: the stable backend, a healthy canary and a
  broken one (errors, slow, other predictions).
* Task 5 (``labs/infra/artifacts.yaml``) lints the CloudFormation template with
  cfn-lint (its Python API, every default rule) and reads it as CloudFormation data:
  the artefact bucket's protection and the least privilege of the roles.

The course's test kit (``autograder/testkit.py``) provides the markers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autograder import testkit

pytest_plugins = ("autograder.testkit",)

#: The functions each task asks for (a test of the task needs at least one of them).
#: While all of a task's functions are still the released stubs, the course's test
#: kit fails its tests at once, before their fixtures, saying which to write.
TASK_FUNCTIONS = {
    1: (
        "capacity.failure_ratio",
        "capacity.concurrency",
        "capacity.sustainable_rps",
        "capacity.replicas_needed",
        "capacity.replica_bounds",
    ),
    3: (
        "rollout.delta",
        "rollout.error_rate",
        "rollout.quantile_ms",
        "rollout.distribution_distance",
        "rollout.check_traffic",
        "rollout.check_errors",
        "rollout.check_latency",
        "rollout.check_predictions",
        "rollout.decide",
    ),
}

#: The folder holding the mlpipe package under test (labs/ or solutions/).
PIPELINE_DIR = testkit.pipeline_dir()
K8S = PIPELINE_DIR / "k8s"
#: The Locust run the plan is made from.
STATS = PIPELINE_DIR / "week07" / "data" / "locust_stats.csv"
#: The two Deployments of the API and the files that hold them.
DEPLOYMENTS = {"mlpipe-api": "api.yaml", "mlpipe-api-canary": "canary.yaml"}
MANIFESTS = ("api.yaml", "canary.yaml", "hpa.yaml", "pdb.yaml")
FEATURES = list(testkit.FEATURES)
LABELS = ("setosa", "versicolor", "virginica")


# --- task 2: the manifests -------------------------------------------------------------------


def app_routes() -> dict[str, set[str]]:
    """The serving app's routes, ``{path: methods}``, from its own router.

    ``mlpipe.manifests.app_routes`` builds the row model with week 5's
    ``row_schema``; before week 5 is done, the same router is built on a row model
    made here, so week 7 does not depend on it.
    """
    from mlpipe import manifests

    try:
        return manifests.app_routes()
    except NotImplementedError:
        from pydantic import create_model

        from mlpipe import serve

        row = create_model("Row", a=(float, ...))
        router = serve._routes(row, serve.batch_schema(row))
        return {route.path: set(route.methods) for route in router.routes}


def read_k8s(name: str) -> list[dict[str, Any]]:
    """The objects of ``k8s/<name>``, validated strictly (a ``ManifestError`` fails the test)."""
    from mlpipe import manifests

    try:
        return manifests.validate_file(K8S / name)
    except manifests.ManifestError as err:
        pytest.fail(f"k8s/{name} is not a valid manifest: {err}", pytrace=False)


def deployment(name: str) -> dict[str, Any]:
    """The Deployment ``name`` from its file."""
    found = [d for d in read_k8s(DEPLOYMENTS[name]) if d["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in found] == [name], (
        f"k8s/{DEPLOYMENTS[name]} must hold the Deployment {name} (do not rename it)"
    )
    return found[0]


def container(name: str) -> dict[str, Any]:
    """The one container of the Deployment ``name``."""
    containers = deployment(name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"Deployment/{name} must have exactly one container"
    return containers[0]


def problems_about(words: tuple[str, ...]) -> list[str]:
    """The course's policy problems of both Deployments that mention one of ``words``."""
    from mlpipe import manifests

    docs = [d for name in DEPLOYMENTS.values() for d in read_k8s(name)]
    return [p for p in manifests.policy_problems(docs, app_routes()) if any(w in p for w in words)]


def summary(problems: list[str]) -> str:
    """The first problem, and how many more there are (a report shows the first lines)."""
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more of the same kind)" if more else "")


# --- task 3: a step of a canary rollout, as the backends' /metrics pages say it ---------------


def backend(version: str, alias: str):
    """A fresh metrics registry of the serving app (``GET /metrics`` of one backend)."""
    from mlpipe import serve

    features = tuple((f, "double") for f in FEATURES)
    ref = serve.ModelRef("iris-classifier", alias, version, None, "", "", features)
    return serve.Metrics(ref)


def send(
    metrics, latency_ms: float, predictions: dict[str, int], errors: int = 0, seed: int = 7
) -> np.ndarray:
    """Record requests on ``metrics`` as the app does; return their latencies in seconds.

    One ``POST /predict`` per prediction (a 200) and ``errors`` more answered with
    a 500, in a shuffled order, with gamma-distributed latencies of mean
    ``latency_ms``; plus health checks and a scrape, which the analysis must not count.
    """
    rng = np.random.default_rng(seed)
    labels = [label for label, n in sorted(predictions.items()) for _ in range(n)]
    statuses = [200] * len(labels) + [500] * errors
    order = rng.permutation(len(statuses))
    seconds = rng.gamma(4.0, latency_ms / 4000.0, len(statuses))
    for i, index in enumerate(order):
        metrics.observe("POST", "/predict", statuses[index], float(seconds[i]))
        if statuses[index] == 200:
            metrics.count_predictions([labels[index]])
    for _ in range(3):
        metrics.observe("GET", "/health", 200, 0.0004)
    metrics.observe("GET", "/metrics", 200, 0.002)
    return seconds


def page(metrics) -> str:
    """The backend's ``/metrics`` page now."""
    return metrics.exposition().decode("utf-8")


def rollout_step() -> dict[str, Any]:
    """One 10 % step of a rollout: each backend's page before and after, and the latencies.

    The stable backend (v1) had answered 3,000 requests when the rollout began and
    answers 270 in the step; each canary starts fresh and answers 30: the healthy
    one (v2) like the stable, the broken one (v3) with 3 errors, three times slower
    and mostly ``virginica``.
    """
    stable = backend("1", "champion")
    send(stable, 8.0, {"setosa": 1000, "versicolor": 998, "virginica": 999}, errors=3, seed=1)
    before = {"stable": page(stable)}
    latencies = {"stable": send(stable, 8.0, dict.fromkeys(LABELS, 90), seed=2)}
    after = {"stable": page(stable)}
    for name, version, latency, predictions, errors in (
        ("good", "2", 9.0, dict.fromkeys(LABELS, 10), 0),
        ("bad", "3", 30.0, {"setosa": 3, "versicolor": 6, "virginica": 18}, 3),
    ):
        canary = backend(version, "challenger")
        before[name] = page(canary)
        latencies[name] = send(canary, latency, predictions, errors, seed=3)
        after[name] = page(canary)
    return {"before": before, "after": after, "latencies": latencies}


def bucket_of(seconds: np.ndarray, q: float = 0.99) -> tuple[float, float]:
    """The latency bucket ``(lower, upper]`` in ms that holds the ``q`` quantile's request."""
    from mlpipe import serve

    rank = max(1, math.ceil(q * len(seconds)))
    value = float(np.sort(seconds)[rank - 1])
    lower = 0.0
    for upper in serve.LATENCY_BUCKETS:
        if value <= upper:
            return lower * 1000, upper * 1000
        lower = upper
    return lower * 1000, math.inf


@pytest.fixture(scope="session")
def step() -> dict[str, Any]:
    return rollout_step()


@pytest.fixture(scope="session")
def counts(step) -> dict[str, Any]:
    """Each backend's counts in the step (``rollout.delta`` of its two pages)."""
    from mlpipe import rollout

    return {
        name: rollout.delta(
            rollout.parse_metrics(step["before"][name]), rollout.parse_metrics(step["after"][name])
        )
        for name in step["before"]
    }


# --- task 5: the artefact store's CloudFormation template ------------------------------------

#: The template under test.
TEMPLATE = PIPELINE_DIR / "infra" / "artifacts.yaml"
#: The two roles and what each may do with the artefacts (the tracking server's is given).
ROLES = ("TrackingServerRole", "ServingRole")
#: How a role's policy names the bucket (``!GetAtt ArtifactBucket.Arn``) and its objects.
BUCKET_ARN = "${ArtifactBucket.Arn}"


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """``infra/artifacts.yaml`` as data (``!Ref``, ``!GetAtt``, ``!Sub`` understood).

    cfn-lint must pass it first: a finding fails every test of the task, with the
    finding's line and rule.
    """
    from cfnlint.api import lint
    from cfnlint.decode.decode import decode_str

    text = TEMPLATE.read_text(encoding="utf-8") if TEMPLATE.is_file() else ""
    if not text.strip():
        pytest.fail("infra/artifacts.yaml is missing or empty", pytrace=False)
    findings = [f"line {m.linenumber} {m.rule.id}: {m.message}" for m in lint(text)]
    if findings:
        pytest.fail(f"cfn-lint rejects infra/artifacts.yaml: {summary(findings)}", pytrace=False)
    decoded, errors = decode_str(text)
    if errors or not isinstance(decoded, dict):
        pytest.fail("infra/artifacts.yaml is not a CloudFormation template", pytrace=False)
    return decoded


def resource(template: dict[str, Any], name: str, kind: str) -> dict[str, Any]:
    """The ``Properties`` of the resource ``name``, which must be of type ``kind``."""
    found = (template.get("Resources") or {}).get(name) or {}
    assert found.get("Type") == kind, (
        f"infra/artifacts.yaml must keep the resource {name} of type {kind} (do not rename it)"
    )
    return found.get("Properties") or {}


def as_list(value: Any) -> list[Any]:
    """A policy's ``Action`` or ``Resource``: one value or a list of them, as a list."""
    return value if isinstance(value, list) else [value]


def arn_text(value: Any) -> str:
    """A policy's resource as the text of its ARN (``!GetAtt X.Arn`` -> ``${X.Arn}``)."""
    if isinstance(value, dict) and list(value) == ["Fn::GetAtt"]:
        target = value["Fn::GetAtt"]
        return "${" + (".".join(target) if isinstance(target, list) else str(target)) + "}"
    if isinstance(value, dict) and list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"]
    return value if isinstance(value, str) else repr(value)


def role_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """Every statement of the role's inline policies (it must attach no managed policy)."""
    props = resource(template, role, "AWS::IAM::Role")
    assert not props.get("ManagedPolicyArns"), (
        f"{role} attaches managed policies ({props['ManagedPolicyArns']}): grant exactly what it "
        "needs in its own Policies instead"
    )
    return [
        s for p in props.get("Policies") or [] for s in as_list(p["PolicyDocument"]["Statement"])
    ]


def privilege_problems(role: str, statement: dict[str, Any]) -> list[str]:
    """What makes one statement of a role broader than the artefacts need, one sentence each."""
    problems = []
    if statement.get("Effect") != "Allow":
        return problems
    for key in ("NotAction", "NotResource"):
        if key in statement:
            problems.append(f"{role} allows with {key}: everything but a list is far too much")
    for action in as_list(statement.get("Action", [])):
        if "*" in str(action):
            problems.append(f"{role} allows the action {action!r}: name each s3 action it needs")
    for value in as_list(statement.get("Resource", [])):
        arn = arn_text(value)
        if arn != BUCKET_ARN and not arn.startswith(BUCKET_ARN + "/"):
            problems.append(
                f"{role} allows {arn!r}: its resources must be the artefact bucket's ARN "
                f'(!GetAtt ArtifactBucket.Arn) or objects under it (!Sub "{BUCKET_ARN}/...")'
            )
    return problems


__all__ = ["LABELS", "MANIFESTS", "ROLES", "STATS", "Path"]
