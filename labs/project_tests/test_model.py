"""Model tests of the pipeline: what ``split_data`` and ``train`` must always do.

Like ``test_data.py``, this suite is yours and is graded by mutation: it must
pass on a correct ``mlpipe`` and fail on realistic planted bugs (a split that
forgets to stratify or ignores its seed, labels that no longer match their
rows, ...). Test through the pipeline's own functions (``train.load_data``,
``train.split_data``, ``train.train``), as the pipeline runs them.

The fixture below is given; write the body of each test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlpipe import train
from mlpipe.config import TrainParams

#: A textbook setosa (sepal 5.0 x 3.4 cm, petal 1.5 x 0.2 cm).
SETOSA = pd.DataFrame([[5.0, 3.4, 1.5, 0.2]], columns=train.FEATURES)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> train.TrainResult:
    """The model ``train.train`` makes with the default params on ``train.load_data()``."""
    return train.train(TrainParams(), tmp_path_factory.mktemp("model"))


def test_split_is_stratified():
    """For a few seeds (e.g. 0, 1 and 42), ``split_data(load_data(), 0.2, seed)``
    puts exactly 10 rows of each species in the 30 test rows."""
    # YOUR CODE HERE
    raise NotImplementedError("project_tests.test_model.test_split_is_stratified")


def test_split_is_deterministic_for_a_seed():
    """The same seed gives the same test rows (same index) every time; another
    seed gives other rows."""
    # YOUR CODE HERE
    raise NotImplementedError("project_tests.test_model.test_split_is_deterministic_for_a_seed")


def test_model_reaches_an_accuracy_floor(trained):
    """The model ``train.train`` reports is at least 90% accurate on its held-out rows."""
    # YOUR CODE HERE
    raise NotImplementedError("project_tests.test_model.test_model_reaches_an_accuracy_floor")


def test_model_recognises_a_textbook_setosa(trained):
    """The saved model (``train.load_model``) predicts ``setosa`` for ``SETOSA``."""
    # YOUR CODE HERE
    raise NotImplementedError("project_tests.test_model.test_model_recognises_a_textbook_setosa")


def test_predictions_are_invariant_to_tiny_noise(trained):
    """Adding ±0.01 cm of noise to every measurement of the data changes at most
    5% of the saved model's predictions."""
    # YOUR CODE HERE
    raise NotImplementedError("project_tests.test_model.test_predictions_are_invariant_to_tiny_noise")


def test_training_is_deterministic(trained, tmp_path):
    """Training again with the same params gives the same model
    (``metadata["model_fingerprint"]``) on the same data (``data_fingerprint``)."""
    # YOUR CODE HERE
    raise NotImplementedError("project_tests.test_model.test_training_is_deterministic")
