#!/usr/bin/env bash
# The course pipeline end to end with the reference mlpipe, in build/demo:
# week 1 trains a model; week 2 runs the DVC pipeline (prepare -> validate ->
# train -> evaluate) in a fresh git repository with a local DVC remote; week 3
# tunes with Optuna, tracked in MLflow (SQLite), and registers the best model
# as `challenger`; week 4 gates and promotes it; week 5 scores, exports and
# serves it; week 6 sends drifting traffic and runs the drift monitor.
# Usage: scripts/demo.sh [PYTHON]
set -euo pipefail

PY=${1:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=$ROOT/build/demo
PY=$(command -v "$PY")
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
export PATH="$(dirname "$PY"):$PATH" PYTHONPATH="$ROOT/solutions" MLPIPE_HOME="$DEMO"
set -a; . "$ROOT/autograder/telemetry.env"; set +a
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com
export GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com
unset MLFLOW_TRACKING_URI

rm -rf "$DEMO" "$ROOT/build/demo-remote"
mkdir -p "$DEMO/data"
cd "$DEMO"

echo "== week 1: train =="
"$PY" -m mlpipe train --params "$ROOT/solutions/params.yaml"

echo "== week 2: DVC pipeline in a git repository, with a local remote =="
cp -r "$ROOT/solutions/mlpipe" "$ROOT/solutions/dvc.yaml" "$ROOT/solutions/params.yaml" .
cp "$ROOT/solutions/data/schema.json" data/
rm -rf models mlpipe/__pycache__
git init -q -b main
"$PY" -m dvc init -q
"$PY" -m dvc remote add -q -d local "$ROOT/build/demo-remote"
"$PY" -m mlpipe fetch
"$PY" -m dvc add -q data/raw/iris.csv
git add -A && git commit -qm "pipeline and raw data"
"$PY" -m dvc repro
"$PY" -m dvc push -q
"$PY" -m dvc metrics show
git add -A && git commit -qm "pipeline run"

echo "== week 3: Optuna search tracked in MLflow, best model registered =="
"$PY" -m mlpipe tune --params params.yaml --data data/processed/iris.csv 2>&1 | grep -v " INFO "

echo "== week 4: promotion gates; the challenger becomes champion =="
"$PY" -m mlpipe gate --params params.yaml --data data/processed/iris.csv \
    --promote --report reports/gates.json 2>&1 | grep -v " INFO "

echo "== week 5: batch scoring, ONNX export, the API under uvicorn =="
"$PY" -m mlpipe score --data data/processed/iris.csv --out reports/predictions.csv
"$PY" -m mlpipe export-onnx --data data/processed/iris.csv --out models/model.onnx
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PY" -m mlpipe serve --port "$PORT" >serve.log 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
"$PY" "$ROOT/scripts/call_api.py" "http://127.0.0.1:$PORT"

echo "== week 6: simulated traffic that drifts; the monitor judges the inference log =="
"$PY" -m mlpipe simulate --url "http://127.0.0.1:$PORT" --scenario drift --rows 100
kill "$SERVER"
wait "$SERVER" 2>/dev/null || true
echo "inference log: $DEMO/logs/inference.jsonl ($(wc -l <logs/inference.jsonl) lines)"
set +e
"$PY" -m mlpipe monitor --last 100 --check 2>&1 | grep -v " INFO "
verdict=${PIPESTATUS[0]}
set -e
case $verdict in
    0) echo "monitor: the drift policy holds (exit 0)" ;;
    1) echo "monitor: the drift policy is breached (exit 1): the monitoring DAG would retrain" ;;
    *) echo "monitor failed (exit $verdict)"; exit "$verdict" ;;
esac
echo "demo pipeline in $DEMO (open the runs: mlflow ui --backend-store-uri sqlite:///$DEMO/mlflow.db --host 127.0.0.1)"
