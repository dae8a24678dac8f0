"""The model registry, in one place: where it is, what the model is called, its aliases.

Every stage that talks to the MLflow registry (tracking and tuning, the gates,
serving, the ONNX export, the canary rollout) asks this module, so that the
rules below are written once:

* the **tracking URI**: ``$MLFLOW_TRACKING_URI`` if set, else the URI the
  params give (``track.tracking_uri``), else the SQLite file ``mlflow.db`` in
  the project folder;
* the **model name**: ``<dataset>-classifier`` unless ``train.model_name``
  says otherwise (``iris-classifier`` for the default data set);
* the **aliases**: a freshly tuned model is the ``challenger``; the gates move
  ``champion``, which serving uses;
* a **version, model or artefact by alias**, with one sentence when the
  registry has no such model or alias.

MLflow is imported only when a function needs it, so importing this module is cheap.
"""

from __future__ import annotations

import os
from typing import Any

from mlpipe.errors import TrackingError

#: The alias a freshly tuned model gets (week 3).
CHALLENGER = "challenger"
#: The alias the gates move to a promoted model and serving loads (weeks 4 and 5).
CHAMPION = "champion"
#: The SQLite file (inside the project folder) used when no URI is configured.
DEFAULT_DB = "mlflow.db"
#: The environment variable that overrides every configured tracking URI.
URI_ENV = "MLFLOW_TRACKING_URI"


def model_name(dataset: str = "iris") -> str:
    """The registered model's default name for a data set (``iris-classifier``)."""
    return f"{dataset}-classifier"


#: The model name of the default (Iris) data set.
DEFAULT_MODEL_NAME = model_name()


def tracking_uri(configured: str | None = None) -> str:
    """Decide where runs and models are kept.

    Args:
        configured: The URI the params give (``track.tracking_uri``); empty or
            ``None`` means none.

    Returns:
        ``$MLFLOW_TRACKING_URI`` if set, else ``configured`` if not empty, else
        ``sqlite:///<project>/mlflow.db``.
    """
    from mlpipe.config import project_dir

    uri = os.environ.get(URI_ENV) or configured
    return uri or f"sqlite:///{project_dir() / DEFAULT_DB}"


def client(uri: str | None = None) -> Any:
    """An ``MlflowClient`` of the registry at ``uri`` (``None``: MLflow's current one)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def model_uri(name: str, alias: str) -> str:
    """The ``models:/`` URI of the version ``alias`` points to."""
    return f"models:/{name}@{alias}"


def missing(name: str, alias: str, uri: str | None = None) -> str:
    """The sentence for a registry without ``name``@``alias``."""
    if uri is None:
        import mlflow

        uri = mlflow.get_registry_uri()
    return f"The registry at {uri} has no model '{name}' with the alias '{alias}'."


def version(name: str, alias: str, uri: str | None = None) -> Any | None:
    """The ``ModelVersion`` that ``alias`` points to, or ``None`` when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        return client(uri).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def require_version(name: str, alias: str, uri: str | None = None) -> Any:
    """The ``ModelVersion`` that ``alias`` points to.

    Raises:
        TrackingError: When there is none (:func:`missing`'s sentence).
    """
    found = version(name, alias, uri)
    if found is None:
        raise TrackingError(missing(name, alias, uri))
    return found


def set_alias(name: str, alias: str, number: str | int, uri: str | None = None) -> None:
    """Point ``alias`` of the model ``name`` at version ``number``."""
    client(uri).set_registered_model_alias(name, alias, str(number))


def load(name: str, alias: str = CHALLENGER) -> Any:
    """Load the scikit-learn model that ``alias`` points to, from MLflow's current registry.

    Raises:
        TrackingError: When the registry has no such model or alias (:func:`missing`).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.sklearn.load_model(model_uri(name, alias))
    except MlflowException:
        raise TrackingError(missing(name, alias)) from None


def download_uri(name: str, number: str | int, uri: str | None = None) -> str:
    """Where the artefacts of version ``number`` of ``name`` are."""
    return client(uri).get_model_version_download_uri(name, str(number))


def download(artifact_uri: str, uri: str, dst: str) -> str:
    """Download artefacts (a file or a folder) of a model into ``dst``; return the local path."""
    import mlflow

    return mlflow.artifacts.download_artifacts(
        artifact_uri=artifact_uri, tracking_uri=uri, dst_path=dst
    )
