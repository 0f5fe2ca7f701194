"""VOGN as Osawa et al. (2019) made it practical: momentum with Adam's bias
correction and a ramped step, antithetic Monte-Carlo pairs, the negative ELBO as
the objective, equal minibatches. Each piece is checked against an independent
computation; the momentum-free step stays the one of Theorem 2 (tests/test_vi.py)."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor, _resources
from sklearn_dnn2gp._base import _equal_batches
from sklearn_dnn2gp._likelihoods import Gaussian
from sklearn_dnn2gp._network import flat_parameters, make_mlp, set_flat_parameters
from sklearn_dnn2gp._resources import full_vi_cost, full_vi_is_comfortable
from sklearn_dnn2gp._vi import (
    Momentum,
    antithetic_sample,
    burn_in_steps,
    kl_divergence,
    train_vi,
    vi_step,
)
from sklearn_dnn2gp.posteriors import add_to_diagonal

from ._helpers import FixedRegressor, blr_posterior, from_curvature, gap_data


def _tanh_problem(structure):
    rng = np.random.RandomState(0)
    x = rng.uniform(-2, 2, 8)
    X, y = torch.tensor(x[:, None]), torch.tensor(np.sin(x)[:, None])
    module = make_mlp(1, (3,), 1, "tanh", dtype=torch.float64, device="cpu",
                      generator=torch.Generator().manual_seed(0))
    P = 10
    mean = torch.tensor(rng.randn(P))
    A = rng.randn(P, P)
    curvature = torch.tensor(A @ A.T / P * 20)
    if structure == "diag":
        curvature = torch.diagonal(curvature).clone()
    return module, Gaussian(torch.tensor([0.3], dtype=torch.float64)), X, y, mean, curvature


@pytest.mark.parametrize("structure", ["diag", "full"])
@pytest.mark.parametrize("n_samples", [None, 2])
def test_zero_momentum_is_the_plain_step_to_the_bit(structure, n_samples):
    # momentum=0 averages nothing and divides by 1 - 0^t = 1: the step of Theorem 2.
    module, likelihood, X, y, mean, curvature = _tanh_problem(structure)
    runs = []
    for momentum in (None, Momentum(0.0)):
        q, S = from_curvature(mean, curvature, 0.7), curvature
        generator = torch.Generator().manual_seed(1)
        for _ in range(3):
            q, S, _ = vi_step(module, likelihood, X, y, None, q, S, learning_rate=0.2,
                              beta=0.1, scale=2.0, n_samples=n_samples, generator=generator,
                              momentum=momentum)
        runs.append((q.mean, S))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_momentum_is_adams_bias_corrected_average():
    g1, g2, g3 = (torch.tensor(np.random.RandomState(i).randn(5)) for i in range(3))
    average = Momentum(0.9)
    # After t steps the weights (1 - b) b^(t - k) sum to 1 - b^t: dividing by it
    # makes every step an average of the gradients so far, the first one included.
    np.testing.assert_allclose(average(g1), g1, rtol=1e-14)
    np.testing.assert_allclose(average(g2), (0.09 * g1 + 0.1 * g2) / (1 - 0.9**2), rtol=1e-14)
    np.testing.assert_allclose(average(g3), (0.081 * g1 + 0.09 * g2 + 0.1 * g3)
                               / (1 - 0.9**3), rtol=1e-14)


def _linear_problem():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 3)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.4 * rng.randn(40)
    return X, y, np.hstack([X, np.ones((40, 1))])


def test_momentum_ogn_on_a_linear_model_follows_the_heavy_ball_recursion():
    # Diagonal OGN on Bayesian linear regression: S starts at, and stays, diag(G), so
    # the mean follows the linear heavy-ball recursion written out below in numpy
    # (bias correction and the ramp of the first 1 / (1 - b) steps included). Its
    # fixed point is the exact posterior mean; after T steps the error is at most
    # C rho^T with rho the spectral radius of the recursion, and T makes rho^T < 1e-13,
    # leaving six orders of magnitude for C and the transient of the first steps.
    X, y, Phi = _linear_problem()
    delta, sigma, alpha, beta, b = 0.5, 0.4, 0.3, 0.2, 0.9
    exact, _ = blr_posterior(Phi, y, delta, sigma)
    H = Phi.T @ Phi / sigma**2 + delta * np.eye(4)
    D = (Phi**2).sum(0) / sigma**2 + delta
    lam = np.linalg.eigvals(H / np.sqrt(D[:, None] * D[None, :]))
    rho = max(max(abs(np.linalg.eigvals([[1 - alpha * (1 - b) * li, -alpha * b],
                                          [(1 - b) * li, b]]))) for li in lam.real)
    assert rho < 1
    T = math.ceil(math.log(1e-13) / math.log(rho))

    module = make_mlp(3, (), 1, "identity", dtype=torch.float64, device="cpu",
                      generator=torch.Generator().manual_seed(0))
    mu = flat_parameters(module).numpy().copy()
    likelihood = Gaussian(torch.tensor([sigma], dtype=torch.float64))
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        q, _, _ = train_vi(
            module, likelihood, torch.tensor(X), torch.tensor(y[:, None]), None,
            prior_precision=delta, method="ogn", structure="diag", max_iter=T,
            learning_rate=alpha, beta=beta, initial_precision="auto", mc_samples=1,
            batch_size=40, tol=0, n_iter_no_change=T, generator=torch.Generator(),
            momentum=b)

    average = np.zeros(4)
    for t in range(1, T + 1):
        average = b * average + (1 - b) * (H @ mu - Phi.T @ y / sigma**2)
        mu = mu - alpha * min(1, t * (1 - b)) * average / (1 - b**t) / D
    np.testing.assert_allclose(q.mean.numpy(), mu, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(q.mean.numpy(), exact, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(q.precision().numpy(), D, rtol=1e-12)


def test_antithetic_pairs():
    mean = torch.tensor(np.random.RandomState(0).randn(6))
    q = from_curvature(mean, torch.tensor(np.linspace(1, 3, 6)), 0.5)
    points = antithetic_sample(q, 5, torch.Generator().manual_seed(0))
    assert points.shape == (5, 6)
    np.testing.assert_allclose(points[:2] + points[3:], 2 * mean.expand(2, 6), rtol=1e-14)
    # One draw is the draw of q.sample from the same generator state.
    single = antithetic_sample(q, 1, torch.Generator().manual_seed(3))
    assert torch.equal(single, q.sample(1, torch.Generator().manual_seed(3)))


def test_antithetic_vogn_is_noise_free_on_a_linear_model():
    # The gradient is linear in w and the GGN constant, so a pair's average is the
    # value at the mean: VOGN with two samples takes OGN's steps, to rounding.
    X, y, _ = _linear_problem()
    params = dict(hidden_layer_sizes=(), prior_precision=0.5, noise_std=0.4,
                  inference="vi", learning_rate_init=0.1, max_iter=60, tol=0,
                  n_iter_no_change=60, random_state=0)
    fits = []
    for method, m in (("ogn", 1), ("vogn", 2)):
        with pytest.warns(ConvergenceWarning):
            fits.append(FixedRegressor(vi_method=method, mc_samples=m, **params).fit(X, y))
    np.testing.assert_allclose(fits[1].posterior_.mean, fits[0].posterior_.mean, rtol=1e-10)
    np.testing.assert_allclose(fits[1].posterior_.precision(), fits[0].posterior_.precision(),
                               rtol=1e-12)


@pytest.mark.parametrize("structure", ["diag", "full", "full-spectrum"])
def test_kl_divergence_is_the_gaussian_kl(structure):
    # A full q is read through its Cholesky factor, or through its spectrum once
    # one exists.
    rng = np.random.RandomState(0)
    P, delta = 5, 0.7
    A = rng.randn(P, P)
    S = torch.tensor(A @ A.T)
    if structure == "diag":
        S = torch.diagonal(S).clone()
    q = from_curvature(torch.tensor(rng.randn(P)), S, delta)
    covariance = q.covariance()
    if structure == "full-spectrum":
        assert q.eigvals.shape == (P,) and q.has_spectrum
    reference = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(q.mean, covariance),
        torch.distributions.MultivariateNormal(torch.zeros(P, dtype=torch.float64),
                                               torch.eye(P, dtype=torch.float64) / delta))
    np.testing.assert_allclose(kl_divergence(q), float(reference), rtol=1e-10)


@pytest.mark.parametrize("posterior", ["diag", "full"])
def test_vi_loss_curve_is_the_negative_elbo(posterior):
    # One full-batch OGN epoch: the data term at the mean it stepped from, plus the KL
    # of the q it stepped to.
    X, y = gap_data(20)
    states = []
    est = FixedRegressor(hidden_layer_sizes=(3,), noise_std=0.3, inference="vi",
                          posterior=posterior, vi_method="ogn", max_iter=2, random_state=0,
                          callback=states.append)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    module = make_mlp(1, (3,), 1, "tanh", dtype=torch.float64, device="cpu",
                      generator=torch.Generator())
    set_flat_parameters(module, states[0].mean)
    with torch.no_grad():
        data = float(est.likelihood_.loss(module(torch.tensor(X)), torch.tensor(y[:, None])))
    q = from_curvature(states[1].mean, add_to_diagonal(states[1].precision, -1.0), 1.0)
    np.testing.assert_allclose(est.loss_curve_[1], data + kl_divergence(q), rtol=1e-10)


def test_equal_batches():
    assert _equal_batches(100, 128) == 100
    assert _equal_batches(148, 128) == 74  # not 128 + 20: a 20-example batch scaled by 7.4
    assert _equal_batches(1439, 128) == 120
    assert _equal_batches(256, 128) == 128


@pytest.mark.parametrize("Estimator", [DNN2GPRegressor, DNN2GPClassifier])
def test_default_vi_stops_on_its_own_and_anneals_the_step(Estimator, capsys):
    X, y = gap_data(300)
    if Estimator is DNN2GPClassifier:
        y = (y > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        # At a fixed prior: this is about the stopping rule of one VI run, not the
        # evidence search that 'auto' runs before it.
        est = Estimator(hidden_layer_sizes=(10,), inference="vi", verbose=1,
                        prior_precision=1.0, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert out.count("objective on a plateau, step size now") == 2
    assert est.n_iter_ == len(est.loss_curve_) < est.max_iter
    assert all(np.isfinite(est.loss_curve_))


@pytest.mark.parametrize("params, match", [({"momentum": 1.0}, "momentum"),
                                           ({"momentum": -0.1}, "momentum")])
def test_bad_momentum(params, match):
    X, y = gap_data(10)
    with pytest.raises(ValueError, match=match):
        FixedRegressor(hidden_layer_sizes=(2,), inference="vi", max_iter=5, **params).fit(X, y)


def test_auto_posterior_under_vi_is_full_for_small_networks_only():
    # A full q costs one P x P factorisation per step: 'auto' takes it while a
    # default fit would spend at most _AUTO_VI_SECONDS on them, and is then the
    # same fit as posterior='full', step for step.
    X, y = gap_data(148)
    fits = {}
    for posterior in ("auto", "full", "diag"):
        est = FixedRegressor(hidden_layer_sizes=(32,), activation="sigmoid", noise_std=0.3,
                              inference="vi", posterior=posterior, max_iter=3, random_state=0)
        with pytest.warns(ConvergenceWarning):
            fits[posterior] = est.fit(X, y)
    assert fits["auto"]._structure() == "full"
    assert torch.equal(fits["auto"].posterior_.mean, fits["full"].posterior_.mean)
    assert fits["auto"].loss_curve_ == fits["full"].loss_curve_

    wide = FixedRegressor(hidden_layer_sizes=(25, 25), inference="vi", max_iter=1,
                           random_state=0)
    with pytest.warns(ConvergenceWarning):
        wide.fit(X, y)
    assert wide._structure() == "diag"


def test_full_vi_cost_puts_the_limit_between_the_paper_networks():
    cpu = torch.device("cpu")
    steps = burn_in_steps(0.01)
    np.testing.assert_allclose((1 - 0.01) ** steps, 1e-3, rtol=1e-12)
    # Snelson 1-32-1 (P = 97, batches of 74), red wine 11-20-20-1 (P = 681, 120),
    # digits 64-50-10 (P = 3760, 126 x 10 outputs).
    assert full_vi_is_comfortable(148, 74, 97, steps, cpu)
    assert not full_vi_is_comfortable(1439, 120, 681, steps, cpu)
    assert not full_vi_is_comfortable(12570, 1260, 3760, steps, cpu)
    # The cost is the factorisations' P^3 per step, at least, for 2 x burn-in steps.
    _, seconds = full_vi_cost(1439, 120, 681, steps)
    assert seconds >= 2 * steps * _resources._GEMM_SECONDS * 681**3
