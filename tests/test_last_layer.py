"""subset_of_weights='last_layer': Bayesian linear regression on the learned features."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from ._helpers import FixedClassifier, FixedRegressor, blr_log_evidence, blr_posterior, gap_data

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _features(est, X):
    """The last hidden layer's outputs with a column of ones (the bias), in numpy."""
    with torch.no_grad():
        h = est.module_[:-1](torch.tensor(X)).numpy()
    return np.hstack([h, np.ones((len(X), 1))])


@pytest.mark.parametrize("posterior", ["full", "kron", "diag"])
def test_last_layer_is_bayesian_linear_regression_on_the_features(posterior):
    X, y = gap_data(50)
    delta, sigma = 0.8, 0.2
    est = FixedRegressor(hidden_layer_sizes=(12, 6), prior_precision=delta, noise_std=sigma,
                          subset_of_weights="last_layer", posterior=posterior,
                          random_state=0).fit(X, y)
    Phi = _features(est, X)
    # The parameter order of the output layer is its 6 weights, then its bias.
    _, cov = blr_posterior(Phi, y, delta, sigma)  # the mean is where training stopped
    X_test = np.linspace(-6, 6, 9)[:, None]
    Phi_test = _features(est, X_test)
    epistemic, _ = est.predict_uncertainty(X_test)
    assert est.posterior_.n_parameters == 7
    if posterior == "diag":
        precision = Phi.T @ Phi / sigma**2
        variances = 1 / (np.diag(precision) + delta)
        np.testing.assert_allclose(epistemic, (Phi_test**2) @ variances, rtol=1e-8)
        return
    # One output and one layer: K-FAC's Kronecker product is the exact GGN
    # (G = N / sigma^2 times A / N = Phi^T Phi / sigma^2).
    np.testing.assert_allclose(est.posterior_.covariance(), cov, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(epistemic, np.einsum("ij,jk,ik->i", Phi_test, cov, Phi_test),
                               rtol=1e-8)
    np.testing.assert_allclose(est.features(X_test)[:, 0], Phi_test, rtol=1e-12)
    np.testing.assert_allclose(est.kernel(X_test), Phi_test @ Phi_test.T, rtol=1e-12)
    # The evidence is that of the linear model on the features: its targets are the
    # transformed ones, y + Phi w_L - f = y since the output layer is linear.
    np.testing.assert_allclose(est.log_marginal_likelihood_,
                               blr_log_evidence(Phi, y, delta, sigma), rtol=1e-8)
    if posterior == "full":
        # Elsewhere only the full posterior has the GP evidence (the linear model
        # refitted); K-FAC and the diagonal re-evaluate the Laplace form at w*.
        np.testing.assert_allclose(est.log_marginal_likelihood(2.0, 0.5),
                                   blr_log_evidence(Phi, y, 2.0, 0.5), rtol=1e-8)



def test_last_layer_classifier_and_refusals():
    X, y = make_blobs(60, centers=3, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(8,), subset_of_weights="last_layer",
                           random_state=0).fit(X, y)
    assert clf.posterior_.n_parameters == 8 * 3 + 3
    proba = clf.predict_proba(X, "probit")
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-12)
    assert clf.features(X[:2]).shape == (2, 3, 27)
    with pytest.raises(ValueError, match="last_layer"):
        FixedRegressor(hidden_layer_sizes=(3,), inference="vi", max_iter=2,
                        subset_of_weights="last_layer").fit(*gap_data(10))
