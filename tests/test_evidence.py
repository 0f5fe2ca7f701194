"""The evidence (``_evidence.py``): its closed forms for linear models and dense
references, the Laplace and the GP evidence agreeing at a stationary point, and its
re-evaluation at other hyperparameters (a common noise factor, the spectrum, K-FAC,
per-layer prior precisions) against direct recomputations."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor
from sklearn_dnn2gp._evidence import laplace_log_evidence
from sklearn_dnn2gp._gp import whitened_log_evidence
from sklearn_dnn2gp._network import flat_parameters, parameter_groups
from sklearn_dnn2gp.posteriors import KronPosterior

from ._helpers import (
    FixedRegressor,
    _linear_data,
    _regression,
    _whitened,
    blr_log_evidence,
    blr_posterior,
    gap_data,
    make_stationary,
)


# -------------------------------- the GP evidence of a Gaussian regression
def test_linear_multi_output_evidence_is_sum_of_independent_regressions():
    X, Y = _linear_data(k=2)
    sigma = np.array([0.4, 0.9])
    est = FixedRegressor(
        hidden_layer_sizes=(), prior_precision=0.5, noise_std=sigma
    ).fit(X, Y)
    Phi = np.hstack([X, np.ones((len(X), 1))])
    expected = sum(blr_log_evidence(Phi, Y[:, j], 0.5, sigma[j]) for j in range(2))
    np.testing.assert_allclose(est.log_marginal_likelihood_, expected, rtol=1e-8)
    mean, std = est.predict(X[:5], return_std=True)
    assert mean.shape == std.shape == (5, 2)
    for j in range(2):
        _, cov = blr_posterior(Phi, Y[:, j], 0.5, sigma[j])
        var = np.einsum("ij,jk,ik->i", Phi[:5], cov, Phi[:5]) + sigma[j] ** 2
        np.testing.assert_allclose(std[:, j], np.sqrt(var), rtol=1e-8)
    # A common factor on the noise stds reuses the spectrum; other changes are refused.
    np.testing.assert_allclose(
        est.log_marginal_likelihood(2.0, 1.5 * sigma),
        sum(blr_log_evidence(Phi, Y[:, j], 2.0, 1.5 * sigma[j]) for j in range(2)),
        rtol=1e-8,
    )
    with pytest.raises(ValueError, match="proportional"):
        est.log_marginal_likelihood(noise_std=[1.0, 1.0])


def test_gp_evidence_equals_laplace_evidence_at_stationary_point():
    X, y = gap_data(30)
    est = FixedRegressor(
        hidden_layer_sizes=(10,),
        prior_precision=0.5,
        noise_std=0.3,
        random_state=0,
    ).fit(X, y)
    make_stationary(est, X, y)
    pred = est.predict(X)
    sigma = 0.3
    log_lik = np.sum(-0.5 * ((y - pred) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi))
    laplace = laplace_log_evidence(torch.tensor(log_lik), est.posterior_.mean, est.posterior_)
    np.testing.assert_allclose(est.log_marginal_likelihood_, float(laplace), rtol=1e-6)


@pytest.mark.parametrize("posterior", ["full", "diag"])
def test_evidence_reevaluation_equals_direct_recomputation(posterior):
    X, y = gap_data(40)
    est = FixedRegressor(
        hidden_layer_sizes=(6,),
        prior_precision=1.0,
        noise_std=0.2,
        posterior=posterior,
        random_state=0,
    ).fit(X, y)
    for delta, sigma in [(0.1, 0.2), (1.0, 0.5), (30.0, 0.05)]:
        M, u = _whitened(est, X, y, noise_std=sigma)
        if posterior == "full":
            direct = float(whitened_log_evidence(M, u, delta)) - len(X) * np.log(sigma)
        else:
            pred = est.predict(X)
            log_lik = np.sum(
                -0.5 * ((y - pred) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
            )
            w = est.posterior_.mean.numpy()
            g = (M**2).sum(0).numpy()
            direct = log_lik - 0.5 * delta * w @ w - 0.5 * np.log1p(g / delta).sum()
        np.testing.assert_allclose(est.log_marginal_likelihood(delta, sigma), direct, rtol=1e-8)
        refit = FixedRegressor(
            **{**est.get_params(), "prior_precision": delta, "noise_std": sigma}
        )
        assert refit.get_params()["prior_precision"] == delta  # cheap path needs no refit


def test_evidence_reevaluation_is_stable_for_large_noise_changes():
    # The data term is a sum of non-negative parts: no cancellation when the noise
    # shrinks by orders of magnitude (it once returned +1e13 here). The reference
    # uses the SVD of the unwhitened Jacobian, J = U S V^T, in numpy.
    # The tolerance is the first-order effect of a backward-stable computation of
    # K = J J^T / delta + sigma^2 I (an error of gamma_n ||K|| in K, gamma_n = n eps):
    # |d(y^T K^-1 y)| <= ||K^-1 y||^2 ||dK|| and |d log det K| <= n ||K^-1|| ||dK||.
    # At sigma = 1e-3, K's condition number is 5e10 and the split of y~ along J's
    # singular directions (down to 1e-17 of the largest) moves with the CPU's kernels
    # by about 1e-5 of the value; a fixed rtol=1e-6 held on one CPU only.
    X, y = gap_data(40)
    est = FixedRegressor(hidden_layer_sizes=(6,), noise_std=0.3, random_state=0).fit(X, y)
    J = est.features(X)[:, 0]
    y_tilde = y + J @ est.posterior_.mean.numpy() - est.predict(X)
    U, S, _ = np.linalg.svd(J, full_matrices=False)
    proj = U.T @ y_tilde
    outside = y_tilde @ y_tilde - proj @ proj
    n, r = len(y), len(S)
    for delta, sigma in [(1e-2, 1e-3), (1e-3, 1e-2), (1e4, 1e-5), (0.1, 50.0)]:
        var = S**2 / delta + sigma**2
        expected = -0.5 * (np.sum(proj**2 / var) + outside / sigma**2) - 0.5 * (
            np.log(var).sum() + (n - r) * np.log(sigma**2)) - 0.5 * n * np.log(2 * np.pi)
        value = est.log_marginal_likelihood(delta, sigma)
        dK = n * np.finfo(np.float64).eps * (S[0] ** 2 / delta + sigma**2)
        K_inv_y = np.sum(proj**2 / var**2) + outside / sigma**4
        tol = 0.5 * dK * (K_inv_y + n / sigma**2)
        assert abs(value - expected) <= tol, (delta, sigma, value - expected, tol)
    # Further out, directions of J below float64 round-off of G (singular values
    # 1e-16 of the largest here) blur the split, but the value stays a large negative.
    assert -1e12 < est.log_marginal_likelihood(1e-5, 7e-6) < -1e8


def test_fitted_evidence_is_the_same_before_and_after_a_spectrum():
    X, y = gap_data(60)  # 60 rows > 31 parameters: the weight-space posterior
    est = FixedRegressor(hidden_layer_sizes=(10,), noise_std=0.2, random_state=0).fit(X, y)
    assert est.posterior_.space == "weight"
    before = est.log_marginal_likelihood_
    est.log_marginal_likelihood(prior_precision=3.0)  # computes the spectrum
    assert est.posterior_.has_spectrum
    assert est.log_marginal_likelihood() == before
    # The spectral formula at the fitted values agrees with the Cholesky one.
    nudged = est.log_marginal_likelihood(prior_precision=est.prior_precision_ * (1 + 1e-12))
    np.testing.assert_allclose(nudged, before, rtol=1e-9)


# ------------------------------------------------------------------- K-FAC
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_kron_evidence_reevaluation_equals_a_direct_recomputation():
    X, y = gap_data(40)
    reg = FixedRegressor(hidden_layer_sizes=(6,), noise_std=0.2, posterior="kron",
                          random_state=0).fit(X, y)
    assert isinstance(reg.posterior_, KronPosterior)
    pred = reg.predict(X)
    for delta, sigma in [(0.1, 0.2), (3.0, 0.5), (30.0, 0.05)]:
        direct = KronPosterior.from_factors(
            reg.posterior_.mean,
            [(g_vecs @ torch.diag(g) @ g_vecs.T * (0.2 / sigma) ** 2,
              a_vecs @ torch.diag(a) @ a_vecs.T, order)
             for g, g_vecs, a, a_vecs, order in reg.posterior_.layers],
            reg.posterior_.total_weight, delta)
        log_lik = np.sum(-0.5 * ((y - pred) / sigma) ** 2 - np.log(sigma)
                         - 0.5 * np.log(2 * np.pi))
        expected = laplace_log_evidence(torch.tensor(log_lik), direct.mean, direct)
        np.testing.assert_allclose(reg.log_marginal_likelihood(delta, sigma), float(expected),
                                   rtol=1e-9)


# ---------------------------------------------- per-layer prior precisions
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
