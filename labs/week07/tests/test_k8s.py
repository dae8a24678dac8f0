"""Visible component tests of week 7, task 2: the Kubernetes manifests of ``labs/k8s/``."""

import pytest
from conftest import DEPLOYMENTS, app_routes, container, problems_about, read_k8s, summary

from autograder import testkit
from mlpipe.config import CapacityParams, load_params

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_every_probe_asks_an_endpoint_the_app_serves():
    routes = app_routes()
    for name in DEPLOYMENTS:
        spec = container(name)
        ports = {p.get("name") for p in spec.get("ports", [])} | {
            p.get("containerPort") for p in spec.get("ports", [])
        }
        for probe in PROBES:
            get = (spec.get(probe) or {}).get("httpGet")
            assert get, f"Deployment/{name}'s container has no {probe} with httpGet"
            path = get.get("path")
            assert "GET" in routes.get(path, set()), (
                f"Deployment/{name}'s {probe} asks {path}, which the app has no GET for "
                f"(its GET routes: {', '.join(sorted(p for p, m in routes.items() if 'GET' in m))})"
            )
            assert get.get("port") in ports, (
                f"Deployment/{name}'s {probe} asks port {get.get('port')}, not a container port"
            )
        ready = spec["readinessProbe"]["httpGet"]["path"]
        assert ready == "/ready", (
            f"Deployment/{name}'s readinessProbe asks {ready}: a pod must get traffic only once "
            "its model is loaded, and one endpoint of the app says exactly that"
        )


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_every_container_has_requests_and_limits():
    problems = problems_about(("requests", "limits"))
    assert not problems, (
        "every container needs requests and limits of cpu and memory (the HPA measures CPU "
        f"against the request): {summary(problems)}"
    )


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_every_container_runs_locked_down():
    problems = problems_about(("runAsNonRoot", "uid", "readOnlyRootFilesystem", "Privilege", "ALL"))
    assert not problems, f"every container's securityContext must lock it down: {summary(problems)}"


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_the_hpa_scales_on_the_planned_cpu_utilisation():
    [hpa] = read_k8s("hpa.yaml")
    params = load_params(testkit.pipeline_dir() / "params.yaml", "capacity", CapacityParams)
    expected = round(params.utilisation * 100)
    metrics = hpa["spec"].get("metrics") or []
    targets = [
        (m.get("resource") or {}).get("target")
        for m in metrics
        if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu"
    ]
    assert targets, "k8s/hpa.yaml has no Resource metric on cpu (spec.metrics)"
    assert targets == [{"type": "Utilization", "averageUtilization": expected}], (
        f"k8s/hpa.yaml's cpu target is {targets}, expected Utilization at {expected} % "
        "(capacity.utilisation of params.yaml, the share the plan runs each replica at)"
    )
