"""Visible component tests of week 4: ``mlpipe.gates`` and ``python -m mlpipe gate``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import (
    GOOD,
    MODEL,
    WEAK,
    aliases,
    client_of,
    fit,
    iris_frame,
    make_registry,
    run_gate,
    write_project,
)

from autograder.testkit import assert_ran
from mlpipe import gates
from mlpipe.config import GateParams, TrainParams


class Reversed:
    """A model whose species order is upside down (longer petals look *less* like virginica)."""

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, X):
        flip = {"setosa": "virginica", "versicolor": "versicolor", "virginica": "setosa"}
        return np.array([flip[label] for label in self.model.predict(X)])


class Jittery:
    """A model that decides on the third decimal of the sepal width (noise changes everything)."""

    def predict(self, X):
        digits = (np.asarray(X["sepal_width"]) * 1000).round().astype(int) % 3
        return np.array(gates.SPECIES_ORDER)[digits]


def some_rows():
    return iris_frame().drop(columns="species").iloc[::5]


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_thresholds_name_every_metric_below_its_floor():
    params = GateParams(min_accuracy=0.9, min_f1_macro=0.9)
    ok = gates.thresholds({"accuracy": 0.95, "f1_macro": 0.9}, params)
    assert ok.passed and ok.name == "thresholds", (
        f"thresholds() of accuracy 0.95 and f1_macro 0.9, both floors 0.9, gave "
        f"{ok.name!r} passed={ok.passed} ({ok.detail}), expected 'thresholds' passed=True: "
        "a metric exactly at its floor reaches it"
    )
    low = gates.thresholds({"accuracy": 0.85, "f1_macro": 0.8}, params)
    assert not low.passed, "thresholds() passed accuracy 0.85 and f1_macro 0.8 with floors 0.9"
    assert "accuracy" in low.detail and "f1_macro" in low.detail, (
        f"thresholds() of accuracy 0.85 and f1_macro 0.8 (floors 0.9) said {low.detail!r}: "
        "name every metric below its floor"
    )


@pytest.mark.points(2)
@pytest.mark.task(1)
def test_versus_champion_needs_the_gain_and_keeps_the_tolerance():
    params = GateParams(min_improvement=0.125, tolerance=0.25)
    champion = {"accuracy": 0.5, "f1_macro": 0.75}
    better = gates.versus_champion({"accuracy": 0.75, "f1_macro": 0.625}, champion, params)
    assert better.passed and better.name == "versus_champion", (
        f"versus_champion() of accuracy 0.75 vs 0.5 (gain 0.25, min_improvement 0.125) and "
        f"f1_macro 0.625 vs 0.75 (a drop of 0.125, tolerance 0.25) failed: {better.detail!r}; "
        "a drop within the tolerance is allowed"
    )
    too_little = gates.versus_champion({"accuracy": 0.5625, "f1_macro": 0.75}, champion, params)
    assert not too_little.passed and "accuracy" in too_little.detail, (
        f"versus_champion() of accuracy 0.5625 vs 0.5 (a gain of 0.0625 < min_improvement 0.125) "
        f"gave passed={too_little.passed} ({too_little.detail!r}), expected a failure naming "
        "accuracy"
    )
    worse_f1 = gates.versus_champion({"accuracy": 0.75, "f1_macro": 0.25}, champion, params)
    assert not worse_f1.passed and "f1_macro" in worse_f1.detail, (
        f"versus_champion() of f1_macro 0.25 vs 0.75 (a drop of 0.5 > tolerance 0.25) gave "
        f"passed={worse_f1.passed} ({worse_f1.detail!r}), expected a failure naming f1_macro"
    )
    try:
        first = gates.versus_champion({"accuracy": 0.9, "f1_macro": 0.9}, None, params)
    except Exception as err:
        raise AssertionError(
            f"versus_champion(metrics, None, params) raised {type(err).__name__}: {err}; "
            "with no champion yet (None) it must pass, saying there is no champion"
        ) from None
    assert first.passed and "no champion" in first.detail, (
        f"versus_champion() with no champion (None) gave passed={first.passed} "
        f"({first.detail!r}), expected a pass whose detail says 'no champion'"
    )


@pytest.mark.points(2)
@pytest.mark.task(2)
def test_behavioural_gates_pass_a_good_model_and_fail_broken_ones():
    good, X, params = fit(1.0), some_rows(), GateParams()
    for gate in (gates.invariance(good, X, params), gates.directional(good, X, params)):
        assert gate.passed, f"{gate.name}() failed a well-trained model: {gate.detail}"
    functional = gates.minimum_functionality(good)
    assert functional.passed, f"minimum_functionality() failed a good model: {functional.detail}"
    reversed_ = gates.directional(Reversed(good), X, params)
    assert not reversed_.passed, (
        f"directional() passed a model whose predictions move down the species order as the "
        f"petals grow: {reversed_.detail}"
    )
    assert not gates.minimum_functionality(Reversed(good)).passed, (
        "minimum_functionality() passed a model that calls textbook setosas virginica"
    )
    jittery = gates.invariance(Jittery(), X, params)
    assert not jittery.passed and jittery.name == "invariance", jittery.detail


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_latency_and_size_budgets():
    good, X = fit(1.0), some_rows()
    assert gates.latency(good, X, GateParams()).passed
    assert gates.size(good, GateParams()).passed
    assert not gates.latency(good, X, GateParams(max_latency_ms=1e-6)).passed
    assert not gates.size(good, GateParams(max_size_kb=0.01)).passed


@pytest.mark.points(2)
@pytest.mark.task(3)
def test_decide_runs_every_gate_and_keeps_every_reason():
    decision = gates.decide(fit(0.01), fit(1.0), iris_frame(), GateParams(), TrainParams())
    ran = [check.name for check in decision.checks]
    assert ran == list(gates.GATES), (
        f"decide() ran the gates {ran}, expected every gate, in this order: {list(gates.GATES)}"
    )
    assert not decision.allowed
    failed = {reason.split(":")[0] for reason in decision.reasons}
    assert {"thresholds", "versus_champion"} <= failed, decision.reasons
    assert json.loads(json.dumps(decision.to_dict()))["allowed"] is False
    allowed = gates.decide(fit(1.0), fit(0.01), iris_frame(), GateParams(), TrainParams())
    assert allowed.allowed and allowed.reasons == [], allowed.reasons


@pytest.mark.points(2)
@pytest.mark.task(3)
@pytest.mark.timeout(180)  # MLflow, and the command line in a fresh process
def test_gate_promotes_a_better_challenger_and_records_the_decision(tmp_path, registry_template):
    home = make_registry(tmp_path, registry_template, champion=WEAK, challenger=GOOD)
    write_project(home)
    proc = run_gate(home, "--promote", "--report", "gates.json")
    assert_ran(proc)
    moved = aliases(home)
    assert moved == {"champion": GOOD, "challenger": GOOD}, (
        f"after the gates allowed version {GOOD}, the aliases are {moved}, expected both "
        f"champion and challenger on {GOOD}"
    )
    tags = client_of(home).get_model_version(MODEL, GOOD).tags
    assert tags.get("gate.allowed") == "true", (
        f"the promoted version's tags are {sorted(tags)} with gate.allowed="
        f"{tags.get('gate.allowed')!r}, expected 'true'"
    )
    assert "gate.decision" in tags, (
        f"the promoted version's tags are {sorted(tags)}, expected gate.decision too: the "
        "decision, as JSON"
    )
    assert json.loads(tags["gate.decision"])["allowed"] is True
    assert json.loads((home / "gates.json").read_text())["allowed"] is True


@pytest.mark.points(2)
@pytest.mark.task(3)
@pytest.mark.timeout(180)
def test_gate_blocks_a_worse_challenger_and_moves_nothing(tmp_path, registry_template):
    home = make_registry(tmp_path, registry_template, champion=GOOD, challenger=WEAK)
    write_project(home)
    proc = run_gate(home, "--promote")
    assert_ran(proc, 1)
    assert "thresholds" in proc.stdout and "versus_champion" in proc.stdout
    assert "Traceback" not in proc.stderr
    moved = aliases(home)
    assert moved == {"champion": GOOD, "challenger": WEAK}, (
        f"after the gates blocked version {WEAK}, the aliases are {moved}, expected "
        f"{{'champion': '{GOOD}', 'challenger': '{WEAK}'}}: a blocked challenger never "
        "becomes champion"
    )
    tags = client_of(home).get_model_version(MODEL, WEAK).tags
    assert tags.get("gate.allowed") == "false", (
        f"the blocked version's tags are {sorted(tags)} with gate.allowed="
        f"{tags.get('gate.allowed')!r}, expected gate.allowed='false': record every decision"
    )
