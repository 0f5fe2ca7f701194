import pickle

import numpy as np
import pytest
import torch
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, DotProduct

from sklearn_dnn2gp._curvature import whitened_jacobians
from sklearn_dnn2gp._evidence import laplace_log_evidence
from sklearn_dnn2gp._gp import whitened_log_evidence
from sklearn_dnn2gp._likelihoods import Gaussian

from ._helpers import (
    FixedRegressor,
    blr_log_evidence,
    blr_posterior,
    gap_data,
    make_stationary,
    objective_gradient,
)


def _linear_data(n=40, d=3, seed=0, k=None):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    shape = (n,) if k is None else (n, k)
    y = X @ rng.randn(d, *shape[1:]) + 0.5 + 0.3 * rng.randn(*shape)
    return X, y


def _whitened(est, X, y, noise_std=None, weights=None):
    """M (n K, P) and u (n K) of the fitted network, computed directly."""
    sigma = (
        est.noise_std_ if noise_std is None else np.broadcast_to(noise_std, est.noise_std_.shape)
    )
    lik = Gaussian(torch.tensor(sigma))
    Xt = torch.tensor(X)
    Y = torch.tensor(y.reshape(len(y), -1))
    w = est.posterior_.mean
    Wt = None if weights is None else torch.tensor(weights, dtype=torch.float64)
    Ms, us = [], []
    for sl, f, J, M in whitened_jacobians(est.module_, lik, Xt, Wt):
        u = lik.whiten(f, lik.transformed_targets(f, J, w, Y[sl]))
        if Wt is not None:
            u = u * torch.sqrt(Wt[sl])[:, None]
        Ms.append(M.reshape(-1, M.shape[-1]))
        us.append(u.reshape(-1))
    return torch.cat(Ms), torch.cat(us)


@pytest.mark.parametrize("delta, sigma", [(1.0, 0.3), (0.05, 1.7)])
def test_linear_model_is_bayesian_linear_regression(delta, sigma):
    X, y = _linear_data()
    est = FixedRegressor(
        hidden_layer_sizes=(), prior_precision=delta, noise_std=sigma, random_state=0
    ).fit(X, y)
    make_stationary(est, X, y)
    Phi = np.hstack([X, np.ones((len(X), 1))])  # parameter order: weight, then bias
    mean, cov = blr_posterior(Phi, y, delta, sigma)
    np.testing.assert_allclose(est.posterior_.mean.numpy(), mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(est.posterior_.covariance().numpy(), cov, rtol=1e-8, atol=1e-12)

    X_test = np.random.RandomState(1).randn(7, 3) * 3
    Phi_test = np.hstack([X_test, np.ones((7, 1))])
    latent_var = np.einsum("ij,jk,ik->i", Phi_test, cov, Phi_test)
    y_mean, y_std = est.predict(X_test, return_std=True)
    np.testing.assert_allclose(y_mean, Phi_test @ mean, rtol=1e-8)
    np.testing.assert_allclose(y_std, np.sqrt(latent_var + sigma**2), rtol=1e-8)
    np.testing.assert_allclose(
        est.log_marginal_likelihood_, blr_log_evidence(Phi, y, delta, sigma), rtol=1e-8
    )

    gpr = GaussianProcessRegressor(
        kernel=ConstantKernel(1 / delta, "fixed") * DotProduct(sigma_0=1, sigma_0_bounds="fixed"),
        alpha=sigma**2,
        optimizer=None,
    ).fit(X, y)
    np.testing.assert_allclose(
        est.log_marginal_likelihood_, gpr.log_marginal_likelihood_value_, rtol=1e-8
    )
    gp_mean, gp_std = gpr.predict(X_test, return_std=True)
    epistemic, aleatoric = est.predict_uncertainty(X_test)
    np.testing.assert_allclose(np.sqrt(epistemic), gp_std, rtol=1e-7)
    np.testing.assert_allclose(aleatoric, sigma**2)
    np.testing.assert_allclose(y_mean, gp_mean, rtol=1e-7)


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


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("hidden, n", [((3,), 40), ((30,), 12)])
def test_weight_and_function_space_agree(hidden, n):
    # (3,) with n=40 has P=10 < n: weight space; (30,) with n=12 has P=91 > n: function space.
    X, y = gap_data(n)
    est = FixedRegressor(
        hidden_layer_sizes=hidden, prior_precision=0.7, noise_std=0.2, max_iter=300, random_state=0
    ).fit(X, y)
    expected_space = "weight" if est.posterior_.n_parameters < n else "function"
    assert est.posterior_.space == expected_space
    M, u = _whitened(est, X, y)
    from sklearn_dnn2gp.posteriors import FullPosterior

    mean = est.posterior_.mean
    weight = FullPosterior.from_ggn(mean, M.T @ M, 0.7)
    function = FullPosterior.from_whitened_jacobian(mean, M, 0.7)
    X_test = np.linspace(-6, 6, 9)[:, None]
    J = torch.tensor(est.features(X_test))
    np.testing.assert_allclose(
        weight.functional_variance(J), function.functional_variance(J), rtol=1e-8
    )
    np.testing.assert_allclose(weight.covariance(), function.covariance(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(weight.log_det_ratio(), function.log_det_ratio(), rtol=1e-8)
    b = M.T @ u
    np.testing.assert_allclose(
        (weight.spectral_coordinates(b) ** 2).sum(),
        (function.spectral_coordinates(b) ** 2).sum(),
        rtol=1e-8,
    )
    # Direct Cholesky path in function space equals the estimator's evidence and variance.
    const = -len(X) * np.log(0.2)
    np.testing.assert_allclose(
        est.log_marginal_likelihood_, float(whitened_log_evidence(M, u, 0.7)) + const, rtol=1e-8
    )
    epistemic, _ = est.predict_uncertainty(X_test)
    direct = torch.diagonal(whitened_latent_variance(M, J, 0.7), dim1=1, dim2=2)[:, 0]
    np.testing.assert_allclose(epistemic, direct.numpy(), rtol=1e-8)


def whitened_latent_variance(M, J_test, prior_precision):
    """``k** - k*^T (K + I)^-1 k*`` per test point by a direct Cholesky in function
    space (b, K, K): the independent truth for the estimator's latent variance.
    ``M`` holds the whitened training Jacobians (n, P), ``J_test`` the test
    points' Jacobians (b, K, P)."""
    M, J_test = M.to(torch.float64), J_test.to(torch.float64)
    n = M.shape[0]
    K = M @ M.T / prior_precision + torch.eye(n, dtype=M.dtype)
    chol = torch.linalg.cholesky(K)
    k_cross = J_test @ M.T / prior_precision  # (b, K, n)
    v = torch.linalg.solve_triangular(chol, k_cross.reshape(-1, n).T, upper=False)
    v = v.T.reshape(k_cross.shape)
    return J_test @ J_test.transpose(1, 2) / prior_precision - v @ v.transpose(1, 2)


def test_weight_space_samples_match_covariance():
    X, y = gap_data(12)
    est = FixedRegressor(hidden_layer_sizes=(4,), noise_std=0.3, random_state=0).fit(X, y)
    from sklearn_dnn2gp.posteriors import FullPosterior

    M, _ = _whitened(est, X, y)
    for post in (est.posterior_, FullPosterior.from_ggn(est.posterior_.mean, M.T @ M, 1.0)):
        g = torch.Generator().manual_seed(0)
        samples = post.sample(40000, g)
        emp = torch.cov(samples.T)
        np.testing.assert_allclose(
            emp, post.covariance(), atol=0.05 * post.covariance().diag().max()
        )


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


def test_predictive_std_grows_in_the_gap():
    X, y = gap_data(80)
    est = FixedRegressor(hidden_layer_sizes=(30,), noise_std=0.1, prior_precision=1.0,
                          random_state=0).fit(X, y)
    in_gap = np.array([[-0.5], [0.0], [0.5]])
    _, std_data = est.predict(X, return_std=True)
    _, std_gap = est.predict(in_gap, return_std=True)
    assert std_gap.min() > 1.5 * std_data.max()
    epistemic_data, _ = est.predict_uncertainty(X)
    epistemic_gap, _ = est.predict_uncertainty(in_gap)
    assert np.sqrt(epistemic_gap.min()) > 4 * np.sqrt(np.median(epistemic_data))


def test_return_cov_diagonal_is_std_squared():
    X, Y = _linear_data(k=2)
    est = FixedRegressor(hidden_layer_sizes=(5,), noise_std=[0.3, 0.6], random_state=0).fit(X, Y)
    _, std = est.predict(X[:6], return_std=True)
    _, cov = est.predict(X[:6], return_cov=True)
    assert cov.shape == (6, 6, 2)
    np.testing.assert_allclose(np.diagonal(cov, axis1=0, axis2=1).T, std**2, rtol=1e-10)
    with pytest.raises(RuntimeError):
        est.predict(X, return_std=True, return_cov=True)


def test_integer_sample_weights_equal_repeated_rows():
    X, y = gap_data(20)
    weights = np.random.RandomState(0).randint(0, 4, len(y))
    a = FixedRegressor(hidden_layer_sizes=(5,), noise_std=0.2, random_state=0)
    b = FixedRegressor(**a.get_params())
    a.fit(X, y, sample_weight=weights)
    X_rep, y_rep = np.repeat(X, weights, axis=0), np.repeat(y, weights)
    b.fit(X_rep, y_rep)
    # The two objectives are the same function; L-BFGS takes different float paths, so
    # both are moved to the exact stationary point before comparing.
    make_stationary(a, X, y, sample_weight=weights)
    make_stationary(b, X_rep, y_rep)
    np.testing.assert_allclose(a.loss_curve_[-1], b.loss_curve_[-1], rtol=1e-10)
    X_test = np.linspace(-5, 5, 7)[:, None]
    for ra, rb in zip(a.predict(X_test, return_std=True), b.predict(X_test, return_std=True)):
        np.testing.assert_allclose(ra, rb, rtol=1e-5)
    np.testing.assert_allclose(a.log_marginal_likelihood_, b.log_marginal_likelihood_, rtol=1e-6)


def test_kernel_and_features_of_linear_model():
    X, y = _linear_data(n=10)
    est = FixedRegressor(hidden_layer_sizes=()).fit(X, y)
    Phi = np.hstack([X, np.ones((10, 1))])
    np.testing.assert_allclose(est.features(X)[:, 0], Phi)
    np.testing.assert_allclose(est.kernel(X), Phi @ Phi.T, rtol=1e-12)
    np.testing.assert_allclose(est.kernel(X, X[:3], mode="full"), Phi @ Phi[:3].T, rtol=1e-12)
    with pytest.raises(ValueError, match="mode"):
        est.kernel(X, mode="bogus")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_determinism_and_pickle():
    X, y = gap_data(30)
    params = dict(hidden_layer_sizes=(8,), solver="adam", max_iter=50, random_state=3)
    a = FixedRegressor(**params).fit(X, y)
    b = FixedRegressor(**params).fit(X, y)
    c = FixedRegressor(**{**params, "random_state": 4}).fit(X, y)
    X_test = np.linspace(-5, 5, 11)[:, None]
    np.testing.assert_array_equal(a.predict(X_test), b.predict(X_test))
    assert not np.allclose(a.predict(X_test), c.predict(X_test))
    state = torch.random.get_rng_state()
    FixedRegressor(**params).fit(X, y)
    assert torch.equal(state, torch.random.get_rng_state()), "global torch RNG was used"
    restored = pickle.loads(pickle.dumps(a))
    for ra, rb in zip(
        a.predict(X_test, return_std=True), restored.predict(X_test, return_std=True)
    ):
        np.testing.assert_array_equal(ra, rb)
    assert restored.log_marginal_likelihood(0.5) == a.log_marginal_likelihood(0.5)


def test_float32_network():
    X, y = gap_data(30)
    est = FixedRegressor(
        hidden_layer_sizes=(8,), dtype="float32", noise_std=0.2, random_state=0
    ).fit(X, y)
    ref = FixedRegressor(hidden_layer_sizes=(8,), noise_std=0.2, random_state=0).fit(X, y)
    assert next(est.module_.parameters()).dtype == torch.float32
    _, std = est.predict(X, return_std=True)
    _, std_ref = ref.predict(X, return_std=True)
    np.testing.assert_allclose(std, std_ref, rtol=0.1)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"prior_precision": -1.0}, "prior_precision"),
        ({"prior_precision": 0.0}, "prior_precision"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"noise_std": [0.1, 0.2]}, "noise_std"),
        ({"activation": "softsign"}, "activation"),
        ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes"),
        ({"solver": "sgd"}, "solver"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_bad_hyperparameters(params, match):
    X, y = gap_data(10)
    with pytest.raises(ValueError, match=match):
        FixedRegressor(**params).fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_bad_input():
    X, y = gap_data(10)
    est = FixedRegressor(hidden_layer_sizes=(3,), max_iter=20)
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb[0, 0] = bad
        with pytest.raises(ValueError, match="NaN|infinity"):
            est.fit(Xb, y)
        yb = y.copy()
        yb[1] = bad
        with pytest.raises(ValueError, match="NaN|infinity"):
            est.fit(X, yb)
    with pytest.raises(ValueError, match="0 sample"):
        est.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="dim 3"):
        est.fit(X[:, :, None], y)
    est.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(np.hstack([X, X]))
    with pytest.raises(ValueError, match="dim 3|2D"):
        est.predict(X[:, :, None])
    with pytest.raises(ValueError, match="prior_precision"):
        est.log_marginal_likelihood(prior_precision=-1)


def test_divergence_names_the_learning_rate():
    X, y = gap_data(20)
    est = FixedRegressor(
        hidden_layer_sizes=(), solver="adam", learning_rate_init=1e200, max_iter=50
    )
    with pytest.raises(ValueError, match="learning_rate_init"):
        est.fit(X * 1e100, y)


def test_cuda_requested_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    X, y = gap_data(10)
    with pytest.raises(ValueError, match="CUDA"):
        FixedRegressor(device="cuda").fit(X, y)


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


def test_warm_start_continues_from_the_previous_weights():
    X, y = gap_data(40)
    est = FixedRegressor(hidden_layer_sizes=(8,), noise_std=0.2, random_state=0).fit(X, y)
    cold = FixedRegressor(**{**est.get_params(), "prior_precision": 1.5}).fit(X, y)
    est.set_params(prior_precision=1.5, warm_start=True).fit(X, y)
    assert est.n_iter_ < cold.n_iter_
    np.testing.assert_allclose(est.log_marginal_likelihood_, cold.log_marginal_likelihood_,
                               rtol=1e-4)
    # Another architecture cannot be warm-started: a fresh network, as a cold fit.
    est.set_params(hidden_layer_sizes=(5,)).fit(X, y)
    fresh = FixedRegressor(**{**est.get_params(), "warm_start": False}).fit(X, y)
    np.testing.assert_array_equal(est.predict(X), fresh.predict(X))


def test_gp_mean_is_the_function_space_posterior_mean():
    # Theorem 1's GP mean, k*^T (K + sigma^2 I)^-1 y~ on top of the linearisation, computed
    # in numpy from the kernel and the transformed targets; at a stationary point it is the
    # network output.
    X, y = gap_data(25)
    delta, sigma = 0.7, 0.2
    est = FixedRegressor(hidden_layer_sizes=(8,), prior_precision=delta, noise_std=sigma,
                          max_iter=40, random_state=0)
    with pytest.warns(Warning, match="max_iter"):
        est.fit(X, y)
    J = est.features(X)[:, 0]
    w = est.posterior_.mean.numpy()
    y_tilde = y + J @ w - est.predict(X)
    X_test = np.linspace(-6, 6, 9)[:, None]
    J_test = est.features(X_test)[:, 0]
    K = J @ J.T / delta + sigma**2 * np.eye(len(y))
    expected = (est.predict(X_test) - J_test @ w
                + (J_test @ J.T / delta) @ np.linalg.solve(K, y_tilde))
    gp_mean, gp_std = est.predict(X_test, return_std=True, mean="gp")
    np.testing.assert_allclose(gp_mean, expected, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gp_std, est.predict(X_test, return_std=True)[1])
    assert not np.allclose(gp_mean, est.predict(X_test), atol=1e-3)  # far from stationary

    # At any weights the GP mean is one Gauss-Newton step away from the network:
    # J* (w_lin - w) = -J* Sigma grad L(w), with grad L by autograd.
    objective, w_ = objective_gradient(est, X, y)
    grad = torch.autograd.grad(objective(w_), w_)[0]
    step = -est.posterior_.covariance_product(grad).numpy()
    np.testing.assert_allclose(gp_mean - est.predict(X_test), J_test @ step,
                               rtol=1e-7, atol=1e-10)
    # ... so at a stationary point the two means coincide.
    make_stationary(est, X, y)
    np.testing.assert_allclose(est.predict(X_test, mean="gp"), est.predict(X_test),
                               rtol=1e-7, atol=1e-9)
    with pytest.raises(ValueError, match="mean"):
        est.predict(X_test, mean="posterior")


def test_cholesky_and_spectral_paths_agree():
    # The fitted posterior answers through a Cholesky factor and computes the
    # eigendecomposition only when the evidence is asked at other hyperparameters;
    # both are exact, so they must agree to round-off.
    rng = np.random.RandomState(0)
    M = torch.tensor(rng.randn(60, 25))
    mean = torch.tensor(rng.randn(25))
    J = torch.tensor(rng.randn(7, 2, 25))
    v = torch.tensor(rng.randn(25))
    from sklearn_dnn2gp.posteriors import FullPosterior

    cholesky = FullPosterior.from_ggn(mean, M.T @ M, 0.3).with_hyperparameters(None, 0.5)
    spectral = FullPosterior.from_ggn(mean, M.T @ M, 0.3).with_hyperparameters(None, 0.5)
    assert spectral.eigvals is not None and spectral.cholesky() is None
    assert cholesky.cholesky() is not None
    for method in ["log_det_ratio", "covariance", "precision"]:
        np.testing.assert_allclose(getattr(cholesky, method)(), getattr(spectral, method)(),
                                   rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cholesky.functional_variance(J), spectral.functional_variance(J),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cholesky.covariance_product(v), spectral.covariance_product(v),
                               rtol=1e-10, atol=1e-12)
    g = torch.Generator().manual_seed(0)
    samples = cholesky.sample(20000, g) - mean
    np.testing.assert_allclose(torch.cov(samples.T), spectral.covariance(),
                               atol=0.05 * float(spectral.covariance().diag().max()))


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
