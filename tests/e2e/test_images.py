"""Week 7: the week 1 and week 5 images, built and run with real podman.

Fast tier: ``scripts/podman-setup.sh`` reads the Debian mirror from apt's configuration
(one-line and deb822 files) and never overwrites a different ``containers.conf`` silently.

Slow tier (``make images`` must have run: it builds ``localhost/mlpipe-train:0.1.0`` and
``localhost/mlpipe-serve:0.1.0`` after ``make podman-setup``):

* the training container writes ``model.joblib`` and ``metadata.json`` into a mounted
  folder, as its non-root user; the host loads the model and it predicts;
* the serving image is under 1 GB, runs as a non-root user and keeps its HEALTHCHECK
  (``--format docker``);
* the serving container, published on ``127.0.0.1`` only, pulls the model from an MLflow
  server on the host and answers ``/health``, ``/ready`` and a real ``/predict``;
* ``podman kube play`` runs ``solutions/k8s/api.yaml`` (ConfigMap, Deployment, Service):
  every replica's pod answers ``/ready`` and predicts at its pod address (as the Service
  would reach it); ``podman kube down`` removes them.

The MLflow server listens on the gateway address of podman's bridge network (the host's
side of the bridge, ``10.88.0.1`` by default), which only this machine and its containers
reach: a container's ``127.0.0.1`` is its own.

Without a usable podman these tests skip with one sentence; containers and pods are
removed afterwards, whatever happens.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SOLUTIONS

from autograder.testkit import (
    FEATURES,
    create_store,
    free_port,
    iris_frame,
    pipeline_env,
    register_model,
    stop_process,
    wait_http,
)

SETUP = REPO / "scripts" / "podman-setup.sh"
VERSION = "0.1.0"
TRAIN_IMAGE = f"localhost/mlpipe-train:{VERSION}"
SERVE_IMAGE = f"localhost/mlpipe-serve:{VERSION}"
MANIFEST = SOLUTIONS / "k8s" / "api.yaml"
MODEL = "iris-classifier"
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
#: podman's log line for a HEALTHCHECK without systemd (harmless, dropped).
NO_SYSTEMD = "unable to get systemd connection"


def setup_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``scripts/podman-setup.sh ARGS`` with extra environment variables."""
    return subprocess.run(
        ["bash", str(SETUP), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


# --- fast: the set-up script's parts that need no root -------------------------------------


def test_mirror_comes_from_deb822_sources_and_skips_what_apt_ignores(tmp_path):
    listd = tmp_path / "sources.list.d"
    listd.mkdir()
    (listd / "off.list.disabled").write_text("deb http://wrong.example/debian bookworm main\n")
    (listd / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://off.example/debian\nSuites: bookworm\n"
        "Enabled: no\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\n\n"
        "Types: deb\nURIs: https://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/example.gpg\n"
    )
    proc = setup_script("--mirror", APT_ETC=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "https://mirror.example/debian",
        "/usr/share/keyrings/example.gpg",
    ]


def test_mirror_from_a_one_line_list_with_options(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/etc/apt/k.gpg] http://one.example/debian bookworm main\n"
    )
    proc = setup_script("--mirror", APT_ETC=str(tmp_path))
    assert proc.stdout.split() == ["http://one.example/debian", "/etc/apt/k.gpg"], proc.stderr


def test_no_debian_mirror_is_one_sentence_and_exit_2(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://archive.example/ubuntu noble main\n")
    proc = setup_script("--mirror", APT_ETC=str(tmp_path))
    assert proc.returncode == 2
    assert "no Debian mirror" in proc.stderr and "bookworm" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_containers_conf_is_written_once_and_a_different_one_is_kept(tmp_path):
    conf = tmp_path / "containers.conf"
    first = setup_script("--config", CONTAINERS_CONF=str(conf))
    assert first.returncode == 0, first.stderr
    text = conf.read_text()
    for line in ('runtime = "runc"', 'cgroup_manager = "cgroupfs"', '"nofile=1024:1024"'):
        assert line in text
    again = setup_script("--config", CONTAINERS_CONF=str(conf))
    assert "already" in again.stdout and conf.read_text() == text

    conf.write_text('[engine]\nruntime = "crun"\n')
    refused = setup_script("--config", CONTAINERS_CONF=str(conf))
    assert refused.returncode == 2 and "PODMAN_SETUP_FORCE=1" in refused.stderr
    assert conf.read_text() == '[engine]\nruntime = "crun"\n', "a different file was overwritten"

    forced = setup_script("--config", CONTAINERS_CONF=str(conf), PODMAN_SETUP_FORCE="1")
    assert forced.returncode == 0 and conf.read_text() == text
    backups = list(tmp_path.glob("containers.conf.bak.*"))
    assert [b.read_text() for b in backups] == ['[engine]\nruntime = "crun"\n']


# --- slow: real images, containers and pods --------------------------------------------------


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``podman ARGS``; fail with its output when ``check`` and it exits non-zero.

    podman logs an error line about systemd for every container with a HEALTHCHECK (it
    cannot add the check's timer without systemd); those lines are dropped from stderr.
    """
    __tracebackhide__ = True
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    proc.stderr = "\n".join(line for line in proc.stderr.splitlines() if NO_SYSTEMD not in line)
    if check and proc.returncode != 0:
        pytest.fail(f"`podman {' '.join(args)}` exited with {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def images():
    """The two images, after checking that podman is usable; else skip (no podman) or fail."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (make podman-setup installs it, on Debian, as root).")
    info = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.skip(f"podman does not run here: {info.stderr.strip().splitlines()[-1:]}")
    for image in (TRAIN_IMAGE, SERVE_IMAGE):
        if podman("image", "exists", image, check=False).returncode != 0:
            pytest.fail(f"the image {image} does not exist: run `make images` first.")
    return TRAIN_IMAGE, SERVE_IMAGE


def run_name(kind: str) -> str:
    """A container name of this test run (removed in the test's ``finally``)."""
    return f"mlpipe-e2e-{kind}-{uuid.uuid4().hex[:8]}"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_training_container_writes_the_model_into_a_mounted_folder(images, tmp_path):
    import joblib

    from mlpipe import train

    models = tmp_path / "models"
    models.mkdir()
    models.chmod(0o777)  # the image's user (uid 10001) writes here
    name = run_name("train")
    try:
        proc = podman("run", "--name", name, "-v", f"{models}:/app/models", TRAIN_IMAGE)
        assert "model saved to models/iris-classifier/model.joblib" in proc.stdout
    finally:
        podman("rm", "-f", "--ignore", name, check=False)
    assert podman("container", "exists", name, check=False).returncode == 1

    out = models / MODEL
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "model.joblib"]
    assert (out / "model.joblib").stat().st_uid == 10001, "the image trains as its non-root user"
    meta = json.loads((out / "metadata.json").read_text())
    params = yaml.safe_load((SOLUTIONS / "params.yaml").read_text())["train"]
    assert meta["params"] == params
    assert meta["data_fingerprint"] == train.fingerprint(train.load_data())
    assert meta["metrics"]["accuracy"] >= 0.9
    assert meta["versions"]["python"].startswith("3.11.")
    import sklearn

    assert meta["versions"]["scikit-learn"] == sklearn.__version__, "the image follows the lock"
    assert meta["git_commit"] is None, "an image holds no git checkout"

    model = joblib.load(out / "model.joblib")
    df = iris_frame()
    assert (model.predict(df[list(FEATURES)]) == df["species"]).mean() > 0.9


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_serving_image_is_small_non_root_with_a_healthcheck(images):
    (info,) = json.loads(podman("image", "inspect", SERVE_IMAGE).stdout)
    assert info["Size"] < 1e9, f"the serving image is {info['Size'] / 1e6:.0f} MB, over 1 GB"
    config = info["Config"]
    assert config["User"] == "10001"
    assert "/health" in " ".join(info["Healthcheck"]["Test"]), "built without --format docker?"
    assert config["ExposedPorts"] == {"8000/tcp": {}}


def bridge_gateway() -> str:
    """The host's address on podman's default bridge network, brought up if need be.

    The bridge appears with the first container on it and stays: a throwaway container
    brings it up on a machine that has run none yet.
    """
    __tracebackhide__ = True
    (network,) = json.loads(podman("network", "inspect", "podman").stdout)
    gateway = network["subnets"][0]["gateway"]
    for attempt in range(2):
        with socket.socket() as sock:
            try:
                sock.bind((gateway, 0))
                return gateway
            except OSError:
                if attempt == 0:
                    podman("run", "--rm", "--entrypoint", "true", SERVE_IMAGE)
    pytest.fail(f"podman's bridge network has no interface with its gateway {gateway}.")


@pytest.fixture(scope="module")
def registry(images, tmp_path_factory):
    """An MLflow server for the containers, whose registry holds the Iris model as ``champion``.

    It listens on the bridge's gateway (:func:`bridge_gateway`). Its artefacts are files
    under the store's folder, which the containers mount at the same path (read-only): the
    model version's source is that path.

    Yields:
        ``(store folder, the server's URL)``.
    """
    home = tmp_path_factory.mktemp("registry")
    create_store(home)
    register_model(home, MODEL, "champion")
    home.chmod(0o755)
    host, port = bridge_gateway(), free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow), "server", "--host", host, "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}"]
    output = home / "mlflow-server.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=home, env=pipeline_env(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_http(f"http://{host}:{port}/health", proc, output, 300)
        yield home, f"http://{host}:{port}"
    finally:
        stop_process(proc)


def http(url: str, body: dict | None = None) -> tuple[int, dict]:
    """GET (or POST ``body`` as JSON to) ``url``; return the status and the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, {}


def wait_ready(url: str, alive, seconds: float = 240) -> None:
    """Poll ``url`` until it answers 200, while ``alive()`` says the server still runs."""
    __tracebackhide__ = True
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if http(url)[0] == 200:
                return
        assert alive(), f"the server behind {url} stopped before it was ready"
        time.sleep(0.5)
    pytest.fail(f"{url} was not ready in {seconds:g} s")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_serving_container_answers_health_ready_and_predict(registry):
    home, mlflow_url = registry
    port = free_port()
    name = run_name("serve")
    try:
        podman(
            "run", "--detach", "--name", name,
            "--publish", f"127.0.0.1:{port}:8000", "--volume", f"{home}:{home}:ro",
            "--env", f"MLPIPE_SERVE_TRACKING_URI={mlflow_url}",
            "--health-interval", "disable", SERVE_IMAGE,
        )  # fmt: skip

        def alive() -> bool:
            state = podman("inspect", "--format", "{{.State.Running}}", name, check=False)
            if state.stdout.strip() != "true":
                logs = podman("logs", name, check=False)
                pytest.fail(f"the serving container stopped; its log:\n{logs.stdout}{logs.stderr}")
            return True

        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/ready", alive)
        assert http(f"{base}/health") == (200, {"status": "ok"})
        status, ready = http(f"{base}/ready")
        assert status == 200 and ready["model_name"] == MODEL and ready["model_version"] == "1"
        status, answer = http(f"{base}/predict", SETOSA)
        assert status == 200 and answer["prediction"] == "setosa", answer
        status, _ = http(f"{base}/predict", {**SETOSA, "petal_width": "wide"})
        assert status == 422, "a bad row is refused"
        # The image's own HEALTHCHECK (kept by --format docker) passes inside the container.
        assert podman("healthcheck", "run", name, check=False).returncode == 0
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        log = podman("exec", name, "cat", "/app/logs/inference.jsonl").stdout.splitlines()
        records = [json.loads(line) for line in log]
        assert [(r["output"], r["request_id"]) for r in records] == [
            ("setosa", answer["request_id"])
        ]
    finally:
        podman("rm", "-f", "--ignore", name, check=False)
    assert podman("container", "exists", name, check=False).returncode == 1


def play_copy(manifest: Path, home: Path, mlflow_url: str, suffix: str) -> tuple[Path, dict]:
    """A copy of ``manifest`` for this machine; returns its path and its Deployment.

    What a cluster would provide, the copy points at the test's own: the ConfigMap's
    tracking URI at the test's MLflow server, and a read-only hostPath volume with the
    registry's artefact files (at the path the model version names). The Deployment's
    name gets a suffix, so that its pods cannot clash with anyone's.

    The containers' ``ports`` go: podman 4.3 (Debian 12) publishes every ``containerPort``
    on the host's 0.0.0.0 (fixed in podman 4.7), so a second replica could not start
    and the API would listen on every interface. In Kubernetes they are informative;
    the test reaches each pod at its own address, as the Service would. Everything else
    (replicas, probes, limits, security context) is the manifest's own.
    """
    docs = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
    kinds = [doc["kind"] for doc in docs]
    assert {"ConfigMap", "Deployment", "Service"} <= set(kinds), kinds
    (config,) = [doc for doc in docs if doc["kind"] == "ConfigMap"]
    config["data"]["MLPIPE_SERVE_TRACKING_URI"] = mlflow_url
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    original = copy.deepcopy(deployment)
    deployment["metadata"]["name"] += suffix
    original["metadata"]["name"] = deployment["metadata"]["name"]
    spec = deployment["spec"]["template"]["spec"]
    spec.setdefault("volumes", []).append(
        {"name": "registry", "hostPath": {"path": str(home), "type": "Directory"}}
    )
    for container in spec["containers"]:
        mount = {"name": "registry", "mountPath": str(home), "readOnly": True}
        container.setdefault("volumeMounts", []).append(mount)
        container.pop("ports", None)
    path = home.parent / f"play{suffix}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path, original


def quantity(text: str) -> int:
    """A Kubernetes memory quantity (``512Mi``, ``1Gi``, ``1000000``) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def pod_address(pod: str) -> str:
    """The IP address of ``pod`` (its infra container holds the pod's network).

    ``kube play`` puts pods on a bridge network of its own, ``podman-default-kube-network``.
    """
    __tracebackhide__ = True
    infra = podman("pod", "inspect", "--format", "{{.InfraContainerID}}", pod).stdout.strip()
    (info,) = json.loads(podman("inspect", infra).stdout)
    addresses = [net["IPAddress"] for net in info["NetworkSettings"]["Networks"].values()]
    addresses = [address for address in addresses if address]
    assert addresses, f"the pod {pod} has no IP address"
    return addresses[0]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kube_play_runs_the_deployment_and_its_pods_get_ready(registry):
    if not MANIFEST.exists():
        pytest.skip(f"{MANIFEST.relative_to(REPO)} does not exist yet (branch w7-capacity).")
    home, mlflow_url = registry
    suffix = f"-e2e{uuid.uuid4().hex[:6]}"
    played, deployment = play_copy(MANIFEST, home, mlflow_url, suffix)
    template = deployment["spec"]["template"]["spec"]
    # kube play makes one pod per replica, <deployment>-pod-<i>, its containers <pod>-<name>.
    pods = [
        f"{deployment['metadata']['name']}-pod-{i}" for i in range(deployment["spec"]["replicas"])
    ]
    (api,) = template["containers"]
    containers = [f"{pod}-{api['name']}" for pod in pods]
    (port,) = [p["containerPort"] for p in api["ports"]]
    # Its emptyDir volumes become named podman volumes (shared by the replicas).
    empty_dirs = {v["name"] for v in template.get("volumes", []) if "emptyDir" in v}
    volumes_before = set(podman("volume", "ls", "--quiet").stdout.split())
    try:
        podman("kube", "play", str(played), timeout=300)
        for pod, container in zip(pods, containers, strict=True):
            base = f"http://{pod_address(pod)}:{port}"

            def alive(container: str = container) -> bool:
                state = podman("inspect", "--format", "{{.State.Status}}", container, check=False)
                return state.stdout.strip() in ("running", "created", "configured")

            wait_ready(f"{base}/ready", alive, 300)
            status, ready = http(f"{base}/ready")
            assert status == 200 and ready["model_name"] == MODEL
            status, answer = http(f"{base}/predict", SETOSA)
            assert status == 200 and answer["prediction"] == "setosa", answer
            (info,) = json.loads(podman("inspect", container).stdout)
            limits = api["resources"]["limits"]
            assert info["HostConfig"]["Memory"] == quantity(limits["memory"])
            assert info["HostConfig"]["ReadonlyRootfs"] is True
            assert info["Config"]["User"].split(":")[0] == "10001"
    finally:
        podman("kube", "down", str(played), check=False, timeout=300)
        left = set(podman("volume", "ls", "--quiet", check=False).stdout.split())
        for volume in (left & empty_dirs) - volumes_before:
            podman("volume", "rm", "--force", volume, check=False)
    for pod in pods:
        assert podman("pod", "exists", pod, check=False).returncode == 1, f"{pod} is left"
