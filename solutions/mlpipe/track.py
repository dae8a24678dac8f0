"""Week 3: experiment tracking, tuning and the model registry with MLflow.

* :func:`connect` points MLflow at the tracking store: an SQLite file inside
  the project by default (no server needed), or a server over HTTP.
* :func:`log_training_run` records one trained model in the active run:
  params, metrics, a confusion-matrix figure, the data fingerprint and git
  commit as tags, and the model with its signature and an input example.
* :func:`tune` runs an Optuna search; every trial is a nested run under one
  parent run, and the best trial's run also logs the model.
* :func:`register` puts that model in the registry with a description and the
  alias ``challenger``; :func:`load_by_alias` loads a model back by alias.

A run that fails is marked FAILED by MLflow and nothing from it is registered.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import RunStatus
from mlflow.models import infer_signature

from mlpipe import registry, train
from mlpipe.config import Dataset, TrackParams, TrainParams, project_dir
from mlpipe.errors import TrackingError
from mlpipe.registry import CHALLENGER

#: Folder (inside the project folder) for artifacts of the SQLite store.
ARTIFACTS_DIR = "mlartifacts"
#: Name of the model inside a run.
MODEL_NAME = "model"
#: File name of the confusion-matrix figure among the run's artifacts.
FIGURE_FILE = "confusion_matrix.png"


@dataclass(frozen=True)
class TuneResult:
    """What a search found.

    Attributes:
        parent_run_id: The run holding every trial as a nested run.
        best_run_id: The nested run of the best trial (it holds the model).
        best_params: The training parameters of the best trial.
        best_score: Its mean cross-validated accuracy.
        model_uri: URI of the best trial's logged model.
        test_metrics: The best model's metrics on the held-out rows.
    """

    parent_run_id: str
    best_run_id: str
    best_params: dict[str, Any]
    best_score: float
    model_uri: str
    test_metrics: dict[str, Any]


def tracking_uri(params: TrackParams) -> str:
    """Decide where runs go.

    Returns:
        ``$MLFLOW_TRACKING_URI`` if set, else ``params.tracking_uri`` if not
        empty, else ``sqlite:///<project>/mlflow.db``.
    """
    ### BEGIN SOLUTION
    return registry.tracking_uri(params.tracking_uri)
    ### END SOLUTION


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, in one sentence, when a tracking server does not answer.

    Any other ``uri`` (an SQLite store, a folder) is not checked.

    Raises:
        TrackingError: When ``uri`` is an HTTP(S) server whose ``/health``
            does not answer 200 within ``timeout`` seconds. The message is
            ``Cannot reach the MLflow tracking server at <uri> (<reason>).``,
            e.g. ``Cannot reach the MLflow tracking server at http://127.0.0.1:9
            ([Errno 111] Connection refused).``; the command line prints it and
            exits with code 2.
    """
    ### BEGIN SOLUTION
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            if response.status == 200:
                return
            reason = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = str(getattr(err, "reason", err))
    raise TrackingError(f"Cannot reach the MLflow tracking server at {uri} ({reason}).")
    ### END SOLUTION


def connect(params: TrackParams) -> str:
    """Point MLflow at the tracking store and select the experiment.

    For the default SQLite store, artifacts go to ``<project>/mlartifacts``.
    ``mlflow.set_tracking_uri`` and ``mlflow.set_registry_uri`` export the URI as
    ``MLFLOW_TRACKING_URI`` and ``MLFLOW_REGISTRY_URI``; both variables are put back
    as they were, so that a later ``connect`` with other params or another project
    folder (or a process started later) is not overruled by an earlier one.

    Returns:
        The experiment's id.

    Raises:
        TrackingError: When the tracking server cannot be reached.
    """
    uri = tracking_uri(params)
    if uri.startswith(("http://", "https://")):
        check_reachable(uri)
    exported = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for key, value in exported.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    experiment = mlflow.get_experiment_by_name(params.experiment)
    if experiment is None:
        location = None
        if uri.startswith("sqlite:"):
            location = (project_dir() / ARTIFACTS_DIR).as_uri()
        experiment_id = mlflow.create_experiment(params.experiment, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def pip_requirements() -> list[str]:
    """The model's requirements, given explicitly (inferring them takes seconds)."""
    from importlib.metadata import version

    packages = ("mlflow", "scikit-learn", "skops", "pandas", "numpy")
    return [f"{name}=={version(name)}" for name in packages]


def confusion_figure(metrics: dict[str, Any]):
    """Draw the confusion matrix of :func:`mlpipe.train.evaluate` as a figure."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels, matrix = metrics["labels"], np.array(metrics["confusion_matrix"])
    fig = Figure(figsize=(4, 4))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center")
    fig.tight_layout()
    return fig


def log_training_run(
    model: Any,
    params: TrainParams,
    metrics: dict[str, Any],
    X_example: pd.DataFrame,
    tags: dict[str, str | None],
) -> str:
    """Record a trained model in the active MLflow run.

    Args:
        model: The fitted pipeline.
        params: Its training parameters, logged as params.
        metrics: From :func:`mlpipe.train.evaluate`; ``accuracy`` and
            ``f1_macro`` are logged as metrics (and no other metric), the
            confusion matrix as the figure ``confusion_matrix.png``.
        X_example: A few input rows: the signature is inferred from them and
            they are stored as the input example. The model (named ``model``
            in the run) is logged with :func:`pip_requirements` as its
            requirements, never inferred.
        tags: At least ``data_fingerprint`` and ``git_commit``; ``None``
            values are logged as ``"none"``.

    Returns:
        The logged model's URI (``models:/...``).

    Raises:
        TrackingError: When no run is active.
    """
    ### BEGIN SOLUTION
    if mlflow.active_run() is None:
        raise TrackingError(
            "log_training_run needs an active run: call it inside mlflow.start_run()."
        )
    mlflow.log_params(asdict(params))
    mlflow.log_metrics({"accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"]})
    mlflow.set_tags({key: "none" if value is None else str(value) for key, value in tags.items()})
    mlflow.log_figure(confusion_figure(metrics), FIGURE_FILE)
    signature = infer_signature(X_example, model.predict(X_example))
    info = mlflow.sklearn.log_model(
        model,
        name=MODEL_NAME,
        signature=signature,
        input_example=X_example,
        pip_requirements=pip_requirements(),
    )
    return info.model_uri
    ### END SOLUTION


def train_and_log(params: TrainParams, df: pd.DataFrame, run_name: str = "train") -> str:
    """Train on ``df`` (as week 1 does) and log the result as a new run.

    Returns:
        The run's id.
    """
    X_train, X_test, y_train, y_test = train.split_data(df, params.test_size, params.seed)
    model = train.build_pipeline(params).fit(X_train, y_train)
    metrics = train.evaluate(model, X_test, y_test)
    with mlflow.start_run(run_name=run_name) as run:
        log_training_run(model, params, metrics, X_test.head(3), _data_tags(df))
    return run.info.run_id


def _data_tags(df: pd.DataFrame) -> dict[str, str | None]:
    return {"data_fingerprint": train.fingerprint(df), "git_commit": train.git_commit()}


def cv_score(
    params: TrainParams, X: pd.DataFrame, y: pd.Series, folds: int, dataset: Dataset | None = None
) -> float:
    """Mean accuracy of the week-1 pipeline over stratified folds (seeded)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=params.seed)
    scores = cross_val_score(train.build_pipeline(params, dataset), X, y, cv=splitter)
    return float(scores.mean())


def tune(
    base: TrainParams, track: TrackParams, df: pd.DataFrame, dataset: Dataset | None = None
) -> TuneResult:
    """Search ``C`` with Optuna; each trial is a nested run of one parent run.

    Args:
        base: Training parameters; each trial changes only ``C``.
        track: ``n_trials``, ``seed`` (of the sampler), the ``C`` bounds and
            ``cv_folds``.
        df: The training data.
        dataset: Its description (week 8: columns, preprocessing, metrics); ``None`` is Iris.

    Returns:
        The :class:`TuneResult`. Each trial run has the params of
        :class:`~mlpipe.config.TrainParams` and the metric ``cv_accuracy``;
        the best trial's run is then reopened to log the model refitted on
        the training rows (see :func:`log_training_run`): the search logs that
        one model only, and makes no run besides the parent and its trials.
        The same seed gives the same trials.
    """
    ### BEGIN SOLUTION
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X_train, X_test, y_train, y_test = train.split_data(df, base.test_size, base.seed, dataset)
    run_ids: dict[int, str] = {}

    def objective(trial: optuna.Trial) -> float:
        params = _with_c(base, trial.suggest_float("C", track.C_min, track.C_max, log=True))
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True) as run:
            run_ids[trial.number] = run.info.run_id
            score = cv_score(params, X_train, y_train, track.cv_folds, dataset)
            mlflow.log_params(asdict(params))
            mlflow.log_metric("cv_accuracy", score)
        return score

    with mlflow.start_run(run_name="tune") as parent:
        search = {k: v for k, v in asdict(track).items() if k != "tracking_uri"}
        mlflow.log_params({f"search.{k}": v for k, v in search.items()})
        sampler = optuna.samplers.TPESampler(seed=track.seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=track.n_trials)
        best = _with_c(base, study.best_params["C"])
        mlflow.log_metric("best_cv_accuracy", study.best_value)
        model = train.build_pipeline(best, dataset).fit(X_train, y_train)
        metrics = train.evaluate(model, X_test, y_test, dataset)
        best_run_id = run_ids[study.best_trial.number]
        with mlflow.start_run(run_id=best_run_id, nested=True):
            uri = log_training_run(model, best, metrics, X_test.head(3), _data_tags(df))
    return TuneResult(
        parent_run_id=parent.info.run_id,
        best_run_id=best_run_id,
        best_params=asdict(best),
        best_score=float(study.best_value),
        model_uri=uri,
        test_metrics=metrics,
    )
    ### END SOLUTION


def _with_c(base: TrainParams, c: float) -> TrainParams:
    return TrainParams(**{**asdict(base), "C": float(c)})


def register(name: str, model_uri: str, run_id: str, description: str) -> Any:
    """Register a model from a finished run and give it the alias ``challenger``.

    Args:
        name: The registered model's name.
        model_uri: The logged model's URI.
        run_id: The run that logged it; it must have finished successfully.
        description: Stored on the new version.

    Returns:
        The new ``ModelVersion``.

    Raises:
        TrackingError: When the run did not finish successfully (nothing is
            registered then); the message names the run's status, e.g.
            ``Run <id> is FAILED, not FINISHED; nothing was registered.``
    """
    ### BEGIN SOLUTION
    client = mlflow.MlflowClient()
    status = client.get_run(run_id).info.status
    if status != RunStatus.to_string(RunStatus.FINISHED):
        raise TrackingError(f"Run {run_id} is {status}, not FINISHED; nothing was registered.")
    version = mlflow.register_model(model_uri, name)
    client.update_model_version(name, version.version, description=description)
    registry.set_alias(name, CHALLENGER, version.version)
    return client.get_model_version(name, version.version)
    ### END SOLUTION


def load_by_alias(name: str, alias: str = CHALLENGER) -> Any:
    """Load a registered model by its alias.

    Raises:
        TrackingError: When the registry has no such model or alias:
            ``The registry at <registry URI> has no model '<name>' with the
            alias '<alias>'.``
    """
    ### BEGIN SOLUTION
    return registry.load(name, alias)
    ### END SOLUTION
