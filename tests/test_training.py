"""The L-BFGS stopping rule: a gradient threshold per unit of sample weight."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_dnn2gp._training import lbfgs_gradient_tolerance

from ._helpers import FixedRegressor, gap_data, objective_gradient


def test_gradient_tolerance_grows_with_the_total_sample_weight():
    X = torch.zeros(300, 2)
    assert lbfgs_gradient_tolerance(X, None, 1e-5) == pytest.approx(3e-3)
    weights = torch.full((300,), 0.5, dtype=torch.float64)
    assert lbfgs_gradient_tolerance(X, weights, 1e-5) == pytest.approx(1.5e-3)
    # Tiny total weight: never looser than the absolute tol.
    assert lbfgs_gradient_tolerance(X[:1], weights[:1] * 0.01, 1e-5) == 1e-5


@pytest.mark.parametrize("weighted", [False, True])
def test_lbfgs_stops_at_the_scaled_gradient_and_warns_only_at_max_iter(weighted):
    X, y = gap_data(200)
    sample_weight = np.random.RandomState(0).uniform(0.5, 2.0, len(y)) if weighted else None
    est = FixedRegressor(hidden_layer_sizes=(10,), noise_std=0.1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X, y, sample_weight=sample_weight)
    assert est.n_iter_ < est.max_iter
    objective, w = objective_gradient(est, X, y, sample_weight)
    grad = torch.autograd.grad(objective(w), w)[0].abs().max()
    total = len(y) if sample_weight is None else sample_weight.sum()
    # Stopped by the gradient rule, or by a change of the objective (or of every
    # weight) below 1e-6 of it per iteration, a stall, with no warning either way;
    # here (noise_std=0.1, a loss ~100 times larger than its weight) the stall
    # comes first, within a small factor of the threshold.
    assert float(grad) <= 30 * est.tol * total
    with pytest.warns(ConvergenceWarning, match=r"max_iter=5 .* per unit of sample weight"):
        FixedRegressor(hidden_layer_sizes=(10,), noise_std=0.1, max_iter=5,
                        random_state=0).fit(X, y, sample_weight=sample_weight)
