"""Week 7's infrastructure as code: ``infra/artifacts.yaml`` and ``python -m mlpipe infra``.

Fast tier (in-process): cfn-lint's Python API passes the template and fails a broken copy
with its own message; bad input is one sentence and exit 2. The security rules the template
encodes are week 7's lab task 5 (``solutions/week07/tests/test_infra.py`` and the hidden
tests), graded both ways on this template by ``tests/e2e/test_both_ways.py``.

Slow tier: a real ``moto_server`` on 127.0.0.1 (fake credentials) is the cloud.
``infra deploy`` creates the stack, whose bucket and roles then really exist in moto;
a template the service rejects and a stack that fails are one sentence; then the whole
chain: stack -> ``mlflow server`` keeping its artefacts in the stack's bucket -> a model
logged and registered as ``champion`` through it -> its files are objects in moto's S3
-> ``python -m mlpipe serve`` loads the champion from that server and answers ``/predict``.

What moto 5.2 emulates, and so what the slow tests check: the stack and its status, the
bucket, its default encryption (``BucketEncryption``; objects then report ``AES256``),
its tags, ``DeletionPolicy: Retain``, the IAM roles with their trust and inline policies,
the outputs (``Ref``, ``Fn::GetAtt``, ``Fn::Sub``).
What moto does NOT emulate, so only the lab's tests of the template check it:
``VersioningConfiguration`` and ``PublicAccessBlockConfiguration`` and ``OwnershipControls``
are ignored (the bucket reports no versioning, no public access block, no ownership
controls); ``AWS::S3::BucketPolicy`` is not a resource moto's CloudFormation knows (it is
skipped with a warning: no bucket policy, so the TLS-only rule is not there); IAM policies
are stored, never enforced (any fake credentials may do anything); a failed resource fails
the ``CreateStack`` call itself instead of leaving a ``ROLLBACK_COMPLETE`` stack with events
(the rollback path is tested with a stub client, the one place without a local equivalent);
``ValidateTemplate`` runs cfn-lint inside moto rather than AWS's own parser.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import SOLUTIONS

from autograder.testkit import free_port, iris_frame, pipeline_env, stop_process, tool, wait_http
from mlpipe import cloud
from mlpipe.__main__ import main
from mlpipe.config import InfraParams, ParamsError

TEMPLATE = SOLUTIONS / "infra" / "artifacts.yaml"
#: Fake credentials: a moto server accepts any.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "NO_PROXY": "127.0.0.1,localhost",
}


def one_sentence(err: str) -> str:
    """The single ``error: ...`` line a user error prints (no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def fake_aws(monkeypatch):
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in FAKE_AWS.items():
        monkeypatch.setenv(name, value)


# --- fast: the template under cfn-lint --------------------------------------------------------


def test_the_template_passes_cfn_lint():
    assert cloud.lint_template(TEMPLATE) == []


def test_a_broken_copy_fails_with_the_linters_message(tmp_path, capsys):
    broken = tmp_path / "artifacts.yaml"
    text = TEMPLATE.read_text(encoding="utf-8")
    assert "SSEAlgorithm: AES256" in text
    broken.write_text(text.replace("SSEAlgorithm: AES256", "SSEAlgorithm: AES-256"))
    findings = cloud.lint_template(broken)
    assert len(findings) == 1 and "'AES-256' is not one of" in findings[0], findings
    assert main(["infra", "lint", "--template", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "'AES-256' is not one of" in out and "1 findings" in out


def test_the_command_line_says_a_clean_template_is_clean(capsys):
    assert main(["infra", "lint"]) == 0
    assert "is clean" in capsys.readouterr().out


# --- what the template promises (moto does not enforce most of it) ----------------------------
# The bucket's encryption, versioning, public access block and Retain policies, the TLS-only
# bucket policy and the least privilege of both roles are week 7's lab task 5, graded by
# solutions/week07/tests/test_infra.py and the hidden tests; tests/e2e/test_both_ways.py runs
# them on this template (full marks) and on the released stubs (none).


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# --- fast: bad input is one sentence, exit 2 ------------------------------------------------


def test_an_unreachable_endpoint_is_one_sentence(fake_aws, capsys):
    endpoint = f"http://127.0.0.1:{free_port()}"
    assert main(["infra", "deploy", "--endpoint", endpoint]) == 2
    line = one_sentence(capsys.readouterr().err)
    assert line == f"error: Cannot reach the endpoint {endpoint} ([Errno 111] Connection refused)."


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["deploy"], "infra deploy needs --endpoint"),
        (["delete", "--endpoint", "127.0.0.1:5000"], "is not an address such as"),
        (["deploy", "--endpoint", "http://127.0.0.1:9", "--template", "missing.yaml"],
         "missing.yaml does not exist"),
        (["deploy", "--endpoint", "http://127.0.0.1:9", "--stack", "bad_name!"],
         "infra.stack must start with a letter"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_sentence(fake_aws, tmp_path, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLPIPE_HOME", str(tmp_path))
    assert main(["infra", *args]) == 2
    assert expected in one_sentence(capsys.readouterr().err)


def test_an_empty_template_is_refused_before_the_service_is_asked(tmp_path):
    (tmp_path / "empty.yaml").write_text("\n")
    with pytest.raises(cloud.CloudError, match=r"empty\.yaml is empty\.$"):
        cloud.deploy("http://127.0.0.1:9", InfraParams(), tmp_path / "empty.yaml")


def test_missing_credentials_are_one_sentence(monkeypatch, capsys):
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["infra", "deploy", "--endpoint", f"http://127.0.0.1:{free_port()}"]) == 2
    assert "No AWS credentials were found" in one_sentence(capsys.readouterr().err)


def test_infra_params_are_checked():
    with pytest.raises(ParamsError, match="infra.artifact_prefix"):
        InfraParams(artifact_prefix="MLflow/")
    with pytest.raises(ParamsError, match="infra.timeout"):
        InfraParams(timeout=0)


# --- fast: waiting for a stack (a stub: moto never leaves a stack ROLLBACK_COMPLETE) -----------


class StubStacks:
    """Answers ``describe_stacks`` with the given statuses in turn, as a real service would.

    moto fails ``CreateStack`` itself when a resource fails, so a stack that rolls back
    (AWS's behaviour) has no local equivalent: this stub is the one mock of the file.
    """

    def __init__(self, statuses: list[str], events: list[dict] | None = None):
        self.statuses, self.events = list(statuses), events or []

    def describe_stacks(self, StackName: str) -> dict:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {"Stacks": [{"StackName": StackName, "StackStatus": status}]}

    def describe_stack_events(self, StackName: str) -> dict:
        return {"StackEvents": self.events}


def test_a_stack_that_rolls_back_names_the_first_failure():
    events = [  # newest first, as CloudFormation lists them
        {"LogicalResourceId": "s", "ResourceStatus": "ROLLBACK_COMPLETE"},
        {"LogicalResourceId": "ServingRole", "ResourceStatus": "CREATE_FAILED",
         "ResourceStatusReason": "Resource creation cancelled"},
        {"LogicalResourceId": "ArtifactBucket", "ResourceStatus": "CREATE_FAILED",
         "ResourceStatusReason": "taken already exists"},
    ]  # fmt: skip
    stub = StubStacks(["CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"], events)
    stub.meta = type("Meta", (), {"endpoint_url": "http://stub"})()
    with pytest.raises(cloud.CloudError) as err:
        cloud.wait_until(stub, "s", {"CREATE_COMPLETE"}, 10, 0, sleep=lambda _: None)
    assert str(err.value) == (
        "The stack 's' ended in ROLLBACK_COMPLETE (ArtifactBucket: taken already exists)."
    )


def test_a_stack_that_stays_in_progress_times_out():
    stub = StubStacks(["CREATE_IN_PROGRESS"])
    stub.meta = type("Meta", (), {"endpoint_url": "http://stub"})()
    with pytest.raises(cloud.CloudError, match=r"still CREATE_IN_PROGRESS after 0\.05 s"):
        cloud.wait_until(stub, "s", {"CREATE_COMPLETE"}, 0.05, 0.01)


# --- slow: a real moto server -----------------------------------------------------------------


def aws_env(**extra: str) -> dict[str, str]:
    """The environment of a process that talks to moto: fake credentials, nothing real."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLPIPE_SERVE_"))}
    return pipeline_env(base, **FAKE_AWS, **extra)


def start(cmd: list[str], cwd: Path, env: dict[str, str], name: str):
    """Start a server in its own process group, its output in ``cwd/name.out``."""
    output = cwd / f"{name}.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return proc, output


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """A real moto server on 127.0.0.1 (S3, IAM, CloudFormation), stopped afterwards."""
    where = tmp_path_factory.mktemp("moto")
    port = free_port()
    started = time.monotonic()
    cmd = [tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    proc, output = start(cmd, where, aws_env(), "moto")
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(f"{endpoint}/moto-api/data.json", proc, output, 120)
        yield {"endpoint": endpoint, "startup": time.monotonic() - started}
    finally:
        stop_process(proc)


def boto(service: str, endpoint: str):
    """A boto3 client of moto with explicit fake keys (this process's environment has none)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def infra(*args: str, cwd: Path, timeout: float = 420) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mlpipe", "infra", *args]
    env = aws_env(MLPIPE_HOME=str(cwd))
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def deployed(moto: dict, stack: str, cwd: Path) -> dict:
    """Deploy the course's template as ``stack``; return the outputs it printed to --out."""
    proc = infra("deploy", "--endpoint", moto["endpoint"], "--stack", stack, "--out", "out.json",
                 cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"stack {stack} created: CREATE_COMPLETE" in proc.stdout
    result = json.loads((cwd / "out.json").read_text(encoding="utf-8"))
    assert result["status"] == "CREATE_COMPLETE"
    return result["outputs"]


def inline_policy(iam, arn: str) -> tuple[str, dict]:
    name = arn.rsplit("/", 1)[1]
    [policy] = iam.list_role_policies(RoleName=name)["PolicyNames"]
    document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
    if isinstance(document, str):  # moto hands back what it stored, JSON or a repr
        import ast

        document = json.loads(document) if document.startswith('{"') else ast.literal_eval(document)
    return name, document


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_deploy_creates_the_bucket_and_roles_and_delete_keeps_the_bucket(moto, tmp_path):
    outputs = deployed(moto, "infra-test", tmp_path)
    bucket = outputs["BucketName"]
    assert outputs["ArtifactRoot"] == f"s3://{bucket}/mlflow"
    s3, iam = boto("s3", moto["endpoint"]), boto("iam", moto["endpoint"])
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert {"Key": "project", "Value": "mlpipe"} in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    role, document = inline_policy(iam, outputs["ServingRoleArn"])
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    assert "ecs-tasks.amazonaws.com" in json.dumps(trust)
    granted = {
        (a, json.dumps(s["Resource"])) for s in document["Statement"] for a in as_list(s["Action"])
    }
    assert granted == {
        ("s3:GetObject", json.dumps(f"arn:aws:s3:::{bucket}/mlflow/*")),
        ("s3:ListBucket", json.dumps(f"arn:aws:s3:::{bucket}")),
    }
    _, writer = inline_policy(iam, outputs["TrackingServerRoleArn"])
    assert "s3:PutObject" in json.dumps(writer) and f"{bucket}/mlflow/*" in json.dumps(writer)

    again = infra("deploy", "--endpoint", moto["endpoint"], "--stack", "infra-test", cwd=tmp_path)
    assert again.returncode == 0 and "stack infra-test unchanged" in again.stdout, again.stderr

    gone = infra("delete", "--endpoint", moto["endpoint"], "--stack", "infra-test", cwd=tmp_path)
    assert gone.returncode == 0 and "DELETE_COMPLETE" in gone.stdout, gone.stdout + gone.stderr
    cf = boto("cloudformation", moto["endpoint"])
    assert "infra-test" not in [s["StackName"] for s in cf.describe_stacks()["Stacks"]]
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]  # DeletionPolicy: Retain
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"]]
    assert role not in roles
    twice = infra("delete", "--endpoint", moto["endpoint"], "--stack", "infra-test", cwd=tmp_path)
    assert twice.returncode == 2
    assert "There is no stack 'infra-test'" in one_sentence(twice.stderr)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_template_the_service_rejects_is_one_sentence(moto, tmp_path):
    (tmp_path / "bad.yaml").write_text("Resources:\n  Bucket: [unclosed\n", encoding="utf-8")
    proc = infra("deploy", "--endpoint", moto["endpoint"], "--template", "bad.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = one_sentence(proc.stderr)
    assert f"The service at {moto['endpoint']} refused to accept the template bad.yaml" in line


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_stack_that_fails_is_one_sentence_and_leaves_no_stack(moto, tmp_path):
    s3 = boto("s3", moto["endpoint"])
    s3.create_bucket(Bucket="taken-by-someone-else")
    text = TEMPLATE.read_text(encoding="utf-8").replace(
        "\n      BucketEncryption:\n",
        "\n      BucketName: taken-by-someone-else\n      BucketEncryption:\n",
    )
    assert "BucketName: taken-by-someone-else" in text
    (tmp_path / "taken.yaml").write_text(text, encoding="utf-8")
    proc = infra("deploy", "--endpoint", moto["endpoint"], "--stack", "taken",
                 "--template", "taken.yaml", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = one_sentence(proc.stderr)
    assert "refused to create stack 'taken'" in line and "bucket name is not available" in line
    cf = boto("cloudformation", moto["endpoint"])
    assert "taken" not in [s["StackName"] for s in cf.describe_stacks()["Stacks"]]


# --- slow: the chain -------------------------------------------------------------------------


def post_json(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def log_and_register(tracking: str) -> tuple[str, str]:
    """Train, log (through the server) and register a model as ``champion``; return run, version.

    With the project's own week 1 and week 3 code (``mlpipe.train``, ``mlpipe.track``).
    """
    import mlflow

    from mlpipe import track, train
    from mlpipe.config import TrackParams, TrainParams

    params = TrainParams()
    try:
        track.connect(TrackParams(tracking_uri=tracking, experiment="cloud"))
        df = iris_frame()
        X_train, X_test, y_train, y_test = train.split_data(df, params.test_size, params.seed)
        model = train.build_pipeline(params).fit(X_train, y_train)
        metrics = train.evaluate(model, X_test, y_test)
        with mlflow.start_run(run_name="cloud") as run:
            tags = {"data_fingerprint": train.fingerprint(df), "git_commit": None}
            uri = track.log_training_run(model, params, metrics, X_test.head(3), tags)
        version = track.register(params.model_name, uri, run.info.run_id, "week 7 cloud chain")
        mlflow.MlflowClient().set_registered_model_alias(
            params.model_name, "champion", version.version
        )
        return run.info.run_id, str(version.version)
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.pop("MLFLOW_REGISTRY_URI", None)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_champion_is_served_from_artifacts_in_the_stacks_bucket(moto, tmp_path):
    timings = {"moto server up (s)": moto["startup"]}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = time.monotonic() - clock
        clock = time.monotonic()

    outputs = deployed(moto, "chain", tmp_path)
    lap("stack deployed")
    bucket, root = outputs["BucketName"], outputs["ArtifactRoot"]
    s3 = boto("s3", moto["endpoint"])
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    server_dir, project = tmp_path / "mlflow-server", tmp_path / "project"
    server_dir.mkdir()
    project.mkdir()
    tracking_port, api_port = free_port(), free_port()
    tracking = f"http://127.0.0.1:{tracking_port}"
    server_env = aws_env(
        MLFLOW_S3_ENDPOINT_URL=moto["endpoint"], MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"
    )
    mlflow_cmd = [
        tool("mlflow"), "server", "--backend-store-uri", f"sqlite:///{server_dir / 'mlflow.db'}",
        "--artifacts-destination", root, "--host", "127.0.0.1", "--port", str(tracking_port),
        "--workers", "1",
    ]  # fmt: skip
    procs = []
    try:
        server, server_out = start(mlflow_cmd, server_dir, server_env, "mlflow")
        procs.append(server)
        wait_http(f"{tracking}/health", server, server_out, 300)
        lap("mlflow server up")

        run_id, version = log_and_register(tracking)
        lap("model logged and registered")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        models = [k for k in keys if k.endswith("/MLmodel")]
        assert len(models) == 1 and models[0].startswith("mlflow/"), keys
        folder = models[0].rsplit("/", 1)[0]
        assert f"{folder}/model.skops" in keys or f"{folder}/model.pkl" in keys, keys
        assert any(k.endswith("/confusion_matrix.png") and run_id in k for k in keys), keys
        head = s3.head_object(Bucket=bucket, Key=models[0])
        assert head["ServerSideEncryption"] == "AES256"  # the bucket's default encryption
        local = [p for p in server_dir.rglob("*") if p.name in {"MLmodel", "model.skops"}]
        assert local == [], f"the server kept artefacts on its disk: {local}"

        api_env = {
            k: v for k, v in pipeline_env().items() if not k.startswith(("AWS_", "MLPIPE_SERVE_"))
        }
        api_env.update(MLPIPE_HOME=str(project), MLPIPE_SERVE_TRACKING_URI=tracking)
        api_cmd = [sys.executable, "-m", "mlpipe", "serve", "--port", str(api_port)]
        api, api_out = start(api_cmd, project, api_env, "api")  # no AWS credentials at all
        procs.append(api)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_http(f"{api_url}/ready", api, api_out, 300)
        lap("API ready")
        status, answer = post_json(
            f"{api_url}/predict",
            {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
        )
        assert status == 200 and answer["prediction"] == "setosa", answer
        assert answer["model_version"] == version
        with urllib.request.urlopen(f"{api_url}/metadata", timeout=30) as response:
            meta = json.loads(response.read())
        assert meta["run_id"] == run_id and meta["model_alias"] == "champion", meta
        lap("prediction answered")
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        print("chain timings:", ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
