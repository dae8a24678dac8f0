"""Week 4: the gates that decide whether a challenger may replace the champion.

The registry holds two aliases of the model (week 3): ``challenger``, the
model a search just registered, and ``champion``, the model in production.
Before ``champion`` moves, every gate runs and every reason is kept:

====================== ====================================================
``thresholds``         accuracy and macro F1 on the held-out rows are high
                       enough (``min_accuracy``, ``min_f1_macro``)
``versus_champion``    accuracy at least ``min_improvement`` above the
                       champion's; macro F1 at most ``tolerance`` below it
``invariance``         tiny measurement noise leaves predictions alone
``directional``        longer, wider petals never make a flower look *less*
                       like a virginica (species order never goes down)
``minimum_functionality`` textbook flowers of each species are recognised
``latency``            one prediction is fast enough (``max_latency_ms``)
``size``               the pickled model is small enough (``max_size_kb``)
====================== ====================================================

Both models are scored by the gate itself, on the same held-out rows (week 1's
``split_data`` and ``evaluate``), never taken from what a run logged.
:func:`decide` returns a :class:`Decision`; :func:`promote` records it on the
challenger's model version and moves ``champion`` only when it allows it.
"""

from __future__ import annotations

import json
import pickle
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlpipe import registry, train
from mlpipe.config import IRIS, Dataset, GateParams, TrackParams, TrainParams, rule_features
from mlpipe.registry import CHALLENGER, CHAMPION

#: The gates, in the order :func:`decide` runs them.
GATES = (
    "thresholds",
    "versus_champion",
    "invariance",
    "directional",
    "minimum_functionality",
    "latency",
    "size",
)
#: The metrics compared with the champion: the first must improve, the others
#: may drop by at most the tolerance.
METRICS = ("accuracy", "f1_macro")
#: Species from the smallest petals to the largest (the directional test's order).
SPECIES_ORDER = IRIS.labels
#: Textbook flowers (close to each species' mean, in cm) every model must recognise
#: (the default ``gates.examples``).
CANONICAL = pd.DataFrame([e["features"] for e in GateParams().examples], columns=train.FEATURES)
CANONICAL_LABELS = [e["label"] for e in GateParams().examples]
#: Single-row predictions timed by the latency gate (the median counts).
LATENCY_REPEATS = 25
#: Slack for floating-point rounding in comparisons with a threshold.
EPS = 1e-9
#: Model version tags written by :func:`promote`.
TAG_ALLOWED = "gate.allowed"
TAG_DECISION = "gate.decision"


@dataclass(frozen=True)
class Check:
    """The outcome of one gate.

    Attributes:
        name: One of :data:`GATES`.
        passed: Whether the challenger passed it.
        detail: One sentence: what was measured (on failure, what is wrong).
    """

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    """Every gate's outcome; promotion is allowed only when all passed."""

    checks: tuple[Check, ...]

    @property
    def allowed(self) -> bool:
        """True when there is at least one check and every check passed."""
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def reasons(self) -> list[str]:
        """``name: detail`` of every failed check, in order (empty when allowed)."""
        return [f"{check.name}: {check.detail}" for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (the gate's report and the version's tag)."""
        return {
            "allowed": self.allowed,
            "reasons": self.reasons,
            "checks": [asdict(check) for check in self.checks],
        }


def thresholds(metrics: dict[str, Any], params: GateParams) -> Check:
    """``thresholds``: the challenger's held-out metrics reach the absolute floors.

    Args:
        metrics: ``accuracy`` and ``f1_macro`` (from :func:`mlpipe.train.evaluate`).
        params: ``min_accuracy`` and ``min_f1_macro``.

    Returns:
        A passed check when both reach their floor (within :data:`EPS`); on
        failure, the detail names every metric below its floor by its key
        (``accuracy``, ``f1_macro``) with its value, and no metric that
        reached its floor, e.g. ``below the floor: f1_macro 0.7000 < 0.8000.``
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.gates.thresholds")


def versus_champion(
    challenger: dict[str, Any], champion: dict[str, Any] | None, params: GateParams
) -> Check:
    """``versus_champion``: better than the champion, and not worse on any metric.

    Args:
        challenger: The challenger's ``accuracy`` and ``f1_macro``.
        champion: The champion's, on the same rows; ``None`` when there is no
            champion yet: the check passes and its detail says ``no champion``
            (e.g. ``no champion yet: nothing to compare with.``).
        params: ``min_improvement`` (the accuracy gain required) and
            ``tolerance`` (how far the macro F1 may drop).

    Returns:
        A passed check when the accuracy gain is at least ``min_improvement``
        and the F1 drop at most ``tolerance`` (both within :data:`EPS`); on
        failure, the detail names the metric of each rule that failed:
        ``accuracy`` for a gain too small, ``f1_macro`` for a drop too large.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.gates.versus_champion")


def invariance(
    model: Any, X: pd.DataFrame, params: GateParams, dataset: Dataset | None = None
) -> Check:
    """``invariance``: measurement noise must not change the predictions.

    Adds uniform noise in ``[-perturbation, +perturbation]`` cm (drawn with
    ``numpy.random.default_rng(params.seed)``) to every feature of ``X`` (week 8:
    to the features of ``gates.invariance_features``, see :func:`noisy_columns`).

    Returns:
        A passed check when the share of unchanged predictions is at least
        ``min_invariance``.
    """
    columns = noisy_columns(X, params, dataset)
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.gates.invariance")


def directional(
    model: Any, X: pd.DataFrame, params: GateParams, dataset: Dataset | None = None
) -> Check:
    """``directional``: longer, wider petals never move a prediction down the species order.

    Adds ``directional_shift`` cm to ``petal_length`` and ``petal_width`` of
    every row of ``X``; the predicted species' position in
    :data:`SPECIES_ORDER` must not decrease for any row. (Week 8: each rule of
    ``gates.directional`` in turn; the default rule is this one.) For each rule
    your code adds ``directional_shift`` to ``grown[features]`` and sets ``down``,
    the number of rows whose rank went down: ``rank = rule_ranks(rule, dataset)``
    maps a predicted label to its rank (for Iris, its position in :data:`SPECIES_ORDER`).

    Returns:
        A passed check when no prediction moved down; on failure the detail
        says how many rows did.
    """
    dataset = dataset or IRIS
    problems, shown = [], []
    for rule in params.directional:
        features = rule_features(rule)
        grown = X.copy()
        # YOUR CODE HERE
        raise NotImplementedError("mlpipe.gates.directional")
        units = {dataset.feature(name).unit for name in features}
        unit = f" {units.pop()}" if len(units) == 1 and None not in units else ""
        what = f"{' and '.join(features)} grew by {params.directional_shift}{unit}"
        shown.append(what)
        if down:
            problems.append(
                f"{down} of {len(X)} predictions moved down the {rule_order(rule, dataset)} "
                f"when {what}"
            )
    if problems:
        return Check("directional", False, f"{'; '.join(problems)}.")
    return Check("directional", True, f"no prediction moved down when {'; '.join(shown)}.")


def noisy_columns(X: pd.DataFrame, params: GateParams, dataset: Dataset | None) -> list[str]:
    """The columns the invariance test perturbs: ``gates.invariance_features``, else every
    numeric feature of the data set present in ``X`` (Iris: all four)."""
    if params.invariance_features:
        return list(params.invariance_features)
    numeric = (dataset or IRIS).numeric
    return [c for c in X.columns if c in numeric]


def rule_ranks(rule: dict[str, Any], dataset: Dataset) -> Any:
    """The function from a predicted label to its rank under a directional rule.

    ``label_rank``: the label's position in ``dataset.labels``; ``positive``: 1 for
    the positive class, else 0. A ``decreases`` rule negates the rank, so that in
    both cases a rank that goes down breaks the rule.
    """
    sign = 1 if "increases" in rule else -1
    if "positive" in rule.values():
        return lambda label: sign * int(str(label) == dataset.positive)
    order = {label: i for i, label in enumerate(dataset.labels)}
    return lambda label: sign * order[str(label)]


def rule_order(rule: dict[str, Any], dataset: Dataset) -> str:
    """How a directional failure names the order (``species order`` for Iris)."""
    if "positive" in rule.values():
        return f"{'' if 'increases' in rule else 'reverse '}order of the positive class"
    return f"{'' if 'increases' in rule else 'reverse '}{dataset.target} order"


def minimum_functionality(
    model: Any, params: GateParams | None = None, dataset: Dataset | None = None
) -> Check:
    """``minimum_functionality``: the textbook flowers of :data:`CANONICAL` are recognised.

    Week 8: the examples are ``params.examples`` (default: :data:`CANONICAL`
    with :data:`CANONICAL_LABELS`), in the column order of ``dataset``.

    Returns:
        A passed check when every row of :data:`CANONICAL` is predicted as
        its label in :data:`CANONICAL_LABELS`; on failure the detail names
        each species that was missed and what was predicted instead.
    """
    examples, labels = _examples(params, dataset)
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.gates.minimum_functionality")


def _examples(params: GateParams | None, dataset: Dataset | None) -> tuple[pd.DataFrame, list]:
    """The minimum-functionality rows and their labels."""
    if params is None:
        return CANONICAL, CANONICAL_LABELS
    columns = (dataset or IRIS).feature_names
    rows = pd.DataFrame([e["features"] for e in params.examples], columns=columns)
    return rows, [e["label"] for e in params.examples]


def latency(model: Any, X: pd.DataFrame, params: GateParams) -> Check:
    """``latency``: one prediction fits the budget.

    Times :data:`LATENCY_REPEATS` predictions of the first row of ``X`` (as a
    one-row frame) with ``time.perf_counter`` after one untimed warm-up call.

    Returns:
        A passed check when the median time, in milliseconds, is at most
        ``max_latency_ms``.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.gates.latency")


def size(model: Any, params: GateParams) -> Check:
    """``size``: the model, pickled, fits the budget.

    Returns:
        A passed check when ``len(pickle.dumps(model)) / 1024`` is at most
        ``max_size_kb``.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.gates.size")


def decide(
    challenger: Any,
    champion: Any | None,
    df: pd.DataFrame,
    params: GateParams,
    train_params: TrainParams,
    dataset: Dataset | None = None,
) -> Decision:
    """Run every gate on the challenger and keep every outcome.

    Args:
        challenger: The candidate model (anything with ``predict``).
        champion: The model in production, or ``None`` when there is none.
        df: The processed data; its held-out rows are the test split of
            :func:`mlpipe.train.split_data` with ``train_params``'
            ``test_size`` and ``seed``.
        params: The gates' thresholds.
        train_params: Where the held-out rows come from.
        dataset: The data's description (its columns, labels and positive
            class); ``None`` is Iris.

    Returns:
        A :class:`Decision` with one check per gate, in the order of
        :data:`GATES`, whether or not earlier gates failed. Both models are
        scored with :func:`mlpipe.train.evaluate` on the same held-out rows;
        the behavioural, latency and size gates run on the challenger.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.gates.decide")


def promote(name: str, decision: Decision, version: str | int) -> bool:
    """Record the decision on a model version; move ``champion`` to it if allowed.

    MLflow must already point at the registry (:func:`mlpipe.track.connect`).

    Args:
        name: The registered model's name.
        decision: The gates' decision about this version.
        version: The challenger's version number.

    Returns:
        True when ``champion`` now points at ``version``. In both cases the
        version gets the tags ``gate.allowed`` (``"true"``/``"false"``) and
        ``gate.decision`` (``decision.to_dict()`` as JSON); a blocked decision
        leaves every alias where it was.
    """
    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.gates.promote")


@dataclass(frozen=True)
class Candidates:
    """The two registry versions a gate compares.

    Attributes:
        challenger: The version with the alias ``challenger``.
        champion: The version with the alias ``champion``, or ``None``.
    """

    challenger: Any
    champion: Any | None


def _version_by_alias(name: str, alias: str) -> Any | None:
    return registry.version(name, alias)


def candidates(name: str) -> Candidates:
    """Find the challenger and the champion of ``name`` in the registry.

    MLflow must already point at the registry (:func:`mlpipe.track.connect`).

    Returns:
        The model versions with the aliases ``challenger`` and ``champion``
        (``None`` when there is no champion yet).

    Raises:
        TrackingError: When there is no challenger, in one sentence naming the
            registry and what to run to get one.
    """
    import mlflow

    from mlpipe.errors import TrackingError

    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.gates.candidates")


def gate_registry(
    name: str,
    df: pd.DataFrame,
    params: GateParams,
    train_params: TrainParams,
    track_params: TrackParams,
    dataset: Dataset | None = None,
) -> tuple[Decision, Candidates]:
    """The ``gate`` stage: decide on the registry's challenger (``python -m mlpipe gate``).

    Connects to the tracking store of ``track_params`` first (week 3's
    :func:`mlpipe.track.connect`: an unreachable server stops here, in one
    sentence), finds the candidates, loads both models by alias
    (:func:`mlpipe.track.load_by_alias`) and runs :func:`decide`.

    Returns:
        The decision and the candidates it is about.
    """
    from mlpipe import track

    # YOUR CODE HERE
    raise NotImplementedError("mlpipe.gates.gate_registry")
