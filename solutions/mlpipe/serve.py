"""Week 5: serve the registered model over HTTP with FastAPI.

:func:`create_app` builds one app from one :class:`Settings` object::

    resolve_model (sync) -> row_schema -> app with routes -> load_model (background)

* ``GET /health`` answers at once; ``GET /ready`` is 503 until the model is loaded;
* ``GET /metadata`` names the model, its version and alias, and the input schema;
* ``POST /predict`` scores one row, ``POST /predict/batch`` many (``{"rows": [...]}``);
  the body must be ``application/json`` (else 415), parse as UTF-8 JSON without
  duplicate keys (else a 400 saying what is wrong and where, or a 422 naming the key),
  and match the model's signature, each number finite and within week 2's valid range
  (``validate.feature_min`` to ``validate.feature_max`` of ``params.yaml``): a 422
  names the bad field. A batch over ``max_batch`` rows is a 413, so is a body over
  ``max_body_bytes``. No answer echoes the input, and every message is capped;
* every prediction is one JSON line of the inference log (week 6 reads it), written
  with one ``os.write`` on an ``O_APPEND`` descriptor, so a line is never half-written;
  a prediction that cannot be logged is not served (503, and ``/ready`` is 503) unless
  ``log_required`` is off;
* ``GET /metrics`` exposes request counts, latencies and prediction counts to Prometheus,
  and the gauges of week 6's latest monitoring summary (read from ``summary.json`` at
  each scrape, when it exists).

The model comes from the MLflow registry by alias (``champion`` by default). A model
or alias that does not exist, or a store that cannot be reached, stops the start-up
with one sentence (:class:`ServeError`). Run it with::

    python -m mlpipe serve --port 8000
    uvicorn mlpipe.serve:create_app --factory --host 127.0.0.1 --port 8000
"""

import collections
import inspect
import json
import logging
import operator
import os
import re
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Route

from mlpipe import registry
from mlpipe.config import PATHS, project_dir
from mlpipe.errors import ServeError

try:  # a faster JSON parser when it is installed (the course's lock has it); else the stdlib's
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    orjson = None

#: orjson refuses what the standard library refuses, dates and dataclasses included.
_ORJSON_STRICT = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS if orjson is not None else 0
)

logger = logging.getLogger("mlpipe.serve")

#: Where the inference log goes, inside the project folder.
LOG_FILE = Path(PATHS.inference_log)
#: Week 6's latest monitoring summary, inside the project folder (``python -m mlpipe monitor``).
SUMMARY_FILE = Path(PATHS.monitoring) / "summary.json"
#: Paths that get their own label in the request metrics; anything else is ``other``.
ENDPOINTS = ("/health", "/ready", "/metadata", "/predict", "/predict/batch", "/metrics")
#: Python types of the MLflow signature's column types.
COLUMN_TYPES: dict[str, type] = {
    "double": float,
    "float": float,
    "long": int,
    "integer": int,
    "boolean": bool,
    "string": str,
}


class CompactEncoder(json.JSONEncoder):
    """Compact JSON (no blanks) that refuses NaN and infinities, written by orjson when it can.

    orjson is about ten times faster than the standard library's encoder, and writes
    the same JSON values (non-ASCII characters as UTF-8 rather than ``\\u`` escapes).
    What it refuses (an integer beyond 64 bits, a key that is not a string, a date)
    or may write differently (``null``: it writes NaN and infinities so) goes to the
    standard library's encoder, whose errors are the ones raised.
    """

    def __init__(self) -> None:
        super().__init__(separators=(",", ":"), allow_nan=False)

    def encode(self, o: Any) -> str:
        """``o`` as compact JSON text."""
        if orjson is not None:
            try:
                data = orjson.dumps(o, option=_ORJSON_STRICT)
            except TypeError:  # orjson.JSONEncodeError
                pass
            else:
                if b"null" not in data:
                    return data.decode()
        return super().encode(o)


#: One compact JSON encoder for the log and the answers (``json.dumps`` builds one per call).
LOG_ENCODER = CompactEncoder()
#: Latency buckets of the request histogram, in seconds (the budget is 20 ms).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
#: Longest field name, key or media type quoted in an error message (longer ones are cut).
MAX_NAME = 40
#: Most errors one 422 lists.
MAX_ERRORS = 5
#: Longest error message, in characters.
MAX_MESSAGE = 1000


def clip(text: object, limit: int = MAX_NAME) -> str:
    """``text`` as a string of at most ``limit`` characters (cut ones end in ``...``)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def served_dataset(settings: "Settings") -> Any:
    """The data set of the params file (:func:`mlpipe.config.load_dataset`; Iris without one).

    Raises:
        ServeError: When the params file is unusable, in one sentence.
    """
    from mlpipe.config import ParamsError, load_dataset

    path: Path | None = settings.params_file
    if path is None:
        path = project_dir() / "params.yaml"
        path = path if path.is_file() else None
    try:
        return load_dataset(path)
    except ParamsError as err:
        raise ServeError(str(err)) from None


def feature_range(settings: "Settings") -> tuple[float, float]:
    """The valid range of a numeric feature: week 2's ``validate`` parameters.

    With a ``dataset`` section (week 8), the span of every numeric feature's range
    (the smallest ``min`` to the largest ``max``).

    Raises:
        ServeError: When the params file is unusable, in one sentence.
    """
    numeric = [f for f in served_dataset(settings).features if f.numeric]
    return float(min(f.min for f in numeric)), float(max(f.max for f in numeric))


def feature_categories(settings: "Settings") -> dict[str, tuple[str, ...]]:
    """The categories of each categorical feature of the served data set (none for Iris)."""
    return {f.name: f.categories for f in served_dataset(settings).features if not f.numeric}


class Settings(BaseSettings):
    """Everything the app is configured with; each field is also ``MLPIPE_SERVE_<FIELD>``.

    Attributes:
        model_name: The registered model to serve.
        model_alias: Its alias to serve (week 4's gates move ``champion``).
        tracking_uri: The MLflow store; ``None`` follows week 3's rules
            (``MLFLOW_TRACKING_URI``, else ``<project>/mlflow.db``).
        max_batch: Most rows one ``/predict/batch`` request may hold.
        max_body_bytes: Largest request body accepted, in bytes.
        inference_log: The JSON-lines file every prediction is appended to.
        onnx: Predict through onnxruntime when the model converts to ONNX and
            agrees with scikit-learn on its logged input example (about 30 times
            faster for one row); otherwise, or when ``False``, use scikit-learn.
        log_required: Refuse (503) a prediction the inference log cannot record;
            ``False`` serves it anyway (and logs the failure).
        params_file: The ``params.yaml`` whose ``validate`` section gives the valid
            range of the features; ``None`` is ``<project>/params.yaml`` when it
            exists, else week 2's defaults.
        monitor_summary: Week 6's monitoring summary, whose gauges ``/metrics``
            publishes while the file exists.
    """

    model_config = SettingsConfigDict(env_prefix="MLPIPE_SERVE_", protected_namespaces=())

    model_name: str = registry.DEFAULT_MODEL_NAME
    model_alias: str = registry.CHAMPION
    tracking_uri: str | None = None
    max_batch: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    inference_log: Path = Field(default_factory=lambda: project_dir() / LOG_FILE)
    onnx: bool = True
    log_required: bool = True
    params_file: Path | None = None
    monitor_summary: Path = Field(default_factory=lambda: project_dir() / SUMMARY_FILE)


def load_settings(**overrides: Any) -> Settings:
    """Read :class:`Settings` from the environment, in one sentence when a value is bad.

    Raises:
        ServeError: When an ``MLPIPE_SERVE_*`` variable has a value of the wrong kind.
    """
    try:
        return Settings(**overrides)
    except ValidationError as err:
        first = err.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        raise ServeError(
            f"MLPIPE_SERVE_{name.upper()} is not valid: {first['msg'].lower()}."
        ) from None


@dataclass(frozen=True)
class ModelRef:
    """The model version an alias pointed to at start-up.

    Attributes:
        name: Registered model name.
        alias: The alias it was resolved from.
        version: The version the alias pointed to.
        run_id: The run that logged it.
        download_uri: Where its artifacts are.
        tracking_uri: The store it came from.
        features: ``(column, MLflow type)`` pairs of the input signature, in order.
    """

    name: str
    alias: str
    version: str
    run_id: str | None
    download_uri: str
    tracking_uri: str
    features: tuple[tuple[str, str], ...]

    @property
    def columns(self) -> list[str]:
        """The input column names, in the order the model expects them."""
        return [name for name, _ in self.features]


def default_tracking_uri() -> str:
    """Week 3's store: ``MLFLOW_TRACKING_URI``, else the project's SQLite file."""
    return registry.tracking_uri()


def _check_store(uri: str) -> None:
    """Refuse a store that is not there before MLflow creates an empty one."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise ServeError(
                f"The tracking store {uri} does not exist; register a model first (week 3) "
                "or set MLPIPE_SERVE_TRACKING_URI."
            )
    elif uri.startswith(("http://", "https://")):
        from mlpipe import track

        try:
            track.check_reachable(uri)
        except track.TrackingError as err:
            raise ServeError(str(err)) from None


def _download(download_uri: str, name: str, tracking_uri: str, dst: str) -> str:
    """Download one file of a logged model's artifacts into ``dst``; return its path."""
    return registry.download(f"{download_uri.rstrip('/')}/{name}", tracking_uri, dst)


def _signature_features(download_uri: str, tracking_uri: str) -> tuple[tuple[str, str], ...]:
    """The ``(column, type)`` pairs of a logged model's input signature."""
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="mlpipe-serve-") as tmp:
        signature = Model.load(_download(download_uri, "MLmodel", tracking_uri, tmp)).signature
    inputs = signature.inputs if signature is not None else None
    if inputs is None or not inputs.has_input_names():
        raise ServeError(f"The model at {download_uri} has no named input signature; log one.")
    return tuple((col.name, col.type.name) for col in inputs.inputs)


def resolve_model(settings: Settings) -> ModelRef:
    """Find, synchronously, the model version that ``settings.model_alias`` points to.

    The signature's columns come from the version's ``MLmodel`` file (a small
    download); the model itself is loaded later by :func:`load_model`.

    Returns:
        The :class:`ModelRef`.

    Raises:
        ServeError: When the store is missing or unreachable (the sentences of
            ``_check_store``, given, which asks :func:`mlpipe.track.check_reachable`:
            ``Cannot reach the MLflow tracking server at ...``), or has no model
            ``settings.model_name`` with the alias ``settings.model_alias``:
            ``The registry at <tracking URI> has no model '<name>' with the
            alias '<alias>'.``
    """
    ### BEGIN SOLUTION
    from mlflow.exceptions import MlflowException

    uri = settings.tracking_uri or default_tracking_uri()
    _check_store(uri)
    client = registry.client(uri)
    try:
        version = client.get_model_version_by_alias(settings.model_name, settings.model_alias)
    except MlflowException:
        raise ServeError(
            f"The registry at {uri} has no model '{settings.model_name}' "
            f"with the alias '{settings.model_alias}'."
        ) from None
    download_uri = client.get_model_version_download_uri(settings.model_name, version.version)
    return ModelRef(
        name=settings.model_name,
        alias=settings.model_alias,
        version=str(version.version),
        run_id=version.run_id,
        download_uri=download_uri,
        tracking_uri=uri,
        features=_signature_features(download_uri, uri),
    )
    ### END SOLUTION


def load_model(ref: ModelRef) -> Any:
    """Download the model's artifacts and load its scikit-learn flavour (once).

    Returns:
        The fitted scikit-learn estimator.
    """
    ### BEGIN SOLUTION
    import mlflow

    with tempfile.TemporaryDirectory(prefix="mlpipe-serve-") as tmp:
        return mlflow.sklearn.load_model(registry.download(ref.download_uri, ref.tracking_uri, tmp))
    ### END SOLUTION


# --- request and response schemas ------------------------------------------------------------


class Prediction(BaseModel):
    """The answer to ``/predict``."""

    request_id: str
    model_version: str
    prediction: str


class BatchPrediction(BaseModel):
    """The answer to ``/predict/batch``, one prediction per row, in order."""

    request_id: str
    model_version: str
    predictions: list[str]


def row_schema(
    features: tuple[tuple[str, str], ...], categories: dict[str, tuple[str, ...]] | None = None
) -> type[BaseModel]:
    """Build the pydantic model of one input row from the model's signature.

    Every column is a required field of its type, in strict mode (``"5.1"`` is
    not a number); a number must be finite (no NaN, no infinity); an unknown
    field is an error.

    Args:
        features: ``(column, MLflow type)`` pairs, e.g. ``("sepal_length", "double")``.
        categories: Week 8: the categories of each categorical column (see
            :func:`feature_categories`); such a field is an enum of them.

    Returns:
        A pydantic model class named ``Row``.
    """
    categories = categories or {}
    ### BEGIN SOLUTION
    fields: dict[str, Any] = {}
    for name, kind in features:
        python_type = COLUMN_TYPES.get(kind, str)
        if name in categories:
            fields[name] = (Literal[tuple(categories[name])], ...)
        elif python_type is float:
            fields[name] = (Annotated[float, Field(strict=True, allow_inf_nan=False)], ...)
        else:
            fields[name] = (Annotated[python_type, Field(strict=True)], ...)
    config = ConfigDict(extra="forbid")
    return create_model("Row", __config__=config, **fields)
    ### END SOLUTION


def batch_schema(row: type[BaseModel]) -> type[BaseModel]:
    """The body of ``/predict/batch``: ``{"rows": [row, ...]}`` with at least one row."""
    config = ConfigDict(extra="forbid")
    rows = Annotated[list[row], Field(min_length=1)]  # type: ignore[valid-type]
    return create_model("Batch", __config__=config, rows=(rows, ...))


# --- request bodies: parsed and validated by column --------------------------------------------


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``' object hook: a dict, or :class:`_DuplicateKey` for a repeated key."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return found


#: A key's closing quote, blanks, then its colon (``"a" : 1``); ``":`` is counted apart.
_SPACED_KEY = re.compile(rb'"[ \t\r\n]+:')


def _raw_keys(body: bytes) -> int:
    """At least the number of object keys in a JSON text (a string may add false ones)."""
    count = body.count(b'":')
    if _SPACED_KEY.search(body):  # one pass; most bodies have no blank before a colon
        count += len(_SPACED_KEY.findall(body))
    return count


def _parsed_keys(value: Any) -> int:
    """The number of keys of every object in a parsed JSON value (fast for rows of numbers)."""
    if type(value) is dict:
        return len(value) + sum(_parsed_keys(v) for v in value.values() if type(v) in (dict, list))
    if type(value) is not list:
        return 0
    kinds = set(map(type, value))
    objects = [v for v in value if type(v) is dict] if kinds - {dict} else value
    count = sum(map(len, objects)) if dict in kinds else 0
    inner = set(map(type, chain.from_iterable(map(dict.values, objects))))
    if dict in inner or list in inner:
        count += sum(_parsed_keys(v) for v in chain.from_iterable(map(dict.values, objects)))
    if list in kinds:
        count += sum(_parsed_keys(v) for v in value if type(v) is list)
    return count


def parse_body(body: bytes, content_type: str | None) -> Any:
    """Decode a request body as JSON, or raise an :class:`HTTPException` in one sentence.

    Raises:
        HTTPException: 415 when the body is not sent as ``application/json``; 400
            when it is not UTF-8, not JSON (with its line and column) or nested too
            deeply; 422 when an object repeats a key (the key is named).
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        sent = f"'{clip(media)}'" if media else "no Content-Type"
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"The body must be JSON sent with Content-Type: application/json, not {sent}.",
        )
    if orjson is not None:
        # Valid JSON parses to the same value (integers beyond 64 bits become the nearest
        # double: what RFC 8259 promises and the model receives); anything orjson refuses
        # (NaN, Infinity, bad UTF-8, deep nesting) goes the standard library's way below.
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        else:
            if _parsed_keys(data) == _raw_keys(body):
                return data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"The body is not UTF-8: byte {err.start} (0x{body[err.start]:02x}) is invalid.",
        ) from None
    try:
        data = json.loads(text)
        if _parsed_keys(data) != _raw_keys(body):  # a key repeated (or a look-alike in a string)
            data = json.loads(text, object_pairs_hook=_unique_keys)
        return data
    except json.JSONDecodeError as err:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"The body is not valid JSON: {err.msg[:1].lower()}{err.msg[1:]} "
            f"at line {err.lineno}, column {err.colno}.",
        ) from None
    except RecursionError:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "The body is nested too deeply to parse; a row is one flat JSON object.",
        ) from None
    except _DuplicateKey as err:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"Invalid input: the key '{clip(err.key)}' appears twice in one object.",
        ) from None


def _invalid(errors: list[str], more: bool = False) -> HTTPException:
    """One 422 sentence from ``field: problem`` strings (the first few, capped)."""
    where = "; ".join(errors[:MAX_ERRORS]) + ("; and more" if more else "")
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, clip(f"Invalid input: {where}.", MAX_MESSAGE)
    )


class RowChecker:
    """Validate rows against the signature by column, with NumPy, in one pass.

    A numeric signature is checked over the whole batch at once: the keys of
    every row, the Python types of every column, then finiteness and range as
    arrays. Only when something is wrong are the bad rows looked at one by one
    (with the ``row`` model, then the range) to name the fields.

    Args:
        features: ``(column, MLflow type)`` pairs of the signature.
        row: The pydantic model of one row (:func:`row_schema`).
        low: Smallest valid value of a numeric feature.
        high: Largest valid value of a numeric feature.
    """

    def __init__(
        self, features: tuple[tuple[str, str], ...], row: type[BaseModel], low: float, high: float
    ) -> None:
        self.columns = [name for name, _ in features]
        self.keys = frozenset(self.columns)
        #: A row's values in column order, as a tuple (``itemgetter`` runs in C).
        self.values_of = (
            operator.itemgetter(*self.columns)
            if len(self.columns) > 1
            else (lambda row, c=self.columns[0]: (row[c],))
        )
        self.row = row
        self.low, self.high = low, high
        kinds = [COLUMN_TYPES.get(kind, str) for _, kind in features]
        self.numeric_columns = [
            c for c, k in zip(self.columns, kinds, strict=True) if k in (float, int)
        ]
        self.numeric = len(self.numeric_columns) == len(self.columns)
        self.allowed = [frozenset({float, int}) if k is float else frozenset({int}) for k in kinds]

    def check(self, rows: list[Any], prefix: str = "") -> np.ndarray | None:
        """Check ``rows`` (parsed JSON values); return their matrix in signature order.

        Returns:
            A float matrix for a numeric signature, else ``None``.

        Raises:
            HTTPException: A 422 naming the first bad fields (``rows.3.sepal_width``).
        """
        if self.numeric:
            matrix = self._one(rows[0]) if len(rows) == 1 else self._fast(rows)
            if matrix is not None:
                return matrix
        else:
            ok = True
            for r in rows:
                try:
                    self.row.model_validate(r)
                except ValidationError:
                    ok = False
                    break
            if ok and self._in_range_rows(rows):
                return None
        raise _invalid(*self._describe(rows, prefix))

    def _one(self, row: Any) -> np.ndarray | None:
        # What ``_fast`` does for one row, in plain Python (NumPy's calls cost more here).
        if type(row) is not dict or len(row) != len(self.columns):
            return None
        try:
            values = self.values_of(row)
        except KeyError:
            return None
        low, high = self.low, self.high
        for value, allowed in zip(values, self.allowed, strict=True):
            if type(value) not in allowed:
                return None
            try:
                if not low <= float(value) <= high:  # NaN is never inside
                    return None
            except OverflowError:  # an integer beyond float64
                return None
        return np.array([values], dtype=float)

    def _fast(self, rows: list[Any]) -> np.ndarray | None:
        # Every row a dict with exactly the columns: as many keys as columns, and each found.
        if set(map(type, rows)) != {dict} or set(map(len, rows)) != {len(self.columns)}:
            return None
        try:
            values = list(map(self.values_of, rows))
        except KeyError:
            return None
        for allowed, column in zip(self.allowed, zip(*values, strict=True), strict=True):
            if not set(map(type, column)) <= allowed:
                return None
        try:
            matrix = np.array(values, dtype=float)
        except OverflowError:  # an integer beyond float64
            return None
        with np.errstate(invalid="ignore"):
            inside = (matrix >= self.low) & (matrix <= self.high)  # NaN is never inside
        return matrix if inside.all() else None

    def _outside(self, value: Any) -> bool:
        if type(value) not in (int, float):
            return False
        try:
            return not self.low <= float(value) <= self.high
        except OverflowError:
            return True

    def _in_range_rows(self, rows: list[Any]) -> bool:
        return not any(self._outside(r.get(c)) for r in rows for c in self.numeric_columns)

    def _describe(self, rows: list[Any], prefix: str) -> tuple[list[str], bool]:
        """``field: problem`` for the first bad fields, and whether there are more."""
        errors: list[str] = []
        for i, r in enumerate(rows):
            if len(errors) > MAX_ERRORS:
                break
            at = f"{prefix}{i}." if prefix else ""
            if type(r) is not dict:
                errors.append(f"{at[:-1] or 'the body'}: must be a JSON object of the features")
                continue
            try:
                self.row.model_validate(r)
            except ValidationError as err:
                for e in err.errors(include_url=False, include_input=False, include_context=False):
                    field = ".".join(clip(part) for part in e["loc"]) or "the row"
                    errors.append(f"{at}{field}: {clip(e['msg'], 100).lower()}")
                continue
            errors.extend(
                f"{at}{c}: must be a number from {self.low:g} to {self.high:g} "
                "(the range week 2's validation accepts)"
                for c in self.numeric_columns
                if self._outside(r.get(c))
            )
        return errors, len(errors) > MAX_ERRORS


async def read_rows(
    request: Request, state: "ServeState", batch: bool
) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """The validated rows of a ``/predict`` (one row) or ``/predict/batch`` body.

    Returns:
        The rows (feature dicts) and, for a numeric signature, their matrix.

    Raises:
        HTTPException: 415, 400 or 422 for a bad body (see :func:`parse_body` and
            :class:`RowChecker`), 413 for a batch over ``max_batch`` rows.
    """
    media = _header(request.scope, b"content-type")
    data = parse_body(await request.body(), media.decode("latin-1") if media is not None else None)
    if not batch:
        if type(data) is not dict:
            raise _invalid([f"the body: must be a JSON object of the features, not {_kind(data)}"])
        return [data], state.checker.check([data])
    if type(data) is not dict or "rows" not in data:
        raise _invalid(['the body: must be a JSON object {"rows": [...]}'])
    extra = [k for k in data if k != "rows"]
    if extra:
        raise _invalid([f"{clip(extra[0])}: extra inputs are not permitted"])
    rows = data["rows"]
    if type(rows) is not list or not rows:
        raise _invalid(["rows: must be a non-empty JSON array of rows"])
    limit = state.settings.max_batch
    if len(rows) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"A batch may hold at most {limit} rows, this one has {len(rows)}.",
        )
    return rows, state.checker.check(rows, "rows.")


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), "a number"
    )


# --- inference log ------------------------------------------------------------------------------


def log_records(
    ref: ModelRef,
    request_id: str,
    inputs: list[dict[str, Any]],
    outputs: list[str],
    latency_ms: float,
) -> list[dict[str, Any]]:
    """One inference-log record per prediction.

    Returns:
        Dicts with the keys ``request_id``, ``time`` (ISO 8601, UTC),
        ``model_name``, ``model_version``, ``inputs`` (the feature dict),
        ``output`` (the label) and ``latency_ms``, in the order of ``inputs``.
    """
    ### BEGIN SOLUTION
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    latency = round(latency_ms, 3)
    return [
        {
            "request_id": request_id,
            "time": now,
            "model_name": ref.name,
            "model_version": ref.version,
            "inputs": row,
            "output": output,
            "latency_ms": latency,
        }
        for row, output in zip(inputs, outputs, strict=True)
    ]
    ### END SOLUTION


class InferenceLog:
    """An append-only JSON-lines file, safe for concurrent writers.

    The file is opened once with ``O_APPEND``; :meth:`write` encodes all its
    records first and hands them to the kernel in one ``os.write``, so the
    lines of one request land whole and together, never interleaved with
    another writer's.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            raise ServeError(
                f"Cannot open the inference log {self.path} ({err.strerror})."
            ) from None

    def write(self, records: list[dict[str, Any]]) -> int:
        """Append ``records`` as JSON lines in one system call.

        Returns:
            The number of bytes written.
        """
        ### BEGIN SOLUTION
        if self.fd is None:
            raise ServeError(f"The inference log {self.path} is closed.")
        data = "".join(LOG_ENCODER.encode(record) + "\n" for record in records).encode("utf-8")
        return os.write(self.fd, data)
        ### END SOLUTION

    def append(self, data: bytes) -> int:
        """Append encoded JSON lines in one system call (see :meth:`write`).

        Returns:
            The number of bytes written.
        """
        if self.fd is None:
            raise ServeError(f"The inference log {self.path} is closed.")
        return os.write(self.fd, data)

    def close(self) -> None:
        """Close the file (further writes fail)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# --- metrics --------------------------------------------------------------------------------------


class SummaryCollector:
    """Week 6's monitoring gauges, read from the summary file at each scrape.

    No file, or one that is not a summary, publishes nothing (the latter is logged);
    the gauges themselves are :func:`mlpipe.monitor.summary_metrics`' (no Evidently).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> list[Any]:
        """Nothing to declare up front (the registry then never reads the file early)."""
        return []

    def collect(self) -> list[Any]:
        """The summary's gauges, or none."""
        try:
            summary = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            logger.warning("monitoring summary %s not published: %s", self.path, err)
            return []
        from mlpipe.monitor import summary_metrics

        try:
            return summary_metrics(summary)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            logger.warning("monitoring summary %s not published: %r", self.path, err)
            return []


class Metrics:
    """The app's Prometheus metrics, in a registry of its own (one per app).

    Args:
        ref: The model served.
        summary: Week 6's monitoring summary file (``None``: no monitoring gauges).
    """

    def __init__(self, ref: ModelRef, summary: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        if summary is not None:
            self.registry.register(SummaryCollector(summary))
        self.requests = Counter(
            "mlpipe_http_requests",
            "HTTP requests answered, by method, endpoint and status code.",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlpipe_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "mlpipe_predictions",
            "Predictions made, by predicted label.",
            ["model_version", "label"],
            registry=self.registry,
        )
        info = Gauge(
            "mlpipe_model_info",
            "The model being served (always 1).",
            ["model_name", "model_version", "model_alias"],
            registry=self.registry,
        )
        info.labels(ref.name, ref.version, ref.alias).set(1)
        self.version = ref.version
        # Each labelled child once: ``labels()`` costs more than the ``inc()`` itself.
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[str, Any] = {}
        self._predictions: dict[str, Any] = {}

    def observe(self, method: str, endpoint: str, code: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (method, endpoint, code)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.requests.labels(method, endpoint, str(code))
        counter.inc()
        histogram = self._latency.get(endpoint)
        if histogram is None:
            histogram = self._latency[endpoint] = self.latency.labels(endpoint)
        histogram.observe(seconds)

    def count_predictions(self, labels: list[str]) -> None:
        """Count the predicted labels."""
        counts = {labels[0]: 1} if len(labels) == 1 else collections.Counter(labels)
        for label, count in counts.items():
            counter = self._predictions.get(label)
            if counter is None:
                counter = self._predictions[label] = self.predictions.labels(self.version, label)
            counter.inc(count)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"The request body is larger than the limit of {limit} bytes.",
        )


class _ReadRequest(Request):
    """A request whose body :class:`GuardMiddleware` has read already."""

    def __init__(self, scope: MutableMapping[str, Any], body: bytes, receive: Any, send: Any):
        super().__init__(scope, receive, send)
        self.read = body

    async def stream(self) -> AsyncIterator[bytes]:
        """The body, in one chunk."""
        yield self.read
        yield b""

    async def body(self) -> bytes:
        """The body."""
        return self.read


async def _read_body(
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]], limit: int
) -> bytes:
    """The whole request body, or :class:`_BodyTooLarge` as soon as it passes ``limit``.

    Raises:
        ClientDisconnect: When the client went away before the body was complete.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class GuardMiddleware:
    """Pure ASGI middleware: refuse oversized bodies, measure every request, and
    answer the direct routes itself.

    A ``POST`` to a path of :data:`DIRECT` that :func:`direct_routes` put in
    ``router`` is answered here, without the layers below (FastAPI's exception
    middleware, its exit stack, the router's walk and Starlette's request wrapper),
    which cost more than the prediction: the body is read (within the limit), the
    route's endpoint is called, and an exception it raises goes to the app's handler
    for it (``exception_handlers``), as it would below. An exception without a
    handler goes up to Starlette's server-error middleware, a 500. Anything else
    goes down the stack.

    Args:
        app: The wrapped ASGI app.
        max_body_bytes: Largest body accepted; a larger ``Content-Length`` is
            answered with 413 before the body is read, and a chunked body is
            cut off as soon as it passes the limit.
        metrics: Where each request's status and latency are recorded.
        router: The app's router, whose direct routes are answered here (``None``: none).
        exception_handlers: The app's exception handlers (``FastAPI.exception_handlers``).
    """

    def __init__(
        self,
        app: Any,
        max_body_bytes: int,
        metrics: Metrics,
        router: Any = None,
        exception_handlers: dict[Any, Callable[..., Any]] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.direct: dict[str, Callable[[Request], Awaitable[Response]]] = {
            route.path: route.endpoint
            for route in (router.routes if router is not None else ())
            if type(route) is Route and route.path in DIRECT and "POST" in (route.methods or ())
        }
        self.handlers = {
            key: handler
            for key, handler in (exception_handlers or {}).items()
            if key not in (500, Exception)  # those are the server-error middleware's
        }

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else "other"
        direct = self.direct.get(path) if scope["method"] == "POST" else None
        if direct is None or scope.get("root_path") or _content_length(scope) > self.max_body_bytes:
            await self._guarded(scope, receive, send, endpoint, start)
            return
        code = 500
        try:
            response = await self._answer(direct, scope, receive, send)
            code = response.status_code
            await response(scope, receive, send)
        finally:
            self.metrics.observe("POST", endpoint, code, time.perf_counter() - start)

    async def _guarded(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
        endpoint: str,
        start: float,
    ) -> None:
        """Pass the request down the stack, within the body limit, recording its status."""
        code = 500
        limit = self.max_body_bytes

        async def send_and_record(message: MutableMapping[str, Any]) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        received = 0

        async def receive_limited() -> MutableMapping[str, Any]:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge(limit)
            return message

        try:
            if _content_length(scope) > limit:
                error = _BodyTooLarge(limit)
                response = JSONResponse({"detail": error.detail}, status_code=error.status_code)
                await response(scope, receive, send_and_record)
                return
            await self.app(scope, receive_limited, send_and_record)
        finally:
            self.metrics.observe(scope["method"], endpoint, code, time.perf_counter() - start)

    async def _answer(
        self,
        endpoint: Callable[[Request], Awaitable[Response]],
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> Response:
        """A direct route's response, or its exception handler's."""
        body = b""
        try:
            body = await _read_body(receive, self.max_body_bytes)
            return await endpoint(_ReadRequest(scope, body, receive, send))
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            result = handler(_ReadRequest(scope, body, receive, send), exc)
            return await result if inspect.isawaitable(result) else result

    def _handler(self, exc: Exception) -> Callable[..., Any] | None:
        """The app's handler of ``exc`` (by status code first), as Starlette looks it up."""
        if isinstance(exc, StarletteHTTPException) and exc.status_code in self.handlers:
            return self.handlers[exc.status_code]
        return next((self.handlers[c] for c in type(exc).__mro__ if c in self.handlers), None)


def _header(scope: MutableMapping[str, Any], name: bytes) -> bytes | None:
    """The first value of the (lower-case) header ``name``, or ``None`` (no ``Headers`` object)."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _content_length(scope: MutableMapping[str, Any]) -> int:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


# --- the ONNX fast path ---------------------------------------------------------------------------


class OnnxPredictor:
    """A scikit-learn classifier's predictions through onnxruntime.

    scikit-learn spends most of a one-row ``predict`` checking its input;
    onnxruntime runs the same arithmetic (in float32) in a few microseconds.
    """

    def __init__(self, onnx_bytes: bytes) -> None:
        from mlpipe.export import onnx_session

        self.session = onnx_session(onnx_bytes)
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name
        self.outputs = [self.output]

    def predict(self, matrix: np.ndarray, fits: bool = False) -> np.ndarray | None:
        """The labels of ``matrix``'s rows, or ``None`` when a value does not fit float32.

        Args:
            matrix: The rows, in the signature's column order.
            fits: The caller knows that every value is finite and fits float32
                (skips the check).
        """
        if fits:
            values = matrix.astype(np.float32)
        else:
            with np.errstate(over="ignore"):
                values = matrix.astype(np.float32)
            if not np.isfinite(values).all():
                return None
        return self.session.run(self.outputs, {self.input: values})[0]


def _input_example(ref: ModelRef) -> np.ndarray | None:
    """The rows of the model's logged input example (signature order), if it has one."""
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="mlpipe-serve-") as tmp:
        model = Model.load(_download(ref.download_uri, "MLmodel", ref.tracking_uri, tmp))
        info = model.saved_input_example_info or {}
        if "artifact_path" not in info:
            return None
        _download(ref.download_uri, info["artifact_path"], ref.tracking_uri, tmp)
        example = model.load_input_example(tmp)
    frame = example if hasattr(example, "columns") else None
    if frame is None or any(c not in frame.columns for c in ref.columns):
        return None
    return frame[ref.columns].to_numpy(dtype=float)


def onnx_predictor(model: Any, ref: ModelRef) -> tuple[OnnxPredictor | None, str]:
    """Convert ``model`` to ONNX if it predicts exactly as scikit-learn does.

    Parity is checked on the logged input example and on 200 rows around it
    (each feature scaled by 0.5 to 1.5); any failure keeps scikit-learn.

    Returns:
        The predictor (``None`` to keep scikit-learn) and why, in a few words.
    """
    from mlpipe import export

    try:
        example = _input_example(ref)
        if example is None:
            return None, "scikit-learn (the model has no logged input example to check ONNX on)"
        rng = np.random.default_rng(0)
        picks = example[rng.integers(0, len(example), 200)]
        rows = np.vstack([example, picks * rng.uniform(0.5, 1.5, picks.shape)])
        onnx_bytes = export.to_onnx(model, rows.shape[1])
        parity = export.check_parity(model, onnx_bytes, rows)
        if not parity.passed:
            return None, f"scikit-learn (ONNX disagreed on {parity.label_mismatches} rows)"
        return OnnxPredictor(onnx_bytes), f"onnxruntime (parity on {parity.rows} rows)"
    except Exception as err:  # an unconvertible model is served by scikit-learn
        return None, f"scikit-learn (no ONNX: {type(err).__name__})"


# --- the app --------------------------------------------------------------------------------------


class ServeState:
    """What the routes share: settings, the resolved model, the log and the metrics."""

    def __init__(self, settings: Settings, ref: ModelRef, row: type[BaseModel]) -> None:
        self.settings = settings
        self.ref = ref
        self.row = row
        low, high = feature_range(settings)
        self.checker = RowChecker(ref.features, row, low, high)
        #: Why the inference log failed at its last write (``None``: it works).
        self.log_error: str | None = None
        self.columns = ref.columns
        numeric = all(COLUMN_TYPES.get(kind) in (float, int) for _, kind in ref.features)
        self.dtype: type = float if numeric else object
        #: Whether every valid row is numbers that fit float32 (onnxruntime need not check).
        self.fits = numeric and max(abs(low), abs(high)) <= float(np.finfo(np.float32).max)
        self.model: Any = None
        self.fast: OnnxPredictor | None = None
        self.runtime = "not loaded"
        self.error: str | None = None
        self.loaded = threading.Event()
        self.log = InferenceLog(settings.inference_log)
        self.metrics = Metrics(ref, settings.monitor_summary)

    def load(self) -> None:
        """Load the model (run in a background thread); record a failure's reason."""
        try:
            model = load_model(self.ref)
            if self.settings.onnx:
                self.fast, self.runtime = onnx_predictor(model, self.ref)
            else:
                self.runtime = "scikit-learn (MLPIPE_SERVE_ONNX is off)"
            self.model = model
            logger.info(
                "serving %s version %s with %s", self.ref.name, self.ref.version, self.runtime
            )
        except Exception as err:  # the reason is shown by /ready
            self.error = f"{type(err).__name__}: {err}"
            logger.error("loading %s version %s failed: %s", self.ref.name, self.ref.version, err)
        finally:
            self.loaded.set()

    def require_model(self) -> Any:
        """The loaded model, or a 503 while it is loading (or failed to load)."""
        if self.model is None:
            reason = self.error or "the model is still loading"
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Not ready: {reason}.")
        return self.model

    def predict(self, rows: list[dict[str, Any]], matrix: np.ndarray | None = None) -> list[str]:
        """Predict the labels of validated rows (feature dicts), in order.

        The rows become a NumPy array with the columns in signature order (or
        ``matrix`` is that array already, from :func:`read_rows`), which skips
        pandas entirely; they were validated already, so scikit-learn's warning
        about missing column names is silenced.
        """
        model = self.require_model()
        if matrix is None:
            matrix = np.array([[row[c] for c in self.columns] for row in rows], dtype=self.dtype)
        labels = self.fast.predict(matrix, self.fits) if self.fast is not None else None
        if labels is not None:
            return [str(label) for label in labels]
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", UserWarning)
                labels = model.predict(matrix)
        except (ValueError, OverflowError) as err:  # e.g. finite values too large once scaled
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"The model cannot score this input: {err}"
            ) from None
        return [str(label) for label in labels]

    def log_lines(
        self,
        request_id: str,
        inputs: list[dict[str, Any]],
        matrix: np.ndarray | None,
        labels: list[str],
        latency_ms: float,
    ) -> bytes:
        """The inference-log lines of a batch, encoded at once.

        The same lines as :func:`log_records` then :meth:`InferenceLog.write`, with
        the same keys in the same order, but the parts every line shares are encoded
        once and each row's numbers go through one format string (about four times
        faster than a JSON encoder per record). Without a numeric ``matrix`` the
        records are encoded one by one.
        """
        if matrix is None:
            records = log_records(self.ref, request_id, inputs, labels, latency_ms)
            return "".join(LOG_ENCODER.encode(r) + "\n" for r in records).encode("utf-8")
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        head = LOG_ENCODER.encode(
            {
                "request_id": request_id,
                "time": now,
                "model_name": self.ref.name,
                "model_version": self.ref.version,
            }
        )[:-1]
        # One format string per label, each row formatted once (``%`` in names doubled).
        prefix = (head + ',"inputs":').replace("%", "%%")
        names = [LOG_ENCODER.encode(c).replace("%", "%%") for c in self.columns]
        row = "{" + ",".join(f"{name}:%r" for name in names) + "}"
        latency = LOG_ENCODER.encode(round(latency_ms, 3))
        formats = {
            label: prefix
            + row
            + f',"output":{LOG_ENCODER.encode(label)},"latency_ms":{latency}}}\n'.replace("%", "%%")
            for label in set(labels)
        }
        lines = [
            formats[label] % values
            for values, label in zip(map(tuple, matrix.tolist()), labels, strict=True)
        ]
        return "".join(lines).encode("utf-8")

    def write_log(self, records: list[dict[str, Any]] | bytes) -> None:
        """Append ``records`` (or lines from :meth:`log_lines`) to the inference log.

        A prediction the log cannot record is refused, in one sentence.

        Raises:
            HTTPException: 503 when the log cannot be written (a full disk, say) and
                ``log_required`` is on: a prediction that is not logged is not served.
                ``/ready`` is 503 until a write succeeds again.
        """
        try:
            if isinstance(records, bytes):
                self.log.append(records)
            else:
                self.log.write(records)
        except (OSError, ServeError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            self.log_error = (
                f"the inference log {clip(self.log.path, 200)} cannot be written ({reason})"
            )
            logger.error("%s", self.log_error)
            if self.settings.log_required:
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE, f"Not serving: {self.log_error}."
                ) from None
        else:
            self.log_error = None

    def close(self) -> None:
        """Release the log file."""
        self.log.close()


async def get_state(request: Request) -> ServeState:
    """The dependency every route uses: the app's :class:`ServeState`.

    It is ``async`` so that FastAPI calls it on the event loop: a plain ``def``
    dependency would go through a thread pool, which costs more than a prediction.
    """
    return request.app.state.serve


StateDep = Annotated[ServeState, Depends(get_state)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not UTF-8 JSON (what is wrong, and where)."},
    413: {"description": "The body or the batch is too large."},
    415: {"description": "The body is not sent as application/json."},
    422: {"description": "The input does not match the model's schema, or cannot be scored."},
    503: {"description": "The model is not loaded yet, or the inference log cannot be written."},
}


def answer(payload: dict[str, Any]) -> Response:
    """``payload`` as a JSON response, encoded once (FastAPI would validate it again
    against the route's ``response_model``, which only documents it)."""
    return Response(LOG_ENCODER.encode(payload).encode("utf-8"), media_type="application/json")


def _body(schema: str) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads it itself (``read_rows``)."""
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _routes(row: type[BaseModel], batch: type[BaseModel]) -> APIRouter:
    """The app's routes; ``row`` and ``batch`` are the request bodies built from the signature."""
    router = APIRouter()

    @router.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/ready", responses={503: _ERRORS[503]})
    async def ready(state: StateDep) -> JSONResponse:
        """Readiness: 200 once the model is loaded, 503 before (or if loading failed).

        Also 503 (``"status": "failed"``, the reason as ``detail``) while the inference
        log cannot be written (``state.log_error`` is set) and ``log_required`` is on.
        """
        ### BEGIN SOLUTION
        body = {"model_name": state.ref.name, "model_version": state.ref.version}
        if state.log_error is not None and state.settings.log_required:
            return JSONResponse({"status": "failed", "detail": state.log_error, **body}, 503)
        if state.model is not None:
            return JSONResponse({"status": "ready", **body})
        if state.error is not None:
            return JSONResponse({"status": "failed", "detail": state.error, **body}, 503)
        return JSONResponse({"status": "loading", **body}, 503)
        ### END SOLUTION

    @router.get("/metadata")
    async def metadata(state: StateDep) -> dict[str, Any]:
        """The model served and the input it expects."""
        ref = state.ref
        return {
            "model_name": ref.name,
            "model_version": ref.version,
            "model_alias": ref.alias,
            "run_id": ref.run_id,
            "features": [{"name": name, "type": kind} for name, kind in ref.features],
            "input_schema": state.row.model_json_schema(),
            "max_batch": state.settings.max_batch,
            "runtime": state.runtime,
        }

    @router.post(
        "/predict", response_model=Prediction, responses=_ERRORS, openapi_extra=_body("Row")
    )
    async def predict(request: Request) -> Prediction:
        """Predict the label of one row.

        The route takes the request alone (no dependency: FastAPI's dependency
        resolution costs more than the prediction); ``state`` is
        ``request.app.state.serve``, and the answer is encoded with :func:`answer`.
        Read and check the body with ``await read_rows(request, state, batch=False)``
        (the rows and their matrix; it answers bad input itself); predict with
        ``state.predict(rows, matrix)``; log with ``state.write_log(log_records(...))``,
        which refuses (503) a prediction the log cannot record; count the label.
        """
        ### BEGIN SOLUTION
        start = time.perf_counter()
        state: ServeState = request.app.state.serve
        inputs, matrix = await read_rows(request, state, batch=False)
        label = state.predict(inputs, matrix)[0]
        request_id = uuid.uuid4().hex
        latency = (time.perf_counter() - start) * 1000
        state.write_log(log_records(state.ref, request_id, inputs, [label], latency))
        state.metrics.count_predictions([label])
        return answer(
            {"request_id": request_id, "model_version": state.ref.version, "prediction": label}
        )
        ### END SOLUTION

    @router.post(
        "/predict/batch",
        response_model=BatchPrediction,
        responses=_ERRORS,
        openapi_extra=_body("Batch"),
    )
    async def predict_batch(request: Request) -> BatchPrediction:
        """Predict the labels of many rows (at most ``max_batch``), in order.

        As :func:`predict`, with ``batch=True`` (which also answers 413 for too
        many rows): one ``write_log`` call for the whole batch (``log_records``, or
        the faster ``state.log_lines``, which encodes the same lines at once).
        """
        ### BEGIN SOLUTION
        start = time.perf_counter()
        state: ServeState = request.app.state.serve
        inputs, matrix = await read_rows(request, state, batch=True)
        labels = state.predict(inputs, matrix)
        request_id = uuid.uuid4().hex
        latency = (time.perf_counter() - start) * 1000
        state.write_log(state.log_lines(request_id, inputs, matrix, labels, latency))
        state.metrics.count_predictions(labels)
        return answer(
            {"request_id": request_id, "model_version": state.ref.version, "predictions": labels}
        )
        ### END SOLUTION

    @router.get("/metrics")
    async def metrics(state: StateDep) -> Response:
        """Prometheus metrics of this app."""
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


def _describe(error: dict[str, Any]) -> str:
    """``field: message`` for one validation error (the body itself for bad JSON)."""
    if error["type"] == "json_invalid":
        return f"the body is not valid JSON (at character {error['loc'][-1]})"
    field = ".".join(error["loc"][1:])
    return f"{field or 'the body'}: {error['msg']}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """A 422 that names each bad field, capped, without echoing the input."""
    errors = [
        {
            "loc": [clip(part) for part in e.get("loc", ())],
            "msg": clip(e.get("msg", ""), 100),
            "type": clip(e.get("type", "")),
        }
        for e in exc.errors()[:MAX_ERRORS]  # type: ignore[attr-defined]
    ]
    where = clip("; ".join(_describe(e) for e in errors), MAX_MESSAGE)
    return JSONResponse({"detail": errors, "message": f"Invalid input: {where}."}, 422)


def _openapi(app: FastAPI, row: type[BaseModel], batch: type[BaseModel]) -> Callable[[], dict]:
    """The app's OpenAPI document, with ``Row`` and ``Batch`` (read by ``read_rows``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            template = "#/components/schemas/{model}"
            schemas["Row"] = row.model_json_schema(ref_template=template)
            body = batch.model_json_schema(ref_template=template)
            body.pop("$defs", None)
            schemas["Batch"] = body
            app.openapi_schema = doc
        return app.openapi_schema

    return openapi


#: The routes that :func:`direct_routes` dispatches without FastAPI's per-request work.
DIRECT = ("/predict", "/predict/batch")


def _direct(route: APIRoute) -> Route | None:
    """A Starlette route calling ``route``'s endpoint directly, or None when it cannot.

    Only an ``async`` endpoint that takes the request alone can be called so. An
    answer that is not a :class:`Response` is validated against the route's
    ``response_model`` and encoded, as FastAPI would.
    """
    endpoint = route.endpoint
    params = list(inspect.signature(endpoint).parameters.values())
    if not inspect.iscoroutinefunction(endpoint) or len(params) != 1:
        return None
    if params[0].annotation not in (Request, "Request"):
        return None
    model = route.response_model

    async def call(request: Request) -> Response:
        result = await endpoint(request)
        if isinstance(result, Response):
            return result
        if model is not None and isinstance(model, type) and issubclass(model, BaseModel):
            result = model.model_validate(result).model_dump(mode="json")
        return JSONResponse(jsonable_encoder(result))

    return Route(route.path, call, methods=list(route.methods or ["POST"]), name=route.name)


def direct_routes(app: FastAPI) -> None:
    """Dispatch ``/predict`` and ``/predict/batch`` ahead of FastAPI's own routing.

    For each request FastAPI resolves the endpoint's dependencies and walks the
    route list; for one row that costs as much as the prediction itself. The
    :data:`DIRECT` routes, whose endpoints read the request themselves
    (:func:`read_rows`), are put first in the route list as plain Starlette routes
    calling the same functions. Their FastAPI routes stay behind them, for the
    OpenAPI document and to answer other methods with 405.
    """
    direct = [
        found
        for route in app.router.routes
        if isinstance(route, APIRoute) and route.path in DIRECT
        for found in [_direct(route)]
        if found is not None
    ]
    app.router.routes[:0] = direct


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start loading the model in the background; close the log at shutdown."""
    state: ServeState = app.state.serve
    threading.Thread(target=state.load, name="mlpipe-load-model", daemon=True).start()
    yield
    state.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the serving app.

    The alias is resolved here, synchronously, so a bad configuration stops
    the start-up; the model itself is loaded in the background once the app
    starts (``/ready`` says when).

    Args:
        settings: The configuration; ``None`` reads it from ``MLPIPE_SERVE_*``.

    Returns:
        The FastAPI app (its state is ``app.state.serve``, a :class:`ServeState`).

    Raises:
        ServeError: When the model cannot be resolved or the log cannot be opened.
    """
    settings = settings or load_settings()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    ref = resolve_model(settings)
    row = row_schema(ref.features, feature_categories(settings))
    state = ServeState(settings, ref, row)
    app = FastAPI(
        title="mlpipe serving",
        version=ref.version,
        description=f"Serves {ref.name}@{ref.alias} (version {ref.version}).",
        lifespan=_lifespan,
    )
    app.state.serve = state
    app.add_exception_handler(RequestValidationError, _validation_error)
    batch = batch_schema(row)
    app.include_router(_routes(row, batch))
    direct_routes(app)
    app.add_middleware(
        GuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        metrics=state.metrics,
        router=app.router,
        exception_handlers=app.exception_handlers,
    )
    app.openapi = _openapi(app, row, batch)  # type: ignore[method-assign]
    return app


def run(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve with uvicorn (one worker; no access log: the inference log and metrics cover it).

    Raises:
        ServeError: When the app refuses to start.
    """
    import uvicorn

    app = create_app(load_settings())
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info")
