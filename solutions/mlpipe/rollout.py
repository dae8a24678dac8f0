"""Week 7: a canary rollout that decides by itself (``python -m mlpipe rollout``).

Two ``mlpipe.serve`` backends run side by side: the **stable** one serves the
``champion`` alias, the **canary** the ``challenger``. A :class:`Router` (a plain
ASGI app under uvicorn) sends each request to one of them::

    client --> Router --(weight %)--> canary  (challenger)
                      \\-(the rest)--> stable  (champion)

A client always lands on the same side for a given weight: its key (the
``X-Client-Id`` header, else its address) is hashed into one of 10,000 buckets,
and the buckets below ``weight`` x 100 go to the canary. Raising the weight only
moves more buckets over, so a client never flips back. The router forwards over
one pooled keep-alive client (aiohttp's, see :class:`AiohttpForwarder` for why not
httpx's) and passes every backend answer through, errors included. It also runs
alone: ``uvicorn mlpipe.rollout:router_from_env --factory`` (:func:`router_from_env`).

The rollout raises the weight step by step (``rollout.steps`` of params.yaml).
At each step it drives traffic through the router (or waits for outside
traffic), reads both backends' Prometheus ``/metrics`` before and after, and
compares the canary's numbers with the stable's over the same window (the step;
the whole rollout so far when the stable got too little traffic in the step, as at
100 %)::

    scrape -> traffic -> scrape -> delta -> decide (traffic, errors, p99, predictions)

A failed check rolls back at once (weight 0, every reason printed, ``champion``
untouched, exit 1). When every step passed, week 4's :func:`mlpipe.gates.promote`
moves ``champion`` to the canary's version and records the decision on it (exit 0).
The decision itself (:func:`decide` and the checks it runs) is pure: counts in, a
:class:`mlpipe.gates.Decision` out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mlpipe import registry
from mlpipe.config import RolloutParams
from mlpipe.errors import PipelineError
from mlpipe.gates import Check, Decision

#: The header that names a client; without it, the client's address is its key.
CLIENT_HEADER = b"x-client-id"
#: The header the router adds to every answer: which side answered (``canary``/``stable``).
SIDE_HEADER = b"x-rollout-backend"
#: Buckets of the sticky hash: a weight can be set to 0.01 %.
BUCKETS = 10_000
#: Headers that belong to one connection, never forwarded (RFC 9110, 7.6.1), and the
#: ones the router recomputes (host, length, encoding).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"content-encoding",
    }
)
#: Headers of a backend's answer the router's own server writes again.
RESPONSE_DROPPED = HOP_BY_HOP | {b"date", b"server"}
#: The endpoints whose answers the analysis counts (not /health, /ready or /metrics).
PREDICT_ENDPOINTS = ("/predict", "/predict/batch")
#: The backends' metric families (see ``mlpipe.serve.Metrics``).
REQUESTS = "mlpipe_http_requests"
LATENCY = "mlpipe_http_request_duration_seconds"
PREDICTIONS = "mlpipe_predictions"
#: Seconds a backend may take to answer one forwarded request (then the router says 504).
BACKEND_TIMEOUT = 30.0
#: Seconds a started backend may take to become ready.
START_TIMEOUT = 180.0


class RolloutError(PipelineError, RuntimeError):
    """A rollout that cannot start (bad option, port in use); the message is one sentence."""


# --- the router ------------------------------------------------------------------------------


def bucket(key: str) -> int:
    """The sticky bucket of a client key, in ``[0, BUCKETS)``; the same in every process."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def goes_to_canary(key: str, weight: float) -> bool:
    """Whether the client ``key`` is sent to the canary when it gets ``weight`` % of the traffic."""
    return bucket(key) < weight * (BUCKETS // 100)


def client_key(scope: MutableMapping[str, Any]) -> str:
    """The ``X-Client-Id`` header of a request, else the client's address (else ``""``)."""
    for name, value in scope["headers"]:
        if name == CLIENT_HEADER:
            return value.decode("latin-1")
    client = scope.get("client")
    return client[0] if client else ""


#: An answer: status, raw headers, body.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def _json_answer(status: int, detail: str) -> Answer:
    body = json.dumps({"detail": detail}).encode()
    return status, [(b"content-type", b"application/json")], body


class Unreachable(Exception):
    """The backend refused the connection: the request never reached it."""


class NoAnswer(Exception):
    """The backend took the request but gave no answer (timeout, broken connection)."""


class AiohttpForwarder:
    """Forward with aiohttp: one pooled ``ClientSession``, keep-alive, a C HTTP parser.

    The router's default. ``httpx.AsyncClient`` (:class:`HttpxForwarder`) costs about
    0.3 ms of CPU per forwarded request on top of this one's 0.1 ms (0.5-1 ms with
    its own httpcore transport): as much as the backend spends on a prediction,
    which would halve the throughput behind the router. aiohttp comes with MLflow.
    """

    def __init__(self, connections: int = 256) -> None:
        self.connections = connections
        self.session: Any | None = None

    async def forward(
        self, method: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        """Send one request; the answer's status, raw headers and body."""
        import aiohttp

        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections, ttl_dns_cache=None),
                timeout=aiohttp.ClientTimeout(total=BACKEND_TIMEOUT),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )
        text_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        try:
            async with self.session.request(
                method, url, headers=text_headers, data=body, allow_redirects=False
            ) as response:
                return response.status, list(response.raw_headers), await response.read()
        except aiohttp.ClientConnectorError as err:
            raise Unreachable(str(err)) from err
        except TimeoutError as err:
            raise NoAnswer(f"no answer within {BACKEND_TIMEOUT:g} s") from err
        except aiohttp.ClientError as err:
            raise NoAnswer(str(err) or type(err).__name__) from err

    async def aclose(self) -> None:
        """Close every pooled connection."""
        if self.session is not None:
            await self.session.close()
            self.session = None


class HttpxForwarder:
    """Forward with an ``httpx.AsyncClient`` (tests mount fake ASGI backends on one).

    Args:
        client: The client; its connection pool is the router's.
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def forward(
        self, method: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        """Send one request; the answer's status, raw headers and body."""
        try:
            response = await self.client.request(method, url, headers=headers, content=body)
        except httpx.ConnectError as err:
            raise Unreachable(str(err)) from err
        except httpx.TransportError as err:
            raise NoAnswer(str(err) or type(err).__name__) from err
        return response.status_code, list(response.headers.raw), response.content

    async def aclose(self) -> None:
        """Close the client."""
        await self.client.aclose()


class Router:
    """ASGI app: forward every request to the stable or the canary backend.

    One pooled forwarder (keep-alive connections, :class:`AiohttpForwarder` unless
    told otherwise) is closed at shutdown. A backend's answer is passed through as
    it is, error statuses included. When the canary cannot be reached at all (the
    connection is refused), the request goes to the stable instead, so no request is
    lost; when the stable cannot be reached, the answer is a 502 naming it (504 when
    a backend took the request and gave no answer).

    Args:
        stable: Base URL of the stable backend, e.g. ``http://127.0.0.1:8000``.
        canary: Base URL of the canary backend.
        weight: The canary's share of the traffic, in percent; change it any time.
        forwarder: What sends the requests (tests pass an :class:`HttpxForwarder`).

    Attributes:
        answered: Answers sent, counted by ``(side, status)``.
        fallbacks: Requests meant for the canary that the stable answered.
    """

    def __init__(
        self, stable: str, canary: str, weight: float = 0.0, forwarder: Any | None = None
    ) -> None:
        self.urls = {"stable": stable.rstrip("/"), "canary": canary.rstrip("/")}
        self.weight = weight
        self.forwarder = forwarder or AiohttpForwarder()
        self.answered: collections.Counter[tuple[str, int]] = collections.Counter()
        self.fallbacks = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._forward(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.forwarder.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        side = "canary" if goes_to_canary(client_key(scope), self.weight) else "stable"
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        if scope.get("client"):
            headers.append((b"x-forwarded-for", scope["client"][0].encode()))
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        side, (status, out_headers, content) = await self._send(
            side, scope["method"], target.decode("latin-1"), headers, bytes(body)
        )
        self.answered[side, status] += 1
        out_headers = [(k, v) for k, v in out_headers if k.lower() not in RESPONSE_DROPPED]
        out_headers += [
            (b"content-length", str(len(content)).encode()),
            (SIDE_HEADER, side.encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": content})

    async def _send(
        self, side: str, method: str, target: str, headers: list, body: bytes
    ) -> tuple[str, Answer]:
        """Send one request to ``side``; the side that answered and its answer."""
        try:
            answer = await self.forwarder.forward(method, self.urls[side] + target, headers, body)
        except Unreachable as err:
            if side == "canary":  # never reached the canary: the stable can answer instead
                self.fallbacks += 1
                return await self._send("stable", method, target, headers, body)
            return side, _json_answer(502, f"The {side} backend cannot be reached ({err}).")
        except NoAnswer as err:
            return side, _json_answer(504, f"The {side} backend gave no answer ({err}).")
        return side, answer


def router_from_env() -> Router:
    """A :class:`Router` configured by the environment (``uvicorn ... --factory``).

    ``MLPIPE_ROLLOUT_STABLE_URL`` and ``MLPIPE_ROLLOUT_CANARY_URL`` (default
    ``http://127.0.0.1:8000`` and ``:8001``), ``MLPIPE_ROLLOUT_WEIGHT`` (percent, default 0)::

        uvicorn mlpipe.rollout:router_from_env --factory --port 8080
    """
    stable = os.environ.get("MLPIPE_ROLLOUT_STABLE_URL", "http://127.0.0.1:8000")
    canary = os.environ.get("MLPIPE_ROLLOUT_CANARY_URL", "http://127.0.0.1:8001")
    weight = os.environ.get("MLPIPE_ROLLOUT_WEIGHT", "0")
    try:
        return Router(stable, canary, float(weight))
    except ValueError:
        raise RolloutError(f"MLPIPE_ROLLOUT_WEIGHT must be a percentage, got {weight!r}.") from None


# --- what a backend's /metrics says ----------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """A backend's counters for the predictions endpoints (``/predict``, ``/predict/batch``).

    Read from one scrape they count since the backend started; :func:`delta` of
    two scrapes gives what happened in between.

    Attributes:
        requests: Requests answered, by status code (``"200"``, ``"500"`` ...).
        buckets: The latency histogram: upper bound in seconds (``math.inf`` last)
            -> requests that took at most that long (cumulative, as Prometheus keeps it).
        predictions: Predictions made, by predicted class.
    """

    requests: dict[str, float] = field(default_factory=dict)
    buckets: dict[float, float] = field(default_factory=dict)
    predictions: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Requests answered, whatever their status."""
        return sum(self.requests.values())


def parse_metrics(text: str) -> Counts:
    """Read the predictions endpoints' :class:`Counts` from a ``/metrics`` page.

    Args:
        text: The page, in Prometheus' text format (``mlpipe.serve``'s metrics).

    Raises:
        ValueError: When the text is not in Prometheus' format.
    """
    from prometheus_client.parser import text_string_to_metric_families

    requests: collections.Counter[str] = collections.Counter()
    buckets: collections.Counter[float] = collections.Counter()
    predictions: collections.Counter[str] = collections.Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels, value = sample.labels, sample.value
            if sample.name == f"{PREDICTIONS}_total":
                predictions[labels["label"]] += value
            elif labels.get("endpoint") not in PREDICT_ENDPOINTS:
                continue
            elif sample.name == f"{REQUESTS}_total":
                requests[labels["status"]] += value
            elif sample.name == f"{LATENCY}_bucket":
                buckets[float(labels["le"])] += value
    return Counts(dict(requests), dict(sorted(buckets.items())), dict(predictions))


# --- the decision: counts in, a Decision out (the week 7 lab) ----------------------------------


def delta(before: Counts, after: Counts) -> Counts:
    """What a backend answered between two scrapes.

    Args:
        before: The earlier scrape.
        after: The later one.

    Returns:
        ``after - before`` for every key of ``after`` (a key missing from
        ``before`` counts from 0; keys with a zero difference are kept). When
        ``after.total`` is smaller than ``before.total`` the backend restarted in
        between and its counters began again at zero: the answer is ``after``
        itself (what ``rate()`` does in Prometheus).
    """
    ### BEGIN SOLUTION
    if after.total < before.total:
        return after

    def minus(new: dict, old: dict) -> dict:
        return {key: value - old.get(key, 0.0) for key, value in new.items()}

    return Counts(
        minus(after.requests, before.requests),
        minus(after.buckets, before.buckets),
        minus(after.predictions, before.predictions),
    )
    ### END SOLUTION


def error_rate(counts: Counts) -> float:
    """The share of the requests answered with a 5xx status (0.0 when there were none)."""
    ### BEGIN SOLUTION
    if counts.total == 0:
        return 0.0
    errors = sum(n for status, n in counts.requests.items() if status.startswith("5"))
    return errors / counts.total
    ### END SOLUTION


def quantile_ms(counts: Counts, q: float = 0.99) -> float:
    """The ``q`` quantile of the latency, in milliseconds, from the histogram buckets.

    As Prometheus' ``histogram_quantile``: find the first bucket whose cumulative
    count reaches ``q`` x the total, and interpolate linearly inside it (its
    lower bound is the previous bucket's upper bound, 0 for the first). When that
    bucket is the ``+Inf`` one, the answer is the largest finite bound.

    Returns:
        The quantile in ms; 0.0 when the histogram is empty.
    """
    ### BEGIN SOLUTION
    bounds = sorted(counts.buckets.items())
    total = bounds[-1][1] if bounds else 0.0
    if total <= 0:
        return 0.0
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, cumulative in bounds:
        if cumulative >= rank:
            if math.isinf(upper):
                return lower * 1000
            share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
            return (lower + (upper - lower) * share) * 1000
        lower, below = upper, cumulative
    return lower * 1000
    ### END SOLUTION


def shares(predictions: dict[str, float]) -> dict[str, float]:
    """Each class's share of the predictions (an empty dict when there are none)."""
    total = sum(predictions.values())
    return {label: n / total for label, n in sorted(predictions.items())} if total else {}


def distribution_distance(canary: dict[str, float], stable: dict[str, float]) -> float:
    """Total-variation distance between two sets of prediction counts, in ``[0, 1]``.

    Half the sum, over every class either side predicted, of the absolute
    difference of the two shares (a class one side never predicted has share 0
    there). 0: the same shares; 1: no class in common. 0.0 when either side made
    no prediction.
    """
    ### BEGIN SOLUTION
    a, b = shares(canary), shares(stable)
    if not a or not b:
        return 0.0
    return sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in a.keys() | b.keys()) / 2
    ### END SOLUTION


def check_traffic(canary: Counts, stable: Counts, policy: RolloutParams) -> Check:
    """``traffic``: both sides answered enough requests to be compared.

    Returns:
        A passed check when the canary's and the stable's ``total`` are both at
        least ``policy.min_requests``; the detail names both totals and the limit.
    """
    ### BEGIN SOLUTION
    low = min(canary.total, stable.total) < policy.min_requests
    detail = (
        f"the canary answered {canary.total:.0f} predictions requests and the stable "
        f"{stable.total:.0f}, {'fewer than' if low else 'at least'} the "
        f"{policy.min_requests} each needs (rollout.min_requests)."
    )
    return Check("traffic", not low, detail)
    ### END SOLUTION


def check_errors(canary: Counts, stable: Counts, policy: RolloutParams) -> Check:
    """``error_rate``: the canary's 5xx share is not much higher than the stable's.

    Returns:
        A failed check when the canary's :func:`error_rate` exceeds the stable's
        by more than ``policy.max_error_rate_increase``; the detail names both
        rates, the increase and the limit.
    """
    ### BEGIN SOLUTION
    mine, theirs = error_rate(canary), error_rate(stable)
    rise = mine - theirs
    passed = rise <= policy.max_error_rate_increase + 1e-12
    detail = (
        f"the canary's 5xx share is {mine:.1%} against the stable's {theirs:.1%}, an increase "
        f"of {rise * 100:.1f} points {'within' if passed else 'above'} the limit of "
        f"{policy.max_error_rate_increase * 100:.1f} (rollout.max_error_rate_increase)."
    )
    return Check("error_rate", passed, detail)
    ### END SOLUTION


def check_latency(canary: Counts, stable: Counts, policy: RolloutParams) -> Check:
    """``p99_latency``: the canary is not much slower than the stable.

    The limit is the larger of ``policy.max_p99_ratio`` x the stable's p99 and
    the stable's p99 + ``policy.max_p99_increase_ms`` (small differences in a fast
    service are noise, not a regression).

    Returns:
        A failed check when the canary's p99 (:func:`quantile_ms`) is above the
        limit; the detail names both p99s and the limit, in ms.
    """
    ### BEGIN SOLUTION
    mine, theirs = quantile_ms(canary), quantile_ms(stable)
    limit = max(theirs * policy.max_p99_ratio, theirs + policy.max_p99_increase_ms)
    passed = mine <= limit
    detail = (
        f"the canary's p99 latency is {mine:.1f} ms against the stable's {theirs:.1f} ms, "
        f"{'within' if passed else 'above'} the limit of {limit:.1f} ms "
        f"(rollout.max_p99_ratio {policy.max_p99_ratio:g} x, "
        f"or rollout.max_p99_increase_ms {policy.max_p99_increase_ms:g} ms more)."
    )
    return Check("p99_latency", passed, detail)
    ### END SOLUTION


def check_predictions(canary: Counts, stable: Counts, policy: RolloutParams) -> Check:
    """``predictions``: the canary predicts the classes in about the stable's shares.

    Returns:
        A failed check when :func:`distribution_distance` of the two sides'
        predictions is above ``policy.max_distribution_distance``; the detail
        names the distance, the limit and the canary's shares.
    """
    ### BEGIN SOLUTION
    distance = distribution_distance(canary.predictions, stable.predictions)
    passed = distance <= policy.max_distribution_distance + 1e-12
    split = ", ".join(f"{k} {v:.0%}" for k, v in shares(canary.predictions).items()) or "none"
    detail = (
        f"the total-variation distance between the canary's and the stable's predicted "
        f"classes is {distance:.3f}, {'within' if passed else 'above'} the limit of "
        f"{policy.max_distribution_distance:g} (rollout.max_distribution_distance; "
        f"canary: {split})."
    )
    return Check("predictions", passed, detail)
    ### END SOLUTION


def decide(canary: Counts, stable: Counts, policy: RolloutParams) -> Decision:
    """Judge one step: the canary's counts in the step against the stable's.

    Returns:
        A :class:`mlpipe.gates.Decision`: only the failed :func:`check_traffic`
        when there is too little traffic to judge; otherwise the checks
        ``traffic``, ``error_rate``, ``p99_latency`` and ``predictions``, in that
        order, each whether or not an earlier one failed.
    """
    ### BEGIN SOLUTION
    traffic = check_traffic(canary, stable, policy)
    if not traffic.passed:
        return Decision((traffic,))
    return Decision(
        (
            traffic,
            check_errors(canary, stable, policy),
            check_latency(canary, stable, policy),
            check_predictions(canary, stable, policy),
        )
    )
    ### END SOLUTION


# --- the rollout loop --------------------------------------------------------------------------


@dataclass
class Outcome:
    """How a rollout ended.

    Attributes:
        promoted: Whether ``champion`` moved to the canary's version.
        reasons: Why it rolled back (empty when promoted).
        model: The registered model's name (``None`` if the canary never answered).
        version: The canary's model version.
        stable_version: The stable's model version.
        step: The weight of the step it stopped at (``None``: it did not stop).
        checks: Every check of every step, the step's weight in each name.
    """

    promoted: bool = False
    reasons: list[str] = field(default_factory=list)
    model: str | None = None
    version: str | None = None
    stable_version: str | None = None
    step: int | None = None
    checks: list[Check] = field(default_factory=list)


class _Stop(Exception):
    """A step cannot go on (a backend is down); the message is the rollback's reason."""


async def _get(client: Any, url: str, what: str) -> Any:
    """GET ``url``; its response when it is a 200, else :class:`_Stop` naming ``what``."""
    try:
        response = await client.get(url, timeout=5.0)
    except httpx.HTTPError as err:
        raise _Stop(f"{what} did not answer {url} ({type(err).__name__}: {err}).") from None
    if response.status_code != 200:
        raise _Stop(f"{what} answered {url} with HTTP {response.status_code}.")
    return response


async def scrape(client: Any, urls: dict[str, str]) -> dict[str, Counts]:
    """Both backends' :class:`Counts`, read from their ``/metrics`` at the same time."""
    pages = await asyncio.gather(
        *(_get(client, f"{url}/metrics", f"the {side} backend") for side, url in urls.items())
    )
    found = {}
    for side, page in zip(urls, pages, strict=True):
        try:
            found[side] = parse_metrics(page.text)
        except ValueError:
            raise _Stop(f"the {side} backend's /metrics is not Prometheus text.") from None
    return found


def load_rows() -> list[list[dict[str, float]]]:
    """The Iris rows the rollout sends, grouped by species (50 of each, in order)."""
    from mlpipe import train

    df = train.load_data()
    return [
        df.loc[df[train.TARGET] == species, train.FEATURES].to_dict(orient="records")
        for species in sorted(df[train.TARGET].unique())
    ]


async def drive(url: str, requests: int, concurrency: int) -> collections.Counter:
    """Send ``requests`` single-row ``/predict`` requests through the router at ``url``.

    Client ``load-<i>`` sends the ``i``-th flower of each species, one after the
    other, so that every client (and so each side of the router) gets the three
    species in equal numbers, and the same clients come back at every step.

    Returns:
        The answers, counted by status code (``"error"``: no answer at all).
    """
    species = load_rows()
    statuses: collections.Counter = collections.Counter()
    jobs = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for j in jobs:
            client_id, kind = divmod(j, len(species))
            row = species[kind][client_id % len(species[kind])]
            try:
                response = await client.post(
                    f"{url}/predict", json=row, headers={"X-Client-Id": f"load-{client_id}"}
                )
                statuses[str(response.status_code)] += 1
            except httpx.HTTPError:
                statuses["error"] += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=BACKEND_TIMEOUT + 5, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return statuses


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket for the router, or :class:`RolloutError` when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise RolloutError(
            f"The router cannot listen on {host}:{port} ({err.strerror}); choose another --port."
        ) from None
    sock.listen(2048)
    return sock


@contextlib.asynccontextmanager
async def serving(router: Router, host: str, port: int) -> Any:
    """Run ``router`` under uvicorn in this event loop while the block runs."""
    import uvicorn

    sock = _listen(host, port)
    config = uvicorn.Config(router, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        yield server
    finally:
        server.should_exit = True
        await task
        sock.close()


def _record(checks: list[Check], weight: int) -> list[Check]:
    return [dataclasses.replace(c, name=f"{c.name}@{weight}%") for c in checks]


async def run_steps(
    router: Router,
    router_url: str,
    policy: RolloutParams,
    say: Callable[[str], None] = print,
) -> Outcome:
    """Raise the canary's weight step by step and judge each step.

    Stops at the first step whose :func:`decide` blocks, or when a backend is
    down (its ``/ready`` is not 200) or its ``/metrics`` cannot be read; the
    router's weight is 0 again when it returns, unless every step passed.

    Args:
        router: The running router (its ``urls`` are the backends).
        router_url: Where it listens, for the traffic the rollout drives itself.
        policy: The steps, the traffic of each and the limits.
        say: Where progress lines go.
    """
    outcome = Outcome()
    urls = router.urls
    async with httpx.AsyncClient() as client:
        try:
            for number, weight in enumerate(policy.steps, 1):
                say(f"step {number}/{len(policy.steps)}: {weight} % of the traffic to the canary")
                for side, url in urls.items():
                    await _get(client, f"{url}/ready", f"the {side} backend")
                if outcome.version is None:
                    await _identify(client, urls, outcome)
                    say(
                        f"  canary: {outcome.model} version {outcome.version}, "
                        f"stable: version {outcome.stable_version}"
                    )
                    baseline = (await scrape(client, urls))["stable"]
                before = await scrape(client, urls)
                router.weight = weight
                await _traffic(router, router_url, policy, say)
                after = await scrape(client, urls)
                canary = delta(before["canary"], after["canary"])
                stable = delta(before["stable"], after["stable"])
                if stable.total < policy.min_requests:  # e.g. at 100 %: the earlier steps
                    stable = delta(baseline, after["stable"])
                    say("  the stable got too little traffic in this step: compared since step 1")
                decision = decide(canary, stable, policy)
                for check in decision.checks:
                    say(f"  {'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
                outcome.checks += _record(list(decision.checks), weight)
                if not decision.allowed:
                    outcome.reasons, outcome.step = decision.reasons, weight
                    break
        except _Stop as stop:
            outcome.reasons, outcome.step = [f"backend: {stop}"], weight
            outcome.checks.append(Check("backend", False, str(stop)))
    if outcome.reasons:
        router.weight = 0
    return outcome


async def _identify(client: Any, urls: dict[str, str], outcome: Outcome) -> None:
    """Fill in the model and the versions each backend serves, from their ``/metadata``."""
    canary = (await _get(client, f"{urls['canary']}/metadata", "the canary backend")).json()
    stable = (await _get(client, f"{urls['stable']}/metadata", "the stable backend")).json()
    if canary["model_name"] != stable["model_name"]:
        raise RolloutError(
            f"The canary serves the model '{canary['model_name']}' and the stable "
            f"'{stable['model_name']}'; a rollout compares two versions of one model."
        )
    outcome.model = canary["model_name"]
    outcome.version = str(canary["model_version"])
    outcome.stable_version = str(stable["model_version"])


async def _traffic(router: Router, url: str, policy: RolloutParams, say: Callable) -> None:
    """The step's traffic: driven by the rollout, or outside traffic for ``step_seconds``."""
    seen = router.answered.copy()
    start = time.perf_counter()
    if policy.step_requests:
        statuses = await drive(url, policy.step_requests, policy.concurrency)
        answers = ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items()))
        say(f"  sent {policy.step_requests} requests through the router: {answers}")
    else:
        await asyncio.sleep(policy.step_seconds)
    sides = collections.Counter()
    for (side, _), n in (router.answered - seen).items():
        sides[side] += n
    say(
        f"  the router answered {sum(sides.values())} requests in {time.perf_counter() - start:.1f} s"
        f" (canary {sides['canary']}, stable {sides['stable']})"
    )


def rollout(
    stable_url: str,
    canary_url: str,
    policy: RolloutParams,
    host: str = "127.0.0.1",
    port: int = 8080,
    say: Callable[[str], None] = print,
) -> Outcome:
    """The ``rollout`` stage: serve the router on ``host:port`` and run every step.

    When every step passed, week 4's :func:`mlpipe.gates.promote` records the
    decision on the canary's version (the gates' checks it already has, then
    every step's) and moves ``champion`` to it; when a step failed, the same
    record says why and every alias stays where it was. MLflow must already
    point at the registry (:func:`mlpipe.track.connect`).

    Raises:
        RolloutError: When the router cannot listen on the port, or the two
            backends serve different models.
    """

    async def main() -> Outcome:
        router = Router(stable_url, canary_url)
        async with serving(router, host, port):
            return await run_steps(router, f"http://{host}:{port}", policy, say)

    outcome = asyncio.run(main())
    if outcome.model is not None and outcome.version is not None:
        decision = Decision((*_gate_checks(outcome.model, outcome.version), *outcome.checks))
        from mlpipe import gates

        outcome.promoted = gates.promote(outcome.model, decision, outcome.version)
        if not outcome.promoted and not outcome.reasons:
            outcome.reasons = decision.reasons  # the gates' own reasons: blocked before
    return outcome


def _gate_checks(name: str, version: str) -> list[Check]:
    """The checks of week 4's gates recorded on the version (none when it was never gated)."""
    import mlflow

    from mlpipe import gates

    tags = mlflow.MlflowClient().get_model_version(name, version).tags
    try:
        recorded = json.loads(tags.get(gates.TAG_DECISION, "{}")).get("checks", [])
        return [Check(**c) for c in recorded if c.get("name") in gates.GATES]
    except (ValueError, TypeError, AttributeError):
        return []


# --- backends the rollout starts itself (--start) ---------------------------------------------


@contextlib.contextmanager
def started_backends(folder: Path, host: str = "127.0.0.1") -> Iterator[dict[str, str]]:
    """Start ``python -m mlpipe serve`` twice: the champion (stable) and the challenger (canary).

    Both read the registry as ``mlpipe serve`` does (``MLPIPE_SERVE_*``, ``MLFLOW_TRACKING_URI``);
    the canary logs its predictions to ``logs/inference-canary.jsonl``. Their output
    goes to ``folder/<side>.log``; both are stopped when the block ends.

    Yields:
        The two base URLs, ``{"stable": ..., "canary": ...}``.

    Raises:
        RolloutError: When a backend exits or is not ready within ``START_TIMEOUT``,
            with its last line of output.
    """
    import mlpipe

    folder.mkdir(parents=True, exist_ok=True)
    package_root = str(Path(mlpipe.__file__).resolve().parents[1])
    aliases = {"stable": registry.CHAMPION, "canary": registry.CHALLENGER}
    procs: dict[str, subprocess.Popen] = {}
    urls = {}
    try:
        for side, alias in aliases.items():
            port = _free_port(host)
            env = {**os.environ, "MLPIPE_SERVE_MODEL_ALIAS": alias}
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
            if side == "canary":
                env.setdefault("MLPIPE_SERVE_INFERENCE_LOG", "logs/inference-canary.jsonl")
            with open(folder / f"{side}.log", "wb") as out:
                cmd = [sys.executable, "-m", "mlpipe", "serve", "--host", host, "--port", str(port)]
                procs[side] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
            urls[side] = f"http://{host}:{port}"
        for side, proc in procs.items():
            _wait_ready(side, urls[side], proc, folder / f"{side}.log")
        yield urls
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _wait_ready(side: str, url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    last = lines[-1] if lines else "no output"
    ended = f"exited with {proc.returncode}" if proc.poll() is not None else "was not ready"
    raise RolloutError(f"The {side} backend (mlpipe serve) {ended}: {last}")
