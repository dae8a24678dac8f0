"""Command line of the pipeline: ``python -m mlpipe STAGE [options]``.

The stages, in the order ``dvc.yaml`` runs them::

    fetch -> prepare -> validate -> train -> evaluate      (weeks 1 and 2)
    tune                                                     (week 3)
    gate [--promote]                                         (week 4)
    serve, score, export-onnx                                (week 5)
    monitor [--check]                                        (week 6)
    simulate                                                 (week 6, given)
    capacity --stats PREFIX_stats.csv [--write-hpa FILE]     (week 7: capacity)
    rollout --steps 10,50,100                                (week 7: rollout)
    scale generate|score|tune                                (week 7: scale, Ray)
    infra deploy|delete|lint --endpoint URL                  (week 7: infra, on moto)

Errors a user can fix (a bad params file, unreadable or invalid data, an
unreachable tracking server, a stage not written yet) are printed as one
sentence with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from mlpipe.config import (
    PATHS,
    MonitorParams,
    ParamsError,
    PrepareParams,
    TrackParams,
    ValidateParams,
    load_dataset,
    load_params,
    load_train_params,
    models_dir,
    project_dir,
)
from mlpipe.errors import PipelineError
from mlpipe.files import write_json


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlpipe", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    def stage(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = stages.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--params", default=None, help="params.yaml to read (default: built-in)")
        return sub

    fetch = stage("fetch", "write the raw data (Iris, or a synthetic churn delivery)")
    fetch.add_argument("--out", default=None, help="raw CSV (default: data/raw/DATASET.csv)")
    fetch.add_argument(
        "--per-class", type=int, default=None, help="only the first N rows of each species"
    )
    fetch.add_argument("--dataset", choices=("iris", "churn"), default="iris", help="which data")
    fetch.add_argument("--month", type=int, default=0, help="churn: 0 training, K month K")
    fetch.add_argument("--seed", type=int, default=0, help="churn: seed of the generator")

    prepare = stage("prepare", "clean raw data into data/processed with a fingerprint")
    prepare.add_argument("--raw", default=PATHS.raw, help="raw CSV to read")
    prepare.add_argument("--out", default=PATHS.processed, help="processed CSV")

    validate = stage("validate", "run every data check; exit 1 when one fails")
    validate.add_argument("--data", default=PATHS.processed, help="CSV to check")
    validate.add_argument("--reference", default=None, help="training schema JSON (drift)")
    validate.add_argument("--report", default=None, help="write the checks as JSON here")

    train = stage("train", "train the Iris model and save it with metadata")
    train.add_argument("--data", default=None, help="processed CSV (default: built-in Iris)")
    train.add_argument(
        "--out", default=None, help="folder for model.joblib and metadata.json (default: models/)"
    )

    evaluate = stage("evaluate", "score a saved model on its held-out rows")
    evaluate.add_argument("--model", required=True, help="model folder written by train")
    evaluate.add_argument("--data", default=PATHS.processed, help="processed CSV")
    evaluate.add_argument("--metrics", default=PATHS.metrics, help="metrics JSON to write")

    schema = stage("schema", "write the schema of clean data, the reference for drift")
    schema.add_argument("--data", default=PATHS.processed, help="processed CSV")
    schema.add_argument("--out", default=PATHS.schema, help="schema JSON to write")

    tune = stage("tune", "Optuna search tracked in MLflow; register the best as challenger")
    tune.add_argument("--data", default=PATHS.processed, help="processed CSV")

    gate = stage("gate", "run the promotion gates on the challenger; exit 1 when blocked")
    gate.add_argument("--data", default=PATHS.processed, help="processed CSV")
    gate.add_argument("--promote", action="store_true", help="move 'champion' if allowed")
    gate.add_argument("--report", default=None, help="write the decision as JSON here")
    # Week 5: the model comes from the registry by alias (MLPIPE_SERVE_* variables).
    serve = stages.add_parser("serve", help="serve the registered model over HTTP (FastAPI)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    score = stages.add_parser("score", help="score a CSV file with the registered model")
    score.add_argument("--data", default=PATHS.processed, help="CSV to score")
    score.add_argument("--out", default=PATHS.predictions, help="CSV with a prediction column")
    score.add_argument(
        "--params", default=None, help="params.yaml whose validate ranges apply (default: built-in)"
    )
    onnx = stages.add_parser("export-onnx", help="export the registered model to ONNX (parity)")
    onnx.add_argument("--data", default=PATHS.processed, help="rows for the parity")
    onnx.add_argument("--out", default=PATHS.onnx, help="ONNX file to write")
    # Week 6: relative defaults are inside the project folder (MLPIPE_HOME, else here).
    monitor_help = "drift of the inference log against the training data; --check: exit 1 on drift"
    watch = stages.add_parser("monitor", help=monitor_help, description=monitor_help)
    watch.add_argument(
        "--params", default=None, help="params.yaml to read (default: params.yaml, else built-in)"
    )
    watch.add_argument("--log", default=None, help="inference log (default: logs/inference.jsonl)")
    watch.add_argument(
        "--reference", default=None, help="training data (default: data/processed/iris.csv)"
    )
    watch.add_argument(
        "--schema", default=None, help="reference schema (default: data/schema.json)"
    )
    watch.add_argument("--labels", default=None, help="CSV of request_id,species: quality too")
    watch.add_argument("--since", default=None, help="only predictions at or after this ISO time")
    watch.add_argument(
        "--last", type=int, default=None, help="the latest N predictions (default: monitor.last)"
    )
    watch.add_argument("--out", default=None, help="output folder (default: reports/monitoring)")
    watch.add_argument("--check", action="store_true", help="exit 1 when the policy is breached")
    # Week 6 (given): traffic for the running API, normal or drifted.
    sim = stages.add_parser("simulate", help="send a traffic scenario to the running API")
    sim.add_argument("--url", default="http://127.0.0.1:8000", help="the API's address")
    sim.add_argument(
        "--scenario", default="normal", help="normal, unit-change, shift or drift (default normal)"
    )
    sim.add_argument("--rows", type=int, default=200, help="rows sent in each phase")
    sim.add_argument("--batch", type=int, default=1, help="rows per request (1: /predict)")
    sim.add_argument("--data", default=PATHS.processed, help="rows to sample from")
    sim.add_argument("--labels", default=PATHS.labels, help="ground-truth CSV to write")
    sim.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    sim.add_argument("--delay", type=float, default=0.0, help="seconds between requests")
    # Week 7: capacity, the replicas of the API from a Locust run against one replica.
    capacity_help = "plan the API's replicas from a Locust run; --write-hpa: into the HPA"
    cap = stages.add_parser("capacity", help=capacity_help, description=capacity_help)
    cap.add_argument(
        "--params", default=None, help="params.yaml to read (default: params.yaml, else built-in)"
    )
    cap.add_argument("--stats", required=True, help="Locust's PREFIX_stats.csv")
    cap.add_argument("--history", default=None, help="Locust's PREFIX_stats_history.csv (users)")
    cap.add_argument("--write-hpa", default=None, help="HPA manifest to write the replicas into")
    # End of week 7: capacity.
    # week 7: rollout -- a canary behind a router, promoted or rolled back by its metrics.
    roll = stage("rollout", "canary rollout through a router; promote, or roll back (exit 1)")
    roll.add_argument("--stable-url", default="http://127.0.0.1:8000", help="the champion's API")
    roll.add_argument("--canary-url", default="http://127.0.0.1:8001", help="the challenger's API")
    roll.add_argument(
        "--start",
        action="store_true",
        help="start both APIs itself (mlpipe serve; ignores the URLs)",
    )
    roll.add_argument("--host", default="127.0.0.1", help="the router's address")
    roll.add_argument("--port", type=int, default=8080, help="the router's port")
    roll.add_argument("--steps", default=None, help="canary weights in %%, e.g. 10,50,100")
    roll.add_argument("--requests", type=int, default=None, help="requests sent at each step")
    roll.add_argument("--concurrency", type=int, default=None, help="requests kept in flight")
    # end of week 7: rollout
    # week 7: scale (Ray batch scoring and Ray Tune search on a cluster)
    scale_help = "scale out on a Ray cluster: generate a large CSV, score it, tune"
    scaling = stages.add_parser("scale", help=scale_help, description=scale_help)
    actions = scaling.add_subparsers(dest="action", required=True, metavar="ACTION")

    def scale_action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--params", default=None, help="params.yaml to read (default: built-in)")
        if name != "generate":
            sub.add_argument(
                "--address", default=None, help="the cluster's HOST:PORT (default: scale.address)"
            )
        return sub

    generate = scale_action("generate", "write a large Iris-like CSV to score (seeded)")
    generate.add_argument("--out", default=PATHS.big, help="CSV to write")
    generate.add_argument("--rows", type=int, default=None, help="rows (default: scale.rows)")
    generate.add_argument("--seed", type=int, default=None, help="seed (default: scale.seed)")
    split = scale_action("score", "score a CSV on the cluster: the bytes `mlpipe score` writes")
    split.add_argument("--input", default=PATHS.big, help="CSV to score")
    split.add_argument("--out", default=PATHS.predictions, help="CSV with a prediction column")
    search = scale_action("tune", "week 3's search as Ray Tune trials; register the best")
    search.add_argument("--data", default=PATHS.processed, help="processed CSV")
    # end of week 7: scale
    # --- week 7: infra (CloudFormation on a moto server) ---
    infra_help = "deploy or delete the artefact store's CloudFormation stack, or lint its template"
    infra = stages.add_parser("infra", help=infra_help, description=infra_help)
    infra.add_argument("action", choices=("deploy", "delete", "lint"), help="what to do")
    infra.add_argument(
        "--endpoint", default=None, help="the service, e.g. a moto server: http://127.0.0.1:5000"
    )
    infra.add_argument("--stack", default=None, help="the stack's name (default: infra.stack)")
    infra.add_argument(
        "--template", default=None, help="the template (default: infra/artifacts.yaml)"
    )
    infra.add_argument("--out", default=None, help="write the stack's outputs as JSON here")
    infra.add_argument(
        "--params", default=None, help="params.yaml to read (default: params.yaml, else built-in)"
    )
    # --- end of week 7: infra ---
    return parser


def _run_fetch(args: argparse.Namespace) -> int:
    out = args.out or f"data/raw/{args.dataset}.csv"
    if args.dataset == "churn":
        return _fetch_churn(args, out)
    if args.month or args.seed:
        raise ParamsError("--month and --seed apply to --dataset churn only.")
    from mlpipe import data

    print(f"raw data written to {data.write_raw(out, args.per_class)}")
    return 0


def _fetch_churn(args: argparse.Namespace, out: str) -> int:
    from mlpipe import churn

    if args.per_class is not None:
        raise ParamsError("--per-class applies to --dataset iris only.")
    if args.month < 0:
        raise ParamsError(f"--month must be 0 (the training data) or more, got {args.month}.")
    what = "training data" if args.month == 0 else f"month {args.month}"
    print(
        f"churn {what} (seed {args.seed}) written to {churn.write(out, args.month, None, args.seed)}"
    )
    return 0


def _run_prepare(args: argparse.Namespace) -> int:
    from mlpipe import data

    params = load_params(args.params, "prepare", PrepareParams)
    info = data.prepare(args.raw, args.out, params, load_dataset(args.params))
    print(f"prepared {info['rows']} rows into {args.out} ({info['fingerprint']})")
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from mlpipe import validate

    params = load_params(args.params, "validate", ValidateParams)
    reference = validate.read_schema(args.reference) if args.reference else None
    dataset = load_dataset(args.params)
    result = validate.validate_file(args.data, params, reference, dataset=dataset)
    for check in result.checks:
        print(f"  {'ok  ' if check.passed else 'FAIL'} {check.name}: {check.message}")
    if args.report:
        write_json(args.report, result.to_dict())
    validate.require_valid(result)
    print(f"{args.data} passed all {len(result.checks)} checks")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from mlpipe import train

    params = load_train_params(args.params)
    dataset = load_dataset(args.params)
    out = args.out or models_dir() / params.model_name
    df = None
    if args.data:
        from mlpipe import data

        ranges = load_params(args.params, "validate", ValidateParams)
        df = data.check_training_data(
            data.read_processed(args.data), ranges, params.test_size, args.data, dataset
        )
    elif dataset.feature_names != train.FEATURES or dataset.target != train.TARGET:
        raise ParamsError(
            f"train needs --data for the dataset '{dataset.name}' (Iris is built in)."
        )
    result = train.train(params, out, data=df, dataset=dataset)
    meta = result.metadata
    if args.data:
        meta = data.attach_lineage(result.model_dir, data.lineage(args.data))
    print(f"trained {params.model_name}")
    print(f"  accuracy:   {result.metrics['accuracy']:.4f}")
    print(f"  f1_macro:   {result.metrics['f1_macro']:.4f}")
    print(f"  data:       {meta.get('data_fingerprint')}")
    print(f"  model:      {meta.get('model_fingerprint')}")
    print(f"  git commit: {meta.get('git_commit') or 'none (not a git checkout)'}")
    print(f"  versions:   {json.dumps(meta.get('versions', {}))}")
    print(f"model saved to {result.model_dir / train.MODEL_FILE}")
    print(f"metadata in    {result.model_dir / train.METADATA_FILE}")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from mlpipe import data, evaluate

    dataset = load_dataset(args.params)
    metrics = evaluate.evaluate_saved(args.model, data.read_described(args.data, dataset), dataset)
    evaluate.write_metrics(metrics, args.metrics)
    print(f"accuracy {metrics['accuracy']:.4f} on {metrics['test_rows']} held-out rows")
    return 0


def _run_schema(args: argparse.Namespace) -> int:
    from mlpipe import data, validate

    dataset = load_dataset(args.params)
    df = data.read_described(args.data, dataset)
    print(f"schema written to {validate.write_schema(df, args.out, dataset)}")
    return 0


def _run_tune(args: argparse.Namespace) -> int:
    from mlpipe import data, track

    base = load_train_params(args.params)
    params = load_params(args.params, "track", TrackParams)
    dataset = load_dataset(args.params)
    df = data.read_described(args.data, dataset)
    track.connect(params)
    result = track.tune(base, params, df, dataset)
    description = (
        f"Best of {params.n_trials} Optuna trials (seed {params.seed}): C={result.best_params['C']:.4g}, "
        f"cv accuracy {result.best_score:.4f}, test accuracy {result.test_metrics['accuracy']:.4f}."
    )
    version = track.register(base.model_name, result.model_uri, result.best_run_id, description)
    print(f"best of {params.n_trials} trials: C={result.best_params['C']:.4g}")
    print(f"  cv accuracy:   {result.best_score:.4f}")
    print(f"  test accuracy: {result.test_metrics['accuracy']:.4f}")
    print(f"registered {base.model_name} version {version.version} as '{track.CHALLENGER}'")
    print(f"tracking store: {track.tracking_uri(params)}")
    return 0


def _run_gate(args: argparse.Namespace) -> int:
    from mlpipe.config import load_gate_params

    base = load_train_params(args.params)
    params = load_gate_params(args.params)
    track_params = load_params(args.params, "track", TrackParams)
    from mlpipe import data, gates

    dataset = load_dataset(args.params)
    df = data.read_described(args.data, dataset)
    decision, found = gates.gate_registry(base.model_name, df, params, base, track_params, dataset)
    version = found.challenger.version
    champion = f"version {found.champion.version}" if found.champion else "none yet"
    print(f"{base.model_name}: challenger version {version}, champion {champion}")
    for check in decision.checks:
        print(f"  {'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    if args.report:
        write_json(
            args.report, {**decision.to_dict(), "model": base.model_name, "version": version}
        )
    if args.promote and gates.promote(base.model_name, decision, version):
        print(f"promoted: '{gates.CHAMPION}' now points at version {version}")
    elif decision.allowed:
        print(f"allowed: version {version} may replace the champion (run with --promote)")
    if not decision.allowed:
        print(f"blocked: version {version} stays a challenger ({len(decision.reasons)} reasons):")
        for reason in decision.reasons:
            print(f"  - {reason}")
        return 1
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    from mlpipe import serve

    serve.run(args.host, args.port)
    return 0


def _registered_model():
    from mlpipe import serve

    ref = serve.resolve_model(serve.load_settings())
    return ref, serve.load_model(ref)


def _run_score(args: argparse.Namespace) -> int:
    from mlpipe import export

    ranges = load_params(args.params, "validate", ValidateParams)
    df = export.read_csv(args.data)  # a bad file fails before the model is loaded
    ref, model = _registered_model()
    valid_range = (ranges.feature_min, ranges.feature_max)
    rows = export.score_csv(model, ref.columns, df, args.out, valid_range=valid_range)
    print(f"scored {rows} rows with {ref.name} version {ref.version} into {args.out}")
    return 0


def _run_export_onnx(args: argparse.Namespace) -> int:
    from mlpipe import export

    df = export.read_csv(args.data)  # a bad file fails before the model is loaded
    ref, model = _registered_model()
    X = export.feature_matrix(df, ref.columns)
    parity = export.export_onnx(model, X, args.out)
    print(f"{ref.name} version {ref.version} exported to {args.out}")
    print(f"  parity on {parity.rows} rows: max probability difference {parity.max_proba_diff:.2g}")
    return 0


def _in_project(value: str | None, default: str) -> str:
    """A path given on the command line as is; a default inside the project folder."""
    return value if value is not None else str(project_dir() / default)


def _project_params(args: argparse.Namespace) -> str | None:
    """``--params``, else the project's ``params.yaml`` when it exists, else None (defaults)."""
    if args.params is None and (project_dir() / "params.yaml").is_file():
        return str(project_dir() / "params.yaml")
    return args.params


def _run_monitor(args: argparse.Namespace) -> int:
    from mlpipe import monitor

    params = load_params(_project_params(args), "monitor", MonitorParams)
    result = monitor.monitor(
        log=_in_project(args.log, PATHS.inference_log),
        reference=_in_project(args.reference, PATHS.processed),
        schema=_in_project(args.schema, PATHS.schema),
        out=_in_project(args.out, PATHS.monitoring),
        params=params,
        labels=args.labels,
        since=args.since,
        last=args.last,
        dataset=load_dataset(_project_params(args)),
    )
    summary = result.summary
    torn = f", {summary.torn_lines} torn last line skipped" if summary.torn_lines else ""
    print(f"{summary.rows} predictions from {summary.window_start} to {summary.window_end}{torn}")
    for name, test in [*summary.features.items(), (monitor.PREDICTION, summary.prediction)]:
        state = "DRIFT" if test.drifted else "ok   "
        print(f"  {state} {name}: {test.test} p-value {test.score:.3g}")
    shares = ", ".join(f"{k} {v:.0%}" for k, v in summary.prediction_share.items())
    print(f"  predictions: {shares}")
    if summary.accuracy is not None:
        print(f"  accuracy {summary.accuracy:.4f} on {summary.labelled_rows} labelled rows")
    elif args.labels is not None:
        print(f"  no prediction of the window has a label in {args.labels}")
    print(
        f"drift share {summary.drift_share:.2f} (policy: drifted at {summary.max_drift_share:.2f}): "
        f"{'drift detected' if summary.drift_detected else 'no drift'}"
    )
    print(f"reports in {result.files[0].parent}")
    if args.check and monitor.policy_breached(summary):
        print(
            f"policy breached: {summary.drift_share:.0%} of the features drifted "
            f"(monitor.max_drift_share {summary.max_drift_share:g})",
            file=sys.stderr,
        )
        return 1
    return 0


def _run_simulate(args: argparse.Namespace) -> int:
    from mlpipe import simulate

    simulate.get_scenario(args.scenario)  # an unknown name fails before anything is read
    flowers = simulate.read_flowers(args.data)
    result = simulate.simulate(
        args.url, args.scenario, flowers, args.rows, args.batch, args.seed, args.delay
    )
    for phase in result.phases:
        print(
            f"{phase.name}: {phase.sent} rows sent, {phase.served} served, "
            f"{phase.refused} refused (4xx), {phase.errors} server errors (5xx)"
        )
    path = simulate.write_labels(args.labels, result.labels)
    print(f"ground truth of {len(result.labels)} served rows written to {path}")
    return 0


# Week 7: capacity.
def _run_capacity(args: argparse.Namespace) -> int:
    from mlpipe import capacity
    from mlpipe.config import CapacityParams

    params = load_params(_project_params(args), "capacity", CapacityParams)
    _, _, lines = capacity.run(args.stats, params, args.history, args.write_hpa)
    print("\n".join(lines))
    if args.write_hpa:
        print(f"minReplicas and maxReplicas written to {args.write_hpa}")
    return 0


# End of week 7: capacity.
# week 7: rollout
def _run_rollout(args: argparse.Namespace) -> int:
    import contextlib
    import dataclasses

    from mlpipe.config import RolloutParams

    params = load_params(args.params, "rollout", RolloutParams)
    overrides: dict[str, object] = {}
    if args.steps is not None:
        try:
            overrides["steps"] = [int(step) for step in args.steps.split(",")]
        except ValueError:
            raise ParamsError(
                f"--steps must be whole percentages separated by commas, such as 10,50,100, "
                f"not '{args.steps}'."
            ) from None
    if args.requests is not None:
        overrides["step_requests"] = args.requests
    if args.concurrency is not None:
        overrides["concurrency"] = args.concurrency
    policy = dataclasses.replace(params, **overrides)
    from mlpipe import gates, rollout, track

    track.connect(load_params(args.params, "track", TrackParams))  # the registry, before traffic
    with contextlib.ExitStack() as stack:
        urls = {"stable": args.stable_url, "canary": args.canary_url}
        if args.start:
            folder = project_dir() / "logs" / "rollout"
            urls = stack.enter_context(rollout.started_backends(folder, args.host))
        print(
            f"router on http://{args.host}:{args.port}: stable {urls['stable']}, "
            f"canary {urls['canary']}, steps {', '.join(f'{s} %' for s in policy.steps)}"
        )
        outcome = rollout.rollout(urls["stable"], urls["canary"], policy, args.host, args.port)
    if outcome.promoted:
        print(
            f"promoted: '{gates.CHAMPION}' now points at {outcome.model} version "
            f"{outcome.version} (restart the stable API to serve it)"
        )
        return 0
    at = f" at the {outcome.step} % step" if outcome.step is not None else ""
    count = f"{len(outcome.reasons)} reason{'s' if len(outcome.reasons) > 1 else ''}"
    print(
        f"rolled back{at}: the canary gets no traffic, '{gates.CHAMPION}' is untouched ({count}):"
    )
    for reason in outcome.reasons:
        print(f"  - {reason}")
    return 1


# end of week 7: rollout
# week 7: scale
def _scale_params(args: argparse.Namespace):
    from mlpipe.config import ScaleParams

    return load_params(args.params, "scale", ScaleParams)


def _run_scale(args: argparse.Namespace) -> int:
    if args.action == "score":
        return _scale_score(args)
    if args.action == "tune":
        return _scale_tune(args)
    from mlpipe import scale

    params = _scale_params(args)
    rows = params.rows if args.rows is None else args.rows
    if rows < 1:
        raise ParamsError(f"--rows must be at least 1, got {rows}.")
    seed = params.seed if args.seed is None else args.seed
    path = scale.generate(args.out, rows, seed, params.noise)
    print(f"{rows} Iris-like rows (seed {seed}) written to {path}")
    return 0


def _scale_score(args: argparse.Namespace) -> int:
    from mlpipe import export, scale

    params = _scale_params(args)
    ranges = load_params(args.params, "validate", ValidateParams)
    address = scale.resolve_address(args.address, params)
    export.read_csv(args.input, nrows=1)  # a missing or empty file fails before anything else
    scale.check_reachable(address, params.connect_timeout)
    ref, model = _registered_model()
    resources = scale.connect(address, params.connect_timeout)
    try:
        valid_range = (ranges.feature_min, ranges.feature_max)
        workers, parts = params.workers, params.parts_per_worker
        with scale.Scorer(model, ref.columns, valid_range, workers, parts) as scorer:
            result = scorer.score(args.input, args.out)
    finally:
        scale.disconnect()
    print(f"scored {result.rows} rows with {ref.name} version {ref.version} into {args.out}")
    print(
        f"  on {address} ({resources.get('CPU', 0):g} CPUs): {result.parts} parts, "
        f"{len(result.workers)} workers, {result.seconds:.2f} s"
    )
    for worker, count in sorted(result.workers.items()):
        print(f"  {worker}: {count} parts, model loaded {result.loads[worker]} time(s)")
    return 0


def _scale_tune(args: argparse.Namespace) -> int:
    from mlpipe import scale

    params = _scale_params(args)
    address = scale.resolve_address(args.address, params)
    scale.check_reachable(address, params.connect_timeout)  # before MLflow's 3 s import
    from mlpipe import data, track

    base = load_train_params(args.params)
    track_params = load_params(args.params, "track", TrackParams)
    df = data.read_processed(args.data)
    track.connect(track_params)
    scale.connect(address, params.connect_timeout)
    try:
        result, trials = scale.tune(base, track_params, params, df)
    finally:
        scale.disconnect()
    description = (
        f"Best of {track_params.n_trials} Ray Tune trials (Optuna TPE, seed {track_params.seed}): "
        f"C={result.best_params['C']:.4g}, cv accuracy {result.best_score:.4f}, "
        f"test accuracy {result.test_metrics['accuracy']:.4f}."
    )
    version = track.register(base.model_name, result.model_uri, result.best_run_id, description)
    for trial in trials:
        print(
            f"  trial-{trial.number}: C={trial.C:.4g} cv accuracy {trial.score:.4f} ({trial.worker})"
        )
    print(f"best of {len(trials)} Ray Tune trials: C={result.best_params['C']:.4g}")
    print(f"  cv accuracy:   {result.best_score:.4f}")
    print(f"  test accuracy: {result.test_metrics['accuracy']:.4f}")
    print(f"registered {base.model_name} version {version.version} as '{track.CHALLENGER}'")
    print(f"tracking store: {track.tracking_uri(track_params)}")
    return 0


# end of week 7: scale
# --- week 7: infra ---
def _run_infra(args: argparse.Namespace) -> int:
    import dataclasses

    from mlpipe import cloud
    from mlpipe.config import InfraParams

    params = load_params(_project_params(args), "infra", InfraParams)
    if args.stack:
        params = dataclasses.replace(params, stack=args.stack)
    if args.action == "lint":
        findings = cloud.lint_template(args.template)
        for finding in findings:
            print(f"  {finding}")
        where = cloud.template_path(args.template)
        print(
            f"cfn-lint: {len(findings)} findings in {where}"
            if findings
            else f"cfn-lint: {where} is clean"
        )
        return 1 if findings else 0
    if not args.endpoint:
        raise cloud.CloudError(f"infra {args.action} needs --endpoint, e.g. http://127.0.0.1:5000.")
    if args.action == "deploy":
        result = cloud.deploy(args.endpoint, params, args.template)
    else:
        result = cloud.delete(args.endpoint, params)
    print(
        f"stack {result.stack} {result.action}: {result.status} in {result.seconds:.1f} s "
        f"({args.endpoint})"
    )
    for key, value in sorted(result.outputs.items()):
        print(f"  {key}: {value}")
    if args.action == "delete":
        print("  (resources with DeletionPolicy Retain, such as the artefact bucket, are kept)")
    if args.out:
        write_json(
            args.out,
            {
                "stack": result.stack,
                "action": result.action,
                "status": result.status,
                "outputs": result.outputs,
            },
        )
    return 0


# --- end of week 7: infra ---


STAGES = {
    "fetch": _run_fetch,
    "prepare": _run_prepare,
    "validate": _run_validate,
    "train": _run_train,
    "evaluate": _run_evaluate,
    "schema": _run_schema,
    "tune": _run_tune,
    "gate": _run_gate,
    "serve": _run_serve,
    "score": _run_score,
    "export-onnx": _run_export_onnx,
    "monitor": _run_monitor,
    "simulate": _run_simulate,
    "capacity": _run_capacity,  # week 7: capacity
    "rollout": _run_rollout,  # week 7: rollout
    "scale": _run_scale,  # week 7: scale
    "infra": _run_infra,  # week 7: infra
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one stage and return the process exit code."""
    args = _build_parser().parse_args(argv)
    try:
        if getattr(args, "params", None):  # a bad dataset description stops before any stage
            load_dataset(args.params)
        return STAGES[args.stage](args)
    except NotImplementedError as err:
        where = err.args[0] if err.args else "a function of the stage"
        print(f"error: {where} is not implemented yet; finish it in labs/mlpipe.", file=sys.stderr)
        return 1
    except PipelineError as err:  # every error that is the user's to fix, one sentence
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
