"""Independent reference computations used by several test modules."""

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch.func import functional_call

from sklearn_dnn2gp._network import flat_parameters, set_flat_parameters


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
