"""The K-FAC posterior (posterior='kron') in the estimators: the classifier, 'auto'
taking it when a full posterior does not fit, and every predictive method reading
the layer factors. The structure's own maths (KronPosterior, KronCurvature) is in
tests/test_posterior.py, its evidence in tests/test_evidence.py."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from sklearn_dnn2gp import _resources
from sklearn_dnn2gp.posteriors import KronPosterior

from ._helpers import FixedClassifier, FixedRegressor, _relative_error, gap_data

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_kron_predictive_and_classifier():
    X, y = make_blobs(60, centers=3, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(8,), posterior="kron", random_state=0).fit(X, y)
    far = X * 30
    _, var = clf.predict_latent(far)
    _, var_data = clf.predict_latent(X)
    # Saturated tanh units cap the growth; the logits are still less certain away
    # from the data than on it.
    assert np.median(np.trace(var, axis1=1, axis2=2)) > np.median(
        np.trace(var_data, axis1=1, axis2=2))
    proba = clf.predict_proba(far, "probit")
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-12)
    assert np.isfinite(clf.log_marginal_likelihood_)


def test_auto_takes_kron_when_the_full_posterior_is_too_big(monkeypatch):
    X, y = gap_data(300)  # 300 rows > 286 parameters: the weight-space full posterior
    reg = FixedRegressor(hidden_layer_sizes=(15, 15), max_iter=20, random_state=0).fit(X, y)
    assert reg._structure() == "full"
    monkeypatch.setattr(_resources, "available_memory", lambda device: 10**6)
    assert reg.fit(X, y)._structure() == "kron"
    assert isinstance(reg.posterior_, KronPosterior)
    # VI takes a K-FAC q too (tests/test_vi.py).
    vi = FixedRegressor(hidden_layer_sizes=(3,), inference="vi", posterior="kron", max_iter=2)
    assert isinstance(vi.fit(X, y).posterior_, KronPosterior)


def _jacobian_path_latent(est, X):
    """``J Sigma J^T`` from the full per-example Jacobians, with the fitted posterior."""
    f, var = [], []
    for f_chunk, J in est._jacobian_chunks(X):
        f.append(f_chunk.to(torch.float64))
        var.append(est.posterior_.functional_variance(J))
    return torch.cat(f), torch.cat(var)


@pytest.mark.parametrize("subset", ["all", "last_layer"])
@pytest.mark.parametrize("task", ["regression", "regression2", "binary", "multiclass"])
def test_kron_predictive_uses_the_layer_factors(task, subset, monkeypatch):
    # Every predictive method of a fitted kron estimator reads the layer factors and
    # gives the Jacobian path's numbers to round-off (float64).
    rng = np.random.RandomState(0)
    X = rng.randn(60, 3)
    if task.startswith("regression"):
        y = np.sin(X[:, 0]) + 0.1 * rng.randn(60)
        if task == "regression2":
            y = np.column_stack([y, np.cos(X[:, 1])])
        est = FixedRegressor(hidden_layer_sizes=(6, 5), posterior="kron", noise_std=0.3,
                              subset_of_weights=subset, max_iter=50, random_state=0)
    else:
        y = (X[:, 0] + X[:, 1] > 0).astype(int)
        if task == "multiclass":
            y = y + (X[:, 2] > 0.5)
        est = FixedClassifier(hidden_layer_sizes=(6, 5), posterior="kron",
                               subset_of_weights=subset, max_iter=50, random_state=0)
    est.fit(X, y)
    X_new = 2 * rng.randn(25, 3)
    f_ref, var_ref = _jacobian_path_latent(est, X_new)
    f, var = est._latent(X_new)
    assert var.shape == var_ref.shape
    assert _relative_error(var, var_ref) < 1e-10
    np.testing.assert_allclose(f, f_ref, rtol=1e-12, atol=1e-12)

    # The public methods take the layer path: the Jacobians are never formed.
    def no_jacobians(*args, **kwargs):
        raise AssertionError("the Jacobian path was taken")

    monkeypatch.setattr(type(est), "_jacobian_chunks", no_jacobians)
    if task.startswith("regression"):
        _, std = est.predict(X_new, return_std=True)
        std = std.reshape(len(X_new), -1)
        latent = np.diagonal(var_ref.numpy(), axis1=1, axis2=2)
        np.testing.assert_allclose(std**2, latent + est.noise_std_**2, rtol=1e-10)
        epistemic, _ = est.predict_uncertainty(X_new)
        np.testing.assert_allclose(epistemic.reshape(latent.shape), latent, rtol=1e-10)
    else:
        _, latent = est.predict_latent(X_new)
        assert _relative_error(latent, var_ref) < 1e-10
        np.testing.assert_allclose(est.predict_proba(X_new, "probit").sum(1), 1, rtol=1e-12)
        est.predict_uncertainty(X_new)
