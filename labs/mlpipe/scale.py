"""Week 7: scaling out with Ray, batch scoring and a tuning search on a cluster.

* :func:`generate` writes a large Iris-like CSV (flowers of the Iris data sampled
  again with a little measurement noise, seeded): the file to score.
* :func:`byte_ranges` cuts a CSV into parts at line ends; every worker reads its
  own part of the file (nothing but the part's offsets travels to it).
* :class:`Scorer` starts one Ray actor per worker; each actor deserialises the
  model once, from the object store, and then scores part after part with week 5's
  code (:func:`mlpipe.export.score_frame`, :func:`mlpipe.export.scored_csv`),
  writing each scored part to a file of its own beside the output; only a small
  report of each part travels back. The driver joins the part files in order by
  byte copy, atomically: the same bytes as ``python -m mlpipe score`` on the
  whole file, or nothing when a row is bad.
* :func:`tune` runs week 3's search as Ray Tune trials with Optuna as the
  searcher; every trial is a nested MLflow run of one parent, the best model is
  registered as week 3 does (:mod:`mlpipe.track`).
* :class:`LocalCluster` starts a head and worker nodes on 127.0.0.1, each a
  separate ``ray start`` process: the shape of a real cluster, for the lab and
  the tests. Pointed at a real cluster the commands are the same::

    ray start --head --port 6379 --num-cpus 1 --include-dashboard=false
    ray start --address 127.0.0.1:6379 --num-cpus 1
    python -m mlpipe scale generate --out big.csv
    python -m mlpipe scale score --address 127.0.0.1:6379 --input big.csv --out scored.csv
    python -m mlpipe scale tune --address 127.0.0.1:6379 --data data/processed/iris.csv

On a real cluster the driver runs on a node of it (or as ``ray job submit``), and
the file to score and the output's folder must be on storage every node sees
under the same path.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpipe.config import ScaleParams, TrackParams, TrainParams
from mlpipe.errors import PipelineError
from mlpipe.files import write_text_atomic

#: What Ray reads to find the cluster when no address is given.
ADDRESS_ENV = "RAY_ADDRESS"
#: ``host:port`` or ``ray://host:port``.
ADDRESS_PATTERN = re.compile(
    r"^(ray://)?(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$"
)
#: Bytes read at a time when looking for the end of a line.
SCAN_BYTES = 1 << 16
#: Bytes copied at a time when the part files are joined.
COPY_BYTES = 1 << 20
#: Parts given to each scoring actor at a time (one scoring, the next one waiting).
QUEUED = 2
#: What ``ray start`` says when a node missed its 30 s to register (it goes on starting).
LATE_NODE = "timed out during startup"
#: The metric every Tune trial reports, as week 3's trial runs log it.
METRIC = "cv_accuracy"


class ScaleError(PipelineError, RuntimeError):
    """A problem with the cluster the user can fix; the message is one sentence."""


# --- a large Iris-like file ----------------------------------------------------------------


def generate(path: str | Path, rows: int, seed: int = 0, noise: float = 0.1) -> Path:
    """Write ``rows`` Iris-like flowers to a processed CSV (the columns of week 2's data).

    Each row is a flower of the Iris data (:func:`mlpipe.train.load_data`) drawn at
    random, with Gaussian noise of standard deviation ``noise`` centimetres added to
    each measurement, rounded to a millimetre as the Iris data is, and kept inside
    the valid range of week 2 (0.1 to 9.9 cm). Same seed, same file.

    Returns:
        The path written (atomically).
    """
    from mlpipe import train

    flowers = train.load_data()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(flowers), size=rows)
    X = flowers[train.FEATURES].to_numpy(dtype=float)[pick]
    X = np.clip(np.round(X + rng.normal(0.0, noise, size=X.shape), 1), 0.1, 9.9)
    df = pd.DataFrame(X, columns=train.FEATURES)
    df[train.TARGET] = flowers[train.TARGET].to_numpy()[pick]
    return write_text_atomic(path, df.to_csv(index=False, float_format="%.1f", lineterminator="\n"))


# --- the cluster ---------------------------------------------------------------------------


def resolve_address(given: str | None, params: ScaleParams) -> str:
    """The cluster's address: ``given`` (``--address``), else ``scale.address``, else ``$RAY_ADDRESS``.

    Raises:
        ScaleError: When none is set, or it is not ``host:port`` / ``ray://host:port``.
    """
    address = (given or params.address or os.environ.get(ADDRESS_ENV, "")).strip()
    if not address:
        raise ScaleError(
            "No Ray cluster address: pass --address HOST:PORT (the address `ray start --head` "
            "prints), set scale.address or RAY_ADDRESS."
        )
    match = ADDRESS_PATTERN.match(address)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ScaleError(
            f"The Ray address {address!r} is not HOST:PORT or ray://HOST:PORT (e.g. 127.0.0.1:6379)."
        )
    return address


def check_reachable(address: str, timeout: float) -> None:
    """Fail fast, in one sentence, when nothing answers at the cluster's address.

    Raises:
        ScaleError: ``Cannot reach the Ray cluster at <address> (<reason>); ...``.
    """
    match = ADDRESS_PATTERN.match(address)
    assert match is not None, address  # resolve_address checked it
    host = match["host"].strip("[]")
    try:
        with socket.create_connection((host, int(match["port"])), timeout=timeout):
            return
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
    raise ScaleError(
        f"Cannot reach the Ray cluster at {address} ({reason}); start one with "
        "`ray start --head --port PORT` or pass the address it printed."
    )


def connect(address: str, timeout: float = 10.0) -> dict[str, float]:
    """Connect this process to the Ray cluster at ``address`` as its driver.

    The ``mlpipe`` package this process imported is shipped to the workers
    (``runtime_env`` ``py_modules``), so that they run the same code: the
    reference's or a student's own.

    Returns:
        The cluster's resources (``{"CPU": 2.0, ...}``).

    Raises:
        ScaleError: When the cluster cannot be reached or refuses the connection.
    """
    check_reachable(address, timeout)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import logging

    import ray

    import mlpipe

    if ray.is_initialized():
        ray.shutdown()
    host = ADDRESS_PATTERN.match(address)["host"]  # type: ignore[index]
    local = {"_node_ip_address": "127.0.0.1"} if host in ("127.0.0.1", "localhost") else {}
    try:
        ray.init(
            address=address,
            runtime_env={"py_modules": [str(Path(mlpipe.__file__).parent)]},
            logging_level=logging.WARNING,
            log_to_driver=False,
            **({} if address.startswith("ray://") else local),
        )
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ScaleError(f"Cannot connect to the Ray cluster at {address} ({first}).") from None
    return {k: float(v) for k, v in ray.cluster_resources().items()}


def disconnect() -> None:
    """Leave the cluster (the cluster itself keeps running)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


# --- partitions of a CSV file --------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """A range of whole lines of a CSV file, below its header line.

    Attributes:
        index: Position of the part in the file, from 0.
        start: Offset of its first byte.
        end: Offset just past its last byte (a line end, or the end of the file).
        first_line: Line number of its first line in the file (the header is line 1).
    """

    index: int
    start: int
    end: int
    first_line: int


def header(path: str | Path) -> bytes:
    """The first line of a file, with its line end (``b""`` for an empty file)."""
    with open(path, "rb") as handle:
        return handle.readline()


def _line_end_after(handle: Any, offset: int, size: int) -> int:
    """Offset just past the first ``\\n`` at or after ``offset`` (``size`` when none)."""
    handle.seek(offset)
    while offset < size:
        block = handle.read(SCAN_BYTES)
        found = block.find(b"\n")
        if found >= 0:
            return offset + found + 1
        offset += len(block)
    return size


def byte_ranges(path: str | Path, parts: int) -> list[Part]:
    """Cut the lines below a CSV file's header into at most ``parts`` ranges of about equal size.

    Each range ends at a line end, so no line is split; together they cover every
    byte below the header exactly once. Only a few bytes around each cut are read.

    Returns:
        The non-empty parts, in file order (none for a file without data lines).
    """
    path = Path(path)
    size = path.stat().st_size
    cuts = []
    with path.open("rb") as handle:
        body = len(handle.readline())
        for k in range(1, parts):
            target = body + (size - body) * k // parts
            cuts.append(_line_end_after(handle, max(target - 1, body), size))
        bounds = sorted({body, *cuts, size})
        found, line = [], 2
        for start, end in zip(bounds, bounds[1:], strict=False):
            found.append(Part(len(found), start, end, line))
            handle.seek(start)
            line += handle.read(end - start).count(b"\n")
    return found


def read_part(path: str | Path, head: bytes, part: Part) -> tuple[pd.DataFrame, bytes]:
    """Parse one part of a CSV file with its header line, as ``pandas.read_csv`` reads the whole.

    Returns:
        The part's rows and its raw bytes.
    """
    with open(path, "rb") as handle:
        handle.seek(part.start)
        data = handle.read(part.end - part.start)
    return pd.read_csv(io.BytesIO(head + data)), data


# --- scoring on the workers ----------------------------------------------------------------


@dataclass
class PartReport:
    """What a worker found in one part (small: the driver gathers every part's first).

    Attributes:
        index: The part's position.
        rows: Its data rows.
        dtypes: The type pandas gave each column of the part.
        parse_error: Why the part is not readable CSV, if it is not.
        not_finite: Feature -> ``(position in the part, value)`` of its first value
            that is not a finite number.
        outside: Feature -> ``(position in the part, value)`` of its first number
            outside the valid range.
        worker: ``node <id> pid <pid>`` of the worker process that scored it.
        model: Identity of the model object it scored with (``id()``, in hex): one
            per worker when the model is loaded once per worker.
    """

    index: int
    rows: int = 0
    dtypes: dict[str, str] = field(default_factory=dict)
    parse_error: str | None = None
    not_finite: dict[str, tuple[int, Any]] = field(default_factory=dict)
    outside: dict[str, tuple[int, float]] = field(default_factory=dict)
    worker: str = ""
    model: str = ""

    @property
    def clean(self) -> bool:
        """True when the part can be scored."""
        return self.parse_error is None and not self.not_finite and not self.outside


class PartScorer:
    """One scoring worker: a Ray actor holding the model, loaded once.

    Args:
        model: The fitted model; Ray passes it from the object store, deserialised
            once, here.
        columns: Its input columns, in order.
        valid_range: ``(low, high)`` of every feature (week 2's ``validate`` range).
    """

    def __init__(self, model: Any, columns: list[str], valid_range: tuple[float, float]) -> None:
        self.model = model
        self.columns = list(columns)
        self.valid_range = valid_range
        self.worker = _worker_name()

    def ready(self) -> str:
        """The worker's name (``node <id> pid <pid>``), once it has started."""
        return self.worker

    def score(
        self, path: str, head: bytes, spool: str, part: Part, casts: dict[str, str], header: bool
    ) -> PartReport:
        """Check and score one part of the file into its part file in ``spool``.

        Args:
            path: The CSV file, as every node sees it.
            head: Its header line.
            spool: The folder of the part files (:func:`part_file`), as every node sees it.
            part: The range to score.
            casts: Column -> type to convert to before writing, so that the part's
                numbers are written as the whole file's type writes them.
            header: Start the text with the header line (the first part with rows).

        Returns:
            The :class:`PartReport`; the part file is written only when the part
            has rows and no bad one.
        """
        from mlpipe import export

        report = PartReport(part.index, worker=self.worker, model=f"{id(self.model):x}")
        try:
            df, _ = read_part(path, head, part)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            report.parse_error = " ".join(str(err).split())
            return report
        report.rows = len(df)
        report.dtypes = {str(c): str(t) for c, t in df.dtypes.items()}
        low, high = self.valid_range
        for column in self.columns:
            if column not in df.columns:
                continue  # the driver reports a missing column from the header
            bad = export.first_not_finite(df, column)
            if bad is not None:
                report.not_finite[column] = (bad, df[column].iloc[bad])
            outside = export.first_outside(df, column, low, high)
            if outside is not None:
                report.outside[column] = outside
        if not report.clean or not len(df):
            return report
        for column, dtype in casts.items():
            df[column] = df[column].astype(dtype)
        scored = export.score_frame(self.model, df, self.columns)
        part_file(spool, part.index).write_bytes(
            export.scored_csv(scored, header=header).encode("utf-8")
        )
        return report


def part_file(spool: str | Path, index: int) -> Path:
    """The file the scored part ``index`` is written to, in the folder ``spool``."""
    return Path(spool) / f"part-{index:05d}.csv"


def _worker_name() -> str:
    """``node <first 8 hex digits of the Ray node id> pid <pid>`` of this worker process.

    Outside Ray (:func:`run_locally`), ``local pid <pid>``.
    """
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return f"local pid {os.getpid()}"
    return f"node {ray.get_runtime_context().get_node_id()[:8]} pid {os.getpid()}"


@dataclass(frozen=True)
class ScoreResult:
    """What a split scoring did.

    Attributes:
        rows: Rows scored.
        parts: Parts the file was cut into.
        workers: each worker (``node <id> pid <pid>``), with how many parts it scored.
        loads: worker -> how many model objects it scored with (1: loaded once).
        recast: Parts scored a second time because a column's type differed
            from the whole file's.
        seconds: Wall time of the scoring, start-up of the workers excluded.
    """

    rows: int
    parts: int
    workers: dict[str, int]
    loads: dict[str, int]
    recast: int
    seconds: float


def common_dtype(dtypes: list[str]) -> str:
    """The type pandas gives a column read whole, from the types it gave each part.

    Integers and floats become floats; any other mixture, ``object``.
    """
    if len(set(dtypes)) == 1:
        return dtypes[0]
    kinds = {np.dtype(t).kind if t != "object" else "O" for t in dtypes}
    if kinds <= {"i", "u", "f"}:
        return str(np.result_type(*[np.dtype(t) for t in dtypes]))
    return "object"


def first_problem(
    reports: list[PartReport],
    parts: list[Part],
    path: Path,
    columns: list[str],
    valid_range: tuple[float, float],
) -> Exception | None:
    """The error ``mlpipe score`` would raise on the whole file, from the parts' reports.

    The order is the whole file's: a part that is not CSV first, then for each
    feature in order its first value that is not a number, then for each feature
    its first number outside the range. Row numbers count from the file's first
    data row.

    Returns:
        The error to raise, or ``None`` when every part is clean.
    """
    from mlpipe import export
    from mlpipe.errors import ServeError

    for report in reports:
        if report.parse_error is not None:
            part = parts[report.index]
            return ServeError(
                f"{path} is not a readable CSV file ({report.parse_error.rstrip('.')}, in the part "
                f"from line {part.first_line})."
            )
    offsets = np.cumsum([0] + [r.rows for r in reports]).tolist()
    for column in columns:
        for report in reports:
            if column in report.not_finite:
                position, value = report.not_finite[column]
                return export.not_a_number(column, offsets[report.index] + position + 1, value)
    for column in columns:
        for report in reports:
            if column in report.outside:
                position, value = report.outside[column]
                row = offsets[report.index] + position + 1
                return export.outside_range(column, value, row, *valid_range)
    return None


#: One part to score: the part, the types to cast columns to, whether to write the header.
Job = tuple[Part, dict[str, str], bool]
#: Scores jobs: ``run(path, header line, spool folder, jobs)`` -> part index -> report.
Runner = Callable[[str, bytes, str, list[Job]], dict[int, PartReport]]


def redo_plan(reports: list[PartReport]) -> list[tuple[int, dict[str, str], bool]]:
    """The parts to score again so that, joined in order, they are the whole file's bytes.

    A part is redone when pandas gave a column another type than it gives the whole
    file (an integer column with a missing value in another part is a float column
    in the whole file: ``3`` must be written ``3.0``), or when the header belongs to
    it rather than to part 0 (part 0 had only blank lines).

    Returns:
        ``(index, casts, header)`` of each part to redo.
    """
    scored = [r for r in reports if r.rows]
    whole = {c: common_dtype([r.dtypes[c] for r in scored]) for c in scored[0].dtypes}
    plan = []
    for report in scored:
        casts = {c: t for c, t in whole.items() if report.dtypes.get(c) != t}
        header = report.index == scored[0].index
        if casts or header != (report.index == 0):
            plan.append((report.index, casts, header))
    return plan


def split_score(
    data: str | Path,
    out: str | Path,
    columns: list[str],
    valid_range: tuple[float, float],
    parts: int,
    run: Runner,
) -> tuple[int, list[PartReport], int]:
    """Score a CSV file part by part into ``out``: the bytes ``python -m mlpipe score`` writes.

    Args:
        data: The CSV file.
        out: The CSV file to write, atomically, only when every row is good.
        columns: The model's input columns.
        valid_range: ``(low, high)`` of every feature.
        parts: Parts to cut the file into (:func:`byte_ranges`).
        run: Scores jobs (``run(path, header line, spool, jobs)``), each part into
            its :func:`part_file` in the folder ``spool`` (made beside ``out``, so on
            the same storage, and removed afterwards), and returns part index ->
            report; the :class:`Scorer`'s runs them on the cluster,
            :func:`run_locally` in this process.

    Returns:
        ``(rows scored, the first pass's reports, parts scored again)``.

    Raises:
        ServeError: For the file's first problem, in ``mlpipe score``'s sentence
            (missing file, no rows, not CSV, missing column, bad value).
    """
    from mlpipe import export

    path = Path(data).resolve()
    head_rows = export.read_csv(path, nrows=1)  # missing, empty, not CSV: week 5's sentences
    export.feature_matrix(head_rows.iloc[:0], columns)  # a missing column
    head = header(path)
    cut = byte_ranges(path, parts)
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.parts-", dir=out.parent) as spool:
        done = run(str(path), head, spool, [(p, {}, p.index == 0) for p in cut])
        reports = [done[p.index] for p in cut]
        problem = first_problem(reports, cut, path, columns, valid_range)
        if problem is not None:
            raise problem
        if not any(r.rows for r in reports):
            export.read_csv(path)  # week 5's sentence for a file without rows
        plan = redo_plan(reports)
        if plan:
            run(str(path), head, spool, [(cut[i], casts, first) for i, casts, first in plan])
        with _atomic_binary(out) as handle:
            for report in reports:
                if report.rows:
                    with part_file(spool, report.index).open("rb") as piece:
                        shutil.copyfileobj(piece, handle, COPY_BYTES)
    return sum(r.rows for r in reports), reports, len(plan)


def run_locally(scorer: PartScorer) -> Runner:
    """A runner for :func:`split_score` that scores every part in this process, in order.

    The same algorithm without a cluster: for the tests, and to debug a file.
    """

    def run(path: str, head: bytes, spool: str, jobs: list[Job]) -> dict[int, PartReport]:
        return {part.index: scorer.score(path, head, spool, part, c, h) for part, c, h in jobs}

    return run


class Scorer:
    """Score CSV files on a Ray cluster, one actor per worker, each holding the model.

    Use it as a context manager after :func:`connect`; the actors stay up between
    files, so the model is loaded once per worker, not per file, part or row.

    Args:
        model: The fitted model (e.g. :func:`mlpipe.serve.load_model`).
        columns: Its input columns, in order.
        valid_range: ``(low, high)`` of every feature.
        workers: How many actors (one CPU each); 0: one per CPU of the cluster.
        parts_per_worker: Parts per worker a file is cut into.
        start_timeout: Seconds to wait for the actors to start.

    Raises:
        ScaleError: When the actors do not start in time (no free CPU).
    """

    def __init__(
        self,
        model: Any,
        columns: list[str],
        valid_range: tuple[float, float],
        workers: int = 0,
        parts_per_worker: int = ScaleParams.parts_per_worker,
        start_timeout: float = 300.0,
    ) -> None:
        import ray

        cpus = int(ray.cluster_resources().get("CPU", 0))
        self.workers = workers or max(cpus, 1)
        self.parts_per_worker = parts_per_worker
        self.columns = list(columns)
        self.valid_range = valid_range
        actor = ray.remote(num_cpus=1)(PartScorer)
        model_ref = ray.put(model)  # one copy in the object store, read by every actor
        self.actors = [
            actor.remote(model_ref, self.columns, valid_range) for _ in range(self.workers)
        ]
        ready = [a.ready.remote() for a in self.actors]
        done, _ = ray.wait(ready, num_returns=len(ready), timeout=start_timeout)
        if len(done) < len(ready):
            self.close()
            raise ScaleError(
                f"Only {len(done)} of {self.workers} scoring workers started within "
                f"{start_timeout:g} s; the cluster has {cpus} CPUs (ray status shows them)."
            )
        self.names = ray.get(ready)

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the actors."""
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.actors = []

    def _run(self, path: str, head: bytes, spool: str, jobs: list[Job]) -> dict[int, PartReport]:
        """Score ``jobs``, each on the next actor with room; return part index -> report.

        Each actor has :data:`QUEUED` parts at a time, so that it starts its next part
        as soon as one is done instead of waiting for the driver's round trip. The
        scored text stays on disk (the part files in ``spool``): only the small
        reports come back through Ray, none of the output's bytes.
        """
        import ray

        todo = list(jobs)
        running: dict[Any, int] = {}  # report ref -> actor
        done: dict[int, PartReport] = {}
        idle = list(range(len(self.actors))) * QUEUED  # a free place in an actor's queue
        while todo or running:
            while todo and idle:
                slot, (part, casts, first) = idle.pop(), todo.pop(0)
                ref = self.actors[slot].score.remote(path, head, spool, part, casts, first)
                running[ref] = slot
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                idle.append(running.pop(ref))
                report = ray.get(ref)
                done[report.index] = report
        return done

    def score(self, data: str | Path, out: str | Path) -> ScoreResult:
        """Score a CSV file into ``out`` on the cluster (see :func:`split_score`).

        Raises:
            ServeError: For the file's first problem, as ``mlpipe score`` reports
                it; nothing is written then.
        """
        start = time.perf_counter()
        parts = self.workers * self.parts_per_worker
        rows, reports, recast = split_score(
            data, out, self.columns, self.valid_range, parts, self._run
        )
        workers: dict[str, int] = {}
        models: dict[str, set[str]] = {}
        for report in reports:
            workers[report.worker] = workers.get(report.worker, 0) + 1
            models.setdefault(report.worker, set()).add(report.model)
        loads = {worker: len(ids) for worker, ids in models.items()}
        return ScoreResult(
            rows=rows,
            parts=len(reports),
            workers=workers,
            loads=loads,
            recast=recast,
            seconds=time.perf_counter() - start,
        )


@contextlib.contextmanager
def _atomic_binary(path: str | Path) -> Iterator[Any]:
    """A binary file written in parts through a temporary file and a rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- tuning on the cluster -----------------------------------------------------------------


def _trial(config: dict[str, Any], X: pd.DataFrame, y: pd.Series, base: TrainParams, folds: int):
    """One Ray Tune trial: week 3's cross-validated score of the pipeline with ``config["C"]``."""
    from ray import tune

    from mlpipe import track

    params = replace(base, C=float(config["C"]))
    score = track.cv_score(params, X, y, folds)
    tune.report({METRIC: score, "worker": _worker_name()})


@dataclass(frozen=True)
class SearchSpace:
    """Week 3's search space, define-by-run: the same ``suggest_float`` call as its objective.

    A class, not a closure, so that Tune can save the searcher's state (it pickles it).

    Attributes:
        low: Smallest ``C`` (``track.C_min``).
        high: Largest ``C`` (``track.C_max``).
    """

    low: float
    high: float

    def __call__(self, trial: Any) -> None:
        """Suggest ``C`` on a log scale, as week 3's objective does."""
        trial.suggest_float("C", self.low, self.high, log=True)


@dataclass
class TrialRecord:
    """One finished Tune trial, as logged to MLflow.

    Attributes:
        number: The Optuna trial number (0, 1, ...: the order the searcher suggested it).
        C: The regularisation strength it tried.
        score: Its mean cross-validated accuracy.
        run_id: Its nested MLflow run.
        worker: ``node <id> pid <pid>`` of the Ray worker that ran it.
    """

    number: int
    C: float
    score: float
    run_id: str
    worker: str


def _mlflow_callback(parent_run_id: str, experiment_id: str, base: TrainParams):
    """A Tune callback that logs each finished trial as a nested run, as week 3's trials are.

    The driver logs (not the trial's worker): only the driver needs to reach the
    tracking store, and runs are written one at a time.
    """
    import mlflow
    from ray.tune import Callback

    class NestedRuns(Callback):
        def __init__(self) -> None:
            self.records: list[TrialRecord] = []
            self.client = mlflow.MlflowClient()

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            if METRIC not in result:
                return
            number = int(str(trial.experiment_tag).split("_", 1)[0]) - 1
            params = replace(base, C=float(trial.config["C"]))
            run = self.client.create_run(
                experiment_id,
                run_name=f"trial-{number}",
                tags={"mlflow.parentRunId": parent_run_id, "ray.trial_id": trial.trial_id},
            )
            run_id = run.info.run_id
            for key, value in asdict(params).items():
                self.client.log_param(run_id, key, value)
            self.client.log_metric(run_id, METRIC, float(result[METRIC]))
            self.client.set_tag(run_id, "ray.worker", str(result.get("worker", "")))
            self.client.set_terminated(run_id)
            self.records.append(
                TrialRecord(
                    number, params.C, float(result[METRIC]), run_id, result.get("worker", "")
                )
            )

    return NestedRuns()


def tune(
    base: TrainParams, track: TrackParams, params: ScaleParams, df: pd.DataFrame
) -> tuple[Any, list[TrialRecord]]:
    """Week 3's search, as Ray Tune trials with Optuna's TPE as the searcher.

    The training rows go to the object store once (``tune.with_parameters``);
    each trial scores one ``C`` with :func:`mlpipe.track.cv_score` on a worker.
    Every trial is a nested run of one parent run, with the params of
    :class:`~mlpipe.config.TrainParams` and the metric ``cv_accuracy``; the best
    trial (ties: the lowest number, as Optuna picks) is refitted on the training
    rows and its run logs the model (:func:`mlpipe.track.log_training_run`). With
    at most 10 trials (TPE's random start-up) the same seed tries the same ``C``
    values as week 3's ``mlpipe tune``, in whatever order the workers finish.

    Returns:
        A :class:`mlpipe.track.TuneResult` (register it with :func:`mlpipe.track.register`)
        and the trials, by number.

    Raises:
        ScaleError: When a trial fails.
    """
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no progress tables on stdout
    import mlflow
    import optuna
    from ray import tune as ray_tune
    from ray.tune.search.optuna import OptunaSearch

    from mlpipe import track as tracking
    from mlpipe import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X_train, X_test, y_train, y_test = train.split_data(df, base.test_size, base.seed)
    trainable = ray_tune.with_resources(
        ray_tune.with_parameters(_trial, X=X_train, y=y_train, base=base, folds=track.cv_folds),
        {"cpu": 1},
    )
    with mlflow.start_run(run_name="tune-ray") as parent:
        search = {k: v for k, v in asdict(track).items() if k != "tracking_uri"}
        search.update(backend="ray-tune", max_concurrent_trials=params.max_concurrent_trials)
        mlflow.log_params({f"search.{k}": v for k, v in search.items()})
        callback = _mlflow_callback(parent.info.run_id, parent.info.experiment_id, base)
        searcher = OptunaSearch(
            space=SearchSpace(track.C_min, track.C_max),
            metric=METRIC,
            mode="max",
            sampler=optuna.samplers.TPESampler(seed=track.seed),
        )
        with tempfile.TemporaryDirectory(prefix="mlpipe-tune-") as storage:
            tuner = ray_tune.Tuner(
                trainable,
                tune_config=ray_tune.TuneConfig(
                    search_alg=searcher,
                    num_samples=track.n_trials,
                    max_concurrent_trials=params.max_concurrent_trials,
                    reuse_actors=True,
                ),
                run_config=ray_tune.RunConfig(
                    name="mlpipe-tune", storage_path=storage, verbose=0, callbacks=[callback]
                ),
            )
            results = tuner.fit()
        if results.errors:
            first = " ".join(str(results.errors[0]).split())[:300]
            raise ScaleError(f"{len(results.errors)} Ray Tune trials failed; the first: {first}.")
        best_record = max(callback.records, key=lambda r: (r.score, -r.number))
        mlflow.log_metric("best_cv_accuracy", best_record.score)
        best = replace(base, C=best_record.C)
        model = train.build_pipeline(best).fit(X_train, y_train)
        metrics = train.evaluate(model, X_test, y_test)
        with mlflow.start_run(run_id=best_record.run_id, nested=True):
            uri = tracking.log_training_run(
                model, best, metrics, X_test.head(3), tracking._data_tags(df)
            )
    return tracking.TuneResult(
        parent_run_id=parent.info.run_id,
        best_run_id=best_record.run_id,
        best_params=asdict(best),
        best_score=best_record.score,
        model_uri=uri,
        test_metrics=metrics,
    ), sorted(callback.records, key=lambda r: r.number)


# --- a cluster on this machine -------------------------------------------------------------


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalCluster:
    """A Ray head and worker nodes on 127.0.0.1, each started by its own ``ray start``.

    Every port a node would take by default (GCS, client server, dashboard,
    agents) is a free one, and the nodes keep their files in a temporary folder
    of their own, so the cluster shares nothing with another on the machine.
    :meth:`stop` ends exactly the processes of this cluster: those of the
    process groups its ``ray start`` commands made, and those whose command line
    names its folder (the workers); never ``ray stop``, which would end every
    Ray cluster of the user on the machine.

    Args:
        workers: Worker nodes besides the head.
        cpus: CPUs each node offers (the head too).
        object_store_mb: Object store of each node, in MB.
        ray: The ``ray`` command (default: the one beside this Python).
    """

    def __init__(
        self, workers: int = 1, cpus: int = 1, object_store_mb: int = 200, ray: str | None = None
    ) -> None:
        self.workers = workers
        self.cpus = cpus
        self.object_store_mb = object_store_mb
        self.ray = ray or str(Path(sys.executable).with_name("ray"))
        self.folder = tempfile.mkdtemp(prefix="mlpipe-ray-")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.groups: list[int] = []
        self.seconds = 0.0
        self.attempts = 0
        self.late = 0

    def _start(self, *args: str, timeout: float) -> None:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        # Ray turns token authentication on by itself when ~/.ray/auth_token exists (any
        # local ray.init() writes one), and then a node started without that file fails:
        # these nodes listen on 127.0.0.1 only, so say what they do instead of guessing.
        env["RAY_AUTH_MODE"] = "disabled"
        # The head asks its GCS for its own node every 2 s, 20 times by default: too few on
        # a busy machine, where the GCS takes longer to answer than that; wait as long as we do.
        env.setdefault("RAY_NUM_REDIS_GET_RETRIES", str(max(20, int(timeout) // 2)))
        cmd = [
            self.ray,
            "start",
            *args,
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.cpus}",
            f"--object-store-memory={self.object_store_mb * 10**6}",
            f"--temp-dir={self.folder}",
            f"--dashboard-agent-listen-port={free_port()}",
            "--disable-usage-stats",
            "--log-style=record",
        ]
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.groups.append(proc.pid)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            raise ScaleError(f"`ray start` did not finish within {timeout:g} s.") from None
        if proc.returncode != 0 and LATE_NODE in output:
            self.late += 1  # its processes go on starting: wait_for_nodes waits for them
        elif proc.returncode != 0:
            tail = " ".join(output.strip().splitlines()[-3:])[-400:]
            raise ScaleError(f"`ray start` exited with {proc.returncode}: {tail}")

    def start(self, timeout: float = 300.0, attempts: int = 3) -> str:
        """Start the head, then the workers; return the head's address (``127.0.0.1:PORT``).

        ``ray start`` gives a node 30 s to register with the head, which a busy
        machine can miss; it then exits with an error while the node's processes
        go on starting, so that error is tolerated and the start waits until the
        head knows every node alive. Any other failed start is cleaned up and
        tried again (new ports), up to ``attempts`` times.

        Raises:
            ScaleError: When the last attempt fails too.
        """
        begin = time.perf_counter()
        for attempt in range(1, attempts + 1):
            self.port = free_port()
            self.address = f"127.0.0.1:{self.port}"
            try:
                self._start(
                    "--head",
                    f"--port={self.port}",
                    "--include-dashboard=false",
                    f"--dashboard-port={free_port()}",
                    f"--ray-client-server-port={free_port()}",
                    timeout=timeout,
                )
                for _ in range(self.workers):
                    self._start(f"--address={self.address}", timeout=timeout)
                self.wait_for_nodes(timeout)
                break
            except ScaleError:
                self._kill()
                if attempt == attempts:
                    self.stop()
                    raise
            except BaseException:
                self.stop()
                raise
        self.attempts = attempt
        self.seconds = time.perf_counter() - begin
        return self.address

    def wait_for_nodes(self, timeout: float = 300.0) -> None:
        """Wait until the head knows the head and every worker node alive.

        Raises:
            ScaleError: When they are not all alive within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        want = 1 + self.workers
        while (found := alive_nodes(self.address)) < want:
            if time.monotonic() > deadline:
                raise ScaleError(f"Only {found} of {want} Ray nodes started within {timeout:g} s.")
            time.sleep(1.0)

    def pids(self) -> list[int]:
        """The processes of this cluster that are still there."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                pid = int(entry.name)
                if os.getpgid(pid) in self.groups:
                    found.append(pid)
                    continue
                cmdline = (entry / "cmdline").read_bytes()
            except (OSError, ProcessLookupError):
                continue
            if self.folder.encode() in cmdline:
                found.append(pid)
        return found

    def running(self) -> list[int]:
        """The processes of this cluster still running (empty after :meth:`stop`)."""
        return [pid for pid in self.pids() if _alive(pid)]

    def stop(self, grace: float = 10.0) -> None:
        """End every process of this cluster (SIGTERM, then SIGKILL after ``grace`` s) and its files."""
        self._kill(grace)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _kill(self, grace: float = 10.0) -> None:
        for number in (signal.SIGTERM, signal.SIGKILL):
            pids = self.pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, number)
            deadline = time.monotonic() + grace
            while pids and time.monotonic() < deadline:
                time.sleep(0.2)
                pids = [p for p in pids if _alive(p)]
            if not pids:
                break
        self.groups = []

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def alive_nodes(address: str) -> int:
    """How many nodes the head at ``address`` knows alive (0 while it does not answer).

    It asks the head's GCS as ``ray start`` does (``ray._private``: Ray has no
    public call for it that works without a driver or a dashboard).
    """
    from ray._private import services, state

    table = state.GlobalState()
    try:
        table._initialize_global_state(services._get_gcs_client_options(address))
        return sum(1 for node in table.node_table() if node.get("Alive"))
    except Exception:  # not up yet: any error of the GCS client
        return 0
    finally:
        with contextlib.suppress(Exception):
            table.disconnect()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, ended but not yet reaped, does not count)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
