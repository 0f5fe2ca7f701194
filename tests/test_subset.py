"""Subsets of the data for the function-space views: the draw (``_subset``) and the
``subset_size`` / ``subset_strategy`` options of ``kernel``, ``iterate_gp`` and
``gp_log_marginal_likelihood``, and that evidence against closed forms."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.datasets import make_blobs

from sklearn_dnn2gp._subset import subset_indices

from ._helpers import FixedClassifier, FixedRegressor, gap_data

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def regression():
    X, y = gap_data(40)
    reg = FixedRegressor(hidden_layer_sizes=(8,), noise_std=0.3, posterior="full",
                          random_state=0).fit(X, y)
    return reg, X, y


@pytest.fixture(scope="module")
def classification():
    X, y = make_blobs(30, centers=3, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0).fit(X, y)
    return clf, X, y


# ------------------------------------------------------------------- the draw
def test_indices_sorted_unique_and_deterministic():
    for strategy, y in (("random", None), ("stratified", np.arange(100) % 4)):
        a = subset_indices(100, 30, y=y, strategy=strategy, random_state=3)
        b = subset_indices(100, 30, y=y, strategy=strategy, random_state=3)
        c = subset_indices(100, 30, y=y, strategy=strategy, random_state=4)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
        assert len(a) == 30 and np.all(np.diff(a) > 0) and a.dtype.kind == "i"
        assert 0 <= a.min() and a.max() < 100


def test_sizes():
    assert len(subset_indices(50, 0.2, random_state=0)) == 10
    assert len(subset_indices(50, 0.001, random_state=0)) == 1  # at least one row
    assert len(subset_indices(10, 0.3, random_state=0)) == 3  # 0.3 * 10 = 3.0000000000000004
    for size in (None, 1.0, 50, np.int64(50)):
        np.testing.assert_array_equal(subset_indices(50, size), np.arange(50))


def test_stratified_proportions_per_class():
    rng = np.random.RandomState(0)
    y = np.repeat(["a", "b", "c", "d"], [500, 300, 150, 50])
    y = y[rng.permutation(len(y))]
    idx = subset_indices(len(y), 100, y=y, strategy="stratified", random_state=0)
    _, counts = np.unique(y[idx], return_counts=True)
    np.testing.assert_array_equal(counts, [50, 30, 15, 5])  # exact shares
    # Largest remainder: shares 33.3 / 33.3 / 33.3 of 100 give 34, 33, 33 in some order.
    y = np.arange(99) % 3
    counts = np.bincount(y[subset_indices(99, 34, y=y, strategy="stratified",
                                          random_state=1)])
    assert sorted(counts) == [11, 11, 12]
    # A rare class keeps one row even when its share rounds to zero.
    y = np.r_[np.zeros(997, int), [1, 2, 3]]
    idx = subset_indices(1000, 10, y=y, strategy="stratified", random_state=0)
    np.testing.assert_array_equal(np.bincount(y[idx]), [7, 1, 1, 1])
    # Within a class the draw is uniform: every row of a class is drawn sometimes.
    y = np.arange(20) % 2
    seen = np.zeros(20, int)
    for seed in range(200):
        seen[subset_indices(20, 4, y=y, strategy="stratified", random_state=seed)] += 1
    assert seen.min() > 0 and np.all(np.bincount(y, weights=seen) == 400)


@pytest.mark.parametrize("size, error, match", [
    (0, ValueError, "subset_size=0 should be"),
    (-1, ValueError, "subset_size=-1 should be"),
    (11, ValueError, "at most the number of samples 10"),
    (0.0, ValueError, r"\(0, 1\] range"),
    (1.5, ValueError, r"\(0, 1\] range"),
    (float("nan"), ValueError, r"\(0, 1\] range"),
    (True, TypeError, "subset_size must be an int, a float or None"),
    ("5", TypeError, "subset_size must be an int, a float or None"),
])
def test_bad_sizes(size, error, match):
    with pytest.raises(error, match=match):
        subset_indices(10, size)


def test_bad_strategies_and_labels():
    with pytest.raises(ValueError, match="subset_strategy must be 'random' or 'stratified'"):
        subset_indices(10, 5, strategy="uniform")
    with pytest.raises(ValueError, match="needs class labels y"):
        subset_indices(10, 5, strategy="stratified")
    with pytest.raises(ValueError, match="type 'continuous'"):
        subset_indices(10, 5, y=np.linspace(0, 1, 10), strategy="stratified")
    with pytest.raises(ValueError, match="3 labels for 10 samples"):
        subset_indices(10, 5, y=[0, 1, 1], strategy="stratified")
    with pytest.raises(ValueError, match="2 rows but y has 3 classes"):
        subset_indices(9, 2, y=np.arange(9) % 3, strategy="stratified")


# ------------------------------------------------------------------ the views
def test_kernel_on_subset_is_kernel_of_rows(classification):
    clf, X, y = classification
    for mode in ("trace", "full"):
        K, idx = clf.kernel(X, mode=mode, subset_size=12, subset_strategy="stratified",
                            labels=y, random_state=0, return_indices=True)
        np.testing.assert_array_equal(np.bincount(y[idx]), [4, 4, 4])
        np.testing.assert_array_equal(K, clf.kernel(X[idx], mode=mode))
        # With Y given, only the rows of X are subsampled.
        K, idx = clf.kernel(X, X[:7], mode=mode, subset_size=0.5, random_state=1,
                            return_indices=True)
        np.testing.assert_array_equal(K, clf.kernel(X[idx], X[:7], mode=mode))
    np.testing.assert_array_equal(clf.kernel(X, subset_size=10, random_state=2),
                                  clf.kernel(X, subset_size=10, random_state=2))
    K, idx = clf.kernel(X, return_indices=True)
    np.testing.assert_array_equal(idx, np.arange(len(X)))
    with pytest.raises(ValueError, match="labels= for kernel"):
        clf.kernel(X, subset_size=10, subset_strategy="stratified")
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.kernel(X, subset_size=10, subset_strategy="stratified", labels=y[:5])


def test_regression_evidence_of_training_set_is_fitted_evidence(regression):
    # Full posterior: log_marginal_likelihood_ is the GP evidence of y~ (spectral and
    # Cholesky paths agree in float64). P = 25 < n = 40 takes the weight-space side.
    reg, X, y = regression
    assert reg._n_params < len(X)
    np.testing.assert_allclose(reg.gp_log_marginal_likelihood(X, y),
                               reg.log_marginal_likelihood_, rtol=1e-8)
    value, idx = reg.gp_log_marginal_likelihood(X, y, subset_size=None, return_indices=True)
    np.testing.assert_array_equal(idx, np.arange(len(X)))


def test_regression_evidence_weights_outputs_and_function_space():
    # n K = 2 * 12 < P = 41: the function-space side; two outputs; sample weights.
    X, y = gap_data(12)
    Y = np.c_[y, np.cos(X[:, 0])]
    w = np.random.RandomState(0).uniform(0.5, 2, len(X))
    reg = FixedRegressor(hidden_layer_sizes=(8,), noise_std=[0.3, 0.5], posterior="full",
                          random_state=0).fit(X, Y, sample_weight=w)
    assert reg._n_params > 2 * len(X)
    np.testing.assert_allclose(reg.gp_log_marginal_likelihood(X, Y, sample_weight=w),
                               reg.log_marginal_likelihood_, rtol=1e-8)


def test_regression_evidence_on_subset_is_closed_form(regression):
    # log N(y~_S | 0, J_S J_S^T / delta + sigma^2 I), the Bayesian linear model on the
    # Jacobian features, and the same as the evidence of the rows themselves.
    reg, X, y = regression
    value, idx = reg.gp_log_marginal_likelihood(X, y, subset_size=12, random_state=0,
                                                return_indices=True)
    assert len(idx) == 12
    J = reg.features(X[idx])[:, 0]
    C = J @ J.T / reg.prior_precision_ + 0.3**2 * np.eye(12)
    expected = multivariate_normal(np.zeros(12), C).logpdf(
        reg.transformed_targets(X[idx], y[idx]))
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    assert value == reg.gp_log_marginal_likelihood(X[idx], y[idx])
    with pytest.raises(ValueError, match="DNN2GPRegressor got none"):
        reg.gp_log_marginal_likelihood(X, y, subset_size=10, subset_strategy="stratified")
    with pytest.raises(ValueError, match="subset_strategy must be"):
        reg.gp_log_marginal_likelihood(X, y, subset_size=10, subset_strategy="per_class")
    with pytest.raises(ValueError, match="subset_size=41 should be"):
        reg.gp_log_marginal_likelihood(X, y, subset_size=41)


@pytest.mark.parametrize("centers", [2, 3])
def test_classification_evidence_is_closed_form(centers):
    # Two classes: log N(y~ | 0, J J^T / delta + diag(1 / (p (1 - p)))). More: the
    # same on the range of the softmax Lambda, in an orthonormal basis Q of 1^perp,
    # where the noise covariance is (Q^T Lambda Q)^-1.
    X, y = make_blobs(30, centers=centers, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(8,), random_state=0).fit(X, y)
    value, idx = clf.gp_log_marginal_likelihood(X, y, subset_size=0.5,
                                                subset_strategy="stratified",
                                                random_state=0, return_indices=True)
    assert len(idx) == 15 and np.all(np.bincount(y[idx]) >= 15 // centers)
    Xs, ys = X[idx], y[idx]
    J, y_tilde = clf.features(Xs), clf.transformed_targets(Xs, ys).reshape(len(Xs), -1)
    f = torch.as_tensor(clf._forward(Xs))
    lam = clf.likelihood_.precision(f).numpy()
    K = J.shape[1]
    Q = np.linalg.qr(np.c_[np.ones(K), np.eye(K)[:, :K - 1]])[0][:, 1:] if K > 1 else np.eye(1)
    d = Q.shape[1]
    JQ = np.einsum("kq,ikp->iqp", Q, J).reshape(-1, J.shape[2])
    noise = np.zeros((len(Xs) * d,) * 2)
    for i in range(len(Xs)):
        noise[i * d:(i + 1) * d, i * d:(i + 1) * d] = np.linalg.inv(Q.T @ lam[i] @ Q)
    C = JQ @ JQ.T / clf.prior_precision_ + noise
    expected = multivariate_normal(np.zeros(len(C)), C).logpdf((y_tilde @ Q).reshape(-1))
    np.testing.assert_allclose(value, expected, rtol=1e-9)


def test_iterate_gp_on_subset_is_iterate_gp_of_rows():
    X, y = make_blobs(24, centers=3, random_state=0)
    w = np.random.RandomState(0).uniform(0.5, 2, len(y))
    clf = FixedClassifier(hidden_layer_sizes=(3,), inference="vi", posterior="full",
                           vi_method="ogn", learning_rate_init=0.3, precision_rate=0.2,
                           max_iter=3, random_state=0).fit(X, y)
    gp, idx = clf.iterate_gp(X, y, sample_weight=w, subset_size=9,
                             subset_strategy="stratified", random_state=0,
                             return_indices=True)
    np.testing.assert_array_equal(np.bincount(y[idx]), [3, 3, 3])
    rows = clf.iterate_gp(X[idx], y[idx], sample_weight=w[idx])
    assert gp.keys() == rows.keys()
    for key in gp:
        np.testing.assert_array_equal(gp[key], rows[key])
    assert gp["kernel"].shape == (9 * 3, 9 * 3)
    full = clf.iterate_gp(X, y, sample_weight=w, subset_size=None)
    assert full["targets"].shape == (24, 3)
