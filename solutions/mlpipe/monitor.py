"""Week 6: watch the served model: data and prediction drift of the inference log.

The monitor compares a window of week 5's inference log (what the model was asked
and what it answered) with the training data (the reference)::

    read_log -> select_window --+
                                +-> build_report (Evidently) -> summarise -> outputs
    read_reference -------------+

* every feature is tested with Kolmogorov-Smirnov, the served labels (the
  ``prediction`` column) with chi-square against the training labels, whatever the
  sizes, so ``monitor.drift_threshold`` is always a p-value (below it: drifted);
* the data set has drifted when at least ``monitor.max_drift_share`` of the
  features drifted (Evidently's dataset-drift rule); ``--check`` then exits 1;
* with ground truth (``--labels``, a CSV of ``request_id`` and ``species``), the
  window's classification quality too.

The outputs go to ``reports/monitoring/``, each written atomically, and only once
everything is computed: ``drift.html`` and ``drift.json`` (Evidently's report),
``quality.html`` and ``quality.json`` (with labels), ``summary.json`` (a
:class:`MonitorSummary`) and ``mlpipe.prom``: the summary's gauges in the
node-exporter textfile format, the same gauges the serving app's ``/metrics``
publishes from ``summary.json``. Evidently is imported only to build a report (it
takes seconds), so bad input is refused at once, in one sentence
(:class:`MonitorError`)::

    python -m mlpipe monitor --last 500 --check
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from mlpipe.config import Dataset, MonitorParams
from mlpipe.errors import PipelineError
from mlpipe.files import write_json, write_text_atomic

#: The column of the served label, in the window and in the reference.
PREDICTION = "prediction"
#: The column of the true label (the training data's and the labels file's).
TARGET = "species"
#: The keys every inference-log record needs (week 5's ``log_records``).
RECORD_KEYS = ("request_id", "time", "model_version", "inputs", "output")
#: Evidently's test for the numeric features, and for the labels.
FEATURE_TEST = "ks"
LABEL_TEST = "chisquare"
#: The files the monitor writes into its output folder.
SUMMARY_FILE = "summary.json"
HTML_FILE = "drift.html"
JSON_FILE = "drift.json"
QUALITY_HTML_FILE = "quality.html"
QUALITY_JSON_FILE = "quality.json"
PROM_FILE = "mlpipe.prom"


class MonitorError(PipelineError, ValueError):
    """Input the monitor cannot judge; the message is one sentence."""


@dataclass(frozen=True)
class LogData:
    """The complete records of an inference log, as one frame.

    Attributes:
        frame: One row per prediction, in the log's order: the features, then
            ``prediction`` (the served label), ``time``, ``request_id`` and
            ``model_version``.
        lines: Complete lines read.
        torn_lines: A last line cut short by a writer (skipped): 0 or 1.
    """

    frame: pd.DataFrame
    lines: int
    torn_lines: int = 0


@dataclass(frozen=True)
class ColumnDrift:
    """The drift test of one column.

    Attributes:
        score: The test's p-value (lower: more different from the reference).
        test: Evidently's name of the test (``ks``, ``chisquare``).
        drifted: Whether ``score`` is below the policy's ``drift_threshold``.
    """

    score: float
    test: str
    drifted: bool


@dataclass(frozen=True)
class MonitorSummary:
    """What a monitoring run found, small enough for a dashboard and an alert.

    Attributes:
        generated_at: When the run finished (ISO 8601, UTC).
        timestamp: The same, in seconds since the epoch.
        rows: Predictions in the window.
        window_start: Time of the window's first prediction.
        window_end: Time of its last one.
        since: The ``--since`` asked for, if any.
        last: The most rows the window could hold (``None``: every row since ``since``).
        torn_lines: Torn last lines of the log that were skipped.
        features: The drift test of each feature, by name.
        prediction: The drift test of the served labels.
        drift_share: Share of the features that drifted, 0 to 1.
        drift_detected: Whether ``drift_share >= max_drift_share``.
        max_drift_share: The policy's share.
        drift_threshold: The policy's p-value threshold.
        prediction_share: Share of the window's predictions of each label.
        model_versions: The model versions that served the window.
        labelled_rows: Rows of the window with a true label (0 without ``--labels``).
        accuracy: Accuracy on those rows (``None`` without any).
        f1_macro: Macro F1 on those rows (``None`` without any).
    """

    generated_at: str
    timestamp: float
    rows: int
    window_start: str
    window_end: str
    since: str | None
    last: int | None
    torn_lines: int
    features: dict[str, ColumnDrift]
    prediction: ColumnDrift
    drift_share: float
    drift_detected: bool
    max_drift_share: float
    drift_threshold: float
    prediction_share: dict[str, float]
    model_versions: list[str] = field(default_factory=list)
    labelled_rows: int = 0
    accuracy: float | None = None
    f1_macro: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON values (what ``summary.json`` holds)."""
        return asdict(self)


# --- reading the inputs -----------------------------------------------------------------------


def schema_features(schema: Mapping[str, Any]) -> list[str]:
    """The features of a reference schema (week 2): its numeric columns, in order."""
    return [c for c in schema["columns"] if schema["types"].get(c) == "number"]


def _bad_line(path: Path, number: int, problem: str) -> MonitorError:
    return MonitorError(f"Line {number} of the inference log {path} {problem}.")


def _record_problem(
    record: Any, features: list[str], keys: set[str], categorical: Collection[str] = ()
) -> str | None:
    """What is wrong with one parsed log record, or ``None`` (``categorical``: text features)."""
    if type(record) is not dict:
        return "is not a JSON object"
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        return f"lacks the key(s) {', '.join(missing)}"
    inputs = record["inputs"]
    if type(inputs) is not dict:
        return "has 'inputs' that are not a JSON object"
    if inputs.keys() != keys:
        return f"has the inputs {', '.join(map(str, inputs))}, not {', '.join(features)}"
    bad = [f for f in categorical if type(inputs[f]) is not str]
    if bad:
        return f"has a value that is not text in {', '.join(bad)}"
    numeric = [f for f in features if f not in categorical]
    bad = [f for f in numeric if type(inputs[f]) not in (int, float)]
    if bad:
        return f"has a value that is not a number in {', '.join(bad)}"
    bad = [f for f in numeric if not math.isfinite(inputs[f])]
    if bad:
        return f"has a value that is not finite in {', '.join(bad)}"
    if type(record["output"]) is not str or type(record["time"]) is not str:
        return "has an 'output' or 'time' that is not a string"
    return None


def fast_frame(
    data: bytes, lines: int, features: list[str], categorical: Collection[str] = ()
) -> pd.DataFrame | None:
    """The frame of a log of ``lines`` well-formed records, read by pyarrow's JSON reader.

    About three times faster than ``json.loads`` line by line, it returns ``None``
    whenever anything is unusual (a line that is not a record of exactly week 5's
    keys and types, a missing or non-finite value, a blank line), and only then: a
    line-by-line reader then finds the problem and names its line.

    Args:
        data: The log's complete lines (UTF-8 bytes).
        lines: How many lines ``data`` holds.
        features: The reference schema's features.
        categorical: Those of them that are text (week 8); the others are numbers.

    Returns:
        The frame :func:`read_log` returns, or ``None``.
    """
    import pyarrow as pa
    import pyarrow.json as pj

    text = pa.string()
    schema = pa.schema(
        [
            ("request_id", text),
            ("time", text),
            ("model_name", text),
            ("model_version", text),
            (
                "inputs",
                pa.struct([(f, text if f in categorical else pa.float64()) for f in features]),
            ),
            ("output", text),
            ("latency_ms", pa.float64()),
        ]
    )
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    try:
        table = pj.read_json(pa.py_buffer(data), parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows != lines:
        return None
    inputs = table.column("inputs").combine_chunks()
    required = [table.column(k) for k in ("request_id", "time", "model_version", "output")]
    if inputs.null_count or any(c.null_count for c in required):
        return None
    columns: dict[str, Any] = {}
    for f in features:
        values = inputs.field(f)
        columns[f] = values.to_numpy(zero_copy_only=False) if not values.null_count else None
        if columns[f] is None or (f not in categorical and not np.isfinite(columns[f]).all()):
            return None
    columns[PREDICTION] = table.column("output").to_pylist()
    for key in ("time", "request_id", "model_version"):
        columns[key] = table.column(key).to_pylist()
    return pd.DataFrame(columns)


def read_log(
    path: str | Path,
    features: list[str],
    schema_path: str | Path = "schema",
    categorical: Collection[str] = (),
) -> LogData:
    """Read week 5's inference log (JSON lines) into a frame.

    Every line must be one record of ``log_records``: a JSON object with the keys
    of :data:`RECORD_KEYS`, whose ``inputs`` are exactly ``features``, each a
    number. A last line without its newline that is not JSON is a write cut short
    (the server is writing it, or died doing so): it is skipped and counted in
    ``torn_lines``, never fatal.

    Args:
        path: The log file.
        features: The reference schema's features (:func:`schema_features`).
        schema_path: The schema file, named when the log's columns differ from it.
        categorical: The features that are text, not numbers (week 8's data sets).

    Returns:
        The records as a :class:`LogData` (frame columns: ``features``, then
        ``prediction``, ``time``, ``request_id``, ``model_version``).

    A well-formed log is read by :func:`fast_frame` (given); when it returns
    ``None``, :func:`records_frame` reads it line by line and names the bad line.

    Raises:
        MonitorError: In one sentence: ``The inference log <path> does not exist
            ...``; ``... is empty ...``; ``Line <n> of the inference log <path> is not
            JSON ...`` (or another problem of that line); and when the first record's
            inputs are not the schema's features: ``The reference schema <schema>
            expects the columns ... but the inference log <path> has ...``.
    """
    ### BEGIN SOLUTION
    path = Path(path)
    if not path.is_file():
        raise MonitorError(
            f"The inference log {path} does not exist; serve some predictions first "
            "(week 5) or pass --log."
        )
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MonitorError(f"The inference log {path} cannot be read ({err.strerror}).") from None
    end = data.rfind(b"\n") + 1
    torn = 0
    if data[end:].strip():  # a last line without its newline: whole, or cut short
        try:
            json.loads(data[end:])
        except ValueError:
            data, torn = data[:end], 1
    count = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    if not data or data.isspace():
        detail = " but a torn last line" if torn else ""
        raise MonitorError(
            f"The inference log {path} is empty: it has no complete prediction{detail}."
        )
    frame = fast_frame(data, count, features, categorical)
    if frame is None:
        frame = records_frame(path, data, features, schema_path, categorical)
    return LogData(frame, lines=len(frame), torn_lines=torn)
    ### END SOLUTION


def records_frame(
    path: Path,
    data: bytes,
    features: list[str],
    schema_path: str | Path,
    categorical: Collection[str] = (),
) -> pd.DataFrame:
    """The frame of a log's complete lines, parsed with ``json``; the first bad line is named.

    Args:
        path: The log file (named in the messages).
        data: Its complete lines (a torn last line already cut off).
        features: The reference schema's features.
        schema_path: The schema file (named when the columns differ).
        categorical: The features that are text, not numbers.

    Returns:
        The frame :func:`read_log` returns.

    Raises:
        MonitorError: As :func:`read_log` says; a record's problems are worded by
            ``_record_problem``.
    """
    ### BEGIN SOLUTION
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _bad_line(path, data.count(b"\n", 0, err.start) + 1, "is not UTF-8 text") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    records = None
    with contextlib.suppress(ValueError):  # one parse; a bad line is looked for only on failure
        records = json.loads("[" + ",".join(lines) + "]")
    if records is None or len(records) != len(lines):
        records = []
        for number, line in enumerate(lines, 1):
            try:
                records.append(json.loads(line))
            except ValueError as err:
                raise _bad_line(path, number, f"is not JSON ({err.msg.lower()})") from None
    first = records[0]
    inputs = first.get("inputs") if type(first) is dict else None
    if type(inputs) is dict and set(inputs) != set(features):
        raise MonitorError(
            f"The reference schema {schema_path} expects the columns {', '.join(features)} "
            f"but the inference log {path} has {', '.join(map(str, inputs))}."
        )
    keys = set(features)
    for number, record in enumerate(records, 1):
        problem = _record_problem(record, features, keys, categorical)
        if problem is not None:
            raise _bad_line(path, number, problem)
    columns: dict[str, Any] = {
        f: np.array([r["inputs"][f] for r in records], dtype=object if f in categorical else float)
        for f in features
    }
    columns[PREDICTION] = [r["output"] for r in records]
    for key in ("time", "request_id", "model_version"):
        columns[key] = [str(r[key]) for r in records]
    return pd.DataFrame(columns)
    ### END SOLUTION


def parse_since(text: str) -> datetime:
    """``--since``: an ISO 8601 time (no zone means UTC).

    Raises:
        MonitorError: When it is not one, in one sentence.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MonitorError(
            f"--since '{text}' is not an ISO 8601 time such as 2026-01-31T12:00:00+00:00."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def select_window(
    frame: pd.DataFrame, since: datetime | None, last: int | None, min_rows: int
) -> pd.DataFrame:
    """The rows to judge: those at or after ``since``, then the latest ``last`` of them.

    Args:
        frame: The log's rows in order (:func:`read_log`), with their ``time``.
        since: The earliest prediction time to keep (``None``: no limit).
        last: The most rows to keep, the latest ones (``None``: no limit).
        min_rows: Fewest rows a window may have.

    Returns:
        The window, re-indexed from 0.

    Raises:
        MonitorError: When the window has fewer than ``min_rows`` rows: ``Not
            enough data to judge drift: the window has <n> rows, the policy
            (monitor.min_rows) needs at least <min_rows>.``
    """
    ### BEGIN SOLUTION
    window = frame
    if since is not None:
        times = pd.to_datetime(window["time"], utc=True, format="ISO8601")
        window = window[(times >= pd.Timestamp(since)).to_numpy()]
    if last is not None:
        window = window.tail(last)
    if len(window) < min_rows:
        raise MonitorError(
            f"Not enough data to judge drift: the window has {len(window)} rows, "
            f"the policy (monitor.min_rows) needs at least {min_rows}."
        )
    return window.reset_index(drop=True)
    ### END SOLUTION


def read_reference(
    path: str | Path,
    schema: Mapping[str, Any],
    schema_path: str | Path,
    dataset: Dataset | None = None,
) -> pd.DataFrame:
    """The training data as the reference: its features and its labels as ``prediction``.

    The features are the schema's numeric ones, then ``dataset``'s categorical ones
    (week 8; :func:`monitored_features`); the labels are ``dataset.target`` (Iris: species).

    Raises:
        DataError: When the file cannot be read (week 2's sentences).
        MonitorError: When it lacks a column of the schema.
    """
    from mlpipe import data

    df = data.read_processed(path)
    features, _ = monitored_features(schema, dataset)
    target = TARGET if dataset is None else dataset.target
    missing = [c for c in [*features, target] if c not in df.columns]
    if missing:
        raise MonitorError(
            f"The reference data {path} lacks the column(s) {', '.join(missing)} "
            f"of the reference schema {schema_path}."
        )
    return pd.DataFrame({**{f: df[f] for f in features}, PREDICTION: df[target].astype(str)})


def monitored_features(
    schema: Mapping[str, Any], dataset: Dataset | None = None
) -> tuple[list[str], list[str]]:
    """The features drift is judged on, and those of them that are categorical.

    The schema's numeric features (:func:`schema_features`), then the data set's
    categorical ones (none for Iris, or without a ``dataset``).
    """
    categorical = [] if dataset is None else list(dataset.categorical)
    return schema_features(schema) + categorical, categorical


def read_labels(path: str | Path) -> pd.DataFrame:
    """Ground truth: a CSV with a ``request_id`` and a ``species`` column.

    A request of several rows (``/predict/batch``) has one line per row, in the
    order the rows were sent.

    Raises:
        DataError: When the file cannot be read (week 2's sentences).
        MonitorError: When a column is missing.
    """
    from mlpipe import data

    labels = data.read_csv(path)
    missing = [c for c in ("request_id", TARGET) if c not in labels.columns]
    if missing:
        raise MonitorError(
            f"The labels file {path} lacks the column(s) {', '.join(missing)}; "
            f"it needs request_id and {TARGET}."
        )
    return labels[["request_id", TARGET]].astype(str)


def attach_labels(window: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The window's rows that have a true label, with it as ``species``.

    The k-th row of a request in the window gets the k-th label of that request.
    """
    left = window.assign(_n=window.groupby("request_id").cumcount())
    right = labels.assign(_n=labels.groupby("request_id").cumcount())
    return left.merge(right, on=["request_id", "_n"], how="inner").drop(columns="_n")


# --- the report and its summary ----------------------------------------------------------------


def build_report(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    features: list[str],
    params: MonitorParams,
    categorical: Collection[str] = (),
) -> Any:
    """Run Evidently's drift report on the window against the reference.

    One ``Report`` with a ``DataDriftPreset`` on ``features`` (Kolmogorov-Smirnov,
    :data:`FEATURE_TEST`, at ``params.drift_threshold``, dataset drift at
    ``params.max_drift_share``) and a ``ValueDrift`` of ``prediction``
    (chi-square, :data:`LABEL_TEST`, same threshold); the features are numerical
    columns and ``prediction`` a categorical one of an Evidently ``DataDefinition``.
    Week 8: the features in ``categorical`` are categorical columns, tested with
    chi-square (:data:`LABEL_TEST`) like the prediction.

    Returns:
        The Evidently snapshot (``Report.run``'s result).
    """
    ### BEGIN SOLUTION
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    numeric = [f for f in features if f not in categorical]
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=[*categorical, PREDICTION]
    )
    columns = [*features, PREDICTION]
    report = Report(
        [
            DataDriftPreset(
                columns=features,
                num_method=FEATURE_TEST,
                cat_method=LABEL_TEST,
                threshold=params.drift_threshold,
                drift_share=params.max_drift_share,
            ),
            ValueDrift(column=PREDICTION, method=LABEL_TEST, threshold=params.drift_threshold),
        ]
    )
    return report.run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    ### END SOLUTION


def quality_report(labelled: pd.DataFrame, features: list[str]) -> Any:
    """Evidently's ``ClassificationPreset`` on the labelled rows (no reference)."""
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.presets import ClassificationPreset

    definition = DataDefinition(
        numerical_columns=features,
        categorical_columns=[PREDICTION, TARGET],
        classification=[MulticlassClassification(target=TARGET, prediction_labels=PREDICTION)],
    )
    frame = labelled[[*features, PREDICTION, TARGET]]
    return Report([ClassificationPreset()]).run(
        Dataset.from_pandas(frame, data_definition=definition), None
    )


def metric_values(snapshot: Any) -> list[dict[str, Any]]:
    """The metrics of an Evidently snapshot as plain dicts (``config`` and ``value``)."""
    return snapshot.dict()["metrics"]


def summarise(
    snapshot: Any,
    window: pd.DataFrame,
    features: list[str],
    params: MonitorParams,
    since: str | None = None,
    last: int | None = None,
    torn_lines: int = 0,
) -> MonitorSummary:
    """Reduce the drift report to a :class:`MonitorSummary`.

    The report's ``ValueDrift`` metrics (:func:`metric_values`: each has a
    ``config`` with its ``column`` and ``method``, and a ``value``, the p-value)
    give each column's :class:`ColumnDrift`, drifted when the p-value is below
    ``params.drift_threshold``; its ``DriftedColumnsCount`` (``value["share"]``)
    gives ``drift_share``. The prediction shares, the times, the model versions and
    the row count come from ``window``; ``generated_at`` and ``timestamp`` are now.
    """
    ### BEGIN SOLUTION
    tests: dict[str, ColumnDrift] = {}
    share = None
    for metric in metric_values(snapshot):
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            score = float(metric["value"])
            tests[config["column"]] = ColumnDrift(
                score, str(config["method"]), score < params.drift_threshold
            )
        elif config["type"].endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    if share is None:
        share = sum(tests[f].drifted for f in features) / len(features)
    now = datetime.now(UTC)
    counts = window[PREDICTION].value_counts(normalize=True).sort_index()
    return MonitorSummary(
        generated_at=now.isoformat(timespec="seconds"),
        timestamp=now.timestamp(),
        rows=len(window),
        window_start=str(window["time"].iloc[0]),
        window_end=str(window["time"].iloc[-1]),
        since=since,
        last=last,
        torn_lines=torn_lines,
        features={f: tests[f] for f in features},
        prediction=tests[PREDICTION],
        drift_share=share,
        drift_detected=share >= params.max_drift_share,
        max_drift_share=params.max_drift_share,
        drift_threshold=params.drift_threshold,
        prediction_share={str(k): float(v) for k, v in counts.items()},
        model_versions=sorted(set(window["model_version"])),
    )
    ### END SOLUTION


def with_quality(
    summary: MonitorSummary, labelled_rows: int, snapshot: Any | None
) -> MonitorSummary:
    """``summary`` with the accuracy and macro F1 of the quality report (if any)."""
    values = {"Accuracy": None, "F1Score": None}
    for metric in metric_values(snapshot) if snapshot is not None else []:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]
        if kind in values:
            values[kind] = float(metric["value"])
    return replace(
        summary,
        labelled_rows=labelled_rows,
        accuracy=values["Accuracy"],
        f1_macro=values["F1Score"],
    )


def policy_breached(summary: MonitorSummary) -> bool:
    """Whether the drift policy is breached (``monitor --check`` exits 1)."""
    ### BEGIN SOLUTION
    return summary.drift_detected
    ### END SOLUTION


# --- Prometheus ----------------------------------------------------------------------------------

#: Gauge names and help texts, shared by ``mlpipe.prom`` and the serving app's ``/metrics``.
GAUGES = {
    "mlpipe_drift_share": "Share of the features that drifted in the last monitoring run (0 to 1).",
    "mlpipe_drift_detected": "Whether the last monitoring run found dataset drift (1) or not (0).",
    "mlpipe_monitor_rows": "Predictions in the last monitoring run's window.",
    "mlpipe_feature_drift_score": "p-value of each feature's drift test (low: drifted).",
    "mlpipe_feature_drifted": "Whether each feature drifted (1) or not (0).",
    "mlpipe_prediction_share": "Share of the window's predictions of each label.",
    "mlpipe_monitor_last_run_timestamp_seconds": "When the last monitoring run finished.",
}


def summary_metrics(summary: Mapping[str, Any]) -> list[GaugeMetricFamily]:
    """The gauges of a summary (its :meth:`MonitorSummary.to_dict` form, ``summary.json``).

    Raises:
        KeyError, TypeError, ValueError: When ``summary`` is not such a dict.
    """

    def gauge(name: str, value: float | None = None, label: str | None = None):
        family = GaugeMetricFamily(name, GAUGES[name], labels=[label] if label else None)
        if value is not None:
            family.add_metric([], float(value))
        return family

    score = gauge("mlpipe_feature_drift_score", label="feature")
    drifted = gauge("mlpipe_feature_drifted", label="feature")
    for name, test in summary["features"].items():
        score.add_metric([name], float(test["score"]))
        drifted.add_metric([name], float(bool(test["drifted"])))
    shares = gauge("mlpipe_prediction_share", label="label")
    for label, share in summary["prediction_share"].items():
        shares.add_metric([label], float(share))
    return [
        gauge("mlpipe_drift_share", summary["drift_share"]),
        gauge("mlpipe_drift_detected", float(bool(summary["drift_detected"]))),
        gauge("mlpipe_monitor_rows", summary["rows"]),
        score,
        drifted,
        shares,
        gauge("mlpipe_monitor_last_run_timestamp_seconds", summary["timestamp"]),
    ]


class _Families:
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families


def prometheus_text(summary: Mapping[str, Any]) -> str:
    """The summary's gauges in Prometheus' text format (node exporter's textfile format)."""
    registry = CollectorRegistry()
    registry.register(_Families(summary_metrics(summary)))
    return generate_latest(registry).decode("utf-8")


# --- a whole run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorResult:
    """A finished run.

    Attributes:
        summary: What it found.
        files: The files written, ``drift.html`` first.
        report: Evidently's drift snapshot (a notebook shows it as is).
        window: The rows judged.
    """

    summary: MonitorSummary
    files: list[Path]
    report: Any
    window: pd.DataFrame


def _json_safe(value: Any) -> Any:
    """NaN and infinities (an empty test) as ``None``, so that the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def monitor(
    log: str | Path,
    reference: str | Path,
    schema: str | Path,
    out: str | Path,
    params: MonitorParams,
    labels: str | Path | None = None,
    since: str | None = None,
    last: int | None = None,
    dataset: Dataset | None = None,
) -> MonitorResult:
    """Judge a window of the inference log against the reference; write every output.

    ``dataset`` (week 8) names the label column and the categorical features, whose
    drift is tested with chi-square; ``None`` is Iris.

    The window is the rows since ``since`` (if given), then the latest ``last`` of
    them; ``last`` defaults to ``params.last`` unless ``since`` is given alone.
    Nothing is written unless the whole run succeeds; each file is written atomically.

    Raises:
        MonitorError, DataError: For input the monitor cannot judge, in one sentence.
    """
    from mlpipe import validate

    if last is not None and last < 1:
        raise MonitorError(f"--last must be at least 1, got {last}.")
    moment = parse_since(since) if since is not None else None
    if last is None and since is None:
        last = params.last
    schema_data = validate.read_schema(schema)
    features, categorical = monitored_features(schema_data, dataset)
    ref = read_reference(reference, schema_data, schema, dataset)
    truth = read_labels(labels) if labels is not None else None
    found = read_log(log, features, schema, categorical)
    window = select_window(found.frame, moment, last, params.min_rows)
    snapshot = build_report(window, ref, features, params, categorical)
    summary = summarise(snapshot, window, features, params, since, last, found.torn_lines)
    quality = None
    if truth is not None:
        labelled = attach_labels(window, truth)
        quality = quality_report(labelled, features) if len(labelled) else None
        summary = with_quality(summary, len(labelled), quality)
    out = Path(out)
    files = [
        write_text_atomic(out / HTML_FILE, snapshot.get_html_str(as_iframe=False)),
        write_json(out / JSON_FILE, _json_safe(json.loads(snapshot.json()))),
    ]
    if quality is not None:
        files.append(write_text_atomic(out / QUALITY_HTML_FILE, quality.get_html_str(False)))
        files.append(write_json(out / QUALITY_JSON_FILE, _json_safe(json.loads(quality.json()))))
    data = _json_safe(summary.to_dict())
    files.append(write_json(out / SUMMARY_FILE, data))
    files.append(write_text_atomic(out / PROM_FILE, prometheus_text(data)))
    return MonitorResult(summary, files, snapshot, window)
