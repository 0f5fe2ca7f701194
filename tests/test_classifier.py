"""DNN2GPClassifier (``_classifier.py``): the linear model as Laplace logistic and
softmax regression, string labels, the link approximations, the uncertainty
decomposition, the kernel's modes, determinism and calibration on digits."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs, make_moons

from ._helpers import FixedClassifier, make_stationary, predictive_covariance


def _softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _newton_softmax_regression(X, y, n_classes, delta, binary):
    """Laplace for logistic / softmax regression by Newton's method, in numpy.

    Parameters are laid out as torch's Linear: weight (K, d) row-major, then bias (K).
    Returns the MAP, the Hessian of the negative log joint at the MAP and the
    log evidence ``log p(y|w) + log p(w) + P/2 log 2 pi - 1/2 log|H|``.
    """
    n, d = X.shape
    K = 1 if binary else n_classes

    def jac(i):  # (K, P)
        J = np.zeros((K, K * (d + 1)))
        for k in range(K):
            J[k, k * d:(k + 1) * d] = X[i]
            J[k, K * d + k] = 1.0
        return J

    Js = np.stack([jac(i) for i in range(n)])
    P = Js.shape[2]
    w = np.zeros(P)
    for _ in range(100):
        f = Js @ w
        if binary:
            p = 1 / (1 + np.exp(-f[:, 0]))
            r = (p - y)[:, None]
            lam = (p * (1 - p))[:, None, None]
        else:
            p = _softmax(f)
            r = p - np.eye(K)[y]
            lam = np.einsum("nk,kl->nkl", p, np.eye(K)) - p[:, :, None] * p[:, None, :]
        grad = np.einsum("nkp,nk->p", Js, r) + delta * w
        H = np.einsum("nkp,nkl,nlq->pq", Js, lam, Js) + delta * np.eye(P)
        step = np.linalg.solve(H, grad)
        w -= step
        if np.abs(step).max() < 1e-13:
            break
    f = Js @ w
    if binary:
        log_lik = np.sum(y * f[:, 0] - np.logaddexp(0, f[:, 0]))
    else:
        log_lik = np.sum(f[np.arange(n), y] - np.logaddexp.reduce(f, axis=1))
    _, logdet = np.linalg.slogdet(H)
    evidence = log_lik - 0.5 * delta * w @ w + 0.5 * P * np.log(delta) - 0.5 * logdet
    return w, H, evidence, jac


@pytest.mark.parametrize("n_classes", [2, 3])
def test_linear_model_is_laplace_logistic_regression(n_classes):
    X, y = make_blobs(60, centers=n_classes, cluster_std=3.0, random_state=0)
    delta = 0.5
    clf = FixedClassifier(hidden_layer_sizes=(), prior_precision=delta,
                           random_state=0).fit(X, y)
    make_stationary(clf, X, y)
    w, H, evidence, _ = _newton_softmax_regression(X, y, n_classes, delta, n_classes == 2)
    np.testing.assert_allclose(clf.posterior_.mean.numpy(), w, rtol=1e-6, atol=1e-8)
    cov = clf.posterior_.covariance().numpy()
    np.testing.assert_allclose(cov, np.linalg.inv(H), rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(clf.log_marginal_likelihood_, evidence, rtol=1e-6)

    X_test = np.array([[0.0, 0.0], [20.0, -20.0], [5.0, 3.0]])
    K = 1 if n_classes == 2 else n_classes
    Phi = np.hstack([X_test, np.ones((3, 1))])
    Jt = np.stack([np.kron(np.eye(K), phi[None, :-1]) for phi in Phi])
    Jt = np.concatenate([Jt, np.broadcast_to(np.eye(K), (3, K, K))], axis=2)
    expected_var = Jt @ np.linalg.inv(H) @ Jt.transpose(0, 2, 1)
    _, var = clf.predict_latent(X_test)
    np.testing.assert_allclose(var, expected_var, rtol=1e-6)

    # Re-evaluating the evidence at another delta keeps w* and G: check by hand.
    G = H - delta * np.eye(len(w))
    log_det_H = np.linalg.slogdet(H)[1]
    log_lik = evidence + 0.5 * delta * w @ w - 0.5 * len(w) * np.log(delta) + 0.5 * log_det_H
    for new in (0.01, 7.0):
        expected = (log_lik - 0.5 * new * w @ w + 0.5 * len(w) * np.log(new)
                    - 0.5 * np.linalg.slogdet(G + new * np.eye(len(w)))[1])
        np.testing.assert_allclose(clf.log_marginal_likelihood(new), expected, rtol=1e-6)


def test_string_labels_binary_and_multiclass():
    X, y = make_blobs(90, centers=3, random_state=0)
    names = np.array(["cat", "dog", "emu"])[y]
    clf = FixedClassifier(hidden_layer_sizes=(10,), random_state=0).fit(X, names)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert clf.score(X, names) > 0.9
    assert clf.predict_proba(X).shape == (90, 3)
    assert clf.decision_function(X).shape == (90, 3)
    binary = clf.fit(X[y < 2], names[y < 2])
    assert binary.module_[-1].out_features == 1
    assert binary.decision_function(X).shape == (90,)
    np.testing.assert_array_equal(
        binary.predict(X), binary.classes_[binary.predict_proba(X).argmax(1)])
    np.testing.assert_allclose(binary.predict_proba(X).sum(1), 1.0)


def test_single_class_is_refused():
    X = np.random.RandomState(0).randn(10, 2)
    with pytest.raises(ValueError, match="only one class"):
        FixedClassifier().fit(X, np.ones(10))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_link_approximations(n_classes):
    X, y = make_blobs(80, centers=n_classes, random_state=0)
    # Without the residual GP: the approximations' errors below were measured for the
    # network's own latent variance, which stays moderate at these far points.
    clf = FixedClassifier(hidden_layer_sizes=(10,), random_state=0, link_samples=20000,
                          residual_scale=0.0).fit(X, y)
    X_test = np.vstack([X[:5], [[12.0, -12.0], [0.0, 12.0]]])
    f, _ = clf.predict_latent(X_test)
    plugin = clf.predict_proba(X_test, "plugin")
    expected = (np.hstack([1 / (1 + np.exp(f)), 1 / (1 + np.exp(-f))]) if n_classes == 2
                else _softmax(f))
    np.testing.assert_allclose(plugin, expected, rtol=1e-10)
    mc = clf.predict_proba(X_test, "mc")
    for link in ("probit", "meanfield", "bridge", "mc"):
        proba = clf.predict_proba(X_test, link)
        np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-10)
        # Accounting for the uncertainty never makes the top class more confident.
        assert np.all(proba.max(1) <= plugin.max(1) + 1e-9)
    # The probit and mean-field approximations are close to the Monte-Carlo reference.
    np.testing.assert_allclose(clf.predict_proba(X_test, "probit"), mc, atol=0.05)
    np.testing.assert_allclose(clf.predict_proba(X_test, "meanfield"), mc, atol=0.05)
    np.testing.assert_array_equal(mc, clf.predict_proba(X_test, "mc"))
    np.testing.assert_allclose(clf.predict_proba(X_test[2:3], "mc"), mc[2:3], rtol=1e-12)
    with pytest.raises(ValueError, match="link_approximation"):
        clf.predict_proba(X, "softmax")


@pytest.mark.parametrize("posterior", ["full", "diag"])
def test_far_points_are_more_uncertain(posterior):
    X, y = make_moons(100, noise=0.1, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(20,), posterior=posterior, random_state=0)
    clf.fit(X, y)
    far = np.array([[4.0, 4.0], [-4.0, -3.0], [5.0, -4.0]])
    _, var_train = clf.predict_latent(X)
    _, var_far = clf.predict_latent(far)
    assert var_far[:, 0, 0].min() > 3 * np.median(var_train[:, 0, 0])
    # Eq. 48: epistemic = Lambda J Sigma J^T Lambda (capped at 1/4, the largest variance
    # of a probability), aleatoric = Lambda.
    epi_train, ale_train = clf.predict_uncertainty(X)
    assert epi_train.shape == ale_train.shape == (100, 2)
    p = clf.predict_proba(X, "plugin")[:, 1]
    np.testing.assert_allclose(ale_train[:, 1], p * (1 - p), rtol=1e-8)
    var = predictive_covariance(clf, X)
    np.testing.assert_allclose(epi_train[:, 1],
                               np.minimum((p * (1 - p)) ** 2 * var[:, 0, 0], 0.25), rtol=1e-8)


def test_multiclass_uncertainty_decomposition():
    X, y = make_blobs(60, centers=3, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(8,), random_state=0).fit(X, y)
    epi, ale = clf.predict_uncertainty(X[:4])
    f, _ = clf.predict_latent(X[:4])
    var = predictive_covariance(clf, X[:4])
    p = _softmax(f)
    lam = np.einsum("nk,kl->nkl", p, np.eye(3)) - p[:, :, None] * p[:, None, :]
    np.testing.assert_allclose(ale, np.diagonal(lam, axis1=1, axis2=2), rtol=1e-10)
    np.testing.assert_allclose(epi, np.minimum(np.diagonal(lam @ var @ lam, axis1=1, axis2=2),
                                               0.25), rtol=1e-8)


def test_kernel_modes():
    X, y = make_blobs(12, centers=3, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(5,), random_state=0, max_iter=100).fit(X, y)
    J = clf.features(X)
    full = clf.kernel(X, mode="full")
    assert full.shape == (36, 36)
    blocks = full.reshape(12, 3, 12, 3)
    np.testing.assert_allclose(clf.kernel(X), np.einsum("ikjk->ij", blocks), rtol=1e-12)
    np.testing.assert_allclose(clf.kernel(X, mode="sum"), blocks.sum((1, 3)), rtol=1e-12)
    np.testing.assert_allclose(clf.kernel(X), np.einsum("ikp,jkp->ij", J, J), rtol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_determinism_pickle_and_rng():
    X, y = make_moons(60, noise=0.2, random_state=0)
    params = dict(hidden_layer_sizes=(8,), solver="adam", max_iter=30, random_state=5,
                  link_approximation="mc")
    a = FixedClassifier(**params).fit(X, y)
    b = FixedClassifier(**params).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    state = torch.random.get_rng_state()
    a.predict_proba(X)
    assert torch.equal(state, torch.random.get_rng_state())
    restored = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a.predict_proba(X), restored.predict_proba(X))
    assert restored.log_marginal_likelihood(3.0) == a.log_marginal_likelihood(3.0)


def _ece(proba, y, n_bins=10):
    conf = proba.max(1)
    correct = proba.argmax(1) == y
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return total


@pytest.mark.slow
def test_digits_accuracy_and_calibration():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                        stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    clf = FixedClassifier(hidden_layer_sizes=(50,), prior_precision=1.0, random_state=0)
    clf.fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.95
    links = ("plugin", "meanfield", "bridge", "probit", "mc")
    proba = {link: clf.predict_proba(X_test, link) for link in links}
    nll = {k: -np.mean(np.log(p[np.arange(len(y_test)), y_test])) for k, p in proba.items()}
    ece = {k: _ece(p, y_test) for k, p in proba.items()}
    print(f"digits: accuracy={clf.score(X_test, y_test):.4f}")
    for link in links:
        print(f"  {link:>6}: NLL={nll[link]:.4f} ECE={ece[link]:.4f}")
    # The default (the mean field at the chosen temperature) within issue 19's
    # in-distribution targets: NLL at most 1.03x the plug-in's, ECE at most +0.01.
    assert clf.link_approximation == "meanfield"
    assert nll["meanfield"] <= nll["plugin"] * 1.03
    assert ece["meanfield"] <= ece["plugin"] + 0.01
    # Out-of-distribution inputs (uniform noise images) get more epistemic uncertainty.
    noise = np.random.RandomState(0).uniform(-3, 3, size=(200, 64))
    epi_test, _ = clf.predict_uncertainty(X_test)
    epi_noise, _ = clf.predict_uncertainty(noise)
    assert epi_noise.sum(1).mean() > epi_test.sum(1).mean()


def test_uncertainty_is_a_label_variance_even_with_round_off(monkeypatch):
    # Label variances lie in [0, 1/4]: a float32 fit with a vanishing prior precision
    # (latent variances ~1e30), and a latent covariance left indefinite by round-off.
    X, y = make_blobs(40, centers=3, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(6,), dtype="float32", prior_precision=1e-30,
                          posterior="full", max_iter=50, random_state=0).fit(X, y)
    far = 10 * X
    epi, ale = clf.predict_uncertainty(far)
    assert np.all((epi >= 0) & (epi <= 0.25)) and np.all((ale >= 0) & (ale <= 0.25))
    f, var = clf._latent(clf._validate_X(X[:3]))
    indefinite = var - 2 * torch.eye(3, dtype=var.dtype) * var.diagonal(dim1=1, dim2=2).max()
    monkeypatch.setattr(clf, "_latent", lambda X: (f, indefinite))
    epi, _ = clf.predict_uncertainty(X[:3])
    assert np.all(epi >= 0)


def test_mean_field_link_limits():
    from sklearn_dnn2gp._links import log_class_probabilities, probit_scaled_logits

    gen = torch.Generator().manual_seed(0)
    f = 3 * torch.randn(6, 4, generator=gen, dtype=torch.float64)
    A = torch.randn(6, 4, 4, generator=gen, dtype=torch.float64)
    var = A @ A.transpose(1, 2)
    log_p = log_class_probabilities(f, var, "meanfield")
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(6, dtype=torch.float64))
    # No variance: the softmax itself (the pairwise form of the softmax is exact).
    torch.testing.assert_close(log_class_probabilities(f, 0 * var, "meanfield"),
                               torch.log_softmax(f, dim=1), rtol=1e-12, atol=1e-12)
    # Variance every logit shares changes no difference, so no probability.
    common = var + 50 * torch.ones(4, 4, dtype=torch.float64)
    torch.testing.assert_close(log_class_probabilities(f, common, "meanfield"), log_p,
                               rtol=1e-12, atol=1e-12)
    # Two classes, as the softmax of (0, f): the probit exactly.
    f2 = torch.cat([torch.zeros(6, 1, dtype=torch.float64), f[:, :1]], dim=1)
    var2 = torch.zeros(6, 2, 2, dtype=torch.float64)
    var2[:, 1, 1] = var[:, 0, 0]
    torch.testing.assert_close(log_class_probabilities(f2, var2, "meanfield"),
                               torch.log_softmax(probit_scaled_logits(f2, var2), dim=1),
                               rtol=1e-12, atol=1e-12)
