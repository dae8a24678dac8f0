"""The Kubernetes manifests of week 7 (``solutions/k8s/``) and their checks (``mlpipe.manifests``).

No cluster runs here: every object is validated strictly against Kubernetes 1.33's
schema (kubernetes-validate, in-process), and the course's policies are checked
against the serving app's real routes and image. Broken copies show that a
wrong type, an unknown field and each policy breach are caught.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from conftest import SOLUTIONS

from autograder.testkit import dockerfile_instructions
from mlpipe import manifests, serve
from mlpipe.config import CapacityParams, load_params

K8S = SOLUTIONS / "k8s"
FILES = ("api.yaml", "canary.yaml", "hpa.yaml", "pdb.yaml")
IMAGE = "localhost/mlpipe-serve:0.1.0"


@pytest.fixture(scope="module")
def docs() -> dict[str, list[dict]]:
    """Every file's objects, each validated strictly once."""
    return {name: manifests.validate_file(K8S / name, "1.33") for name in FILES}


def objects(docs: dict[str, list[dict]]) -> list[dict]:
    return [doc for name in FILES for doc in docs[name]]


def find(docs: dict[str, list[dict]], kind: str, name: str) -> dict:
    [found] = [d for d in objects(docs) if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def containers(deployment: dict) -> list[dict]:
    return deployment["spec"]["template"]["spec"]["containers"]


def test_the_folder_holds_exactly_the_contracted_files():
    assert sorted(p.name for p in K8S.glob("*.yaml")) == sorted(FILES)


def test_every_object_is_valid_kubernetes_1_33_strictly(docs):
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in objects(docs))
    assert kinds == [
        "ConfigMap/mlpipe-api-config",
        "Deployment/mlpipe-api",
        "Deployment/mlpipe-api-canary",
        "HorizontalPodAutoscaler/mlpipe-api",
        "PodDisruptionBudget/mlpipe-api",
        "Service/mlpipe-api",
    ]


def test_the_names_match_the_contract_between_branches(docs):
    stable = find(docs, "Deployment", "mlpipe-api")
    canary = find(docs, "Deployment", "mlpipe-api-canary")
    assert stable["spec"]["template"]["metadata"]["labels"] == {
        "app": "mlpipe-api",
        "track": "stable",
    }
    assert canary["spec"]["template"]["metadata"]["labels"] == {
        "app": "mlpipe-api",
        "track": "canary",
    }
    for deployment in (stable, canary):
        [container] = containers(deployment)
        assert container["image"] == IMAGE
        assert [p["containerPort"] for p in container["ports"]] == [8000]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    service = find(docs, "Service", "mlpipe-api")
    assert service["spec"]["selector"] == {"app": "mlpipe-api"}
    [port] = service["spec"]["ports"]
    assert port["port"] == 8000 and port["targetPort"] in (8000, "http")


def test_every_policy_holds_against_the_apps_real_routes(docs):
    routes = manifests.app_routes()
    assert {"/health", "/ready", "/predict"} <= routes.keys()
    assert manifests.policy_problems(objects(docs), routes) == []


def test_the_probes_ask_get_routes_the_app_has(docs):
    routes = manifests.app_routes()
    for name in ("mlpipe-api", "mlpipe-api-canary"):
        for container in containers(find(docs, "Deployment", name)):
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                path = container[probe]["httpGet"]["path"]
                assert "GET" in routes[path], f"{name} {probe} {path}"


def test_the_containers_run_as_the_images_user_and_the_dockerfiles_command(docs):
    dockerfile = SOLUTIONS / "docker" / "serve.Dockerfile"
    users = [args for word, args in dockerfile_instructions(dockerfile) if word == "USER"]
    cmd = [args for word, args in dockerfile_instructions(dockerfile) if word == "CMD"]
    for name in ("mlpipe-api", "mlpipe-api-canary"):
        deployment = find(docs, "Deployment", name)
        pod = deployment["spec"]["template"]["spec"]
        assert str(pod["securityContext"]["runAsUser"]) == users[-1] == str(manifests.APP_UID)
        [container] = containers(deployment)
        assert container["command"] == yaml.safe_load(cmd[-1])


def test_the_app_writes_only_to_empty_dirs_and_reads_its_settings_from_the_config_map(docs):
    config = find(docs, "ConfigMap", "mlpipe-api-config")["data"]
    fields = {f"MLPIPE_SERVE_{name.upper()}" for name in serve.Settings.model_fields}
    assert set(config) <= fields, set(config) - fields
    serve.load_settings(**{k.removeprefix("MLPIPE_SERVE_").lower(): v for k, v in config.items()})
    log_dir = str(Path(config["MLPIPE_SERVE_INFERENCE_LOG"]).parent)
    for name in ("mlpipe-api", "mlpipe-api-canary"):
        pod = find(docs, "Deployment", name)["spec"]["template"]["spec"]
        empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        [container] = pod["containers"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts.get(log_dir) in empty and mounts.get("/tmp") in empty
        assert container["envFrom"] == [{"configMapRef": {"name": "mlpipe-api-config"}}]


def test_the_canary_serves_the_challenger_and_the_stable_track_the_champion(docs):
    config = find(docs, "ConfigMap", "mlpipe-api-config")["data"]
    assert config["MLPIPE_SERVE_MODEL_ALIAS"] == "champion"
    canary = find(docs, "Deployment", "mlpipe-api-canary")
    stable = find(docs, "Deployment", "mlpipe-api")
    assert manifests.container_env(canary)["MLPIPE_SERVE_MODEL_ALIAS"] == "challenger"
    assert "MLPIPE_SERVE_MODEL_ALIAS" not in manifests.container_env(stable)
    assert canary["spec"]["replicas"] < stable["spec"]["replicas"]


def test_the_hpa_scales_the_stable_deployment_on_the_planned_cpu_target(docs):
    hpa = find(docs, "HorizontalPodAutoscaler", "mlpipe-api")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "mlpipe-api",
    }
    params = load_params(SOLUTIONS / "params.yaml", "capacity", CapacityParams)
    [metric] = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": round(params.utilisation * 100),
    }
    assert params.min_replicas <= hpa["minReplicas"] <= hpa["maxReplicas"]
    budget = find(docs, "PodDisruptionBudget", "mlpipe-api")["spec"]
    assert budget["minAvailable"] < hpa["minReplicas"]  # a drain can always go on
    assert budget["selector"]["matchLabels"] == {"app": "mlpipe-api", "track": "stable"}


# --- bad manifests -----------------------------------------------------------------------------


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = (K8S / "api.yaml").read_text(encoding="utf-8")
    assert text.count(old) == 1
    path = tmp_path / "api.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_a_wrong_type_names_the_file_the_object_and_the_field(tmp_path):
    path = broken_copy(tmp_path, "containerPort: 8000", "containerPort: eight-thousand")
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.validate_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: Deployment/mlpipe-api is not valid Kubernetes 1.33: ")
    assert "at spec.template.spec.containers.0.ports.0.containerPort: " in message
    assert "'eight-thousand' is not of type 'integer'" in message
    assert "\n" not in message


def test_an_unknown_field_is_an_error_under_strict_validation(tmp_path):
    path = broken_copy(tmp_path, "readinessProbe:", "readinessprobe:")
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.validate_file(path)
    message = str(caught.value)
    assert f"{path}: Deployment/mlpipe-api" in message
    assert "at spec.template.spec.containers.0: " in message
    assert "'readinessprobe' was unexpected" in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: [1", "is not valid YAML at line 1"),
        ("- just\n- a list\n", "Document 1 of"),
        ("apiVersion: v1\nkind: Gadget\nmetadata: {name: x}\n", "Couldn't find schema for kind"),
    ],
)
def test_a_file_that_is_not_a_manifest_is_one_sentence(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(manifests.ManifestError, match=words):
        manifests.validate_file(path)
    with pytest.raises(manifests.ManifestError, match="does not exist"):
        manifests.validate_file(tmp_path / "missing.yaml")


def _container(doc: dict) -> dict:
    return containers(doc)[0]


BREACHES = {
    "no readiness probe": (
        lambda d: _container(d).pop("readinessProbe"),
        "has no readinessProbe with httpGet",
    ),
    "a probe on a route the app lacks": (
        lambda d: _container(d)["livenessProbe"]["httpGet"].update(path="/healthz"),
        "asks /healthz, which the app has no GET for",
    ),
    "a probe on a POST route": (
        lambda d: _container(d)["readinessProbe"]["httpGet"].update(path="/predict"),
        "asks /predict, which the app has no GET for",
    ),
    "a probe on another port": (
        lambda d: _container(d)["livenessProbe"]["httpGet"].update(port=9000),
        "port 9000 is not a container port",
    ),
    "no limits": (lambda d: _container(d)["resources"].pop("limits"), "has no limits for cpu"),
    "no memory request": (
        lambda d: _container(d)["resources"]["requests"].pop("memory"),
        "has no requests for memory",
    ),
    "root": (
        lambda d: (
            d["spec"]["template"]["spec"]["securityContext"].update(runAsNonRoot=False)
            or _container(d)["securityContext"].pop("runAsNonRoot")
        ),
        "does not set runAsNonRoot: true",
    ),
    "a writable root": (
        lambda d: _container(d)["securityContext"].update(readOnlyRootFilesystem=False),
        "does not set readOnlyRootFilesystem: true",
    ),
    "privilege escalation": (
        lambda d: _container(d)["securityContext"].pop("allowPrivilegeEscalation"),
        "does not set allowPrivilegeEscalation: false",
    ),
    "capabilities kept": (
        lambda d: _container(d)["securityContext"].pop("capabilities"),
        "does not drop ALL capabilities",
    ),
    "latest": (
        lambda d: _container(d).update(image="localhost/mlpipe-serve:latest"),
        "needs a version tag (not latest)",
    ),
    "untagged": (
        lambda d: _container(d).update(image="localhost:5000/mlpipe-serve"),
        "needs a version tag (not latest)",
    ),
}


@pytest.mark.parametrize("breach", BREACHES, ids=list(BREACHES))
def test_each_policy_breach_is_found(docs, breach):
    change, words = BREACHES[breach]
    broken = copy.deepcopy(objects(docs))
    canary = next(d for d in broken if d["metadata"]["name"] == "mlpipe-api-canary")
    change(canary)
    problems = manifests.policy_problems(broken)
    assert len(problems) == 1 and words in problems[0], problems
    assert problems[0].startswith("Deployment/mlpipe-api-canary container api")


@pytest.mark.parametrize(
    ("kind", "change", "words"),
    [
        ("Service", lambda s: s["selector"].update(app="mlpipe"), "selects the pods of no"),
        (
            "PodDisruptionBudget",
            lambda s: s["selector"]["matchLabels"].update(track="blue"),
            "selects the pods of no",
        ),
        ("HorizontalPodAutoscaler", lambda s: s["scaleTargetRef"].update(name="api"), "scales"),
        ("HorizontalPodAutoscaler", lambda s: s.update(minReplicas=1), "minReplicas < 2"),
    ],
)
def test_a_service_budget_or_hpa_that_misses_the_deployment_is_found(docs, kind, change, words):
    broken = copy.deepcopy(objects(docs))
    change(next(d for d in broken if d["kind"] == kind)["spec"])
    problems = manifests.policy_problems(broken)
    assert len(problems) == 1 and words in problems[0], problems
