"""Benchmark: the churn data's model quality, against the mechanism's Bayes rate.

For each seed, the training delivery of ``mlpipe.churn`` (7,000 customers) is split
80/20 (stratified, ``random_state=42``, as week 1's split). Three models are fitted on
the 80 % and scored on the held-out 20 %:

* ``logistic``: the pipeline's model (scaled numbers, one-hot categories, logistic
  regression, ``C=1``), the baseline;
* ``gradient-boosting``: scikit-learn's HistGradientBoostingClassifier (depth 3);
* ``random-forest``: 300 trees, at least 20 customers a leaf;

and ``bayes`` is the mechanism itself (``churn.true_probability``): the best any model
can do. For each: ROC AUC, PR AUC (average precision), and the cost per customer at the
cost-based threshold ``1 / (1 + cost_ratio)`` of capstone/params.yaml (a false negative
costs ``cost_ratio``, a false positive 1). Then the models trained on month 0 score
months 1 to 3 (month 3's new contract type is unknown to them: one-hot ignores it),
next to each month's own Bayes rate. It also times the generator.

    .venv/bin/python benchmarks/churn.py                 # seed 0
    .venv/bin/python benchmarks/churn.py --seeds 0,1,2   # the mean over three seeds
    make bench-churn

The script exits 0: its figures are measurements. Times depend on the machine's load,
which is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # gradient boosting: no oversubscribed cores

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "solutions"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from mlpipe import churn  # noqa: E402

CATEGORICAL = ["contract", "internet_service", "payment_method"]
NUMERIC = [name for name in churn.FEATURES if name not in CATEGORICAL]
MODELS = ("logistic", "gradient-boosting", "random-forest")


def build(name: str):
    """An unfitted model: preprocessing (scaling, one-hot) then the named classifier."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [
            ("numeric", StandardScaler(), NUMERIC),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    classifier = {
        "logistic": lambda: LogisticRegression(C=1.0, max_iter=1000),
        "gradient-boosting": lambda: HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.05, max_depth=3, random_state=0
        ),
        "random-forest": lambda: RandomForestClassifier(
            n_estimators=300, min_samples_leaf=20, random_state=0, n_jobs=1
        ),
    }[name]()
    return make_pipeline(columns, classifier)


def scores(y: np.ndarray, p: np.ndarray, threshold: float, cost_ratio: float) -> dict[str, float]:
    """ROC AUC, PR AUC and the cost per customer of flagging ``p >= threshold``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    flagged = p >= threshold
    cost = (cost_ratio * np.sum(y & ~flagged) + np.sum(~y & flagged)) / len(y)
    return {
        "roc_auc": roc_auc_score(y, p),
        "pr_auc": average_precision_score(y, p),
        "cost": float(cost),
    }


def run_seed(seed: int, cost_ratio: float) -> pd.DataFrame:
    """One seed's rows: (model, month) -> roc_auc, pr_auc, cost, fit_s."""
    from sklearn.model_selection import train_test_split

    threshold = 1.0 / (1.0 + cost_ratio)
    df = churn.delivery(0, seed=seed)
    y = (df[churn.TARGET] == churn.POSITIVE).to_numpy()
    train, test = train_test_split(np.arange(len(df)), test_size=0.2, random_state=42, stratify=y)
    X = df[list(churn.FEATURES)]
    months = {k: churn.delivery(k, seed=seed) for k in (1, 2, 3)}
    rows = []
    for name in MODELS:
        start = time.perf_counter()
        model = build(name).fit(X.iloc[train], y[train])
        fit_s = time.perf_counter() - start
        held_out = model.predict_proba(X.iloc[test])[:, 1]
        rows.append(
            {
                "model": name,
                "month": 0,
                **scores(y[test], held_out, threshold, cost_ratio),
                "fit_s": fit_s,
            }
        )
        for k, month in months.items():
            truth = (month[churn.TARGET] == churn.POSITIVE).to_numpy()
            p = model.predict_proba(month[list(churn.FEATURES)])[:, 1]
            rows.append({"model": name, "month": k, **scores(truth, p, threshold, cost_ratio)})
    bayes = churn.true_probability(X.iloc[test])
    rows.append({"model": "bayes", "month": 0, **scores(y[test], bayes, threshold, cost_ratio)})
    for k, month in months.items():
        truth = (month[churn.TARGET] == churn.POSITIVE).to_numpy()
        p = churn.true_probability(month, month=k)
        rows.append({"model": "bayes", "month": k, **scores(truth, p, threshold, cost_ratio)})
    return pd.DataFrame(rows).assign(seed=seed)


def time_generator(seed: int) -> dict[int, float]:
    """CPU seconds to generate each delivery, months 0 to 3."""
    spent = {}
    for month in range(4):
        start = time.process_time()
        churn.delivery(month, seed=seed)
        spent[month] = time.process_time() - start
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0", help="seeds of the data, e.g. 0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    params = yaml.safe_load((REPO / "capstone" / "params.yaml").read_text())
    cost_ratio = float(params["dataset"]["cost_ratio"])
    spent = time_generator(seeds[0])
    print(
        "generator CPU time: " + ", ".join(f"month {m} {s * 1000:.0f} ms" for m, s in spent.items())
    )
    for seed in seeds:
        rate = (churn.delivery(0, seed=seed)[churn.TARGET] == churn.POSITIVE).mean()
        print(f"seed {seed}: training churn rate {rate:.3f}")
    table = pd.concat([run_seed(seed, cost_ratio) for seed in seeds])
    order = {name: i for i, name in enumerate((*MODELS, "bayes"))}
    held = table[table["month"] == 0].groupby("model")[["roc_auc", "pr_auc", "cost", "fit_s"]]
    held = held.mean().sort_index(key=lambda index: index.map(order))
    print(
        f"\nheld-out 20 % of month 0, mean over seeds {seeds} "
        f"(cost per customer at threshold {1 / (1 + cost_ratio):.3f}, cost_ratio {cost_ratio:g}):"
    )
    print(held.to_string(float_format=lambda v: f"{v:.4f}"))
    base = held.loc["logistic"]
    for name in ("gradient-boosting", "random-forest", "bayes"):
        row = held.loc[name]
        print(
            f"  {name} - logistic: ROC AUC {row['roc_auc'] - base['roc_auc']:+.4f}, "
            f"PR AUC {row['pr_auc'] - base['pr_auc']:+.4f}"
        )
    later = table[table["month"] > 0].pivot_table(
        index="model", columns="month", values=["roc_auc", "pr_auc"], aggfunc="mean"
    )
    later = later.sort_index(key=lambda index: index.map(order))
    print("\ntrained on month 0, scored on months 1-3 (bayes: each month's own mechanism):")
    print(later.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
