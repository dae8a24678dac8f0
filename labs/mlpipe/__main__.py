"""Command line of the pipeline: ``python -m mlpipe STAGE [options]``.

Errors a user can fix (a bad params file, a stage not written yet) are printed
as one sentence with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from mlpipe.config import ParamsError, load_train_params, models_dir


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlpipe", description=__doc__)
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    train = stages.add_parser("train", help="train the Iris model and save it with metadata")
    train.add_argument("--params", default=None, help="params.yaml to read (default: built-in)")
    train.add_argument(
        "--out", default=None, help="folder for model.joblib and metadata.json (default: models/)"
    )
    return parser


def _run_train(args: argparse.Namespace) -> int:
    from mlpipe import train

    params = load_train_params(args.params)
    out = args.out or models_dir() / params.model_name
    result = train.train(params, out)
    meta = result.metadata
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run one stage and return the process exit code."""
    args = _build_parser().parse_args(argv)
    try:
        return _run_train(args)
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NotImplementedError as err:
        where = err.args[0] if err.args else "a function of the stage"
        print(f"error: {where} is not implemented yet; finish it in labs/mlpipe.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
