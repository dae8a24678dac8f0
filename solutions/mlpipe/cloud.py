"""Week 7: infrastructure as code. The artefact store of MLflow as a CloudFormation stack.

``infra/artifacts.yaml`` (beside this package) describes an S3 bucket for MLflow's
artefacts (encrypted, versioned, never public, TLS only) and least-privilege IAM roles.
This module lints it with cfn-lint and deploys or deletes it with boto3, against any
CloudFormation endpoint: in the course, a moto server on loopback
(``moto_server -H 127.0.0.1 -p 5000``) with fake credentials
(``AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing``).

* :func:`lint_template`: cfn-lint's findings, one line each.
* :func:`deploy`: validate the template on the service, create the stack (or update
  it), wait until it is complete and return its outputs.
* :func:`delete`: delete the stack and wait until it is gone.

Every problem the user can fix (an unreachable endpoint, missing credentials, a
template the service rejects, a stack that fails) is a :class:`CloudError` whose
message is one sentence; ``python -m mlpipe infra`` prints it and exits with 2.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpipe.config import InfraParams, project_dir
from mlpipe.errors import PipelineError

#: The course's template, beside the package (``solutions/infra`` or ``labs/infra``).
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[1] / "infra" / "artifacts.yaml"
#: What IAM resources without a fixed name need (``CAPABILITY_NAMED_IAM`` is never asked for).
CAPABILITIES = ["CAPABILITY_IAM"]
#: The statuses a stack can be updated from.
UPDATABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}


class CloudError(PipelineError, RuntimeError):
    """A cloud problem the user can fix; the message is one sentence."""


@dataclass(frozen=True)
class StackResult:
    """What a deployment left.

    Attributes:
        stack: The stack's name.
        action: ``created``, ``updated``, ``unchanged`` or ``deleted``.
        status: Its final status, e.g. ``CREATE_COMPLETE``.
        outputs: The template's outputs, ``OutputKey -> OutputValue``.
        seconds: How long the deployment took, waiting included.
    """

    stack: str
    action: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


# --- the template ---------------------------------------------------------------------------


def template_path(path: str | Path | None) -> Path:
    """The template to use: ``path`` (relative to the project folder), else the course's."""
    if path is None:
        return DEFAULT_TEMPLATE
    path = Path(path)
    return path if path.is_absolute() else project_dir() / path


def read_template(path: str | Path | None) -> str:
    """Read a template's text.

    Raises:
        CloudError: When the file is missing or empty.
    """
    where = template_path(path)
    if not where.is_file():
        raise CloudError(f"The template {where} does not exist.")
    text = where.read_text(encoding="utf-8")
    if not text.strip():
        raise CloudError(f"The template {where} is empty.")
    return text


def lint_template(path: str | Path | None = None) -> list[str]:
    """Run cfn-lint (its Python API, all default rules) on a template.

    Returns:
        One line per finding, ``LINE:COLUMN RULE message`` (an empty list: clean).

    Raises:
        CloudError: When the file is missing or empty.
    """
    from cfnlint.api import lint

    matches = lint(read_template(path))
    return [f"{m.linenumber}:{m.columnnumber} {m.rule.id} {m.message}" for m in matches]


# --- talking to the service -----------------------------------------------------------------


def client(service: str, endpoint: str, region: str, timeout: float = 60.0) -> Any:
    """A boto3 client of ``service`` at ``endpoint``: no retries, answers within ``timeout`` s.

    Credentials come from the usual places (``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY`` for a moto server).

    Raises:
        CloudError: When ``endpoint`` is not an HTTP(S) address.
    """
    if not re.match(r"^https?://[^/\s]+", endpoint or ""):
        raise CloudError(
            f"The endpoint '{endpoint}' is not an address such as http://127.0.0.1:5000."
        )
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=min(timeout, 5.0),
        read_timeout=timeout,
        retries={"max_attempts": 1, "mode": "standard"},
    )
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name=region, config=config
    )


def service_message(err: Exception, unwrap: bool = False) -> str:
    """The service's own message of a ``ClientError``, as one line without a final stop.

    Args:
        unwrap: Undo moto's wrapping of a ``ValidateTemplate`` refusal, which reads
            ``Stack with id <cfn-lint's finding> does not exist``: the finding alone
            is what the user needs.
    """
    message = str(getattr(err, "response", {}).get("Error", {}).get("Message") or err)
    found = re.fullmatch(r"Stack with id (.+) does not exist", message.strip(), re.S)
    text = found.group(1) if unwrap and found else message
    return " ".join(text.split()).rstrip(".")


def call(cf: Any, operation: str, what: str, **kwargs: Any) -> dict[str, Any]:
    """Call one operation of a client and turn every failure into one sentence.

    Args:
        cf: The boto3 client.
        operation: The method's name, e.g. ``"create_stack"``.
        what: What the call does, for the message (``"create stack 'x'"``).
        **kwargs: The operation's arguments.

    Raises:
        CloudError: Unreachable endpoint, no credentials, an answer that is not the
            service's, or the service's refusal (with its message).
    """
    try:
        return getattr(cf, operation)(**kwargs)
    except Exception as err:
        raise as_cloud_error(err, str(cf.meta.endpoint_url), what, operation) from None


def as_cloud_error(err: Exception, endpoint: str, what: str, operation: str = "") -> Exception:
    """The one-sentence :class:`CloudError` of a botocore failure (anything else: ``err``)."""
    from botocore import exceptions as bx
    from botocore.parsers import ResponseParserError

    if isinstance(err, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        reason = str(getattr(err, "kwargs", {}).get("error") or err)
        errno = re.search(r"\[Errno -?\d+\][^)'\"]*", reason)
        reason = errno.group(0).strip() if errno else reason
        return CloudError(f"Cannot reach the endpoint {endpoint} ({_short(reason)}).")
    if isinstance(err, bx.ReadTimeoutError):
        return CloudError(f"The endpoint {endpoint} did not answer in time to {what}.")
    if isinstance(err, bx.NoCredentialsError | bx.PartialCredentialsError):
        return CloudError(
            "No AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(any values do for a moto server)."
        )
    if isinstance(err, bx.ClientError):
        message = service_message(err, unwrap=operation == "validate_template")
        return CloudError(f"The service at {endpoint} refused to {what}: {message}.")
    if isinstance(err, bx.BotoCoreError | ResponseParserError):
        return CloudError(
            f"The endpoint {endpoint} did not answer like an AWS service when asked to {what} "
            f"({_short(err)})."
        )
    return err


def _short(reason: object, limit: int = 160) -> str:
    text = " ".join(str(reason).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- stacks ---------------------------------------------------------------------------------


def stack_info(cf: Any, stack: str) -> dict[str, Any] | None:
    """The stack's description, or ``None`` when there is no such stack.

    Raises:
        CloudError: When the service cannot be asked.
    """
    try:
        found = call(cf, "describe_stacks", f"describe stack '{stack}'", StackName=stack)
    except CloudError as err:
        if str(err).endswith(f"Stack with id {stack} does not exist."):
            return None
        raise
    return found["Stacks"][0] if found.get("Stacks") else None


def failure_reason(cf: Any, stack: str) -> str:
    """The first reason a resource of the stack gave for failing, from its events."""
    try:
        events = cf.describe_stack_events(StackName=stack)["StackEvents"]
    except Exception:  # the reason is a courtesy; the failure is reported anyway
        return "no reason given"
    for event in reversed(events):  # oldest first: the first failure is the cause
        if event.get("ResourceStatus", "").endswith("FAILED") and event.get("ResourceStatusReason"):
            return f"{event['LogicalResourceId']}: {event['ResourceStatusReason']}"
    return "no reason given"


def wait_until(
    cf: Any,
    stack: str,
    done: set[str],
    timeout: float,
    poll: float,
    gone_is_done: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll the stack until its status is one of ``done``.

    Args:
        gone_is_done: A stack that no longer exists counts as done (a deletion).

    Returns:
        The final status (``DELETE_COMPLETE`` for a stack that is gone).

    Raises:
        CloudError: When the stack ends in another status (with the first failure's
            reason), disappears, or is still in progress after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        info = stack_info(cf, stack)
        if info is None:
            if gone_is_done:
                return "DELETE_COMPLETE"
            raise CloudError(f"The stack '{stack}' disappeared while it was being deployed.")
        status = info["StackStatus"]
        if status in done:
            return status
        if not status.endswith("_IN_PROGRESS"):
            raise CloudError(
                f"The stack '{stack}' ended in {status} ({failure_reason(cf, stack)})."
            )
        if time.monotonic() > deadline:
            raise CloudError(
                f"The stack '{stack}' was still {status} after {timeout:g} s (infra.timeout)."
            )
        sleep(poll)


def stack_parameters(text: str, params: InfraParams) -> list[dict[str, str]]:
    """The template's parameters this stage sets: ``ArtifactPrefix``, when it declares one."""
    if not re.search(r"^\s+ArtifactPrefix:\s*$", text, re.M):
        return []
    return [{"ParameterKey": "ArtifactPrefix", "ParameterValue": params.artifact_prefix}]


def outputs_of(info: dict[str, Any]) -> dict[str, str]:
    """A stack description's outputs, ``OutputKey -> OutputValue``."""
    return {out["OutputKey"]: out["OutputValue"] for out in info.get("Outputs") or []}


def _create(cf: Any, stack: str, body: dict[str, Any]) -> None:
    """Create the stack; remove what a refused creation left behind.

    A real CloudFormation rolls a failed creation back by itself. moto fails the
    ``CreateStack`` call instead (e.g. ``BucketAlreadyExists``) and keeps the stack
    ``CREATE_IN_PROGRESS`` for ever; describing it then fails (HTTP 500) while its
    outputs cannot be resolved, which would block every later deployment: that stack
    is deleted here (never one that existed before: ``AlreadyExists``).
    """
    try:
        call(cf, "create_stack", f"create stack '{stack}'", **body)
    except CloudError as err:
        if "AlreadyExists" not in str(err) and stack in _stacks_in_progress(cf):
            call(cf, "delete_stack", f"delete stack '{stack}'", StackName=stack)
        raise


def _stacks_in_progress(cf: Any) -> set[str]:
    """The names of the stacks being created (``ListStacks`` works where describing fails)."""
    names: set[str] = set()
    kwargs: dict[str, Any] = {"StackStatusFilter": ["CREATE_IN_PROGRESS"]}
    while True:
        page = call(cf, "list_stacks", "list the stacks", **kwargs)
        names |= {
            summary["StackName"]
            for summary in page.get("StackSummaries", [])
            if summary.get("StackStatus") == "CREATE_IN_PROGRESS"
        }
        if not page.get("NextToken"):
            return names
        kwargs["NextToken"] = page["NextToken"]


def _update(cf: Any, stack: str, body: dict[str, Any]) -> bool:
    """Update the stack; ``False`` when CloudFormation says nothing changed."""
    try:
        call(cf, "update_stack", f"update stack '{stack}'", **body)
    except CloudError as err:
        if "No updates are to be performed" in str(err):
            return False
        raise
    return True


def deploy(endpoint: str, params: InfraParams, template: str | Path | None = None) -> StackResult:
    """Deploy the template as stack ``params.stack`` and wait until it is complete.

    The service validates the template first (``ValidateTemplate``); a missing stack is
    created, an existing one updated (nothing to update is fine).

    Returns:
        The :class:`StackResult`: final status and outputs.

    Raises:
        CloudError: For a missing template, an unreachable endpoint, a template the
            service rejects, a stack that fails or is stuck in a state it cannot be
            updated from (it must be deleted first), or a timeout.
    """
    started = time.monotonic()
    text = read_template(template)
    cf = client("cloudformation", endpoint, params.region, params.timeout)
    name = template_path(template).name
    call(cf, "validate_template", f"accept the template {name}", TemplateBody=text)
    body = {
        "StackName": params.stack,
        "TemplateBody": text,
        "Parameters": stack_parameters(text, params),
        "Capabilities": CAPABILITIES,
    }
    existing = stack_info(cf, params.stack)
    if existing is None:
        _create(cf, params.stack, body)
        action, done = "created", {"CREATE_COMPLETE"}
    elif existing["StackStatus"] in UPDATABLE:
        changed = _update(cf, params.stack, body)
        action, done = ("updated", {"UPDATE_COMPLETE"}) if changed else ("unchanged", UPDATABLE)
    else:
        raise CloudError(
            f"The stack '{params.stack}' is {existing['StackStatus']} and cannot be updated; "
            "delete it (python -m mlpipe infra delete) and deploy again."
        )
    status = wait_until(cf, params.stack, done, params.timeout, params.poll)
    info = stack_info(cf, params.stack) or {}
    return StackResult(params.stack, action, status, outputs_of(info), time.monotonic() - started)


def delete(endpoint: str, params: InfraParams) -> StackResult:
    """Delete stack ``params.stack`` and wait until it is gone.

    Resources whose ``DeletionPolicy`` is ``Retain`` (the artefact bucket) stay.

    Raises:
        CloudError: When there is no such stack, the endpoint cannot be reached, the
            deletion fails, or it does not finish within ``params.timeout`` seconds.
    """
    started = time.monotonic()
    cf = client("cloudformation", endpoint, params.region, params.timeout)
    existing = stack_info(cf, params.stack)
    if existing is None:
        raise CloudError(f"There is no stack '{params.stack}' at {endpoint}; nothing was deleted.")
    call(cf, "delete_stack", f"delete stack '{params.stack}'", StackName=params.stack)
    status = wait_until(
        cf, params.stack, {"DELETE_COMPLETE"}, params.timeout, params.poll, gone_is_done=True
    )
    seconds = time.monotonic() - started
    return StackResult(params.stack, "deleted", status, outputs_of(existing), seconds)
