"""The capstone's data: a synthetic customer-churn data set with a known mechanism (given).

``python -m mlpipe fetch --dataset churn [--month K]`` writes one delivery:

============ ======================================================================
month 0      the training data: 7,000 customers, about 25 % churned
month 1      1,000 new customers from the same world (no drift)
month 2      a price change: every monthly charge is 12 % higher (covariate shift;
             the mechanism is unchanged, so more customers churn: about 27 %)
month 3      the price change stays; a new contract type, ``quarterly``, never seen
             in training, is 20 % of the customers; and a label shift: only half of
             the customers who stayed are delivered, so about 40 % churned
month 4+     the world of month 3 (its drift persists), new customers
============ ======================================================================

Every delivery is generated from a seed and the month alone: the same seed gives
the same rows, byte for byte. The generating mechanism is a logistic model
(:func:`logit`, coefficients in :data:`COEFFICIENTS`) with one interaction
(customers in their first year are sensitive to a price above 65 USD), so a tree
ensemble can beat a plain logistic regression a little; :func:`true_probability` gives each
row's true churn probability, the Bayes-optimal score. ``capstone/DATA_CARD.md``
documents all of it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mlpipe.files import write_text_atomic

#: The label column and its values, the positive (churned) class last.
TARGET = "churn"
LABELS = ("no", "yes")
POSITIVE = "yes"
#: Contract types of the training data, and the one month 3 introduces.
CONTRACTS = ("month-to-month", "one-year", "two-year")
NEW_CONTRACT = "quarterly"
INTERNET = ("no-internet", "dsl", "fiber")
PAYMENTS = ("electronic-check", "mailed-check", "bank-transfer", "credit-card")
#: Feature columns, in file order (the label column follows them).
FEATURES = (
    "tenure_months",
    "contract",
    "internet_service",
    "monthly_charges",
    "support_calls",
    "payment_method",
    "age",
)
#: Rows of the training data and of a monthly delivery.
TRAINING_ROWS = 7000
MONTH_ROWS = 1000
#: The first month of each drift; once made, a change stays.
PRICE_CHANGE_FROM = 2
NEW_CONTRACT_FROM = 3
LABEL_SHIFT_FROM = 3
#: The price change: the factor applied to every monthly charge.
PRICE_FACTOR = 1.12
#: The new contract type's share of the customers drawn.
NEW_CONTRACT_SHARE = 0.2
#: The label shift: the share of the customers who stayed that a delivery keeps.
STAYER_KEEP = 0.5
#: The mechanism: log-odds of churn (see :func:`logit`).
COEFFICIENTS: dict[str, float] = {
    "intercept": -0.9,
    "tenure_years": -0.45,  # per year of tenure (tenure_months / 12)
    "contract=one-year": -1.1,
    "contract=two-year": -2.2,
    "contract=quarterly": -0.6,
    "monthly_charges": 0.1,  # per 10 USD above 65 USD, every customer
    "monthly_charges x first_year": 1.5,  # per 10 USD above 65 USD (none below), first year only
    "support_calls": 0.3,  # per call in the last month
    "payment_method=electronic-check": 0.5,
    "payment_method=bank-transfer": -0.2,
    "payment_method=credit-card": -0.2,
}
#: Customers with a tenure below this many months are in their first year (the interaction).
FIRST_YEAR_MONTHS = 12
#: Tenure by contract type: gamma (shape, scale) in months (the new type draws like one-year).
_TENURE = {"month-to-month": (1.2, 14.0), "one-year": (2.5, 14.0), "two-year": (4.0, 12.0)}
#: Shares of the categories, in the order of CONTRACTS, INTERNET and PAYMENTS.
_CONTRACT_SHARES = (0.55, 0.25, 0.20)
_INTERNET_SHARES = (0.2, 0.35, 0.45)
#: Monthly charges by internet service: (mean, standard deviation) in USD.
_CHARGES = {"no-internet": (22.0, 3.0), "dsl": (55.0, 10.0), "fiber": (88.0, 12.0)}
#: Support calls a month by internet service: the Poisson mean.
_CALLS = {"no-internet": 0.8, "dsl": 1.2, "fiber": 2.0}
_PAYMENT_SHARES = (0.35, 0.2, 0.22, 0.23)


def _rng(seed: int, month: int) -> np.random.Generator:
    """The random stream of one delivery: a function of the seed and the month only."""
    return np.random.default_rng(np.random.SeedSequence([seed, month]))


def _pick(
    rng: np.random.Generator, choices: list[str], shares: list[float], rows: int
) -> np.ndarray:
    """``rows`` values drawn from ``choices`` with probabilities ``shares``."""
    return np.asarray(choices, dtype=object)[rng.choice(len(choices), size=rows, p=shares)]


def _contracts(rng: np.random.Generator, rows: int, month: int) -> np.ndarray:
    """Contract types; from :data:`NEW_CONTRACT_FROM` on, some are :data:`NEW_CONTRACT`."""
    if month < NEW_CONTRACT_FROM:
        return _pick(rng, list(CONTRACTS), list(_CONTRACT_SHARES), rows)
    rest = 1.0 - NEW_CONTRACT_SHARE
    shares = [share * rest for share in _CONTRACT_SHARES] + [NEW_CONTRACT_SHARE]
    return _pick(rng, [*CONTRACTS, NEW_CONTRACT], shares, rows)


def _customers(rng: np.random.Generator, rows: int, month: int) -> pd.DataFrame:
    """The features of ``rows`` customers of ``month`` (no label)."""
    contract = _contracts(rng, rows, month)
    shape, scale = (
        pd.Series(contract).map(lambda c, i=i: _TENURE.get(c, _TENURE["one-year"])[i]).to_numpy()
        for i in (0, 1)
    )
    tenure = np.clip(np.rint(rng.gamma(shape, scale)), 0, 72).astype(int)
    internet = _pick(rng, list(INTERNET), list(_INTERNET_SHARES), rows)
    mean, sd = (pd.Series(internet).map(lambda i, k=k: _CHARGES[i][k]).to_numpy() for k in (0, 1))
    charges = np.clip(rng.normal(mean, sd), 18.0, 120.0)
    if month >= PRICE_CHANGE_FROM:
        charges = charges * PRICE_FACTOR
    calls = np.minimum(rng.poisson(pd.Series(internet).map(_CALLS).to_numpy(dtype=float)), 15)
    payment = _pick(rng, list(PAYMENTS), list(_PAYMENT_SHARES), rows)
    age = np.clip(np.rint(rng.normal(45.0, 15.0, rows)), 18, 90).astype(int)
    return pd.DataFrame(
        {
            "tenure_months": tenure,
            "contract": contract.astype(str),
            "internet_service": internet.astype(str),
            "monthly_charges": np.round(charges, 2),
            "support_calls": calls.astype(int),
            "payment_method": payment.astype(str),
            "age": age,
        }
    )


def logit(df: pd.DataFrame) -> np.ndarray:
    """The mechanism: each customer's log-odds of churn, before any label shift.

    With ``c`` = :data:`COEFFICIENTS`, ``t`` the tenure in months, ``m`` the monthly
    charges in USD and ``first`` = 1 when ``t < FIRST_YEAR_MONTHS`` (else 0)::

        intercept + tenure_years * t / 12 + monthly_charges * (m - 65) / 10
        + monthly_charges x first_year * first * max(m - 65, 0) / 10
        + support_calls * calls + c["contract=..."] + c["payment_method=..."]

    A level without a coefficient (``month-to-month``, ``mailed-check``) adds 0.
    Customers in their first year are price-sensitive above 65 USD (the one
    interaction); the log-odds never rise with the tenure and never fall with
    the charges or the calls;
    ``internet_service`` acts only through the charges and the calls it brings;
    ``age`` has no effect at all.

    Args:
        df: Rows with the columns of :data:`FEATURES` (others are ignored).

    Returns:
        One log-odds per row.
    """
    c = COEFFICIENTS
    tenure = df["tenure_months"].to_numpy(dtype=float)
    first = (tenure < FIRST_YEAR_MONTHS).astype(float)
    price = (df["monthly_charges"].to_numpy(dtype=float) - 65.0) / 10.0
    z = (
        c["intercept"]
        + c["tenure_years"] * tenure / 12.0
        + c["monthly_charges"] * price
        + c["monthly_charges x first_year"] * first * np.maximum(price, 0.0)
        + c["support_calls"] * df["support_calls"].to_numpy(dtype=float)
    )
    for column in ("contract", "payment_method"):
        z = z + df[column].map(lambda v, col=column: c.get(f"{col}={v}", 0.0)).to_numpy(float)
    return z


def label_shift(month: int) -> float:
    """The log-odds added to :func:`logit` by month ``month``'s label shift (0 before month 3).

    Keeping every churned customer and each customer who stayed with probability
    :data:`STAYER_KEEP` multiplies the odds of churn of every profile by
    ``1 / STAYER_KEEP``, exactly (the features of churned and of staying customers
    keep their distributions: a prior shift).
    """
    return math.log(1.0 / STAYER_KEEP) if month >= LABEL_SHIFT_FROM else 0.0


def true_probability(df: pd.DataFrame, month: int = 0) -> np.ndarray:
    """Each row's true probability of churn in ``month``'s delivery (the Bayes-optimal score).

    Args:
        df: Rows with the columns of :data:`FEATURES`.
        month: The delivery the rows come from (0: training), for its label shift.

    Returns:
        One probability per row.
    """
    return 1.0 / (1.0 + np.exp(-(logit(df) + label_shift(month))))


def delivery(month: int = 0, rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """One delivery: ``month`` 0 is the training data, 1, 2, 3, ... the monthly ones.

    Month 1 is drawn like the training data; month 2 has the price change; month 3
    (and later) keeps it and adds the new contract type and the label shift (see the
    module's table and ``capstone/DATA_CARD.md``).

    Args:
        month: 0 for the training data, else the month of the delivery.
        rows: Rows to deliver (default :data:`TRAINING_ROWS` for month 0, else
            :data:`MONTH_ROWS`).
        seed: Seed of the generator; the rows depend on ``(seed, month)`` only.

    Returns:
        The columns of :data:`FEATURES` and :data:`TARGET` (``"no"`` or ``"yes"``).

    Raises:
        ValueError: When ``month`` is negative or ``rows`` is below 1.
    """
    if month < 0:
        raise ValueError(f"month must be 0 (training) or more, got {month}.")
    rows = (TRAINING_ROWS if month == 0 else MONTH_ROWS) if rows is None else rows
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}.")
    rng = _rng(seed, month)
    shifted = month >= LABEL_SHIFT_FROM
    # The label shift keeps more than half of the customers drawn: 3 rows + 60 always suffice
    # (fewer than ``rows`` kept has a probability below 1e-15 for every ``rows``).
    pool = 3 * rows + 60 if shifted else rows
    df = _customers(rng, pool, month)
    churned = rng.random(pool) < true_probability(df)
    if shifted:
        kept = churned | (rng.random(pool) < STAYER_KEEP)
        if kept.sum() < rows:  # pragma: no cover - see the bound above
            raise RuntimeError(f"the label shift kept {kept.sum()} of {pool} customers.")
        df, churned = df[kept].head(rows), churned[kept][:rows]
    df[TARGET] = np.where(churned, POSITIVE, LABELS[0])
    return df.reset_index(drop=True)


def months(n: int, rows: int | None = None, seed: int = 0) -> list[pd.DataFrame]:
    """The first ``n`` monthly deliveries, months 1 to ``n`` (see :func:`delivery`).

    Month 1: no drift. Month 2: every monthly charge 12 % higher. Month 3: the price
    change, plus 20 % of customers on the new ``quarterly`` contract and a label shift
    (churn about 40 %). Month 4 and later: like month 3.
    """
    return [delivery(k, rows, seed) for k in range(1, n + 1)]


def write(path: str | Path, month: int = 0, rows: int | None = None, seed: int = 0) -> Path:
    """Write one delivery (see :func:`delivery`) as CSV, atomically; return the path."""
    df = delivery(month, rows, seed)
    return write_text_atomic(path, df.to_csv(index=False, lineterminator="\n"))
