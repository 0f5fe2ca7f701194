"""DNN2GPRegressor (``_regressor.py``): the linear model as Bayesian linear
regression, the predictive (its uncertainty, covariance and GP mean), sample
weights, the features and kernel of a linear model, warm starts, determinism,
pickling and refusals. The evidence's maths is in tests/test_evidence.py, the
posterior structures' in tests/test_posterior.py."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, DotProduct

from ._helpers import (
    FixedRegressor,
    _linear_data,
    blr_log_evidence,
    blr_posterior,
    gap_data,
    make_stationary,
    objective_gradient,
)


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
