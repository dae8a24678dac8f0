"""The planted bugs of the hidden mutation tests (never released to students).

Each is a realistic bug in a module of weeks 1 and 2; under the grader those
modules are the reference files (``autograder/overlay.py``), so the old text is
always there. ``EQUIVALENT`` changes no behaviour: a suite must still pass on it
(a suite that pins file contents or hashes fails it).
"""

from __future__ import annotations

from conftest import Mutant

MUTANTS = (
    Mutant(
        "split-without-stratify",
        "mlpipe/train.py",
        "random_state=seed, stratify=df[target]",
        "random_state=seed",
    ),
    Mutant(
        "split-ignores-the-seed",
        "mlpipe/train.py",
        "random_state=seed, stratify=df[target]",
        "random_state=None, stratify=df[target]",
    ),
    Mutant(
        "labels-shuffled-against-rows",
        "mlpipe/train.py",
        "model = build_pipeline(params, dataset).fit(X_train, y_train)",
        "model = build_pipeline(params, dataset).fit(\n"
        "        X_train, y_train.sample(frac=1.0, random_state=params.seed).to_numpy()\n"
        "    )",
    ),
    Mutant(
        "labels-off-by-one",
        "mlpipe/train.py",
        "df[TARGET] = iris.target_names[iris.target].astype(str)",
        "df[TARGET] = iris.target_names[(iris.target + 1) % 3].astype(str)",
    ),
    Mutant(
        "fingerprint-ignores-the-values",
        "mlpipe/train.py",
        'payload = df.to_csv(index=False, lineterminator="\\n").encode("utf-8")',
        'payload = ",".join(map(str, df.columns)).encode("utf-8")',
    ),
    Mutant(
        "only-empty-rows-count-as-missing",
        "mlpipe/validate.py",
        "missing = int(df.isna().sum().sum())",
        "missing = int(df.isna().all(axis=1).sum())",
    ),
    Mutant(
        "unknown-labels-checked-the-wrong-way-round",
        "mlpipe/validate.py",
        "unseen = sorted(set(labels) - set(ds.labels))",
        "unseen = sorted(set(ds.labels) - set(labels))",
    ),
)

#: A harmless change: a renamed local and a comment in ``train.evaluate``.
EQUIVALENT = Mutant(
    "equivalent-renamed-local",
    "mlpipe/train.py",
    "    pred = model.predict(X)\n"
    "    labels = sorted(str(label) for label in np.unique(y))\n"
    "    metrics = {\n"
    '        "accuracy": float(accuracy_score(y, pred)),\n'
    '        "f1_macro": float(f1_score(y, pred, average="macro")),\n'
    '        "labels": labels,\n'
    '        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),\n',
    "    # the predictions on the held-out rows\n"
    "    predicted = model.predict(X)\n"
    "    labels = sorted(str(label) for label in np.unique(y))\n"
    "    metrics = {\n"
    '        "accuracy": float(accuracy_score(y, predicted)),\n'
    '        "f1_macro": float(f1_score(y, predicted, average="macro")),\n'
    '        "labels": labels,\n'
    '        "confusion_matrix": confusion_matrix(y, predicted, labels=labels).tolist(),\n',
)
