"""Code tests of the serving app's ONNX fast path (``mlpipe.serve.onnx_predictor``)."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from mlpipe import serve


@pytest.fixture(scope="module")
def iris():
    frame = load_iris(as_frame=True)
    X = frame.data.set_axis(["sepal_length", "sepal_width", "petal_length", "petal_width"], axis=1)
    y = frame.target.map(dict(enumerate(frame.target_names)))
    return X, y


def saved(tmp_path, model, X, example: bool) -> serve.ModelRef:
    """Save ``model`` as an MLflow model folder and point a ModelRef at it."""
    path = tmp_path / "model"
    mlflow.sklearn.save_model(
        model,
        path,
        signature=infer_signature(X.head(3), model.predict(X.head(3))),
        input_example=X.iloc[[0, 60, 120]] if example else None,
    )
    features = tuple((c, "double") for c in X.columns)
    return serve.ModelRef("m", "champion", "1", None, str(path), "file:///unused", features)


def test_a_model_with_an_input_example_is_served_by_onnxruntime(tmp_path, iris):
    X, y = iris
    model = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)
    predictor, runtime = serve.onnx_predictor(model, saved(tmp_path, model, X, example=True))
    assert predictor is not None, runtime
    assert runtime.startswith("onnxruntime")
    labels = predictor.predict(X.to_numpy())
    assert labels.astype(str).tolist() == model.predict(X).tolist()


def test_a_value_too_large_for_float32_goes_back_to_scikit_learn(tmp_path, iris):
    X, y = iris
    model = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)
    predictor, _ = serve.onnx_predictor(model, saved(tmp_path, model, X, example=True))
    assert predictor.predict(np.array([[1e300, 3.0, 1.4, 0.2]])) is None


def test_without_an_input_example_scikit_learn_serves(tmp_path, iris):
    X, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    predictor, runtime = serve.onnx_predictor(model, saved(tmp_path, model, X, example=False))
    assert predictor is None
    assert runtime == "scikit-learn (the model has no logged input example to check ONNX on)"


def test_a_model_onnx_cannot_convert_is_served_by_scikit_learn(tmp_path, iris):
    X, y = iris
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(X, y)
    predictor, runtime = serve.onnx_predictor(model, saved(tmp_path, model, X, example=True))
    assert predictor is None
    assert runtime.startswith("scikit-learn (no ONNX:")
