"""Fixtures shared by test files: small fitted estimators of the GP view's tests.

Fitted with a short training budget: the identities they check hold at any
weights (the tests that use them ignore the ConvergenceWarning)."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from ._helpers import FixedClassifier, FixedRegressor, gap_data


@pytest.fixture(scope="module")
def regressor():
    X, y = gap_data(24)
    est = FixedRegressor(hidden_layer_sizes=(4,), prior_precision=0.7, noise_std=0.3,
                          max_iter=40, random_state=0)
    return est.fit(X, y), X, y


@pytest.fixture(scope="module")
def multiclass():
    X, y = make_blobs(n_samples=24, centers=3, random_state=0)
    est = FixedClassifier(hidden_layer_sizes=(4,), prior_precision=0.5, max_iter=40,
                           random_state=0)
    return est.fit(X, y), X, y


@pytest.fixture(scope="module")
def two_targets():
    X, y = gap_data(20)
    Y = np.column_stack([y, np.cos(X[:, 0])])
    est = FixedRegressor(hidden_layer_sizes=(3,), noise_std=[0.2, 0.4], max_iter=40,
                          random_state=0)
    return est.fit(X, Y), X, Y
