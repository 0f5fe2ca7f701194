"""The NTK as a scikit-learn kernel and transformer (``kernels.py``, the GP view of
``_views.py``): identities of the GP view (Theorem 1) checked in float64 against
independent computations. The transformed targets' formulas are checked in
tests/test_likelihoods.py."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, WhiteKernel
from sklearn.linear_model import BayesianRidge, Ridge
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline

from sklearn_dnn2gp.kernels import NTKFeatures, NTKKernel

from ._helpers import (
    FixedClassifier,
    FixedRegressor,
    _reference_jacobian,
    _weights,
    gap_data,
    make_stationary,
)

# Float64 throughout: the identities hold to round-off, and these tolerances are
# a few orders of magnitude above it for the small, moderately conditioned
# systems below.
RTOL = 1e-6


# The identities hold at any weights, so a short training budget is enough.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.mark.parametrize("fixture", ["regressor", "multiclass", "two_targets"])
def test_kernel_is_jacobian_product_and_psd(fixture, request):
    est, X, _ = request.getfixturevalue(fixture)
    J = _reference_jacobian(est, X)
    n, k, _ = J.shape
    expected = {"trace": np.einsum("ikp,jkp->ij", J, J),
                "sum": J.sum(1) @ J.sum(1).T,
                **{j: J[:, j] @ J[:, j].T for j in range(k)}}
    for mode, reference in expected.items():
        K = NTKKernel(est, mode=mode)(X)
        np.testing.assert_allclose(K, reference, rtol=RTOL, atol=0)
        np.testing.assert_array_equal(K, K.T)
        np.testing.assert_allclose(NTKKernel(est, mode=mode).diag(X), np.diag(reference),
                                   rtol=RTOL)
        # PSD up to round-off of the largest eigenvalue.
        eigenvalues = np.linalg.eigvalsh(K)
        assert eigenvalues.min() > -1e-10 * eigenvalues.max()
    # 'trace' is the sum of the K per-output diagonal blocks of 'full', 'sum' of all
    # entries of each block; the estimator's own kernel() agrees with the adapter.
    blocks = est.kernel(X, mode="full").reshape(n, k, n, k)
    np.testing.assert_allclose(np.einsum("ikjk->ij", blocks), est.kernel(X, mode="trace"),
                               rtol=1e-12)
    np.testing.assert_allclose(blocks.sum(axis=(1, 3)), est.kernel(X, mode="sum"), rtol=1e-12)
    np.testing.assert_allclose(est.kernel(X, X[:5]), NTKKernel(est)(X, X[:5]), rtol=1e-12)


def test_kernel_modes_and_errors(multiclass):
    est, X, _ = multiclass
    with pytest.raises(ValueError, match="mode must be 'trace', 'sum' or an output index"):
        NTKKernel(est, mode=3)(X)
    with pytest.raises(ValueError, match="Gradient can only be evaluated when Y is None"):
        NTKKernel(est)(X, X, eval_gradient=True)
    with pytest.raises(NotFittedError):
        NTKKernel(FixedRegressor())(X)
    assert not NTKKernel(est).is_stationary()
    assert NTKKernel(est).requires_vector_input


def test_kernel_clone_pickle_params_and_arithmetic(regressor):
    est, X, _ = regressor
    kernel = NTKKernel(est) / 2.0
    K = NTKKernel(est)(X)
    assert repr(kernel) == "NTKKernel(DNN2GPRegressor, mode='trace', scale=0.5)"
    assert kernel.get_params() == {"estimator": est, "mode": "trace", "scale": 0.5,
                                   "scale_bounds": "fixed"}
    cloned = clone(kernel)
    # The clone shares the trained network: a fresh copy would be unfitted.
    assert cloned.estimator is est and cloned == kernel and cloned is not kernel
    restored = pickle.loads(pickle.dumps(kernel))
    np.testing.assert_array_equal(restored(X), kernel(X))
    np.testing.assert_array_equal(kernel(X), K / 2)

    # No hyperparameters unless the scale may move: an empty gradient.
    assert kernel.theta.shape == (0,) and kernel.n_dims == 0
    _, gradient = kernel(X, eval_gradient=True)
    assert gradient.shape == (len(X), len(X), 0)
    free = NTKKernel(est, scale=3.0, scale_bounds=(1e-3, 1e3))
    np.testing.assert_allclose(free.theta, [np.log(3.0)])
    value, gradient = free(X, eval_gradient=True)
    np.testing.assert_array_equal(gradient[:, :, 0], value)  # dK / dlog(scale) = K
    np.testing.assert_allclose((free / 3.0).bounds, np.log([[1e-3 / 3, 1e3 / 3]]))
    np.testing.assert_allclose(free.clone_with_theta(np.log([0.5]))(X), K / 2)

    combined = NTKKernel(est) * ConstantKernel(2.0) + WhiteKernel(0.1)
    np.testing.assert_allclose(combined(X), 2 * K + 0.1 * np.eye(len(X)), rtol=1e-12)
    np.testing.assert_allclose(combined.diag(X), np.diag(2 * K) + 0.1, rtol=1e-12)
    value, gradient = combined(X, eval_gradient=True)
    assert gradient.shape == (len(X), len(X), 2)  # the constant and the noise
    assert clone(combined).k1.k1.estimator is est
    assert combined.get_params()["k1__k1__estimator"] is est
    np.testing.assert_allclose(pickle.loads(pickle.dumps(combined))(X), value)


def test_gaussian_process_regressor_reproduces_the_gp_view(regressor):
    # Theorem 1: GP(0, J J^T / delta) on y~ with noise sigma^2 is the estimator's
    # posterior; std and mean agree at any weights (training stopped early here).
    est, X, y = regressor
    delta, sigma = est.prior_precision_, est.noise_std_[0]
    X_new = np.linspace(-6, 6, 13)[:, None]
    gp = GaussianProcessRegressor(NTKKernel(est) / delta, alpha=sigma**2, optimizer=None)
    gp.fit(X, est.transformed_targets(X, y))
    mean, std = gp.predict(X_new, return_std=True)
    epistemic, _ = est.predict_uncertainty(X_new)
    np.testing.assert_allclose(std, np.sqrt(epistemic), rtol=RTOL)
    # The GP mean is that of the linear model; adding f(x) - J(x) w* gives the
    # network-space GP mean.
    offset = est.predict(X_new) - _reference_jacobian(est, X_new)[:, 0] @ _weights(est)
    np.testing.assert_allclose(mean + offset, est.predict(X_new, mean="gp"), rtol=RTOL)
    assert not np.allclose(mean + offset, est.predict(X_new), rtol=1e-3)  # not stationary
    # Through pickling the fitted GP predicts the same.
    np.testing.assert_allclose(pickle.loads(pickle.dumps(gp)).predict(X_new), mean, rtol=1e-12)


def test_binary_classifier_gp_view():
    # The logits' GP: noise variance 1 / (p (1 - p)) per training point. At a
    # stationary point its mean, mapped back, is the network's logit.
    X, y = gap_data(24)
    labels = (y > 0).astype(int)
    clf = FixedClassifier(hidden_layer_sizes=(3,), prior_precision=1.0, random_state=0)
    make_stationary(clf, X, labels)
    p = clf.predict_proba(X, link_approximation="plugin")[:, 1]
    gp = GaussianProcessRegressor(NTKKernel(clf) / clf.prior_precision_,
                                  alpha=1 / (p * (1 - p)), optimizer=None)
    gp.fit(X, clf.transformed_targets(X, labels))
    X_new = np.linspace(-6, 6, 9)[:, None]
    mean, std = gp.predict(X_new, return_std=True)
    logits, logit_cov = clf.predict_latent(X_new)
    np.testing.assert_allclose(std, np.sqrt(logit_cov[:, 0, 0]), rtol=RTOL)
    offset = logits[:, 0] - _reference_jacobian(clf, X_new)[:, 0] @ _weights(clf)
    np.testing.assert_allclose(mean + offset, logits[:, 0], rtol=RTOL, atol=1e-8)


def test_features_transformer_in_a_pipeline(regressor, two_targets):
    est, X, y = regressor
    features = NTKFeatures(est).fit(X)
    phi = features.transform(X)
    np.testing.assert_allclose(phi, _reference_jacobian(est, X)[:, 0], rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(phi @ phi.T, NTKKernel(est)(X), rtol=1e-12)
    names = features.get_feature_names_out()
    assert len(names) == phi.shape[1] and names[0] == "ntkfeatures0"

    # Ridge with alpha = delta sigma^2 on y~ is the linear model's posterior mean.
    delta, sigma = est.prior_precision_, est.noise_std_[0]
    pipe = Pipeline([("ntk", NTKFeatures(est)),
                     ("ridge", Ridge(alpha=delta * sigma**2, fit_intercept=False))])
    y_tilde = est.transformed_targets(X, y)
    X_new = np.linspace(-5, 5, 7)[:, None]
    offset = est.predict(X_new) - NTKFeatures(est).fit_transform(X_new) @ _weights(est)
    cloned = clone(pipe)  # as any search would: the network stays trained
    assert cloned[0].estimator is est
    for model in (pipe, cloned):
        prediction = model.fit(X, y_tilde).predict(X_new)
        np.testing.assert_allclose(prediction + offset, est.predict(X_new, mean="gp"),
                                   rtol=RTOL)
    scores = cross_val_score(Pipeline([("ntk", NTKFeatures(est)), ("blr", BayesianRidge())]),
                             X, y_tilde, cv=3)
    assert scores.shape == (3,)

    est, X, Y = two_targets
    J = _reference_jacobian(est, X)
    for mode, expected in (("trace", J.reshape(len(X), -1)), ("sum", J.sum(1)), (1, J[:, 1])):
        np.testing.assert_allclose(NTKFeatures(est, mode=mode).fit_transform(X), expected,
                                   rtol=RTOL, atol=1e-12)


def test_features_fit_an_unfitted_estimator():
    X, y = gap_data(16)
    unfitted = FixedRegressor(hidden_layer_sizes=(2,), activation="relu", noise_std=0.1,
                               random_state=0)
    features = NTKFeatures(unfitted).fit(X, y)
    assert features.estimator_ is not unfitted and not hasattr(unfitted, "module_")
    assert features.transform(X).shape == (16, 7)
    assert clone(features).estimator is not unfitted  # unfitted: an ordinary clone
    with pytest.raises(ValueError, match="needs y to fit its unfitted estimator"):
        NTKFeatures(unfitted).fit(X)
    with pytest.raises(NotFittedError):
        NTKFeatures(unfitted).transform(X)


def test_features_transformer_counts_the_posteriors_weights():
    # Under a last-layer posterior (or a user module) the feature map is the Jacobian
    # with respect to the posterior's weights, not the whole network's.
    X, y = gap_data(30)
    est = FixedRegressor(hidden_layer_sizes=(6, 4), subset_of_weights="last_layer",
                          max_iter=50, random_state=0).fit(X, y)
    features = NTKFeatures(est).fit(X)
    assert features.transform(X).shape == (30, 5)
    assert len(features.get_feature_names_out()) == 5
