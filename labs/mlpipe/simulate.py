"""Week 6 (given): traffic for the serving app, to watch it drift.

A *scenario* is a list of phases. Each phase sends ``rows`` flowers sampled from
the processed training data to the running API (week 5), changed the way a real
delivery goes wrong::

    normal       the flowers as the model was trained on them
    unit-change  normal, then petal widths measured in millimetres (x10): what leaves
                 the valid range is refused (422), the rest is served and drifts
    shift        normal, then bigger flowers (a new orchard): three features shifted
    drift        normal, then the unit change, then the shift

The true species of every served row is written aside as a CSV (``--labels``), as
labels arrive after the predictions in real life: ``request_id`` and ``row`` (the
row's position in its request) identify the inference-log record it belongs to.
Run it against a server::

    python -m mlpipe serve --port 8000 &
    python -m mlpipe simulate --scenario drift --rows 300 --labels logs/labels.csv
"""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mlpipe.errors import PipelineError
from mlpipe.files import write_text_atomic

#: The four measurements, in the order the model expects them, and the label column.
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
TARGET = "species"
#: Decimals each sent measurement is rounded to (the Iris data has one).
DECIMALS = 2
#: Seconds one request may take before the simulator gives up on the API.
TIMEOUT = 30.0
#: Columns of the ground-truth CSV.
LABEL_COLUMNS = ("request_id", "row", "phase", *FEATURES, TARGET, "prediction")


class SimulateError(PipelineError, RuntimeError):
    """A problem the user can fix (no API, unknown scenario, bad data); one sentence."""


@dataclass(frozen=True)
class Phase:
    """One part of a scenario: ``rows`` sampled flowers, each measurement changed.

    Attributes:
        name: What the phase is (shown in the output and the labels' ``phase`` column).
        scale: Factor applied to a measurement, by feature (missing: 1).
        offset: Added to a measurement after scaling, by feature (missing: 0).
    """

    name: str
    scale: dict[str, float] = field(default_factory=dict)
    offset: dict[str, float] = field(default_factory=dict)

    def apply(self, row: dict[str, float]) -> dict[str, float]:
        """The measurements of ``row`` as this phase delivers them."""
        return {
            f: round(row[f] * self.scale.get(f, 1.0) + self.offset.get(f, 0.0), DECIMALS)
            for f in FEATURES
        }


NORMAL = Phase("normal")
UNIT_CHANGE = Phase("petal_width in mm", scale={"petal_width": 10.0})
SHIFT = Phase(
    "bigger flowers", offset={"sepal_length": 1.0, "petal_length": 1.5, "petal_width": 0.5}
)
SCENARIOS: dict[str, tuple[Phase, ...]] = {
    "normal": (NORMAL,),
    "unit-change": (NORMAL, UNIT_CHANGE),
    "shift": (NORMAL, SHIFT),
    "drift": (NORMAL, UNIT_CHANGE, SHIFT),
}


@dataclass
class PhaseResult:
    """What the API answered in one phase.

    Attributes:
        name: The phase.
        sent: Rows sent.
        served: Rows predicted (HTTP 200).
        refused: Rows the API refused as invalid (4xx).
        errors: Rows the API failed on (5xx).
    """

    name: str
    sent: int = 0
    served: int = 0
    refused: int = 0
    errors: int = 0


@dataclass
class Simulation:
    """The outcome of a scenario.

    Attributes:
        scenario: Its name.
        phases: One result per phase, in order.
        labels: One ground-truth record per served row (see :data:`LABEL_COLUMNS`).
    """

    scenario: str
    phases: list[PhaseResult] = field(default_factory=list)
    labels: list[dict[str, object]] = field(default_factory=list)


def get_scenario(name: str) -> tuple[Phase, ...]:
    """The phases of scenario ``name``.

    Raises:
        SimulateError: For an unknown name, listing the known ones.
    """
    if name not in SCENARIOS:
        known = ", ".join(SCENARIOS)
        raise SimulateError(f"There is no scenario '{name}'; choose one of: {known}.")
    return SCENARIOS[name]


def read_flowers(path: str | Path) -> list[dict[str, object]]:
    """The rows of a processed CSV (the four measurements as floats, and the species).

    Raises:
        SimulateError: When the file is missing, lacks a column or has a bad number.
    """
    path = Path(path)
    if not path.is_file():
        raise SimulateError(
            f"The data file {path} does not exist; run `python -m mlpipe fetch` and "
            "`python -m mlpipe prepare` first, or pass --data."
        )
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in (*FEATURES, TARGET) if c not in (reader.fieldnames or [])]
        if missing:
            raise SimulateError(f"The data file {path} has no column '{missing[0]}'.")
        rows = []
        for number, raw in enumerate(reader, start=2):
            try:
                row: dict[str, object] = {f: float(raw[f]) for f in FEATURES}
            except (TypeError, ValueError):
                raise SimulateError(
                    f"Line {number} of {path} has a measurement that is not a number."
                ) from None
            row[TARGET] = raw[TARGET]
            rows.append(row)
    if not rows:
        raise SimulateError(f"The data file {path} has no rows.")
    return rows


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_api(client: httpx.Client, url: str) -> None:
    """Make sure the API at ``url`` answers and its model is loaded.

    Raises:
        SimulateError: When it cannot be reached or is not ready.
    """
    try:
        ready = client.get("/ready")
    except httpx.HTTPError as err:
        raise SimulateError(
            f"Cannot reach the API at {url} ({type(err).__name__}); start it with "
            "`python -m mlpipe serve` or pass --url."
        ) from None
    if ready.status_code != 200:
        raise SimulateError(
            f"The API at {url} is not ready (GET /ready answered {ready.status_code}); "
            "wait for its model to load or read the server's output."
        )


def send(client: httpx.Client, rows: list[dict[str, float]]) -> tuple[int, dict]:
    """POST ``rows`` (one row to ``/predict``, more to ``/predict/batch``).

    Returns:
        The status code and the JSON answer (``{}`` when it is not JSON).
    """
    if len(rows) == 1:
        response = client.post("/predict", json=rows[0])
    else:
        response = client.post("/predict/batch", json={"rows": rows})
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code, body if isinstance(body, dict) else {}


def run_phase(
    client: httpx.Client,
    phase: Phase,
    flowers: Sequence[dict[str, object]],
    rows: int,
    batch: int,
    rng: random.Random,
    delay: float = 0.0,
) -> tuple[PhaseResult, list[dict[str, object]]]:
    """Send ``rows`` sampled flowers changed by ``phase``, ``batch`` rows a request.

    Returns:
        The phase's counts and the ground-truth records of its served rows.
    """
    result = PhaseResult(phase.name)
    labels: list[dict[str, object]] = []
    sample = [rng.choice(flowers) for _ in range(rows)]
    for chunk in _chunks(sample, batch):
        inputs = [phase.apply(flower) for flower in chunk]  # type: ignore[arg-type]
        code, body = send(client, inputs)
        result.sent += len(chunk)
        if code == 200:
            result.served += len(chunk)
            predictions = body.get("predictions") or [body.get("prediction")]
            for position, (flower, row, predicted) in enumerate(
                zip(chunk, inputs, predictions, strict=False)
            ):
                labels.append(
                    {
                        "request_id": body.get("request_id", ""),
                        "row": position,
                        "phase": phase.name,
                        **row,
                        TARGET: flower[TARGET],
                        "prediction": predicted,
                    }
                )
        elif code < 500:
            result.refused += len(chunk)
        else:
            result.errors += len(chunk)
        if delay:
            time.sleep(delay)
    return result, labels


def write_labels(path: str | Path, labels: list[dict[str, object]]) -> Path:
    """Write the ground-truth records as a CSV, atomically."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LABEL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(labels)
    return write_text_atomic(path, out.getvalue())


def simulate(
    url: str,
    scenario: str,
    flowers: Sequence[dict[str, object]],
    rows: int = 200,
    batch: int = 1,
    seed: int = 0,
    delay: float = 0.0,
    client: httpx.Client | None = None,
) -> Simulation:
    """Run ``scenario`` against the API at ``url``.

    Args:
        url: The API's base address, e.g. ``http://127.0.0.1:8000``.
        scenario: A name of :data:`SCENARIOS`.
        flowers: The rows to sample from (:func:`read_flowers`).
        rows: Rows sent in each phase.
        batch: Rows per request (1: ``/predict``; more: ``/predict/batch``).
        seed: Seed of the sampling (the same seed sends the same rows).
        delay: Seconds to wait after each request.
        client: An HTTP client to use (tests pass FastAPI's test client).

    Returns:
        The :class:`Simulation`.

    Raises:
        SimulateError: For an unknown scenario, bad counts, or an API that cannot be
            reached, is not ready, or stops answering.
    """
    phases = get_scenario(scenario)
    if rows < 1 or batch < 1:
        raise SimulateError("--rows and --batch must be at least 1.")
    own = client is None
    http = client or httpx.Client(base_url=url, timeout=TIMEOUT)
    result = Simulation(scenario)
    try:
        check_api(http, url)
        rng = random.Random(seed)
        for phase in phases:
            try:
                counts, labels = run_phase(http, phase, flowers, rows, batch, rng, delay)
            except httpx.HTTPError as err:
                raise SimulateError(
                    f"The API at {url} stopped answering during '{phase.name}' "
                    f"({type(err).__name__})."
                ) from None
            result.phases.append(counts)
            result.labels.extend(labels)
    finally:
        if own:
            http.close()
    return result
