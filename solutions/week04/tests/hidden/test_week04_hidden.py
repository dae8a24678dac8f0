"""Hidden component tests of week 4 (never released to students)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import (
    GOOD,
    MODEL,
    REFERENCE,
    WEAK,
    aliases,
    client_of,
    fit,
    gate_here,
    iris_frame,
    load_workflow,
    make_registry,
    require_suite_passes,
    required_steps,
    run_gate,
    runs_on_change,
    steps,
    triggers,
    write_project,
)
from mutants import EQUIVALENT, MUTANTS

from autograder.testkit import assert_ran
from mlpipe import gates, track, train
from mlpipe.config import GateParams, TrackParams, TrainParams

# --- the gates -----------------------------------------------------------------------------


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_tolerance_and_improvement_boundaries_are_inclusive():
    champion = {"accuracy": 0.75, "f1_macro": 0.75}
    at_tolerance = {"accuracy": 0.75, "f1_macro": 0.5}
    assert gates.versus_champion(at_tolerance, champion, GateParams(tolerance=0.25)).passed
    assert not gates.versus_champion(at_tolerance, champion, GateParams(tolerance=0.125)).passed
    gain = {"accuracy": 0.875, "f1_macro": 0.75}
    assert gates.versus_champion(gain, champion, GateParams(min_improvement=0.125)).passed
    assert not gates.versus_champion(gain, champion, GateParams(min_improvement=0.25)).passed
    slightly_worse = {"accuracy": 0.6875, "f1_macro": 0.75}
    assert gates.versus_champion(
        slightly_worse, champion, GateParams(min_improvement=-0.125)
    ).passed
    both = gates.versus_champion({"accuracy": 0.5, "f1_macro": 0.25}, champion, GateParams())
    assert not both.passed and "accuracy" in both.detail and "f1_macro" in both.detail
    floor = gates.thresholds({"accuracy": 0.75, "f1_macro": 0.75}, GateParams(min_accuracy=0.75))
    assert not floor.passed and "f1_macro" in floor.detail and "accuracy 0.75" not in floor.detail


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_invariance_follows_the_seed_the_noise_and_the_minimum():
    good = fit(1.0)
    X = iris_frame().drop(columns="species")
    assert gates.invariance(good, X, GateParams(seed=3)) == gates.invariance(
        good, X, GateParams(seed=3)
    )
    assert not gates.invariance(good, X, GateParams(perturbation=2.0)).passed
    assert gates.invariance(good, X, GateParams(perturbation=2.0, min_invariance=0.0)).passed
    assert gates.invariance(good, X, GateParams(perturbation=1e-6, min_invariance=1.0)).passed


class Counter:
    """Wraps a model and records the rows it was asked about."""

    def __init__(self, model) -> None:
        self.model, self.rows = model, []

    def predict(self, X):
        self.rows.append(list(X.index))
        return self.model.predict(X)


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_decide_scores_both_models_on_the_same_held_out_rows():
    df = iris_frame()
    params = TrainParams(seed=7, test_size=0.3)
    _, X_test, _, _ = train.split_data(df, params.test_size, params.seed)
    challenger, champion = Counter(fit(1.0)), Counter(fit(1.0))
    decision = gates.decide(challenger, champion, df, GateParams(), params)
    assert champion.rows and all(rows == list(X_test.index) for rows in champion.rows)
    assert list(X_test.index) in challenger.rows
    assert decision.allowed, decision.reasons


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_a_decision_without_checks_allows_nothing_and_reports_every_failure():
    assert not gates.Decision(()).allowed
    broken = fit(1.0)
    decision = gates.decide(
        broken,
        None,
        iris_frame(),
        GateParams(min_accuracy=1.0, max_latency_ms=1e-9, max_size_kb=0.001),
        TrainParams(),
    )
    failed = [reason.split(":")[0] for reason in decision.reasons]
    assert "latency" in failed and "size" in failed
    assert [c.name for c in decision.checks if c.name == "versus_champion" and c.passed]
    report = decision.to_dict()
    assert report["allowed"] is False and len(report["checks"]) == len(gates.GATES)
    assert report["reasons"] == decision.reasons


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_directional_and_minimum_functionality_name_what_went_wrong():
    class Setosa:
        def predict(self, X):
            return np.array(["setosa"] * len(X))

    class Shrinking:
        def predict(self, X):
            return np.where(X["petal_length"] > 4.5, "setosa", "virginica")

    missed = gates.minimum_functionality(Setosa())
    assert not missed.passed and "versicolor" in missed.detail and "virginica" in missed.detail
    X = iris_frame().drop(columns="species")
    assert gates.directional(Setosa(), X, GateParams()).passed, "constant predictions never go down"
    down = gates.directional(Shrinking(), X, GateParams())
    assert not down.passed and any(ch.isdigit() for ch in down.detail)


# --- promotion -----------------------------------------------------------------------------


@pytest.mark.points(1)
@pytest.mark.task(3)
@pytest.mark.timeout(180)
def test_promote_blocked_records_the_decision_and_moves_no_alias(
    tmp_path, registry_template, monkeypatch
):
    home = make_registry(tmp_path, registry_template, champion=WEAK, challenger=GOOD)
    monkeypatch.setenv("MLPIPE_HOME", str(home))
    track.connect(TrackParams())
    blocked = gates.Decision((gates.Check("latency", False, "too slow."),))
    assert gates.promote(MODEL, blocked, GOOD) is False
    assert aliases(home) == {"champion": WEAK, "challenger": GOOD}
    tags = client_of(home).get_model_version(MODEL, GOOD).tags
    assert tags["gate.allowed"] == "false"
    assert json.loads(tags["gate.decision"])["reasons"] == ["latency: too slow."]
    allowed = gates.Decision((gates.Check("size", True, "small."),))
    assert gates.promote(MODEL, allowed, int(GOOD)) is True
    assert aliases(home)["champion"] == GOOD
    assert client_of(home).get_model_version(MODEL, GOOD).tags["gate.allowed"] == "true"


@pytest.mark.points(1)
@pytest.mark.task(3)
@pytest.mark.timeout(180)
def test_first_promotion_without_a_champion(tmp_path, registry_template, capsys):
    home = make_registry(tmp_path, registry_template, challenger=GOOD)
    write_project(home)
    proc = gate_here(home, "--promote", "--report", "reports/gates.json", capsys=capsys)
    assert_ran(proc)
    assert aliases(home) == {"champion": GOOD, "challenger": GOOD}
    report = json.loads((home / "reports/gates.json").read_text())
    versus = [c for c in report["checks"] if c["name"] == "versus_champion"]
    assert versus[0]["passed"] and "no champion" in versus[0]["detail"]


@pytest.mark.points(1)
@pytest.mark.task(3)
@pytest.mark.timeout(180)
def test_gate_without_promote_reports_and_changes_nothing(tmp_path, registry_template, capsys):
    home = make_registry(tmp_path, registry_template, champion=GOOD, challenger=WEAK)
    write_project(home, min_accuracy=0.5, min_f1_macro=0.5, tolerance=0.5, min_improvement=-0.5)
    proc = gate_here(home, "--report", "gates.json", capsys=capsys)
    assert_ran(proc)
    assert aliases(home) == {"champion": GOOD, "challenger": WEAK}
    assert "gate.allowed" not in client_of(home).get_model_version(MODEL, WEAK).tags
    assert json.loads((home / "gates.json").read_text())["allowed"] is True


@pytest.mark.points(1)
@pytest.mark.task(3)
@pytest.mark.timeout(180)
def test_no_challenger_is_one_sentence_and_exit_2(tmp_path, registry_template, capsys):
    home = make_registry(tmp_path, registry_template, champion=GOOD)
    write_project(home)
    proc = gate_here(home, "--promote", "--report", "gates.json", capsys=capsys)
    assert_ran(proc, 2)
    assert "challenger" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()[-1]) > 20
    assert not (home / "gates.json").exists()
    assert aliases(home) == {"champion": GOOD}


@pytest.mark.points(1)
@pytest.mark.task(3)
@pytest.mark.timeout(180)
def test_bad_configuration_is_one_sentence_and_exit_2(tmp_path, capsys):
    write_project(tmp_path)
    proc = gate_here(tmp_path, "--promote", tracking_uri="http://127.0.0.1:9", capsys=capsys)
    assert_ran(proc, 2)
    assert "Cannot reach the MLflow tracking server" in proc.stderr
    assert "Traceback" not in proc.stderr
    write_project(tmp_path / "typo", min_acuracy=0.9)
    proc = run_gate(tmp_path / "typo")
    assert_ran(proc, 2)
    assert proc.returncode == 2 and "did you mean 'min_accuracy'" in proc.stderr, proc.stderr
    write_project(tmp_path / "typed", tolerance="small")
    proc = run_gate(tmp_path / "typed")
    assert_ran(proc, 2)
    assert proc.returncode == 2 and "gates.tolerance must be float" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    for folder in ("typo", "typed"):
        assert not (tmp_path / folder / "mlflow.db").exists(), "bad params must stop before MLflow"


# --- the workflow --------------------------------------------------------------------------


@pytest.mark.points(1)
@pytest.mark.task(6)
def test_workflow_promotes_only_on_the_default_branch_after_the_gates():
    found = required_steps()
    assert found["gate"] >= 0 and found["promote"] > found["gate"]
    for step in steps(load_workflow()):
        if "--promote" in str(step.get("run") or ""):
            condition = str(step.get("if") or "")
            assert "refs/heads/" in condition or "default_branch" in condition, step


@pytest.mark.points(1)
@pytest.mark.task(6)
def test_workflow_ignores_changes_outside_the_pipeline():
    events = triggers(load_workflow())
    for event in ("push", "pull_request"):
        for path in ("README.md", "docs/notes.md", "notebooks/explore.ipynb"):
            assert not runs_on_change(events[event], path), f"{event} runs on {path}"
        for path in ("data/processed/iris.csv", "mlpipe/gates.py", "project_tests/test_data.py"):
            assert runs_on_change(events[event], path), f"{event} ignores {path}"


# --- the student's suite, by mutation ------------------------------------------------------


def assert_caught(suites, name: str) -> None:
    mutant = next(m for m in MUTANTS if m.name == name)
    runs = suites.run([None, EQUIVALENT, *MUTANTS])
    lost = suites.missing & {m.name for m in (EQUIVALENT, *MUTANTS)}
    assert not lost, f"instructor bug: the old text of {sorted(lost)} is not in the pipeline"
    require_suite_passes(runs[REFERENCE])
    assert runs[EQUIVALENT.name].ok, (
        "your suite fails on a change that keeps every behaviour (a renamed local variable): "
        f"test behaviour, not source text ({runs[EQUIVALENT.name].why()})"
    )
    assert not runs[mutant.name].ok, f"your suite did not catch the planted bug '{name}'"


@pytest.mark.points(1)
@pytest.mark.task(5)
@pytest.mark.timeout(180)  # the first of these runs the suite on every planted bug
def test_suite_catches_a_split_without_stratify(suites):
    assert_caught(suites, "split-without-stratify")


@pytest.mark.points(1)
@pytest.mark.task(5)
@pytest.mark.timeout(180)
def test_suite_catches_a_split_that_ignores_its_seed(suites):
    assert_caught(suites, "split-ignores-the-seed")


@pytest.mark.points(1)
@pytest.mark.task(5)
@pytest.mark.timeout(180)
def test_suite_catches_labels_shuffled_against_their_rows(suites):
    assert_caught(suites, "labels-shuffled-against-rows")


@pytest.mark.points(1)
@pytest.mark.task(5)
@pytest.mark.timeout(180)
def test_suite_catches_labels_off_by_one(suites):
    assert_caught(suites, "labels-off-by-one")


@pytest.mark.points(1)
@pytest.mark.task(5)
@pytest.mark.timeout(180)
def test_suite_catches_a_fingerprint_that_ignores_the_values(suites):
    assert_caught(suites, "fingerprint-ignores-the-values")


@pytest.mark.points(1)
@pytest.mark.task(5)
@pytest.mark.timeout(180)
def test_suite_catches_missing_values_let_through(suites):
    assert_caught(suites, "only-empty-rows-count-as-missing")


@pytest.mark.points(1)
@pytest.mark.task(5)
@pytest.mark.timeout(180)
def test_suite_catches_unknown_labels_let_through(suites):
    assert_caught(suites, "unknown-labels-checked-the-wrong-way-round")
