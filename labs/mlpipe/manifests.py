"""Week 7: check the Kubernetes manifests of ``k8s/`` without a cluster.

Two kinds of checks, both in-process:

* :func:`validate_file`: every document against Kubernetes' own OpenAPI schema
  for one version (:data:`KUBERNETES_VERSION`), strictly, so an unknown field
  (a typo such as ``readinessprobe``) is an error, as ``kubectl apply
  --validate=strict`` would make it; the sentence names the file, the object
  and the field;
* :func:`policy_problems`: the course's rules, which a valid manifest can still
  break: probes on endpoints the app really has, requests and limits, a
  non-root user, a read-only root file system, no privilege escalation, no
  ``latest`` image, a Service, HPA and PodDisruptionBudget that point at the
  Deployment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

#: The Kubernetes version the manifests are validated against.
KUBERNETES_VERSION = "1.33"
#: The uid the serving image runs as (``USER 10001`` in ``docker/serve.Dockerfile``).
APP_UID = 10001


class ManifestError(ValueError):
    """A manifest that cannot be used; the message is one sentence."""


def read_manifests(path: str | Path) -> list[dict[str, Any]]:
    """The documents of one YAML manifest file (empty documents skipped).

    Raises:
        ManifestError: When the file is missing, is not YAML, or holds a document
            that is not a Kubernetes object (a mapping with ``apiVersion`` and ``kind``).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"The manifest {path} does not exist.")
    try:
        docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ManifestError(f"The manifest {path} is not valid YAML{line}.") from None
    for number, doc in enumerate(docs, 1):
        if not isinstance(doc, dict) or not {"apiVersion", "kind"} <= doc.keys():
            raise ManifestError(
                f"Document {number} of {path} is not a Kubernetes object "
                "(a mapping with apiVersion and kind)."
            )
    return docs


def name_of(doc: dict[str, Any]) -> str:
    """``Kind/name`` of one object, as ``kubectl`` names it."""
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name', '?')}"


def validate_document(doc: dict[str, Any], where: str, version: str = KUBERNETES_VERSION) -> None:
    """Validate one object strictly against Kubernetes ``version``'s schema.

    Args:
        doc: The object.
        where: The file it came from (named in the error).
        version: The Kubernetes version, e.g. ``"1.33"``.

    Raises:
        ManifestError: For a wrong type, a missing required field, an unknown
            field or an unknown kind, in one sentence naming the field.
    """
    import kubernetes_validate as kv

    try:
        kv.validate(doc, version, strict=True)
    except kv.ValidationError as err:
        field = ".".join(str(part) for part in err.path) or "(top level)"
        raise ManifestError(
            f"{where}: {name_of(doc)} is not valid Kubernetes {version}: at {field}: {err.message}."
        ) from None
    except kv.SchemaNotFoundError as err:
        raise ManifestError(f"{where}: {err.message}.") from None


def validate_file(path: str | Path, version: str = KUBERNETES_VERSION) -> list[dict[str, Any]]:
    """Read a manifest file and validate every object in it strictly.

    Returns:
        The objects.

    Raises:
        ManifestError: For the first object that is not valid.
    """
    docs = read_manifests(path)
    for doc in docs:
        validate_document(doc, str(path), version)
    return docs


def app_routes() -> dict[str, set[str]]:
    """The serving app's routes, ``{path: methods}``, from its router (no model needed)."""
    from mlpipe import serve

    features = tuple((name, "double") for name in ("a", "b"))
    row = serve.row_schema(features)
    router = serve._routes(row, serve.batch_schema(row))
    return {route.path: set(route.methods) for route in router.routes}


def _of_kind(docs: Iterable[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    return (doc for doc in docs if doc.get("kind") == kind)


def _container_problems(
    where: str, pod: dict[str, Any], container: dict[str, Any], routes: dict[str, set[str]]
) -> list[str]:
    """What one container of a pod template breaks of the course's rules."""
    name = f"{where} container {container.get('name')}"
    problems = []
    ports = {p.get("containerPort") for p in container.get("ports", [])}
    ports |= {p.get("name") for p in container.get("ports", []) if p.get("name")}
    for probe in ("livenessProbe", "readinessProbe"):
        get = (container.get(probe) or {}).get("httpGet")
        if not get:
            problems.append(f"{name} has no {probe} with httpGet")
        elif "GET" not in routes.get(get.get("path"), set()):
            problems.append(
                f"{name}'s {probe} asks {get.get('path')}, which the app has no GET for"
            )
        elif get.get("port") not in ports:
            problems.append(f"{name}'s {probe} port {get.get('port')} is not a container port")
    resources = container.get("resources") or {}
    for kind in ("requests", "limits"):
        missing = [r for r in ("cpu", "memory") if r not in (resources.get(kind) or {})]
        if missing:
            problems.append(f"{name} has no {kind} for {' and '.join(missing)}")
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if "@" not in image and tag in ("", "latest"):
        problems.append(f"{name}'s image {image!r} needs a version tag (not latest)")
    pod_security = pod.get("securityContext") or {}
    security = container.get("securityContext") or {}

    def setting(key: str) -> Any:
        return security.get(key, pod_security.get(key))

    if setting("runAsNonRoot") is not True:
        problems.append(f"{name} does not set runAsNonRoot: true")
    if setting("runAsUser") not in (None, APP_UID):
        problems.append(f"{name} runs as uid {setting('runAsUser')}, not the image's {APP_UID}")
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{name} does not set readOnlyRootFilesystem: true")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{name} does not set allowPrivilegeEscalation: false")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{name} does not drop ALL capabilities")
    return problems


def policy_problems(
    docs: list[dict[str, Any]], routes: dict[str, set[str]] | None = None
) -> list[str]:
    """Every rule of the course that a set of (valid) objects breaks, one sentence each.

    Args:
        docs: The objects of ``k8s/`` together (the Service, HPA and budget are
            checked against the Deployments among them).
        routes: The app's routes (default: :func:`app_routes`).

    Returns:
        The problems; empty when every rule holds.
    """
    routes = app_routes() if routes is None else routes
    problems: list[str] = []
    deployments = {doc["metadata"]["name"]: doc for doc in _of_kind(docs, "Deployment")}
    for name, deployment in deployments.items():
        template = deployment["spec"]["template"]
        pod = template.get("spec") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        selector = deployment["spec"]["selector"].get("matchLabels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"Deployment/{name}'s selector does not match its pod labels")
        for container in pod.get("containers", []):
            problems += _container_problems(f"Deployment/{name}", pod, container, routes)
    pod_labels = {
        name: (d["spec"]["template"].get("metadata") or {}).get("labels") or {}
        for name, d in deployments.items()
    }

    def selects(selector: dict[str, str]) -> list[str]:
        return [n for n, labels in pod_labels.items() if selector.items() <= labels.items()]

    for service in _of_kind(docs, "Service"):
        if not selects(service["spec"].get("selector") or {}):
            problems.append(f"{name_of(service)} selects the pods of no Deployment")
    for budget in _of_kind(docs, "PodDisruptionBudget"):
        if not selects(budget["spec"].get("selector", {}).get("matchLabels") or {}):
            problems.append(f"{name_of(budget)} selects the pods of no Deployment")
    for hpa in _of_kind(docs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
            problems.append(
                f"{name_of(hpa)} scales {ref.get('kind')}/{ref.get('name')}, no Deployment here"
            )
        if hpa["spec"].get("minReplicas", 1) < 2:
            problems.append(f"{name_of(hpa)} lets the API go down to one replica (minReplicas < 2)")
    return problems


def container_env(deployment: dict[str, Any], container: int = 0) -> dict[str, str]:
    """The ``env`` values (not ``envFrom``) of one container of a Deployment."""
    spec = deployment["spec"]["template"]["spec"]["containers"][container]
    return {item["name"]: item.get("value", "") for item in spec.get("env", [])}
