"""The residual GP of the classifier's predictive: its kernel, its leave-one-out,
its choice and what it changes."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs, make_moons
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier
from sklearn_dnn2gp._links import log_class_probabilities
from sklearn_dnn2gp._residual import (
    NOISE,
    SCALES,
    ResidualGP,
    select_scale,
    spline_kernel,
    spline_kernel_diagonal,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _relu_features_kernel(a, b, n=400_001):
    """Infinitely many ReLU features per input, by quadrature: the integral over the
    kink c of relu(x - c) relu(x' - c) for c > 0 plus its mirror for c < 0."""
    edge = max(np.abs(a).max(), np.abs(b).max())
    c = np.linspace(0, edge, n)
    out = 0.0
    for d in range(len(a)):
        up = np.maximum(a[d] - c, 0) * np.maximum(b[d] - c, 0)
        down = np.maximum(-a[d] - c, 0) * np.maximum(-b[d] - c, 0)
        out += np.trapezoid(up + down, c)
    return out / len(a)


def test_kernel_is_that_of_infinitely_many_relu_features():
    rng = np.random.RandomState(0)
    A = rng.normal(size=(4, 3)) * 2
    B = rng.normal(size=(5, 3))
    B[0] = -A[0]  # opposite signs everywhere: no shared feature
    K = spline_kernel(torch.as_tensor(A), torch.as_tensor(B)).numpy()
    truth = np.array([[_relu_features_kernel(a, b) for b in B] for a in A])
    # The trapezoid rule's error on these piecewise quadratics is O(h^2) ~ 1e-10.
    np.testing.assert_allclose(K, truth, rtol=1e-7, atol=1e-9)
    assert (K[0, 0] == 0)
    np.testing.assert_allclose(spline_kernel_diagonal(torch.as_tensor(A)).numpy(),
                               np.diag(spline_kernel(torch.as_tensor(A),
                                                     torch.as_tensor(A)).numpy()),
                               rtol=1e-14)


def test_leave_one_out_is_the_gp_conditioned_on_the_other_rows():
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(25, 3, generator=gen, dtype=torch.float64) * 2 + 1
    gp = ResidualGP(X, X[:12])
    # Independent truth: for each row, condition on the other eleven explicitly.
    Z = (X[:12] - X.mean(0)) / X.std(0, unbiased=False)
    K = spline_kernel(Z, Z).numpy()
    truth = []
    for i in range(12):
        rest = np.delete(np.arange(12), i)
        A = K[np.ix_(rest, rest)] + gp.noise * np.eye(11)
        k = K[rest, i]
        truth.append(K[i, i] - k @ np.linalg.solve(A, k))
    # Both are differences of O(1) numbers after solves with a matrix of condition
    # number up to ~1/NOISE: relative error ~1e-13.
    np.testing.assert_allclose(gp.leave_one_out_variance().numpy(), truth, rtol=1e-9,
                               atol=1e-12)
    # And the posterior variance at a row is the one with that row in: below the noise.
    at_rows = gp.variance(X[:12]).numpy()
    assert (at_rows <= gp.noise).all()
    assert (at_rows < gp.leave_one_out_variance().numpy()).all()


def test_weights_are_repeated_rows():
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(9, 3, generator=gen, dtype=torch.float64)
    weights = torch.tensor([1, 2, 3, 1, 0, 1, 2, 1, 0.5], dtype=torch.float64)
    keep = weights > 0
    weighted = ResidualGP(X, X[keep], weights, weights[keep])
    counts = torch.tensor([1, 2, 3, 1, 0, 1, 2, 1, 0])
    # Half a row has no repeated counterpart: compare the integer part only.
    whole = ResidualGP(X[:8], X[:8][keep[:8]], weights[:8], weights[:8][keep[:8]])
    repeated = ResidualGP(X[:8].repeat_interleave(counts[:8], 0),
                          X[:8].repeat_interleave(counts[:8], 0))
    new = torch.randn(5, 3, generator=gen, dtype=torch.float64) * 3
    np.testing.assert_allclose(whole.variance(new).numpy(), repeated.variance(new).numpy(),
                               rtol=1e-9)
    np.testing.assert_allclose(
        whole.leave_one_out_variance().repeat_interleave(counts[:8][keep[:8]]).numpy(),
        repeated.leave_one_out_variance().numpy(), rtol=1e-7)
    # A fractional weight leaves that fraction out: still a finite, positive variance.
    loo = weighted.leave_one_out_variance().numpy()
    assert np.isfinite(loo).all() and (loo > 0).all()


def test_blocks_of_rows_do_not_change_the_variance(monkeypatch):
    import sklearn_dnn2gp._residual as residual

    gen = torch.Generator().manual_seed(3)
    X = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    gp = ResidualGP(X, X[:20])
    new = torch.randn(47, 4, generator=gen, dtype=torch.float64) * 2
    whole = gp.variance(new)
    monkeypatch.setattr(residual, "_BLOCK", 60)  # three rows at a time
    np.testing.assert_allclose(gp.variance(new).numpy(), whole.numpy(), rtol=1e-12)
    assert gp.variance(new[:0]).shape == (0,)


def test_variance_is_small_on_the_data_and_the_prior_far_away():
    X, _ = make_moons(200, noise=0.2, random_state=0)
    X_t = torch.as_tensor(X)
    gp = ResidualGP(X_t, X_t)
    Z = (X_t - X_t.mean(0)) / X_t.std(0, unbiased=False)
    prior_data = spline_kernel_diagonal(Z).mean()
    assert gp.variance(X_t).mean() < 2 * NOISE * prior_data
    far = X_t.mean(0) + 10 * (X_t - X_t.mean(0))
    prior_far = spline_kernel_diagonal((far - X_t.mean(0)) / X_t.std(0, unbiased=False))
    far_variance = gp.variance(far)
    # Conditioning never adds variance; ten times out (prior |x|^3: 1000x larger) the
    # data explain about half of it (the spline extrapolates), not the growth.
    assert (far_variance <= prior_far * (1 + 1e-12)).all()
    assert far_variance.mean() > 100 * prior_data


def test_select_scale_takes_the_largest_within_the_tolerance():
    scales = np.array([0.0, 0.1, 1.0, 10.0])
    assert select_scale(scales, np.array([1.0, 1.001, 1.009, 1.02])) == 1.0
    assert select_scale(scales, np.array([1.0, 1.001, 1.02, 1.001])) == 0.1
    assert select_scale(scales, np.array([1.0, 1.0, 1.0, 1.0])) == 10.0
    assert select_scale(scales, np.array([1.0, np.nan, 1.0, 1.0])) == 0.0
    assert select_scale(scales, np.array([np.nan, 1.0, 1.0, 1.0])) == 0.0
    assert select_scale(scales, np.array([1.0, 1.04, 1.0, 1.0]), tolerance=0.05) == 10.0


@pytest.fixture(scope="module")
def moons():
    X, y = make_moons(150, noise=0.25, random_state=0)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def fitted(moons):
    X, y = moons
    return DNN2GPClassifier(hidden_layer_sizes=(10,), random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def without(moons):
    X, y = moons
    return DNN2GPClassifier(hidden_layer_sizes=(10,), residual_scale=0.0,
                            random_state=0).fit(X, y)


def test_auto_scale_is_on_the_grid_with_its_curve(fitted):
    curve = fitted.residual_curve_
    assert set(curve) == {"scale", "fit_nll"}
    np.testing.assert_array_equal(curve["scale"], SCALES)
    assert fitted.residual_scale_ == select_scale(SCALES, curve["fit_nll"])
    # On this noisy problem the residual is chosen, and raised the criterion at most 1%.
    assert fitted.residual_scale_ > 0
    assert curve["fit_nll"][SCALES == fitted.residual_scale_][0] <= 1.01 * curve["fit_nll"][0]


def test_residual_adds_variance_to_the_predictive_only(moons, fitted, without):
    X, _ = moons
    far = X * 10
    # The same training, temperature, GP view and evidence.
    assert fitted.temperature_ == without.temperature_
    for a, b in zip(fitted.predict_latent(far), without.predict_latent(far)):
        np.testing.assert_array_equal(a, b)
    assert fitted.log_marginal_likelihood_ == without.log_marginal_likelihood_
    # The predictive: the probit of mean f and variance T v + s r(x).
    f, var = fitted.predict_latent(far)
    r = fitted._residual.variance(torch.as_tensor(far)).numpy()
    z = f[:, 0] / np.sqrt(1 + np.pi / 8 * (fitted.temperature_ * var[:, 0, 0]
                                           + fitted.residual_scale_ * r))
    np.testing.assert_allclose(fitted.predict_proba(far)[:, 1], 1 / (1 + np.exp(-z)),
                               rtol=1e-10)
    # Far from the data it lowers the confidence; on the data it hardly moves it.
    assert fitted.score_samples(far).mean() < without.score_samples(far).mean() - 0.1
    np.testing.assert_allclose(fitted.predict_proba(X), without.predict_proba(X), atol=0.02)


def test_multiclass_residual_is_independent_per_logit():
    X, y = make_blobs(150, centers=3, cluster_std=2.0, random_state=0)
    clf = DNN2GPClassifier(hidden_layer_sizes=(8,), residual_scale=3.0,
                           random_state=0).fit(X, y)
    assert clf.residual_scale_ == 3.0 and clf.residual_curve_ is None
    far = X * 10
    f, var = clf.predict_latent(far)
    r = clf._residual.variance(torch.as_tensor(far))
    cov = clf.temperature_ * torch.as_tensor(var) + 3.0 * r[:, None, None] * torch.eye(3,
                                                                                        dtype=torch.float64)
    expected = log_class_probabilities(torch.as_tensor(f), cov, "meanfield")
    np.testing.assert_allclose(clf.predict_log_proba(far), expected.numpy(), rtol=1e-10)


def test_pickle_keeps_the_residual(moons, fitted):
    X, _ = moons
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(X * 5), fitted.predict_proba(X * 5))


@pytest.mark.parametrize("link", ["plugin"])
def test_plugin_has_no_residual(moons, link):
    X, y = moons
    clf = DNN2GPClassifier(hidden_layer_sizes=(5,), link_approximation=link,
                           random_state=0).fit(X, y)
    assert clf.residual_scale_ == 0.0 and clf.residual_curve_ is None


def test_too_few_rows_take_no_residual_but_a_fixed_scale_applies():
    X, y = make_blobs(10, centers=2, random_state=0)
    with pytest.warns(UserWarning, match="no residual"):
        clf = DNN2GPClassifier(hidden_layer_sizes=(3,), random_state=0).fit(X, y)
    assert clf.residual_scale_ == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        fixed = DNN2GPClassifier(hidden_layer_sizes=(3,), temperature=0.01,
                                 residual_scale=1.0, random_state=0).fit(X, y)
    assert fixed.residual_scale_ == 1.0
    assert np.isfinite(fixed.predict_proba(X * 100)).all()


def test_a_fixed_scale_conditions_on_the_same_subset_of_rows(moons, monkeypatch):
    import sklearn_dnn2gp._temperature as temperature_module

    X, y = moons
    monkeypatch.setattr(temperature_module, "MAX_ROWS", 30)
    fixed = DNN2GPClassifier(hidden_layer_sizes=(5,), temperature=0.01, residual_scale=2.0,
                             random_state=0).fit(X, y)
    auto = DNN2GPClassifier(hidden_layer_sizes=(5,), random_state=0).fit(X, y)
    assert fixed._residual.inputs.shape == (30, 2)
    np.testing.assert_array_equal(fixed._residual.inputs.numpy(),
                                  auto._residual.inputs.numpy())


@pytest.mark.parametrize("value", [-1.0, "big", None])
def test_bad_residual_scale_is_refused(moons, value):
    X, y = moons
    with pytest.raises(ValueError, match="residual_scale"):
        DNN2GPClassifier(residual_scale=value).fit(X, y)
