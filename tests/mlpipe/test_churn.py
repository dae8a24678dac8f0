"""The capstone's synthetic churn data (``mlpipe.churn``, ``python -m mlpipe fetch --dataset churn``).

Each documented property of capstone/DATA_CARD.md is checked on the seed-0 deliveries:
determinism, shape, imbalance, categories, each month's drift, the mechanism, and that the
data fits the ``dataset`` section of capstone/params.yaml.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from mlpipe import churn
from mlpipe.__main__ import main

#: sha256 of the seed-0 training CSV: a change to the generator changes the data card's figures.
TRAINING_SHA256 = "07764989d7a2cff6f8d70ad232c08b81657634e6bc3203c7285834f63ac02189"


@pytest.fixture(scope="module")
def deliveries() -> dict[int, pd.DataFrame]:
    """Months 0 (training) to 3 of seed 0."""
    return {month: churn.delivery(month) for month in range(4)}


@pytest.fixture(scope="module")
def dataset() -> dict:
    """The ``dataset`` section of capstone/params.yaml."""
    return yaml.safe_load((REPO / "capstone" / "params.yaml").read_text())["dataset"]


def churn_rate(df: pd.DataFrame) -> float:
    return float((df[churn.TARGET] == churn.POSITIVE).mean())


def test_a_seed_gives_the_same_bytes_and_another_seed_other_rows(tmp_path, deliveries):
    written = churn.write(tmp_path / "a.csv").read_bytes()
    assert hashlib.sha256(written).hexdigest() == TRAINING_SHA256
    assert deliveries[0].to_csv(index=False, lineterminator="\n").encode() == written
    small = churn.write(tmp_path / "b.csv", rows=300).read_bytes()
    assert churn.write(tmp_path / "c.csv", rows=300).read_bytes() == small
    assert churn.write(tmp_path / "d.csv", rows=300, seed=1).read_bytes() != small
    assert churn.write(tmp_path / "e.csv", month=1, rows=300).read_bytes() != small


def test_shape_columns_and_types(deliveries):
    assert [len(deliveries[m]) for m in range(4)] == [7000, 1000, 1000, 1000]
    for df in deliveries.values():
        assert list(df.columns) == [*churn.FEATURES, churn.TARGET]
        assert df.notna().all().all()
        assert set(df[churn.TARGET]) == set(churn.LABELS)
        for column in ("tenure_months", "support_calls", "age"):
            assert pd.api.types.is_integer_dtype(df[column]), column
    assert churn.delivery(2, rows=10).shape == (10, len(churn.FEATURES) + 1)
    assert [len(churn.delivery(3, rows=n)) for n in (1, 10)] == [1, 10], "the label shift"


def test_training_data_is_imbalanced_about_a_quarter_churned(deliveries):
    assert 0.22 <= churn_rate(deliveries[0]) <= 0.28
    assert 0.22 <= churn_rate(deliveries[1]) <= 0.30, "month 1 is drawn like the training data"


def test_training_categories_are_the_documented_ones(deliveries):
    train = deliveries[0]
    assert set(train["contract"]) == set(churn.CONTRACTS)
    assert set(train["internet_service"]) == set(churn.INTERNET)
    assert set(train["payment_method"]) == set(churn.PAYMENTS)


def test_month_2_raises_every_charge_by_the_price_change(deliveries):
    before, after = deliveries[1]["monthly_charges"], deliveries[2]["monthly_charges"]
    assert 1.05 <= after.mean() / before.mean() <= 1.2
    assert after.max() == pytest.approx(120.0 * churn.PRICE_FACTOR)
    assert before.max() <= 120.0 and deliveries[0]["monthly_charges"].max() <= 120.0
    assert (
        abs(deliveries[1]["monthly_charges"].mean() / deliveries[0]["monthly_charges"].mean() - 1)
        < 0.05
    )


def test_the_new_contract_type_appears_in_month_3_only(deliveries):
    for month in (0, 1, 2):
        assert churn.NEW_CONTRACT not in set(deliveries[month]["contract"]), month
    share = (deliveries[3]["contract"] == churn.NEW_CONTRACT).mean()
    assert 0.12 <= share <= 0.25
    assert churn.NEW_CONTRACT in set(churn.delivery(4, rows=500)["contract"]), "it persists"


def test_month_3_has_a_label_shift(deliveries):
    assert churn_rate(deliveries[3]) >= 0.36
    assert churn.label_shift(3) == pytest.approx(math.log(2.0))
    assert churn.label_shift(2) == 0.0
    p = churn.true_probability(deliveries[3], month=3)
    assert abs(p.mean() - churn_rate(deliveries[3])) < 0.04, "the stated probabilities fit"


def test_true_probability_is_the_mechanism_of_the_data(deliveries):
    train = deliveries[0]
    p = churn.true_probability(train)
    assert ((p > 0) & (p < 1)).all()
    assert abs(p.mean() - churn_rate(train)) < 0.02
    high = p >= np.quantile(p, 0.8)
    assert churn_rate(train[high]) > 3 * churn_rate(train[~high])


def test_the_mechanism_ignores_age_and_is_monotone_in_calls_and_tenure(deliveries):
    train = deliveries[0]
    p = churn.true_probability(train)
    older = train.assign(age=train["age"] + 20)
    assert np.array_equal(churn.true_probability(older), p)
    calls = train.assign(support_calls=train["support_calls"] + 1)
    assert (churn.true_probability(calls) > p).all()
    longer = train.assign(tenure_months=train["tenure_months"] + 1)
    assert (churn.true_probability(longer) <= p).all()


def test_the_interaction_makes_price_matter_more_in_the_first_year():
    row = {
        "tenure_months": 6,
        "contract": "month-to-month",
        "internet_service": "fiber",
        "monthly_charges": 65.0,
        "support_calls": 1,
        "payment_method": "mailed-check",
        "age": 40,
    }
    frame = pd.DataFrame([row, {**row, "monthly_charges": 75.0}])
    new = np.diff(churn.logit(frame))[0]
    old = np.diff(churn.logit(frame.assign(tenure_months=30)))[0]
    c = churn.COEFFICIENTS
    assert new == pytest.approx(c["monthly_charges"] + c["monthly_charges x first_year"])
    assert old == pytest.approx(c["monthly_charges"])
    cheaper = frame.assign(monthly_charges=[45.0, 55.0])  # below 65 USD: no interaction
    assert np.diff(churn.logit(cheaper))[0] == pytest.approx(c["monthly_charges"])


def check_fits(df: pd.DataFrame, dataset: dict) -> list[str]:
    """The problems of ``df`` against the dataset section, one string each."""
    problems = []
    for name, spec in dataset["features"].items():
        values = df[name]
        if spec["kind"] == "numeric":
            if not pd.api.types.is_numeric_dtype(values):
                problems.append(f"{name} is not numeric")
            elif values.min() < spec["min"] or values.max() > spec["max"]:
                problems.append(f"{name} is outside [{spec['min']}, {spec['max']}]")
        else:
            unknown = set(values) - set(spec["categories"])
            if unknown:
                problems.append(f"{name} has unknown categories {sorted(unknown)}")
    return problems


def test_the_data_fits_the_dataset_section_of_capstone_params(deliveries, dataset):
    assert dataset["name"] == "churn"
    assert dataset["target"] == churn.TARGET
    assert dataset["labels"] == list(churn.LABELS) and dataset["positive"] == churn.POSITIVE
    assert list(dataset["features"]) == list(churn.FEATURES)
    categories = {n: s["categories"] for n, s in dataset["features"].items() if "categories" in s}
    assert categories == {
        "contract": list(churn.CONTRACTS),
        "internet_service": list(churn.INTERNET),
        "payment_method": list(churn.PAYMENTS),
    }
    for month in (0, 1, 2):
        assert check_fits(deliveries[month], dataset) == [], month
    assert check_fits(deliveries[3], dataset) == [
        f"contract has unknown categories ['{churn.NEW_CONTRACT}']"
    ], "month 3's new contract is the one thing validation must catch"


def test_the_capstone_gate_examples_are_clear_cases_of_the_mechanism():
    gates = yaml.safe_load((REPO / "capstone" / "params.yaml").read_text())["gates"]
    rows = pd.DataFrame([example["features"] for example in gates["examples"]])
    p = churn.true_probability(rows[list(churn.FEATURES)])
    labels = [example["label"] for example in gates["examples"]]
    assert [churn.POSITIVE if q > 0.5 else churn.LABELS[0] for q in p] == labels
    assert ((p > 0.95) | (p < 0.05)).all()


def test_months_lists_the_monthly_deliveries(deliveries):
    listed = churn.months(3, rows=50)
    assert [len(df) for df in listed] == [50, 50, 50]
    pd.testing.assert_frame_equal(listed[1], churn.delivery(2, rows=50))


@pytest.mark.parametrize(("month", "rows"), [(-1, None), (1, 0)])
def test_delivery_refuses_a_negative_month_or_no_rows(month, rows):
    with pytest.raises(ValueError, match="must be"):
        churn.delivery(month, rows)


def test_cli_fetch_writes_the_delivery(tmp_path, capsys):
    out = tmp_path / "raw" / "month2.csv"
    assert main(["fetch", "--dataset", "churn", "--month", "2", "--out", str(out)]) == 0
    assert out.read_bytes() == churn.write(tmp_path / "direct.csv", month=2).read_bytes()
    assert f"churn month 2 (seed 0) written to {out}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "churn", "--month", "-1"], "--month must be 0 (the training data) or more"),
        (["--dataset", "churn", "--per-class", "5"], "--per-class applies to --dataset iris only"),
        (["--month", "2"], "--month and --seed apply to --dataset churn only"),
    ],
)
def test_cli_fetch_refuses_bad_options_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "raw.csv"
    assert main(["fetch", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not out.exists()


def test_every_capstone_dvc_command_is_a_valid_mlpipe_command():
    import shlex

    from mlpipe.__main__ import _build_parser

    stages = yaml.safe_load((REPO / "capstone" / "dvc.yaml").read_text())["stages"]
    commands = []
    for stage in stages.values():
        if "foreach" in stage:
            commands += [stage["do"]["cmd"].replace("${item}", str(i)) for i in stage["foreach"]]
        else:
            commands.append(stage["cmd"])
    assert len(commands) == 9
    for command in commands:
        words = shlex.split(command)
        assert words[:3] == ["python", "-m", "mlpipe"], command
        args = _build_parser().parse_args(words[3:])
        if args.stage != "fetch":
            assert args.params == "params.yaml", command
