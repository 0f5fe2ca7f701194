"""Posterior structures: the table of structures, and a new one registered in one place."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor
from sklearn_dnn2gp._curvature import ggn
from sklearn_dnn2gp._network import flat_parameters
from sklearn_dnn2gp.posteriors import (
    POSTERIOR_OPTIONS,
    POSTERIORS,
    DiagPosterior,
    posterior_structure,
    register_posterior,
)


class IsotropicPosterior(DiagPosterior):
    """``N(w*, (s g + delta)^-1 I)`` with ``g`` the mean of the GGN's diagonal: a toy
    structure, written the way a user would add one (a class and its registration)."""

    @classmethod
    def data_curvature(cls, module, likelihood, X, weights):
        diagonal = ggn(module, likelihood, X, weights, "diag")
        return diagonal.mean().expand_as(diagonal).clone()

    @classmethod
    def from_data(cls, module, likelihood, X, weights, prior_precision):
        mean = flat_parameters(module).to(torch.float64)
        return cls(mean, prior_precision, cls.data_curvature(module, likelihood, X, weights))


@pytest.fixture
def isotropic():
    register_posterior("isotropic", IsotropicPosterior)
    yield
    POSTERIORS.pop("isotropic")
    POSTERIOR_OPTIONS.discard("isotropic")


def test_an_unknown_structure_fails_by_name():
    with pytest.raises(ValueError, match="Unknown posterior structure 'nope'.*'diag'"):
        posterior_structure("nope")
    with pytest.raises(ValueError, match="posterior"):
        DNN2GPRegressor(posterior="nope").fit(np.zeros((4, 1)), np.arange(4.0))
    with pytest.raises(ValueError, match="'auto'"):
        register_posterior("auto", IsotropicPosterior)


def test_a_registered_structure_runs_fit_predict_evidence_and_the_gp_view(isotropic):
    # A network without hidden layers is Bayesian linear regression: with J = [x, 1]
    # and the isotropic posterior Sigma = I / (g + delta), g = mean_j sum_i J_ij^2 /
    # sigma^2, every output below has a closed form.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -0.5, 2.0]) + 0.1 * rng.normal(size=40)
    delta, sigma = 2.0, 0.5
    reg = DNN2GPRegressor(hidden_layer_sizes=(), prior_precision=delta, noise_std=sigma,
                          normalize_y=False, posterior="isotropic", dtype="float64",
                          random_state=0).fit(X, y)
    assert type(reg.posterior_) is IsotropicPosterior
    J = np.column_stack([X, np.ones(len(X))])
    g = (J**2).sum(0).mean() / sigma**2
    X_test = rng.normal(size=(5, 3))
    J_test = np.column_stack([X_test, np.ones(5)])
    _, std = reg.predict(X_test, return_std=True)
    np.testing.assert_allclose(std**2, (J_test**2).sum(1) / (g + delta) + sigma**2,
                               rtol=1e-10)
    # Module order, (weight, bias), is J's column order (x, 1).
    w = np.concatenate([p.detach().numpy().ravel() for p in reg.module_.parameters()])
    residual = y - J @ w
    log_likelihood = (-0.5 * (residual**2).sum() / sigma**2 - len(y) * np.log(sigma)
                      - 0.5 * len(y) * np.log(2 * np.pi))
    evidence = (log_likelihood - 0.5 * delta * w @ w
                - 0.5 * J.shape[1] * np.log((g + delta) / delta))
    assert reg.log_marginal_likelihood_ == pytest.approx(evidence, rel=1e-10)
    # At other hyperparameters without refitting: s = 1 / c^2 scales g.
    c = 2.0
    moved = (log_likelihood + 0.5 * (1 - 1 / c**2) * (residual**2).sum() / sigma**2
             - len(y) * np.log(c) - 0.5 * 3.0 * w @ w
             - 0.5 * J.shape[1] * np.log((g / c**2 + 3.0) / 3.0))
    assert reg.log_marginal_likelihood(3.0, c * sigma) == pytest.approx(moved, rel=1e-10)
    # The GP view: the kernel and features do not depend on the structure.
    np.testing.assert_allclose(reg.kernel(X_test), J_test @ J_test.T, rtol=1e-10)
    np.testing.assert_allclose(reg.features(X_test)[:, 0], J_test, rtol=1e-12)


def test_a_registered_structure_serves_the_evidence_search_and_vi(isotropic):
    rng = np.random.RandomState(1)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int)
    clf = DNN2GPClassifier(hidden_layer_sizes=(5,), posterior="isotropic",
                           random_state=0).fit(X, y)
    assert type(clf.posterior_) is IsotropicPosterior
    assert len(clf.evidence_trace_) > 2 and np.isfinite(clf.log_marginal_likelihood_)
    proba = clf.predict_proba(X[:7])
    np.testing.assert_allclose(proba.sum(1), 1.0)
    # VI keeps q in the structure's form: one common variance.
    vi = DNN2GPClassifier(hidden_layer_sizes=(5,), posterior="isotropic", inference="vi",
                          prior_precision=1.0, max_iter=20, random_state=0)
    with pytest.warns(ConvergenceWarning):  # 20 epochs: enough to hold q's form
        vi.fit(X, y)
    assert type(vi.posterior_) is IsotropicPosterior
    variances = vi.posterior_.variances()
    np.testing.assert_allclose(variances, variances[0], rtol=1e-12)
