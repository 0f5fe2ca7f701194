"""Shared by several test modules: independent reference computations, small data
sets and networks, and the checker of the public API's contract (the property-based
cases of tests/test_fuzz.py and the fixed ones of tests/test_robustness.py)."""

import warnings
from collections import Counter

import numpy as np
import torch
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning
from torch.func import functional_call, jacrev

from sklearn_dnn2gp._curvature import output_and_jacobian, whitened_jacobians
from sklearn_dnn2gp._likelihoods import Gaussian
from sklearn_dnn2gp._network import flat_parameters, make_mlp, set_flat_parameters
from sklearn_dnn2gp.posteriors import KronCurvature


def blr_posterior(Phi, y, delta, sigma):
    """Bayesian linear regression: posterior mean and covariance (closed form)."""
    A = Phi.T @ Phi / sigma**2 + delta * np.eye(Phi.shape[1])
    cov = np.linalg.inv(A)
    return cov @ Phi.T @ y / sigma**2, cov


def blr_log_evidence(Phi, y, delta, sigma):
    """log N(y | 0, Phi Phi^T / delta + sigma^2 I)."""
    n = len(y)
    C = Phi @ Phi.T / delta + sigma**2 * np.eye(n)
    _, logdet = np.linalg.slogdet(C)
    return -0.5 * y @ np.linalg.solve(C, y) - 0.5 * logdet - 0.5 * n * np.log(2 * np.pi)


def bayesian_ridge_reference():
    """``X, y`` of a linear problem and ``log(delta, sigma)`` maximising its
    evidence, from BayesianRidge's MacKay fixed point (vanishing hyperpriors, the
    bias as a column of ones under the prior): the 'auto' hyperparameters of a
    network without hidden layers, whose evidence does not depend on its weights."""
    from sklearn.linear_model import BayesianRidge

    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.4 * rng.normal(size=80)
    ridge = BayesianRidge(fit_intercept=False, tol=1e-12, max_iter=100000, alpha_1=1e-30,
                          alpha_2=1e-30, lambda_1=1e-30, lambda_2=1e-30)
    ridge.fit(np.column_stack([X, np.ones(len(X))]), y)
    return X, y, np.log([ridge.lambda_, 1 / np.sqrt(ridge.alpha_)])


def gap_data(n=80, seed=0):
    rng = np.random.RandomState(seed)
    x = np.concatenate([rng.uniform(-4, -1.5, n // 2), rng.uniform(1.5, 4, n - n // 2)])
    y = np.sin(x) + 0.1 * rng.randn(n)
    return x[:, None], y


def objective_gradient(est, X, y, sample_weight=None):
    """Gradient of the summed training objective at the fitted weights (autograd, float64)."""
    module = est.module_
    likelihood = est.likelihood_
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float64))
    y_t = est._known_targets(y, X_t.device)
    w_t = None if sample_weight is None else torch.as_tensor(
        np.asarray(sample_weight, dtype=np.float64))
    delta = est.prior_precision

    def objective(w):
        names = [name for name, _ in module.named_parameters()]
        shapes = [p.shape for _, p in module.named_parameters()]
        params, offset = {}, 0
        for name, shape in zip(names, shapes):
            size = int(np.prod(shape))
            params[name] = w[offset:offset + size].reshape(shape)
            offset += size
        f = functional_call(module, params, (X_t,))
        return likelihood.loss(f, y_t, w_t) + 0.5 * delta * (w @ w)

    w = flat_parameters(module).to(torch.float64).clone().requires_grad_(True)
    return objective, w


def make_stationary(est, X, y, sample_weight=None):
    """Move a fitted estimator to a stationary point of its objective and refit its
    posterior there.

    Newton steps with the exact Hessian (float64, small networks only) polish the
    weights from where the optimiser stopped until the gradient stops shrinking (the
    round-off floor), so identities that need a stationary point are tested to the
    precision of the arithmetic, not of the optimiser. The refit starts from the
    polished weights (``warm_start``); L-BFGS sees a gradient below its ``tol`` at its
    first evaluation and returns without a step.
    """
    # Far from a minimum, L-BFGS first (Newton's basin is small for a network).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.set_params(warm_start=True, max_iter=5000).fit(X, y, sample_weight=sample_weight)
    objective, w = objective_gradient(est, X, y, sample_weight)
    w, previous = w.detach(), np.inf
    for _ in range(30):
        w_ = w.clone().requires_grad_(True)
        norm = float(torch.autograd.grad(objective(w_), w_)[0].abs().max())
        if norm > previous / 10 and previous < 1e-7:  # quadratic convergence ended: round-off
            break
        best, previous = w, norm
        H = torch.autograd.functional.hessian(objective, w)
        grad = torch.autograd.grad(objective(w_), w_)[0]
        w = w - torch.linalg.solve(H, grad)
    # Far below what any identity in the tests needs, far above float64 round-off.
    assert previous < 1e-9, f"Newton polishing stalled at a gradient of {previous:.3g}"
    set_flat_parameters(est.module_, best)
    est.set_params(warm_start=True, tol=max(10 * previous, 1e-15), solver="lbfgs")
    est.fit(X, y, sample_weight=sample_weight)
    assert est.n_iter_ == 0, "the refit moved the polished weights"
    return est


def FixedRegressor(*args, **params):
    """A DNN2GPRegressor at the fixed hyperparameters most tests are written for
    (``prior_precision=1``, ``noise_std=1``, y as given), unless overridden: the
    default ``'auto'`` search and ``normalize_y`` have their own tests."""
    from sklearn_dnn2gp import DNN2GPRegressor

    return DNN2GPRegressor(*args, **{"prior_precision": 1.0, "noise_std": 1.0,
                                     "normalize_y": False, **params})


def FixedClassifier(*args, **params):
    """A DNN2GPClassifier at ``prior_precision=1`` unless overridden (see
    :func:`FixedRegressor`)."""
    from sklearn_dnn2gp import DNN2GPClassifier

    return DNN2GPClassifier(*args, **{"prior_precision": 1.0, **params})


def from_curvature(mean, curvature, prior_precision):
    """``N(mean, (S + delta I)^-1)`` in the structure that holds ``S``'s form: a
    KronCurvature, a P-vector (the diagonal) or a P x P matrix."""
    from sklearn_dnn2gp.posteriors import (
        DiagPosterior,
        FullPosterior,
        KronCurvature,
        KronPosterior,
    )

    if isinstance(curvature, KronCurvature):
        structure = KronPosterior
    else:
        structure = DiagPosterior if curvature.dim() == 1 else FullPosterior
    return structure.from_curvature(mean, curvature, prior_precision)


# ------------------------------------------------------- data and networks
def _linear_data(n=40, d=3, seed=0, k=None):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    shape = (n,) if k is None else (n, k)
    y = X @ rng.randn(d, *shape[1:]) + 0.5 + 0.3 * rng.randn(*shape)
    return X, y


def _regression(n=40, seed=0):
    X, y = make_regression(n, 3, noise=5.0, random_state=seed)
    return X, (y - y.mean()) / y.std()


def _mlp(sizes, n_in, n_out, seed=0):
    return make_mlp(n_in, sizes, n_out, "tanh", dtype=torch.float64, device="cpu",
                    generator=torch.Generator().manual_seed(seed))


def _exact_ggn(net, likelihood, X):
    f, J = output_and_jacobian(net, X)
    M = likelihood.whiten(f, J).reshape(-1, J.shape[-1])
    return M.T @ M


def _random_curvature(net, total, seed=0):
    """Random symmetric positive semi-definite factors (one of them rank-deficient,
    as a minibatch's are) on ``net``'s layers."""
    rng = np.random.RandomState(seed)
    factors = []
    for G, A, order in KronCurvature.identity(net, total, 1.0).factors:
        g = rng.randn(G.shape[0], G.shape[0] + 2)
        a = rng.randn(A.shape[0], max(A.shape[0] - 1, 1))
        factors.append((torch.tensor(g @ g.T), torch.tensor(a @ a.T), order))
    return KronCurvature(factors, total)


def _relative_error(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b).max() / np.abs(b).max()


# --------------------------------------------- Jacobians computed directly
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


def _reference_jacobian(est, X):
    """(n, K, P) by autograd through the module with all parameters as one vector,
    independently of the package's curvature code."""
    module = est.module_
    shapes = [(name, p.shape) for name, p in module.named_parameters()]
    sizes = [p.numel() for p in module.parameters()]
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float64))

    def outputs(w):
        chunks = torch.split(w, sizes)
        params = {name: chunk.reshape(shape) for (name, shape), chunk in zip(shapes, chunks)}
        return functional_call(module, params, (X_t,))

    w = torch.cat([p.detach().reshape(-1) for p in module.parameters()]).to(torch.float64)
    return jacrev(outputs)(w).numpy()


def _weights(est):
    return torch.cat([p.detach().reshape(-1) for p in est.module_.parameters()]).numpy()


# ------------------------------------------------------------ the contract
# The error types scikit-learn raises for bad input; anything else breaks the contract.
ALLOWED_ERRORS = (ValueError, TypeError, MemoryError)

# How many calls were checked, and how many ended in an allowed error, per family;
# tests/test_fuzz.py's test_zz_summary reports them.
CHECKED = Counter()
RAISED = Counter()


def _fail(label, message, cause=None):
    raise AssertionError(f"{label}: {message}") from cause


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _check_array(label, name, value, kind, proba=None, classes=None):
    if kind == "labels":
        unknown = np.setdiff1d(np.asarray(value), classes)
        if unknown.size:
            _fail(label, f"{name} returned labels {unknown!r} not in classes_ {classes!r}")
        return
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        _fail(label, f"{name} returned a non-numeric {type(value).__name__}: {exc}")
        return
    if kind == "log_proba":
        if np.isnan(array).any():
            _fail(label, f"{name} has {int(np.isnan(array).sum())} NaN of {array.size}")
        # -inf is the log of a probability that is exactly 0, and only there.
        bad = (np.asarray(proba) > 0) & ~np.isfinite(array)
        if bad.any():
            _fail(label, f"{name} is {array[bad][:3]} where the probability is "
                         f"{np.asarray(proba)[bad][:3]} > 0")
        if (array > 1e-12).any():
            _fail(label, f"{name} has log-probabilities above 0: {array.max()!r}")
        return
    bad = ~np.isfinite(array)
    if bad.any():
        _fail(label, f"{name} has {int(bad.sum())} of {array.size} non-finite values "
                     f"(e.g. {array[bad][:3]})")
    if kind == "nonnegative" and (array < 0).any():
        _fail(label, f"{name} has negative values (min {array.min()!r})")
    if kind == "covariance":
        diagonal = np.diagonal(array, axis1=0, axis2=1)
        if (diagonal < 0).any():
            _fail(label, f"{name} has a negative variance on its diagonal "
                         f"(min {diagonal.min()!r})")
    if kind == "proba":
        if (array < 0).any() or (array > 1).any():
            _fail(label, f"{name} is outside [0, 1] (min {array.min()!r}, "
                         f"max {array.max()!r})")
        sums = array.sum(axis=1)
        if not np.allclose(sums, 1.0, rtol=0, atol=1e-6):
            _fail(label, f"{name} rows sum to {sums[np.argmax(np.abs(sums - 1))]!r}, not 1")


def _check_outputs(family, label, call, kinds=(), *, must_raise=False, proba=None,
                   classes=None):
    """Call ``call()`` under the contract and return its result.

    ``kinds`` names what each returned value must be ('finite', 'nonnegative',
    'covariance', 'proba', 'log_proba' (against ``proba``), 'labels' (among
    ``classes``) or 'fitted' (an estimator with a finite
    ``log_marginal_likelihood_``)); a single string applies to a single
    result. An allowed error returns None, or is required with ``must_raise``.
    Any other exception, or an output that breaks its kind, fails with
    ``label``, the call written out.
    """
    CHECKED[family] += 1
    try:
        result = call()
    except ALLOWED_ERRORS:
        RAISED[family] += 1
        return None
    except Exception as exc:  # noqa: BLE001 - every other type breaks the contract
        _fail(label, f"raised {type(exc).__name__} (not ValueError/TypeError/MemoryError): "
                     f"{_first_line(exc)}", cause=exc)
        return None
    if must_raise:
        _fail(label, f"returned {type(result).__name__} instead of raising ValueError/TypeError")
    if isinstance(kinds, str):
        kinds, results = (kinds,), (result,)
    else:
        results = result if len(kinds) > 1 else (result,)
    for index, (kind, value) in enumerate(zip(kinds, results)):
        name = f"output {index}" if len(kinds) > 1 else "the output"
        if kind == "fitted":
            value = getattr(value, "log_marginal_likelihood_", np.nan)
            name, kind = "log_marginal_likelihood_", "finite"
        _check_array(label, name, value, kind, proba=proba, classes=classes)
    return result


def _quiet_fit(estimator, X, y, **fit_params):
    """``fit`` with the warnings expected of tiny budgets and extreme scales silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*noise_std.*", category=UserWarning)
        return estimator.fit(X, y, **fit_params)


def _short(estimator):
    return " ".join(repr(estimator).split())


def classification_data(seed, n, n_classes, separable, n_features=2):
    rng = np.random.RandomState(seed)
    y = np.arange(n) % n_classes
    # Separable: clusters far apart against their spread, so the MAP logits grow
    # until the prior stops them and the GGN of the training points vanishes.
    centres = rng.randn(n_classes, n_features) * (6.0 if separable else 0.5)
    X = centres[y] + (0.1 if separable else 1.0) * rng.randn(n, n_features)
    return X, y


def regression_data(seed, n, n_features=2):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, size=(n, n_features))
    y = np.sin(X[:, 0]) + 0.5 * X[:, -1] + 0.1 * rng.randn(n)
    return X, y


def _check_classifier(family, clf, fitted_on, X_eval, eval_name, scales):
    """Every prediction method of a fitted classifier, at ``X_eval * scale``.

    ``fitted_on`` and ``eval_name`` describe the data in the failure messages.
    """
    classes = clf.classes_
    # The link decides the scores, so the label names it even when it is the default.
    fixed = (f"{_short(clf)}.fit({fitted_on}) "
             f"[link_approximation={clf.link_approximation!r}]")
    for scale in scales:
        X_s = X_eval * scale
        where = f"{eval_name} * {scale:g}"
        for link in ("meanfield", "bridge", "probit", "mc", "plugin"):
            label = f"{fixed}.predict_proba({where}, link_approximation={link!r})"
            proba = _check_outputs(
                family, label, lambda link=link, X_s=X_s: clf.predict_proba(X_s, link),
                "proba")
            if proba is not None:
                _check_outputs(
                    family, label.replace("predict_proba", "predict_log_proba"),
                    lambda link=link, X_s=X_s: clf.predict_log_proba(X_s, link), "log_proba",
                    proba=proba)
        _check_outputs(family, f"{fixed}.decision_function({where})",
                       lambda X_s=X_s: clf.decision_function(X_s), "finite")
        _check_outputs(family, f"{fixed}.predict({where})", lambda X_s=X_s: clf.predict(X_s),
                       "labels", classes=classes)
        _check_outputs(family, f"{fixed}.predict_uncertainty({where})",
                       lambda X_s=X_s: clf.predict_uncertainty(X_s),
                       ("nonnegative", "nonnegative"))


def predictive_covariance(clf, X):
    """The latent covariance a fitted classifier's links see, from its parts: the
    GP view's ``J Sigma J^T`` at ``temperature_`` plus the residual GP's variance
    on each logit."""
    _, var = clf.predict_latent(X)
    var = var * clf.temperature_
    if clf.residual_scale_ > 0:
        residual = clf._residual.variance(torch.as_tensor(X)).numpy()
        var = var + clf.residual_scale_ * residual[:, None, None] * np.eye(var.shape[-1])
    return var
