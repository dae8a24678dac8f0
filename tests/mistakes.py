"""A catalogue of typical mistakes, each a sample submission that ``course check`` must catch.

Every mistake is one small edit (an ``old`` -> ``new`` replacement) to one file of the
reference solution, laid out as a student's checkout like the samples in
``tests/submissions.py``; so the samples cannot drift from the course. ``course check``
on it must fail the graded item ``item`` with a message that holds every fragment of
``expect``: the function or task named, what was expected and what came instead, and
a hint that does not hand over the solution.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from submissions import SOLUTIONS, _reference

#: Graded items of week 1 that the mistakes below are caught by.
_W1 = "test_train.py::"
_CLI = _W1 + "test_cli_trains_and_writes_model_with_metadata"
_SPLIT = _W1 + "test_split_is_stratified_and_deterministic"
_BUILD = _W1 + "test_build_pipeline_uses_params"
_EVALUATE = _W1 + "test_evaluate_returns_the_documented_metrics"


@dataclass(frozen=True)
class Mistake:
    """One typical mistake and the feedback that catches it.

    Attributes:
        name: Short id, used as the test id.
        week: The week whose ``course check`` must catch it.
        file: The edited file, relative to ``labs/``.
        old: Text of the reference that occurs exactly once in ``file``.
        new: What the student wrote instead.
        item: The graded item (notebook cell id or ``path.py::test``) that must fail.
        expect: Fragments its message must contain.
    """

    name: str
    week: int
    file: str
    old: str
    new: str
    item: str
    expect: tuple[str, ...]


MISTAKES = [
    # --- week 1: mlpipe.train and the training image -------------------------------------
    Mistake(
        "leakage-scaler-before-split",
        1,
        "mlpipe/train.py",
        "    X_train, X_test, y_train, y_test = split_data(df, params.test_size, params.seed, dataset)\n",
        "    scaled = df.copy()\n"
        "    scaled[FEATURES] = StandardScaler().fit_transform(df[FEATURES])  # all rows\n"
        "    X_train, X_test, y_train, y_test = split_data(scaled, params.test_size, params.seed)\n",
        _CLI,
        ("train()", "scaler", "expected those of the training rows only", "leaks"),
    ),
    Mistake(
        "leakage-fit-on-all-rows",
        1,
        "mlpipe/train.py",
        "    model = build_pipeline(params, dataset).fit(X_train, y_train)\n",
        "    model = build_pipeline(params).fit(df[FEATURES], df[TARGET])\n",
        _CLI,
        ("train()", "scaler", "expected those of the training rows only"),
    ),
    Mistake(
        "f1-micro-not-macro",
        1,
        "mlpipe/train.py",
        'average="macro"',
        'average="micro"',
        _EVALUATE,
        ("evaluate()", "f1_macro is 0.8750", "expected 0.8222", "micro"),
    ),
    Mistake(
        "f1-weighted-not-macro",
        1,
        "mlpipe/train.py",
        'average="macro"',
        'average="weighted"',
        _EVALUATE,
        ("evaluate()", "f1_macro is 0.8667", "expected 0.8222", "weighted"),
    ),
    Mistake(
        "params-typo-max-iters",
        1,
        "mlpipe/train.py",
        "max_iter=params.max_iter",
        "max_iters=params.max_iter",
        _BUILD,
        ("build_pipeline(", "TypeError", "max_iters", "help(LogisticRegression)"),
    ),
    Mistake(
        "seed-hard-coded-in-split",
        1,
        "mlpipe/train.py",
        "random_state=seed,",
        "random_state=42,",
        _SPLIT,
        ("split_data(", "seed=2", "same test rows", "seed argument"),
    ),
    Mistake(
        "seed-hard-coded-in-model",
        1,
        "mlpipe/train.py",
        "random_state=params.seed)",
        "random_state=42)",
        _BUILD,
        ("build_pipeline(", "random_state is 42", "expected 3"),
    ),
    Mistake(
        "metadata-without-git-commit",
        1,
        "mlpipe/train.py",
        '        "git_commit": git_commit(),\n',
        "",
        _CLI,
        ("metadata.json (from collect_metadata) lacks the key(s) git_commit", "it has data_"),
    ),
    Mistake(
        "metadata-params-not-a-dict",
        1,
        "mlpipe/train.py",
        '"params": asdict(params),',
        '"params": params,',
        _CLI,
        ("collect_metadata()", "metadata['params'] is a mlpipe.config.TrainParams", "dict"),
    ),
    Mistake(
        "numpy-types-in-metrics",
        1,
        "mlpipe/train.py",
        "confusion_matrix(y, pred, labels=labels).tolist(),",
        "confusion_matrix(y, pred, labels=labels),",
        _EVALUATE,
        (
            "evaluate() must return plain Python types",
            "metrics['confusion_matrix'] is a numpy.ndarray",
            "expected",
            ".tolist()",
        ),
    ),
    Mistake(
        "wrong-metrics-key",
        1,
        "mlpipe/train.py",
        '"f1_macro": float(',
        '"f1": float(',
        _EVALUATE,
        ("evaluate() returned lacks the key(s) f1_macro", "it has accuracy, confusion_matrix, f1,"),
    ),
    Mistake(
        "split-not-stratified",
        1,
        "mlpipe/train.py",
        ", stratify=df[target]",
        "",
        _SPLIT,
        ("split_data(", "is not stratified", "expected 10 of each"),
    ),
    Mistake(
        "test-size-ignored-by-train",
        1,
        "mlpipe/train.py",
        "split_data(df, params.test_size, params.seed, dataset)",
        "split_data(df, 0.2, params.seed)",
        _CLI,
        ("train() evaluated the model on 30 rows", "expected 45", "test_size"),
    ),
    Mistake(
        "fingerprint-of-the-printed-frame",
        1,
        "mlpipe/train.py",
        'payload = df.to_csv(index=False, lineterminator="\\n").encode("utf-8")',
        'payload = str(df).encode("utf-8")',
        _W1 + "test_fingerprint_is_stable_and_sensitive",
        ("fingerprint()", "row 75", "did not change the fingerprint"),
    ),
    Mistake(
        "dockerfile-runs-as-root",
        1,
        "docker/train.Dockerfile",
        "USER 10001\n",
        "USER root\n",
        _W1 + "test_dockerfile_runs_as_non_root_and_trains",
        ("non-root USER", "its last USER is root"),
    ),
    Mistake(
        "dockerfile-add-not-copy",
        1,
        "docker/train.Dockerfile",
        "COPY ${PIPELINE_DIR}/mlpipe /app/mlpipe",
        "ADD ${PIPELINE_DIR}/mlpipe /app/mlpipe",
        _W1 + "test_dockerfile_is_complete_and_passes_hadolint",
        # Needs the shared test kit's fix (hadolint run without colour codes, its hint whole):
        # until it lands, the test's check for colour codes fails on this sample.
        ("DL3020", "Use COPY instead of ADD"),
    ),
]

_W2_DATA, _W2_VALIDATE = "test_data.py::", "test_validate.py::"
MISTAKES += [
    # --- week 2: mlpipe.data, mlpipe.validate and dvc.yaml ------------------------------
    Mistake(
        "labels-not-stripped",
        2,
        "mlpipe/data.py",
        "    labels = df[target].astype(str).str.strip()\n",
        "    labels = df[target].astype(str)\n",
        _W2_DATA + "test_clean_renames_columns_and_labels",
        ("clean() turned the raw labels", "expected ['setosa', 'versicolor']", "strip"),
    ),
    Mistake(
        "missing-column-raises-key-error",
        2,
        "mlpipe/data.py",
        "    missing = [name for name in columns if name not in raw.columns]\n"
        "    if missing:\n"
        "        raise DataError(\n"
        '            f"The raw data has no column {missing[0]!r}; '
        "found: {', '.join(map(str, raw.columns))}.\"\n"
        "        )\n",
        "",
        _W2_DATA + "test_clean_names_a_missing_column",
        ("clean() raised KeyError", "expected a DataError that names the missing column"),
    ),
    Mistake(
        "processed-csv-with-index",
        2,
        "mlpipe/data.py",
        'write_text_atomic(out_path, df.to_csv(index=False, lineterminator="\\n"))',
        'write_text_atomic(out_path, df.to_csv(lineterminator="\\n"))',
        _W2_DATA + "test_prepare_writes_processed_data_and_fingerprint",
        ("prepare() wrote iris.csv with the shape (150, 6)", "expected (150, 5)", "index"),
    ),
    Mistake(
        "fingerprint-of-the-file-path",
        2,
        "mlpipe/data.py",
        '"fingerprint": fingerprint(df),',
        '"fingerprint": "sha256:" + hashlib.sha256(str(raw_path).encode()).hexdigest(),',
        _W2_DATA + "test_prepare_writes_processed_data_and_fingerprint",
        ("prepare(): the fingerprint", "is not that of the processed rows", "not a path"),
    ),
    Mistake(
        "lineage-source-is-the-whole-file",
        2,
        "mlpipe/data.py",
        '        source = json.loads(info_file.read_text(encoding="utf-8")).get("source")\n',
        '        source = json.loads(info_file.read_text(encoding="utf-8"))\n',
        _W2_DATA + "test_lineage_names_the_data_version",
        ("lineage(): source is", "expected {'path'", "fingerprint.json"),
    ),
    Mistake(
        "validate-stops-at-the-first-failure",
        2,
        "mlpipe/validate.py",
        "    checks.append(check_drift(df, params, reference, dataset))\n",
        "    checks.append(check_drift(df, params, reference, dataset))\n"
        "    failed = [c for c in checks if not c.passed]\n"
        "    checks = failed[:1] or checks  # the first problem is enough\n",
        _W2_VALIDATE + "test_every_failed_check_is_listed",
        ("validate()", "listed the failed checks ['schema.columns']", "every failure"),
    ),
    Mistake(
        "column-order-not-checked",
        2,
        "mlpipe/validate.py",
        "    present = [c for c in df.columns if c in expected]\n"
        "    if present != expected:\n"
        "        return CheckResult(\n"
        '            "schema.columns",\n'
        "            False,\n"
        "            f\"columns are in the order {', '.join(present)}; "
        "expected {', '.join(expected)}.\",\n"
        "        )\n",
        "",
        _W2_VALIDATE + "test_swapped_columns_are_stopped",
        ("expected the check 'schema.columns' to fail", "failed: ['drift']"),
    ),
    Mistake(
        "missing-values-message-without-column",
        2,
        "mlpipe/validate.py",
        "            f\"{missing} missing value(s) in {', '.join(columns)} \"\n",
        '            f"{missing} missing value(s) "\n',
        _W2_VALIDATE + "test_missing_values_are_stopped",
        ("missing_values check must name the column", "3 missing value(s)"),
    ),
    Mistake(
        "dvc-train-stage-without-params",
        2,
        "dvc.yaml",
        "    params:\n      - train\n",
        "",
        "test_dvc.py::test_changing_a_train_param_reruns_only_train_and_evaluate",
        ("`dvc repro` ran the stages []", "expected ['train', 'evaluate']", "params:"),
    ),
]

_W3 = "test_track.py::"
_W3_LOG = _W3 + "test_log_training_run_records_params_metrics_figure_tags_and_model"
_W3_REGISTERED = _W3 + "test_best_trial_is_registered_as_challenger"
MISTAKES += [
    # --- week 3: mlpipe.track ------------------------------------------------------------
    Mistake(
        "tracking-uri-env-ignored",
        3,
        "mlpipe/track.py",
        "registry.tracking_uri(params.tracking_uri)",
        "params.tracking_uri or registry.tracking_uri()",
        _W3 + "test_tracking_uri_defaults_to_sqlite_in_the_project",
        ("with MLFLOW_TRACKING_URI=", "returned 'http://x'", "the environment variable wins"),
    ),
    Mistake(
        "tracking-store-relative-path",
        3,
        "mlpipe/track.py",
        "registry.tracking_uri(params.tracking_uri)",
        'os.environ.get("MLFLOW_TRACKING_URI") or params.tracking_uri or "sqlite:///mlflow.db"',
        _W3 + "test_tracking_uri_defaults_to_sqlite_in_the_project",
        ("tracking_uri(TrackParams()) returned 'sqlite:///mlflow.db'", "project folder"),
    ),
    Mistake(
        "only-some-params-logged",
        3,
        "mlpipe/track.py",
        "    mlflow.log_params(asdict(params))\n    mlflow.log_metrics",
        '    mlflow.log_params({"C": params.C})\n    mlflow.log_metrics',
        _W3_LOG,
        ("log_training_run(): the run's params are ['C']", "every field of TrainParams"),
    ),
    Mistake(
        "metrics-logged-under-other-names",
        3,
        "mlpipe/track.py",
        'mlflow.log_metrics({"accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"]})',
        'mlflow.log_metrics({"acc": metrics["accuracy"], "f1": metrics["f1_macro"]})',
        _W3_LOG,
        ("the run's metrics are {'acc': 0.9, 'f1': 0.8}", "expected {'accuracy': 0.9"),
    ),
    Mistake(
        "none-tag-logged-as-None",
        3,
        "mlpipe/track.py",
        '"none" if value is None else str(value)',
        "str(value)",
        _W3_LOG,
        ("the tag git_commit is 'None'", "expected 'none'"),
    ),
    Mistake(
        "model-logged-without-input-example",
        3,
        "mlpipe/track.py",
        "        input_example=X_example,\n",
        "",
        _W3_LOG,
        ("log_training_run(): the logged model has no input example",),
    ),
    Mistake(
        "challenger-alias-not-set",
        3,
        "mlpipe/track.py",
        "    registry.set_alias(name, CHALLENGER, version.version)\n",
        "",
        _W3_REGISTERED,
        ("no version of iris-classifier has the alias 'challenger'", "must set it"),
    ),
    Mistake(
        "registered-without-description",
        3,
        "mlpipe/track.py",
        "    client.update_model_version(name, version.version, description=description)\n",
        "",
        _W3_REGISTERED,
        ("the registered version has no description",),
    ),
]

_W4 = "test_gates.py::"
MISTAKES += [
    # --- week 4: mlpipe.gates and the pipeline's workflow -------------------------------
    Mistake(
        "thresholds-check-accuracy-only",
        4,
        "mlpipe/gates.py",
        'floors = {"accuracy": params.min_accuracy, "f1_macro": params.min_f1_macro}',
        'floors = {"accuracy": params.min_accuracy}',
        _W4 + "test_thresholds_name_every_metric_below_its_floor",
        ("thresholds() of accuracy 0.85 and f1_macro 0.8", "name every metric below its floor"),
    ),
    Mistake(
        "thresholds-floor-not-reached-at-equality",
        4,
        "mlpipe/gates.py",
        "if metrics[name] < floor - EPS",
        "if metrics[name] <= floor",
        _W4 + "test_thresholds_name_every_metric_below_its_floor",
        ("thresholds() of accuracy 0.95 and f1_macro 0.9", "passed=False", "at its floor"),
    ),
    Mistake(
        "min-improvement-ignored",
        4,
        "mlpipe/gates.py",
        "if gain < params.min_improvement - EPS:",
        "if gain < -EPS:",
        _W4 + "test_versus_champion_needs_the_gain_and_keeps_the_tolerance",
        ("versus_champion() of accuracy 0.5625 vs 0.5", "passed=True", "naming accuracy"),
    ),
    Mistake(
        "tolerance-ignored",
        4,
        "mlpipe/gates.py",
        "if drop > params.tolerance + EPS:",
        "if drop > EPS:",
        _W4 + "test_versus_champion_needs_the_gain_and_keeps_the_tolerance",
        ("versus_champion() of accuracy 0.75 vs 0.5", "within the tolerance is allowed"),
    ),
    Mistake(
        "no-champion-crashes",
        4,
        "mlpipe/gates.py",
        "    if champion is None:\n"
        '        return Check("versus_champion", True, "no champion yet: nothing to compare with.")\n',
        "",
        _W4 + "test_versus_champion_needs_the_gain_and_keeps_the_tolerance",
        ("versus_champion(metrics, None, params) raised TypeError", "no champion"),
    ),
    Mistake(
        "directional-upside-down",
        4,
        "mlpipe/gates.py",
        "down = sum(b > a for b, a in zip(before, after, strict=True))",
        "down = sum(b < a for b, a in zip(before, after, strict=True))",
        _W4 + "test_behavioural_gates_pass_a_good_model_and_fail_broken_ones",
        ("directional() failed a well-trained model", "moved down the species order"),
    ),
    Mistake(
        "decide-skips-the-budgets",
        4,
        "mlpipe/gates.py",
        "            latency(challenger, X_test, params),\n            size(challenger, params),\n",
        "",
        _W4 + "test_decide_runs_every_gate_and_keeps_every_reason",
        ("decide() ran the gates ['thresholds',", "expected every gate, in this order"),
    ),
    Mistake(
        "blocked-challenger-promoted",
        4,
        "mlpipe/gates.py",
        "    if not decision.allowed:\n        return False\n",
        "",
        _W4 + "test_gate_blocks_a_worse_challenger_and_moves_nothing",
        ("after the gates blocked version 1, the aliases are", "never becomes champion"),
    ),
    Mistake(
        "decision-not-recorded",
        4,
        "mlpipe/gates.py",
        "    client.set_model_version_tag(\n"
        "        name, version, TAG_DECISION, json.dumps(decision.to_dict(), sort_keys=True)\n"
        "    )\n",
        "",
        _W4 + "test_gate_promotes_a_better_challenger_and_records_the_decision",
        ("expected gate.decision too",),
    ),
    Mistake(
        "workflow-ignores-params-changes",
        4,
        ".github/workflows/pipeline.yml",
        '  push:\n    paths:\n      - "data/**"\n      - "**.dvc"\n      - "dvc.yaml"\n'
        '      - "dvc.lock"\n      - "params.yaml"\n',
        '  push:\n    paths:\n      - "data/**"\n      - "**.dvc"\n      - "dvc.yaml"\n'
        '      - "dvc.lock"\n',
        "test_workflow.py::test_workflow_runs_on_changes_to_data_params_and_code",
        ("a push that changes params.yaml does not start the pipeline",),
    ),
]

_W5, _W5_EXPORT = "test_serve.py::", "test_export.py::"
_W6 = "test_monitor.py::"
MISTAKES += [
    # --- week 5: mlpipe.serve, mlpipe.export, the serving image and compose file ----------
    Mistake(
        "unknown-alias-leaks-the-registry-error",
        5,
        "mlpipe/serve.py",
        "    try:\n"
        "        version = client.get_model_version_by_alias(settings.model_name, "
        "settings.model_alias)\n"
        "    except MlflowException:\n"
        "        raise ServeError(\n"
        "            f\"The registry at {uri} has no model '{settings.model_name}' \"\n"
        "            f\"with the alias '{settings.model_alias}'.\"\n"
        "        ) from None\n",
        "    version = client.get_model_version_by_alias(settings.model_name, settings.model_alias)\n",
        _W5 + "test_unknown_alias_refuses_to_start_with_one_sentence",
        ("create_app() for the alias 'no-such-alias' raised MlflowException", "ServeError"),
    ),
    Mistake(
        "log-line-without-latency",
        5,
        "mlpipe/serve.py",
        '            "latency_ms": latency,\n',
        "",
        _W5 + "test_every_prediction_is_one_log_line",
        ("an inference log line has the keys", "it lacks latency_ms"),
    ),
    Mistake(
        "log-line-with-every-input",
        5,
        "mlpipe/serve.py",
        '            "inputs": row,\n',
        '            "inputs": inputs,\n',
        _W5 + "test_every_prediction_is_one_log_line",
        ("the log line of one POST /predict has inputs=[", "expected the request's one row"),
    ),
    Mistake(
        "answer-without-model-version",
        5,
        "mlpipe/serve.py",
        '{"request_id": request_id, "model_version": state.ref.version, "prediction": label}',
        '{"request_id": request_id, "prediction": label}',
        _W5 + "test_predict_one_row",
        ("POST /predict answered the keys ['prediction', 'request_id']", "model_version"),
    ),
    Mistake(
        "single-predictions-not-counted",
        5,
        "mlpipe/serve.py",
        "        state.metrics.count_predictions([label])\n",
        "",
        _W5 + "test_metrics_count_requests_and_predictions",
        ("mlpipe_predictions_total for the label virginica rose by 2", "expected 3"),
    ),
    Mistake(
        "score-csv-ignores-column-names",
        5,
        "mlpipe/export.py",
        "    return df[columns].to_numpy(dtype=float)\n",
        "    return df.to_numpy(dtype=float)\n",
        _W5_EXPORT + "test_score_csv_adds_a_prediction_per_row",
        ("score_csv():", "columns are in another order", "pick the columns by name"),
    ),
    Mistake(
        "serving-image-runs-as-root",
        5,
        "docker/serve.Dockerfile",
        "USER 10001\n",
        "USER root\n",
        _W5_EXPORT
        + "test_dockerfile_is_multi_stage_non_root_with_a_healthcheck_and_passes_hadolint",
        ("non-root USER", "its last USER is root"),
    ),
    Mistake(
        "api-does-not-wait-for-a-healthy-mlflow",
        5,
        "compose.yaml",
        "        condition: service_healthy\n",
        "        condition: service_started\n",
        _W5_EXPORT + "test_compose_file_runs_the_api_after_a_healthy_mlflow_server",
        ("compose.yaml: the api starts when mlflow is 'service_started'", "service_healthy"),
    ),
    # --- week 6: mlpipe.monitor ---------------------------------------------------------------
    Mistake(
        "torn-last-line-not-counted",
        6,
        "mlpipe/monitor.py",
        "            data, torn = data[:end], 1\n",
        "            data = data[:end]\n",
        _W6 + "test_a_torn_last_line_is_skipped_and_counted",
        ("read_log(): a last line without its newline", "count it in torn_lines"),
    ),
    Mistake(
        "bad-line-counted-from-zero",
        6,
        "mlpipe/monitor.py",
        "        for number, line in enumerate(lines, 1):\n",
        "        for number, line in enumerate(lines):\n",
        _W6 + "test_the_command_names_the_line_that_is_not_json",
        ("must name the log and its line 3 (lines count from 1)", "Line 2 of the inference log"),
    ),
    Mistake(
        "bad-line-is-a-traceback",
        6,
        "mlpipe/monitor.py",
        "            try:\n"
        "                records.append(json.loads(line))\n"
        "            except ValueError as err:\n"
        '                raise _bad_line(path, number, f"is not JSON ({err.msg.lower()})") from None\n',
        "            records.append(json.loads(line))\n",
        _W6 + "test_the_command_names_the_line_that_is_not_json",
        ("a log whose line 3 is not JSON", "exited with 1, expected 2", "JSONDecodeError"),
    ),
    Mistake(
        "window-keeps-the-oldest-rows",
        6,
        "mlpipe/monitor.py",
        "        window = window.tail(last)\n",
        "        window = window.head(last)\n",
        _W6 + "test_select_window_keeps_the_latest_rows_since_a_time",
        ("select_window(last=100): the window starts at req-0000", "the latest N rows"),
    ),
    Mistake(
        "window-not-reindexed",
        6,
        "mlpipe/monitor.py",
        "    return window.reset_index(drop=True)\n",
        "    return window\n",
        _W6 + "test_select_window_keeps_the_latest_rows_since_a_time",
        ("select_window(): the window's index starts at 200, expected 0", "re-index"),
    ),
    Mistake(
        "small-window-passes-silently",
        6,
        "mlpipe/monitor.py",
        "    if len(window) < min_rows:\n",
        "    if len(window) < 1:\n",
        _W6 + "test_a_window_under_min_rows_is_an_error_not_a_pass",
        ("a window of 10 rows under min_rows 50", "exited with 0, expected 2"),
    ),
    Mistake(
        "high-p-value-counted-as-drift",
        6,
        "mlpipe/monitor.py",
        '                score, str(config["method"]), score < params.drift_threshold\n',
        '                score, str(config["method"]), score > params.drift_threshold\n',
        _W6 + "test_the_unit_change_drifts_and_normal_traffic_does_not",
        ("normal traffic must not drift, but summarise() says", "below drift_threshold"),
    ),
    Mistake(
        "check-exits-0-on-drift",
        6,
        "mlpipe/monitor.py",
        "    return summary.drift_detected\n",
        "    return summary.drift_share == 1.0\n",
        _W6 + "test_monitor_check_exits_1_when_the_policy_is_breached",
        ("three of four features drifted", "exited with 0, expected 1"),
    ),
]

_W7_CAP, _W7_K8S, _W7_ROLL = "test_capacity.py::", "test_k8s.py::", "test_rollout.py::"
_W7_INFRA = "test_infra.py::"
MISTAKES += [
    # --- week 7: mlpipe.capacity, the Kubernetes manifests, mlpipe.rollout's analysis ------
    Mistake(
        "replicas-rounded-down",
        7,
        "mlpipe/capacity.py",
        "    return max(1, math.ceil(exact - 1e-9))",
        "    return max(1, math.floor(exact))",
        _W7_CAP + "test_replicas_are_rounded_up_and_bounded_by_the_floor_and_the_headroom",
        (
            "replicas_needed(500 req/s, 200 per replica, utilisation 0.6) is 4, expected 5",
            "round up",
        ),
    ),
    Mistake(
        "littles-law-in-milliseconds",
        7,
        "mlpipe/capacity.py",
        "    return rps * latency_ms / 1000.0\n",
        "    return rps * latency_ms\n",
        _W7_CAP + "test_littles_law_and_the_failure_ratio",
        ("concurrency(200 req/s, 15 ms) is 3000.0, expected 3.0", "W in seconds"),
    ),
    Mistake(
        "p99-at-the-objective-is-overloaded",
        7,
        "mlpipe/capacity.py",
        "    return rps if p99_ms <= objective_ms else None\n",
        "    return rps if p99_ms < objective_ms else None\n",
        _W7_CAP + "test_only_a_run_within_its_objective_is_sustainable",
        ("sustainable_rps(p99 100 ms, objective 100 ms) is None, expected 234.0", "meets it"),
    ),
    Mistake(
        "max-replicas-without-headroom",
        7,
        "mlpipe/capacity.py",
        "    return min_replicas, max(min_replicas, math.ceil(replicas * headroom - 1e-9))\n",
        "    return min_replicas, max(min_replicas, replicas)\n",
        _W7_CAP + "test_replicas_are_rounded_up_and_bounded_by_the_floor_and_the_headroom",
        ("replica_bounds(5 replicas, floor 2, headroom 1.5) is (2, 5), expected (2, 8)",),
    ),
    Mistake(
        "liveness-probe-on-a-path-the-app-lacks",
        7,
        "k8s/api.yaml",
        "          livenessProbe:\n            httpGet:\n              path: /health\n",
        "          livenessProbe:\n            httpGet:\n              path: /healthz\n",
        _W7_K8S + "test_every_probe_asks_an_endpoint_the_app_serves",
        (
            "Deployment/mlpipe-api's livenessProbe asks /healthz, which the app has no GET for",
            "its GET routes: /health",
        ),
    ),
    Mistake(
        "readiness-probe-on-health",
        7,
        "k8s/canary.yaml",
        "              path: /ready\n",
        "              path: /health\n",
        _W7_K8S + "test_every_probe_asks_an_endpoint_the_app_serves",
        ("Deployment/mlpipe-api-canary's readinessProbe asks /health", "its model is loaded"),
    ),
    Mistake(
        "writable-root-file-system",
        7,
        "k8s/api.yaml",
        "            readOnlyRootFilesystem: true\n",
        "            readOnlyRootFilesystem: false\n",
        _W7_K8S + "test_every_container_runs_locked_down",
        ("Deployment/mlpipe-api container api does not set readOnlyRootFilesystem: true",),
    ),
    Mistake(
        "hpa-utilisation-as-a-fraction",
        7,
        "k8s/hpa.yaml",
        "          averageUtilization: 60\n",
        "          averageUtilization: 0.6\n",
        _W7_K8S + "test_the_hpa_scales_on_the_planned_cpu_utilisation",
        ("k8s/hpa.yaml is not a valid manifest", "averageUtilization", "is not of type 'integer'"),
    ),
    Mistake(
        "p99-histogram-read-as-per-bucket-counts",
        7,
        "mlpipe/rollout.py",
        "    total = bounds[-1][1] if bounds else 0.0\n",
        "    total = sum(n for _, n in bounds)\n",
        _W7_ROLL + "test_error_rate_and_p99_come_from_the_canarys_counters",
        ("quantile_ms() of the broken canary is", "bucket (50, 100] ms", "cumulative"),
    ),
    Mistake(
        "distance-without-the-half",
        7,
        "mlpipe/rollout.py",
        "    return sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in a.keys() | b.keys()) / 2\n",
        "    return sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in a.keys() | b.keys())\n",
        _W7_ROLL + "test_distribution_distance_is_the_total_variation_distance",
        ("shares 75/25 against 25/75 are at distance 0.5", "got 1.0"),
    ),
    Mistake(
        "serving-role-reads-every-resource",
        7,
        "infra/artifacts.yaml",
        "                Action: s3:GetObject\n"
        '                Resource: !Sub "${ArtifactBucket.Arn}/${ArtifactPrefix}/*"\n',
        '                Action: s3:GetObject\n                Resource: "*"\n',
        _W7_INFRA + "test_the_serving_role_reads_the_artifacts_and_no_role_is_broader",
        ("least privilege", "ServingRole allows '*'", "the artefact bucket's ARN"),
    ),
]

#: The few mistakes the fast tier checks (the rest are in the slow tier).
#: The sample ``make test`` checks (the cheapest); the whole catalogue is in ``make test-slow``.
FAST = ("wrong-metrics-key",)


def edited(mistake: Mistake) -> str:
    """The reference's ``mistake.file`` with the mistake made.

    Raises:
        ValueError: When the edit no longer applies exactly once (the reference changed).
    """
    text = (SOLUTIONS / mistake.file).read_text(encoding="utf-8")
    if text.count(mistake.old) != 1:
        raise ValueError(
            f"{mistake.name}: {mistake.old!r} occurs {text.count(mistake.old)} times in "
            f"solutions/{mistake.file}, expected once; update tests/mistakes.py"
        )
    return text.replace(mistake.old, mistake.new)


def _without_hidden_tests(notebook: Path) -> None:
    """Drop the hidden-test regions of a notebook, as the student's copy has none."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        cell["source"] = re.sub(
            r"### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS\n?", "", text, flags=re.S
        )
    notebook.write_text(json.dumps(nb, indent=1), encoding="utf-8")


def build(mistake: Mistake, dest: Path) -> Path:
    """The reference submission with ``mistake`` made; return the checkout folder.

    The lab notebook is the reference's without its hidden tests, so ``course check``
    shows what it would show the student.
    """
    _reference(dest)
    (dest / "labs" / mistake.file).write_text(edited(mistake), encoding="utf-8")
    _without_hidden_tests(dest / "labs" / f"week{mistake.week:02d}" / "lab.ipynb")
    return dest
