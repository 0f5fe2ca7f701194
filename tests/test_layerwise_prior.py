"""Per-layer prior precisions (``prior_structure='layerwise'`` or an array
``prior_precision``): the change of variables behind ``ScaledPosterior`` against
dense closed forms, the estimators against independent function-space and
weight-space computations from their own Jacobians, and the 'auto' search."""

import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_regression
from torch.func import functional_call

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor
from sklearn_dnn2gp._network import flat_parameters, parameter_groups
from sklearn_dnn2gp._training import full_objective
from sklearn_dnn2gp.posteriors import (
    DiagPosterior,
    FullPosterior,
    KronPosterior,
    ScaledPosterior,
)


def _dense_checks(post, precision, mean, delta):
    """``post`` against ``N(mean, precision^-1)`` with per-parameter ``delta``."""
    cov = torch.linalg.inv(precision)
    gen = torch.Generator().manual_seed(0)
    J = torch.randn(3, 2, len(mean), dtype=torch.float64, generator=gen)
    torch.testing.assert_close(post.functional_variance(J), J @ cov @ J.transpose(1, 2),
                               rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(post.covariance(), cov, rtol=1e-10, atol=1e-12)
    v = torch.randn(len(mean), dtype=torch.float64, generator=gen)
    torch.testing.assert_close(post.covariance_product(v), cov @ v, rtol=1e-10, atol=1e-12)
    log_det = torch.logdet(precision) - torch.log(delta).sum()
    assert float(post.log_det_ratio()) == pytest.approx(float(log_det), rel=1e-10)
    assert float(post.prior_quadratic(mean)) == pytest.approx(float(delta @ mean**2),
                                                              rel=1e-12)
    torch.testing.assert_close(post.mean, mean, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("rows", [4, 12])  # function space (n < P) and weight space
def test_scaled_full_posterior_is_the_dense_one(rows):
    gen = torch.Generator().manual_seed(1)
    P = 7
    M = torch.randn(rows, P, dtype=torch.float64, generator=gen)
    mean = torch.randn(P, dtype=torch.float64, generator=gen)
    delta = torch.tensor([0.3, 0.3, 0.3, 5.0, 5.0, 2.0, 2.0], dtype=torch.float64)
    for base in (FullPosterior.from_whitened_jacobian(mean, M, 1.0),
                 FullPosterior.from_ggn(mean, M.T @ M, 1.0)):
        post = ScaledPosterior.wrap(base, delta)
        _dense_checks(post, M.T @ M + torch.diag(delta), mean, delta)
        # Same proportions: only the common factor changes, the factorisation is kept.
        scaled = post.with_hyperparameters(3 * delta, curvature_scale=0.5)
        assert scaled.shares_factorisation(post)
        _dense_checks(scaled, 0.5 * M.T @ M + torch.diag(3 * delta), mean, 3 * delta)
        # Other proportions: a new factorisation, still exact.
        other = delta.flip(0)
        moved = post.with_hyperparameters(other, curvature_scale=2.0)
        assert not moved.shares_factorisation(post)
        _dense_checks(moved, 2 * M.T @ M + torch.diag(other), mean, other)


def test_scaled_diag_posterior_is_the_dense_one():
    gen = torch.Generator().manual_seed(2)
    g = torch.rand(5, dtype=torch.float64, generator=gen)
    mean = torch.randn(5, dtype=torch.float64, generator=gen)
    delta = torch.tensor([1.0, 1.0, 4.0, 4.0, 0.5], dtype=torch.float64)
    post = ScaledPosterior.wrap(DiagPosterior(mean, 1.0, g), delta)
    torch.testing.assert_close(post.precision(), g + delta, rtol=1e-13, atol=0)
    torch.testing.assert_close(post.variances(), 1 / (g + delta), rtol=1e-13, atol=0)
    _dense_checks(post, torch.diag(g + delta), mean, delta)


def test_scaled_kron_posterior_is_the_dense_one():
    gen = torch.Generator().manual_seed(3)
    factors, offset = [], 0
    for d_out, d_in in ((3, 3), (2, 4)):
        G = torch.randn(d_out, d_out, dtype=torch.float64, generator=gen)
        A = torch.randn(d_in, d_in, dtype=torch.float64, generator=gen)
        order = torch.arange(offset, offset + d_out * d_in)
        factors.append((G @ G.T, A @ A.T, order))
        offset += d_out * d_in
    mean = torch.randn(offset, dtype=torch.float64, generator=gen)
    delta = torch.cat([torch.full((9,), 0.2), torch.full((8,), 3.0)]).to(torch.float64)
    post = ScaledPosterior.wrap(KronPosterior.from_factors(mean, factors, 4.0, 1.0), delta)
    blocks = [torch.kron(G, A) / 4.0 for G, A, _ in factors]
    _dense_checks(post, torch.block_diag(*blocks) + torch.diag(delta), mean, delta)
    with pytest.raises(ValueError, match="one prior precision per layer"):
        ScaledPosterior.wrap(KronPosterior.from_factors(mean, factors, 4.0, 1.0),
                             torch.linspace(1, 2, offset, dtype=torch.float64))


def test_parameter_groups_are_the_layers():
    reg = DNN2GPRegressor(hidden_layer_sizes=(4, 3), prior_precision=[1, 2, 3],
                          noise_std=1.0, max_iter=500, random_state=0)
    X, y = make_regression(20, 2, random_state=0)
    reg.fit(X, y / y.std())
    groups, n = parameter_groups(reg.module_)
    assert n == 3
    assert groups.tolist() == [0] * 12 + [1] * 15 + [2] * 4
    last, _ = parameter_groups(reg.module_, reg.module_[-1])
    assert last.tolist() == [2] * 4


def _regression(n=40, seed=0):
    X, y = make_regression(n, 3, noise=5.0, random_state=seed)
    return X, (y - y.mean()) / y.std()


def _dense_regression_reference(reg, X, y, delta_per_parameter, sigma):
    """GP evidence and predictive variance from the estimator's own Jacobians and
    transformed targets, by dense linear algebra in function and weight space."""
    J = torch.as_tensor(reg.features(X))[:, 0, :]
    y_tilde = torch.as_tensor(reg.transformed_targets(X, y))
    prior_cov = J @ torch.diag(1 / delta_per_parameter) @ J.T
    C = prior_cov + sigma**2 * torch.eye(len(y), dtype=torch.float64)
    evidence = torch.distributions.MultivariateNormal(
        torch.zeros(len(y), dtype=torch.float64), C).log_prob(y_tilde)
    Sigma = torch.linalg.inv(J.T @ J / sigma**2 + torch.diag(delta_per_parameter))
    return float(evidence), J, Sigma


@pytest.mark.parametrize("posterior", ["full", "diag", "kron"])
def test_layerwise_regressor_matches_dense_computations(posterior):
    X, y = _regression()
    delta = np.array([0.5, 4.0])
    reg = DNN2GPRegressor(hidden_layer_sizes=(6,), prior_precision=delta, noise_std=0.7,
                          normalize_y=False, posterior=posterior, random_state=0).fit(X, y)
    np.testing.assert_array_equal(reg.prior_precision_, delta)
    groups, _ = parameter_groups(reg.module_)
    per_parameter = torch.as_tensor(delta)[groups]
    evidence, J, Sigma = _dense_regression_reference(reg, X, y, per_parameter, 0.7)
    mean, std = reg.predict(X[:5], return_std=True)
    Js = torch.as_tensor(reg.features(X[:5]))[:, 0, :]
    if posterior == "full":
        # The exact GP of the linearised model, in function space.
        assert reg.log_marginal_likelihood_ == pytest.approx(evidence, rel=1e-9)
        np.testing.assert_allclose(reg.gp_log_marginal_likelihood(X, y), evidence, rtol=1e-9)
        var = torch.einsum("np,pq,nq->n", Js, Sigma, Js) + 0.7**2
        np.testing.assert_allclose(std, np.sqrt(var.numpy()), rtol=1e-8)
        # Re-evaluation at other per-layer precisions, through theta.
        other = np.array([2.0, 0.25])
        evidence2, _, _ = _dense_regression_reference(
            reg, X, y, torch.as_tensor(other)[groups], 0.9)
        assert reg.log_marginal_likelihood(np.log([*other, 0.9])) == pytest.approx(
            evidence2, rel=1e-9)
    else:
        # The Laplace evidence with the structure's own curvature: check its prior term
        # by the identity d/d log delta_l (evidence) at fixed weights.
        w = flat_parameters(reg.module_).to(torch.float64)
        base = reg.log_marginal_likelihood()
        for layer in range(2):
            step = np.zeros(2)
            step[layer] = 1e-5
            moved = reg.log_marginal_likelihood(np.log([*(delta * np.exp(step)), 0.7]))
            post = reg._evidence.posterior
            cov = post.covariance()
            mask = groups == layer
            expected = 0.5 * (float(mask.sum()) - delta[layer] * (
                float((w[mask] ** 2).sum()) + float(torch.diagonal(cov)[mask].sum())))
            assert (moved - base) / 1e-5 == pytest.approx(expected, rel=1e-4, abs=1e-6)


def _layerwise_objective(est, X, y):
    module, likelihood = est.module_, est.likelihood_
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float64))
    y_t = est._known_targets(y, X_t.device)
    groups, _ = parameter_groups(module)
    delta = torch.as_tensor(np.asarray(est.prior_precision_))[groups]
    shapes = [(name, p.shape) for name, p in module.named_parameters()]

    def objective(w):
        params, offset = {}, 0
        for name, shape in shapes:
            size = math.prod(shape)
            params[name] = w[offset:offset + size].reshape(shape)
            offset += size
        return likelihood.loss(functional_call(module, params, (X_t,)), y_t) + 0.5 * (
            delta * w) @ w

    return objective, flat_parameters(module).to(torch.float64).clone().requires_grad_(True)


def test_training_minimises_the_layerwise_objective():
    X, y = make_classification(80, 4, random_state=0)
    clf = DNN2GPClassifier(hidden_layer_sizes=(5,), prior_precision=[0.1, 10.0],
                           random_state=0).fit(X, y)
    objective, w = _layerwise_objective(clf, X, y)
    # The objective training minimises is this one, at any weights (an identity).
    X_t = torch.as_tensor(X, dtype=torch.float64)
    trained = full_objective(clf.module_, clf.likelihood_, X_t, clf._known_targets(y, "cpu"),
                             None, clf._expand_prior(clf.prior_precision_, clf._prior_groups))
    assert trained == pytest.approx(float(objective(w).detach()), rel=1e-12)
    (grad,) = torch.autograd.grad(objective(w), w)
    # And the fit is near its stationary point, not the swapped precisions': the two
    # gradients differ by (10 - 0.1) w on each layer, of order one, while training
    # stops at a gradient of order tol * N = 8e-4 (a margin of 100 for any machine).
    groups, _ = parameter_groups(clf.module_)
    swapped = grad + (torch.tensor([9.9, -9.9], dtype=torch.float64)[groups] * w).detach()
    assert float(grad.abs().max()) < 0.01 * float(swapped.abs().max())


def test_layerwise_classifier_evidence_is_the_dense_laplace_one():
    X, y = make_classification(60, 5, n_classes=3, n_informative=3, n_redundant=1, random_state=0)
    delta = np.array([0.7, 3.0])
    clf = DNN2GPClassifier(hidden_layer_sizes=(5,), prior_precision=delta,
                           posterior="full", random_state=0).fit(X, y)
    groups, _ = parameter_groups(clf.module_)
    J = torch.as_tensor(clf.features(X))
    with torch.no_grad():
        f = clf.module_(torch.as_tensor(X))
    p = torch.softmax(f, dim=1)
    Lam = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    G = torch.einsum("nkp,nkl,nlq->pq", J, Lam, J)
    w = flat_parameters(clf.module_).to(torch.float64)
    log_lik = float(torch.log_softmax(f, 1)[torch.arange(len(y)), torch.as_tensor(y)].sum())
    for d in (delta, np.array([5.0, 0.1])):
        dp = torch.as_tensor(d)[groups]
        expected = (log_lik - 0.5 * float(dp @ w**2)
                    - 0.5 * float(torch.logdet(G + torch.diag(dp)) - torch.log(dp).sum()))
        assert clf.log_marginal_likelihood(np.log(d)) == pytest.approx(expected, rel=1e-9)
    Sigma = torch.linalg.inv(G + torch.diag(torch.as_tensor(delta)[groups]))
    mean, cov = clf.predict_latent(X[:4])
    np.testing.assert_allclose(cov, (J[:4] @ Sigma @ J[:4].transpose(1, 2)).numpy(),
                               rtol=1e-8, atol=1e-12)


def test_equal_layer_precisions_are_one_precision():
    X, y = _regression()
    kwargs = dict(hidden_layer_sizes=(6,), noise_std=0.5, normalize_y=False, random_state=0)
    one = DNN2GPRegressor(prior_precision=2.0, **kwargs).fit(X, y)
    per_layer = DNN2GPRegressor(prior_precision=[2.0, 2.0], **kwargs).fit(X, y)
    # The same objective by both code paths, at any weights.
    X_t = torch.as_tensor(X, dtype=torch.float64)
    args = (one.module_, one.likelihood_, X_t, one._known_targets(y, "cpu"), None)
    assert full_objective(*args, per_layer._expand_prior(
        per_layer.prior_precision_, per_layer._prior_groups)) == pytest.approx(
        full_objective(*args, 2.0), rel=1e-14)
    # At the same weights the two posteriors are the same Gaussian.
    post = ScaledPosterior.wrap(one.posterior_, torch.full(
        (one.posterior_.n_parameters,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(post.covariance(), one.posterior_.covariance(),
                               rtol=1e-10, atol=1e-14)


def test_kron_layer_factor_path_under_layerwise_prior():
    X, y = make_classification(60, 5, n_classes=3, n_informative=3, n_redundant=1, random_state=1)
    clf = DNN2GPClassifier(hidden_layer_sizes=(6, 5), prior_precision=[0.5, 2.0, 8.0],
                           posterior="kron", random_state=0).fit(X, y)
    J = torch.as_tensor(clf.features(X[:7]))
    direct = clf.posterior_.functional_variance(J)
    _, cov = clf.predict_latent(X[:7])  # through the layer factors
    np.testing.assert_allclose(cov, direct.numpy(), rtol=1e-10, atol=1e-13)


def test_layerwise_auto_searches_each_layer():
    X, y = _regression(60)
    reg = DNN2GPRegressor(hidden_layer_sizes=(6,), prior_structure="layerwise",
                          random_state=0).fit(X, y)
    assert reg.prior_precision_.shape == (2,)
    trace = reg.evidence_trace_
    np.testing.assert_array_equal(reg.prior_precision_, trace[-1]["prior_precision"])
    assert reg.log_marginal_likelihood_ == pytest.approx(
        trace[-1]["log_marginal_likelihood"], rel=1e-12)
    # The sweep tried unequal precisions on both layers.
    ratios = [t["prior_precision"][0] / t["prior_precision"][1] for t in trace]
    assert min(ratios) < 0.99 < 1.01 < max(ratios)
    assert len(reg._theta_names()) == 3


def test_layerwise_fit_pickles():
    X, y = _regression()
    reg = DNN2GPRegressor(hidden_layer_sizes=(6,), prior_precision=[1.0, 3.0],
                          random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X, return_std=True)[1],
                                  reg.predict(X, return_std=True)[1])
    assert again.log_marginal_likelihood() == reg.log_marginal_likelihood_


@pytest.mark.parametrize("bad, match", [
    ([1.0], "one positive, finite precision per layer: 2"),
    ([1.0, -2.0], "one positive"),
    ([1.0, np.inf], "one positive"),
])
def test_bad_layer_precisions(bad, match):
    X, y = _regression()
    with pytest.raises(ValueError, match=match):
        DNN2GPRegressor(hidden_layer_sizes=(6,), prior_precision=bad).fit(X, y)


def test_layerwise_vi_is_refused():
    X, y = _regression()
    with pytest.raises(ValueError, match="inference='laplace'"):
        DNN2GPRegressor(prior_precision=[1.0, 1.0], inference="vi", noise_std=1.0).fit(X, y)
