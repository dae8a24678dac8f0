"""Week 7: plan the API's replicas from a Locust load test (``python -m mlpipe capacity``).

One replica of the API is loaded by Locust (``loadtest/locustfile.py``, ``--csv``);
its ``PREFIX_stats.csv`` says how many requests per second that replica served
and how fast (the ``Aggregated`` row). The plan, for ``capacity:`` of params.yaml::

    sustainable per replica = measured req/s       (only if the run's p99 <= objective)
    in flight               = req/s x mean latency (Little's law, L = lambda x W)
    planned per replica     = sustainable x utilisation
    replicas                = ceil(target req/s / planned per replica)
    minReplicas             = min_replicas         (>= 2: one pod may be drained, PDB)
    maxReplicas             = max(minReplicas, ceil(replicas x headroom))

and ``--write-hpa`` writes ``minReplicas`` and ``maxReplicas`` into the
HorizontalPodAutoscaler manifest, keeping the rest of the file (comments too),
after validating the result strictly. The HPA's CPU ``averageUtilization`` is
the plan's utilisation (the tests hold ``k8s/hpa.yaml`` to ``capacity.utilisation``). A run that
cannot be planned from (no file, no ``Aggregated`` row, no requests, too many
failures, a p99 already above the objective) is one sentence, and the
manifest is left as it was.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from mlpipe.config import CapacityParams
from mlpipe.errors import PipelineError

#: The row of Locust's stats CSV that sums every request.
AGGREGATED = "Aggregated"
#: The columns of that row the plan reads (Locust 2.x names).
STATS_COLUMNS = (
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Requests/s",
    "99%",
)


class CapacityError(PipelineError, ValueError):
    """A load test or manifest the plan cannot use; the message is one sentence."""


@dataclass(frozen=True)
class LoadStats:
    """The ``Aggregated`` row of one Locust run.

    Attributes:
        requests: Requests sent.
        failures: Requests that failed (an error status or a wrong answer).
        median_ms: Median response time, in milliseconds.
        mean_ms: Mean response time, in milliseconds.
        p99_ms: 99th percentile of the response time, in milliseconds.
        rps: Requests per second over the run.
        users: Most users at once (from the history file; ``None`` without it).
    """

    requests: int
    failures: int
    median_ms: float
    mean_ms: float
    p99_ms: float
    rps: float
    users: int | None = None


@dataclass(frozen=True)
class Plan:
    """The capacity plan (see the module's docstring for the arithmetic).

    Attributes:
        per_replica_rps: Sustainable throughput of one replica (measured).
        in_flight: Requests in flight during the test (Little's law).
        planned_rps: Throughput one replica is planned to carry.
        replicas: Replicas the target load needs.
        target_in_flight: Requests in flight at the target load.
        min_replicas: The HPA's ``minReplicas``.
        max_replicas: The HPA's ``maxReplicas``.
        utilisation_percent: The HPA's CPU ``averageUtilization`` the plan assumes.
    """

    per_replica_rps: float
    in_flight: float
    planned_rps: float
    replicas: int
    target_in_flight: float
    min_replicas: int
    max_replicas: int
    utilisation_percent: int


# --- the arithmetic (week 7's lab) -----------------------------------------------------------


def failure_ratio(failures: int, requests: int) -> float:
    """Share of the requests that failed (0.0 for a run without requests)."""
    ### BEGIN SOLUTION
    return failures / requests if requests else 0.0
    ### END SOLUTION


def concurrency(rps: float, latency_ms: float) -> float:
    """Requests in flight at ``rps`` requests per second of ``latency_ms`` each (Little's law).

    ``L = lambda x W``: 200 req/s answered in 15 ms each keep 200 x 0.015 = 3 in flight.
    """
    ### BEGIN SOLUTION
    return rps * latency_ms / 1000.0
    ### END SOLUTION


def sustainable_rps(rps: float, p99_ms: float, objective_ms: float) -> float | None:
    """The throughput one replica sustains within the objective, or ``None``.

    A run whose p99 meets the objective sustained its measured ``rps``; a run
    above the objective was overloaded and says nothing sustainable (``None``).
    """
    ### BEGIN SOLUTION
    return rps if p99_ms <= objective_ms else None
    ### END SOLUTION


def replicas_needed(target_rps: float, per_replica_rps: float, utilisation: float) -> int:
    """Replicas that carry ``target_rps`` with each at ``utilisation`` of its sustainable rate.

    ``ceil(target / (per_replica x utilisation))``, at least 1: 500 req/s on replicas
    that sustain 200 req/s each, run at 60 %, need ceil(500 / 120) = ceil(4.17) = 5.
    """
    ### BEGIN SOLUTION
    exact = target_rps / (per_replica_rps * utilisation)
    return max(1, math.ceil(exact - 1e-9))  # 4.000000001 from rounding is still 4
    ### END SOLUTION


def replica_bounds(replicas: int, min_replicas: int, headroom: float) -> tuple[int, int]:
    """The HPA's ``(minReplicas, maxReplicas)``.

    ``minReplicas`` is the availability floor; ``maxReplicas`` leaves ``headroom``
    above the planned count and is never below the floor: 5 replicas with headroom
    1.5 and a floor of 2 give (2, ceil(7.5)) = (2, 8).
    """
    ### BEGIN SOLUTION
    return min_replicas, max(min_replicas, math.ceil(replicas * headroom - 1e-9))
    ### END SOLUTION


# --- Locust's CSV files ------------------------------------------------------------------------


def _rows(path: str | Path, what: str) -> list[dict[str, str]]:
    """The rows of a CSV file, in one sentence when it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise CapacityError(f"The Locust {what} {path} does not exist; run Locust with --csv.")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise CapacityError(f"The Locust {what} {path} is empty; run Locust with --csv again.")
    return rows


def _number(row: dict[str, str], column: str, path: str | Path) -> float:
    """One numeric cell, in one sentence when it is missing or not a number."""
    value = row.get(column)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CapacityError(
            f"The {column!r} column of the Aggregated row of {path} is {value!r}, not a number."
        ) from None
    if not math.isfinite(number) or number < 0:
        raise CapacityError(f"The {column!r} column of {path} is {value!r}, not a count or a time.")
    return number


def read_stats(path: str | Path) -> LoadStats:
    """The ``Aggregated`` row of Locust's ``PREFIX_stats.csv``.

    Raises:
        CapacityError: When the file is missing or empty, has no ``Aggregated``
            row, lacks a column, or its run sent no request.
    """
    rows = _rows(path, "statistics file")
    missing = [c for c in STATS_COLUMNS if c not in rows[0]]
    if missing:
        raise CapacityError(
            f"{path} is not Locust's stats CSV: it has no {missing[0]!r} column "
            "(pass PREFIX_stats.csv, not the history or failures file)."
        )
    aggregated = [row for row in rows if row.get("Name") == AGGREGATED]
    if not aggregated:
        raise CapacityError(
            f"{path} has no Aggregated row; Locust writes it at the end of a run (let it finish)."
        )
    row = aggregated[-1]
    requests = int(_number(row, "Request Count", path))
    if requests == 0:
        raise CapacityError(f"The run of {path} sent no request; check Locust's --host and -u.")
    return LoadStats(
        requests=requests,
        failures=int(_number(row, "Failure Count", path)),
        median_ms=_number(row, "Median Response Time", path),
        mean_ms=_number(row, "Average Response Time", path),
        p99_ms=_number(row, "99%", path),
        rps=_number(row, "Requests/s", path),
    )


def peak_users(path: str | Path) -> int:
    """Most users at once in Locust's ``PREFIX_stats_history.csv``.

    Raises:
        CapacityError: When the file is missing, empty or has no ``User Count`` column.
    """
    rows = _rows(path, "history file")
    if "User Count" not in rows[0]:
        raise CapacityError(f"{path} is not Locust's stats history CSV: it has no 'User Count'.")
    return max(int(_number(row, "User Count", path)) for row in rows)


# --- the plan --------------------------------------------------------------------------------


def plan(stats: LoadStats, params: CapacityParams) -> Plan:
    """The replicas the target load needs, from one replica's load test.

    Raises:
        CapacityError: When the run failed too often or its p99 is above the objective.
    """
    ratio = failure_ratio(stats.failures, stats.requests)
    if ratio > params.max_failure_ratio:
        raise CapacityError(
            f"{stats.failures} of {stats.requests} requests failed ({ratio:.1%}, above "
            f"capacity.max_failure_ratio {params.max_failure_ratio:.1%}); fix the API or the "
            "load test before planning from it."
        )
    per_replica = sustainable_rps(stats.rps, stats.p99_ms, params.p99_objective_ms)
    if per_replica is None:
        raise CapacityError(
            f"The run's p99 of {stats.p99_ms:g} ms is already above the objective of "
            f"{params.p99_objective_ms:g} ms: the replica was overloaded; run Locust again "
            "with fewer users (-u)."
        )
    if per_replica <= 0:
        raise CapacityError("The run served 0 requests per second; run Locust for longer (-t).")
    replicas = replicas_needed(params.target_rps, per_replica, params.utilisation)
    low, high = replica_bounds(replicas, params.min_replicas, params.headroom)
    return Plan(
        per_replica_rps=per_replica,
        in_flight=concurrency(stats.rps, stats.mean_ms),
        planned_rps=per_replica * params.utilisation,
        replicas=replicas,
        target_in_flight=concurrency(params.target_rps, stats.mean_ms),
        min_replicas=low,
        max_replicas=high,
        utilisation_percent=round(params.utilisation * 100),
    )


def plan_lines(stats: LoadStats, params: CapacityParams, result: Plan) -> list[str]:
    """The plan's arithmetic, one line each, as ``python -m mlpipe capacity`` prints it."""
    users = f"{stats.users} users" if stats.users is not None else "users unknown (--history)"
    exact = params.target_rps / result.planned_rps
    return [
        f"load test ({users}, one replica): {stats.requests} requests, {stats.failures} failed, "
        f"{stats.rps:.1f} req/s, median {stats.median_ms:g} ms, mean {stats.mean_ms:.1f} ms, "
        f"p99 {stats.p99_ms:g} ms",
        f"  p99 {stats.p99_ms:g} ms <= objective {params.p99_objective_ms:g} ms: one replica "
        f"sustains {result.per_replica_rps:.1f} req/s",
        f"  Little's law: in flight = {stats.rps:.1f} req/s x {stats.mean_ms / 1000:.4f} s = "
        f"{result.in_flight:.2f} requests",
        f"  planned per replica = {result.per_replica_rps:.1f} x utilisation "
        f"{params.utilisation:g} = {result.planned_rps:.1f} req/s",
        f"  replicas = ceil({params.target_rps:g} / {result.planned_rps:.1f}) = ceil({exact:.2f}) "
        f"= {result.replicas}",
        f"  at the target: in flight = {params.target_rps:g} req/s x {stats.mean_ms / 1000:.4f} s "
        f"= {result.target_in_flight:.2f} requests across the replicas",
        f"  minReplicas = {result.min_replicas} (availability, PodDisruptionBudget), maxReplicas = "
        f"max({result.min_replicas}, ceil({result.replicas} x headroom {params.headroom:g})) = "
        f"{result.max_replicas}, CPU target {result.utilisation_percent}%",
    ]


# --- the HPA manifest ------------------------------------------------------------------------

_FIELDS = ("minReplicas", "maxReplicas")


def hpa_text(text: str, where: str, values: dict[str, int]) -> str:
    """``text`` of an HPA manifest with ``values`` in place of its fields, the rest kept.

    Raises:
        CapacityError: When a field is not there exactly once.
    """
    for field, value in values.items():
        pattern = re.compile(rf"^([ \t]*{field}:[ \t]*)(\S+)([ \t]*(#.*)?)$", re.MULTILINE)
        found = pattern.findall(text)
        if len(found) != 1:
            raise CapacityError(
                f"{where} must have one '{field}:' line to write, it has {len(found)}."
            )
        text = pattern.sub(lambda m, v=value: f"{m.group(1)}{v}{m.group(3)}", text)
    return text


def write_hpa(path: str | Path, result: Plan) -> Path:
    """Write the plan's ``minReplicas`` and ``maxReplicas`` into an HPA manifest, atomically.

    The new text is validated strictly (Kubernetes schema) before it replaces the file.

    Raises:
        CapacityError: When the file is missing, is not one HorizontalPodAutoscaler,
            or would not be valid after the change.
    """
    import yaml

    from mlpipe import manifests
    from mlpipe.files import write_text_atomic

    path = Path(path)
    try:
        docs = manifests.read_manifests(path)
    except manifests.ManifestError as err:
        raise CapacityError(str(err)) from None
    if [doc.get("kind") for doc in docs] != ["HorizontalPodAutoscaler"]:
        raise CapacityError(f"{path} must hold one HorizontalPodAutoscaler and nothing else.")
    values = dict(zip(_FIELDS, (result.min_replicas, result.max_replicas), strict=True))
    text = hpa_text(path.read_text(encoding="utf-8"), str(path), values)
    [doc] = [d for d in yaml.safe_load_all(text) if d]
    spec = doc.get("spec") or {}
    if (spec.get("minReplicas"), spec.get("maxReplicas")) != (
        result.min_replicas,
        result.max_replicas,
    ):
        raise CapacityError(f"{path}'s minReplicas and maxReplicas must be fields of its spec.")
    try:
        manifests.validate_document(doc, str(path))
    except manifests.ManifestError as err:
        raise CapacityError(str(err)) from None
    return write_text_atomic(path, text)


def run(
    stats_path: str | Path,
    params: CapacityParams,
    history: str | Path | None = None,
    hpa: str | Path | None = None,
) -> tuple[LoadStats, Plan, list[str]]:
    """Read a load test, plan, and (with ``hpa``) write the HPA manifest.

    Returns:
        The run's statistics, the plan and its lines to print.
    """
    stats = read_stats(stats_path)
    if history is not None:
        stats = LoadStats(**{**stats.__dict__, "users": peak_users(history)})
    result = plan(stats, params)
    if hpa is not None:
        write_hpa(hpa, result)
    return stats, result, plan_lines(stats, params, result)
