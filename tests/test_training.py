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


@pytest.mark.filterwarnings("ignore:Adam reached max_iter")
def test_warm_started_adam_keeps_its_start_when_it_ends_above_it():
    # The evidence search warm-starts Adam from a neighbouring fit; fresh moment
    # estimates with a large step leave that minimum and end above it. The start is
    # then the better MAP estimate and is kept; a cold start is not reverted (its
    # start is a random network) and warns instead. A linear model: its objective is
    # strictly convex, so no end point of Adam lies below the minimum L-BFGS found.
    from sklearn_dnn2gp._likelihoods import Gaussian
    from sklearn_dnn2gp._network import flat_parameters, make_mlp
    from sklearn_dnn2gp._training import full_objective, train_map

    gen = torch.Generator().manual_seed(0)
    X = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    y = torch.sin(X[:, :1] * 2)
    likelihood = Gaussian(torch.tensor([0.1], dtype=torch.float64))
    module = make_mlp(2, (), 1, "tanh", dtype=torch.float64, device="cpu", generator=gen)
    common = dict(prior_precision=1.0, max_iter=20, batch_size=8, tol=0.0,
                  n_iter_no_change=50, generator=gen)
    train_map(module, likelihood, X, y, None, solver="lbfgs", learning_rate=1.0,
              **{**common, "max_iter": 500, "tol": 1e-9})
    start = flat_parameters(module).clone()
    before = full_objective(module, likelihood, X, y, None, 1.0)
    train_map(module, likelihood, X, y, None, solver="adam", learning_rate=0.5, warm=True,
              **common)
    assert torch.equal(flat_parameters(module), start)
    assert full_objective(module, likelihood, X, y, None, 1.0) == before
    with pytest.warns(ConvergenceWarning, match="larger objective"):
        train_map(module, likelihood, X, y, None, solver="adam", learning_rate=0.5, **common)


@pytest.mark.parametrize("slope, noise, flat", [
    (-1.0, 0.5, False),   # a clear descent
    (0.0, 0.5, True),     # noise about a constant
    (-0.5e-3, 0.0, True),  # an exact descent slower than tol
    (-2e-3, 0.0, False),   # an exact descent faster than tol
    (-0.01, 3.0, True),   # a descent the noise hides over this window
])
def test_trend_is_flat_against_a_least_squares_fit(slope, noise, flat):
    from scipy.stats import linregress

    from sklearn_dnn2gp._training import trend_is_flat

    t = np.arange(40.0)
    values = 100 + slope * t + noise * np.random.RandomState(0).randn(40)
    assert trend_is_flat(list(values), tol=1e-3) is flat
    # The rule in scipy's terms: flat unless the slope is below both -tol and
    # two standard errors below zero.
    fit = linregress(t, values)
    assert flat == (not (fit.slope < -1e-3 and fit.slope < -2 * fit.stderr))
