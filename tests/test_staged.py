"""The staged search of 'auto' hyperparameters (evidence_search='staged'): the exact
Hessian's products and solves, the derivative of the retrained evidence it climbs
by, and the estimators' use of it."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor
from sklearn_dnn2gp._hessian import conjugate_gradients, hessian_vector_product
from sklearn_dnn2gp._likelihoods import Gaussian
from sklearn_dnn2gp._network import flat_parameters, make_mlp, set_flat_parameters
from sklearn_dnn2gp._staged import logdet_slope
from sklearn_dnn2gp._training import _objective
from sklearn_dnn2gp._trials import GAIN_TOL

from ._helpers import bayesian_ridge_reference, gap_data


def _gradient(module, likelihood, X, y, delta):
    module.zero_grad()
    loss, _ = _objective(module, likelihood, X, y, None, delta)
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for p in module.parameters()]).clone()


def test_hessian_vector_product_is_the_derivative_of_the_gradient():
    # Any point (not a minimum): the identity H v = d/de grad(w + e v) holds everywhere.
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    y = torch.sin(X.sum(1, keepdim=True))
    module = make_mlp(3, (5,), 1, "tanh", dtype=torch.float64, device="cpu", generator=gen)
    likelihood, delta = Gaussian(torch.tensor([0.3], dtype=torch.float64)), 0.7
    w = flat_parameters(module).clone()
    v = torch.randn(w.numel(), generator=gen, dtype=torch.float64)
    hv = hessian_vector_product(module, likelihood, X, y, None, delta, v)
    h = 1e-5
    set_flat_parameters(module, w + h * v)
    plus = _gradient(module, likelihood, X, y, delta)
    set_flat_parameters(module, w - h * v)
    minus = _gradient(module, likelihood, X, y, delta)
    set_flat_parameters(module, w)
    # Central differences: O(h^2) truncation (h^2 = 1e-10) and O(eps / h) ~ 1e-11
    # round-off, relative to |H v|.
    np.testing.assert_allclose(hv.numpy(), ((plus - minus) / (2 * h)).numpy(),
                               rtol=0, atol=1e-7 * float(hv.abs().max()))
    # The product leaves the parameters' gradient flags as they were.
    assert all(p.requires_grad for p in module.parameters())


def test_conjugate_gradients_solves_and_keeps_its_best_iterate():
    rng = np.random.RandomState(0)
    Q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    A = torch.as_tensor(Q @ np.diag(np.logspace(0, 4, 30)) @ Q.T)
    b = torch.as_tensor(rng.normal(size=30))
    diag = torch.diagonal(A)
    x = conjugate_gradients(lambda v: A @ v, b, lambda r: r / diag, rtol=1e-10, max_iter=200)
    # Conditioning 1e4: a residual of 1e-10 |b| leaves an error of at most 1e-6 |x|.
    exact = torch.linalg.solve(A, b)
    assert float((x - exact).norm() / exact.norm()) < 1e-6
    # An indefinite matrix: CG's residual wanders; what comes back is never worse
    # than the preconditioner's answer it started from.
    S = torch.as_tensor(Q @ np.diag(np.linspace(-1, 3, 30)) @ Q.T)
    start = b / 2.0
    x = conjugate_gradients(lambda v: S @ v, b, lambda r: r / 2.0, max_iter=5)
    assert float((b - S @ x).norm()) <= float((b - S @ start).norm())


def test_logdet_slope_is_the_derivative_of_a_known_log_determinant():
    # log|A + e B| with A, B symmetric: d/de at 0 is tr(A^-1 B).
    rng = np.random.RandomState(1)
    M = rng.normal(size=(6, 6))
    A = M @ M.T + 6 * np.eye(6)
    B = rng.normal(size=(6, 6))
    B = B + B.T
    slope = logdet_slope(lambda e: np.linalg.slogdet(A + e * B)[1], (1.0, 1.0), eps=1e-6)
    # Forward difference: O(eps |B|^2 |A^-1|^2) = O(1e-6) of the exact value's scale.
    assert slope == pytest.approx(-0.5 * np.trace(np.linalg.solve(A, B)), abs=1e-5)
    assert logdet_slope(lambda e: 1 / 0, (1.0, 0.0)) == 0.0  # no direction: no slope


def test_staged_derivative_is_the_retrained_evidence_derivative():
    # At a MAP, d/dt of the evidence of networks retrained at t = log delta is the
    # closed form's partial derivative plus -1/2 d log|G + delta I| along
    # dw*/dt = -delta H^-1 w*. The staged search adds exactly those two; here both
    # are checked against warm-started retrainings at t +- h, each to a gradient of
    # 1e-10 per example, so the MAPs are stationary to far below what the central
    # difference (O(h^2) ~ 1e-3 relative) resolves.
    X, y = gap_data(60)
    common = dict(hidden_layer_sizes=(6,), noise_std=0.3, normalize_y=False, tol=1e-10,
                  posterior="full", random_state=0, warm_start=True)
    delta, h = 2.0, 0.03
    reg = DNN2GPRegressor(prior_precision=delta, **common).fit(X, y)
    at = {}
    for sign in (1, -1):
        reg.set_params(prior_precision=delta * math.exp(sign * h)).fit(X, y)
        at[sign] = reg.log_marginal_likelihood_
        reg.set_params(prior_precision=delta).fit(X, y)
    retrained = (at[1] - at[-1]) / (2 * h)

    def closed(t):
        return float(reg.log_marginal_likelihood(np.log([math.exp(t), 0.3])))

    t = math.log(delta)
    partial = (closed(t + h) - closed(t - h)) / (2 * h)
    slope = reg._slope_of(reg.module_, torch.as_tensor(X), torch.as_tensor(y)[:, None],
                          None, reg._likelihood_hyperparameters)
    fit = _FitLike(reg)
    total = partial + slope(fit, delta)
    assert abs(total - retrained) <= 2e-3 * abs(retrained)
    # Without the weights' part (MacKay's fixed point) the derivative is off by far more.
    assert abs(partial - retrained) > 10 * abs(total - retrained)


class _FitLike:
    """The parts of a search's fit that the slope reads, from a fitted estimator."""

    def __init__(self, est):
        self.posterior = est.posterior_
        self.weights = flat_parameters(est.module_).clone()
        self.likelihood = est.likelihood_
        self.prior_precision = est.prior_precision_


def test_staged_search_on_a_linear_model_is_the_bayesian_ridge_solution():
    # Without hidden layers the evidence does not depend on the weights' movement
    # (the log-determinant is constant in w), so the staged search is Newton's method
    # on the closed form and stops within GAIN_TOL nats of BayesianRidge's optimum.
    X, y, optimum = bayesian_ridge_reference()
    reg = DNN2GPRegressor(hidden_layer_sizes=(), normalize_y=False, evidence_search="staged",
                          random_state=0).fit(X, y)
    assert reg.evidence_search_ == "staged"
    best = reg.log_marginal_likelihood(optimum)
    assert best - GAIN_TOL <= reg.log_marginal_likelihood_ <= best + 1e-9 * abs(best)


def test_staged_search_records_itself_and_falls_back_where_it_does_not_apply():
    X, y = make_blobs(n_samples=60, centers=3, cluster_std=2.0, random_state=0)
    clf = DNN2GPClassifier(hidden_layer_sizes=(6,), evidence_search="staged",
                           random_state=0).fit(X, y)
    assert clf.evidence_search_ == "staged"
    *stages, kept = clf.evidence_trace_
    assert 1 <= len(stages) and kept["prior_precision"] == clf.prior_precision_
    # Per-layer precisions: only the retrained search takes them.
    layered = DNN2GPClassifier(hidden_layer_sizes=(6,), evidence_search="staged",
                               prior_structure="layerwise", random_state=0).fit(X, y)
    assert layered.evidence_search_ == "retrain"
    fixed = DNN2GPClassifier(hidden_layer_sizes=(6,), prior_precision=1.0,
                             evidence_search="staged", random_state=0).fit(X, y)
    assert fixed.evidence_search_ is None
