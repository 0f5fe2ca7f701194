"""Training on the summed objective ``sum_i w_i l(y_i, f(x_i)) + delta/2 |w|^2`` to
the MAP (Adam, L-BFGS), and the epoch loop and stopping rule VI shares
(:mod:`._vi`)."""

import math
import warnings

import torch
from sklearn.exceptions import ConvergenceWarning

from ._network import flat_parameters, set_flat_parameters
from ._verbose import Progress


def prior_penalty(prior_precision, w):
    """``delta/2 |w|^2``, or ``1/2 sum_j delta_j w_j^2`` for per-parameter precisions."""
    if torch.is_tensor(prior_precision):
        return 0.5 * (prior_precision.to(w) * w) @ w
    return 0.5 * prior_precision * (w @ w)


def _objective(module, likelihood, X, y, weights, prior_precision, scale=1.0):
    data = likelihood.loss(module(X), y, weights)
    w = flat_parameters_with_grad(module)
    return scale * data + prior_penalty(prior_precision, w), data


def flat_parameters_with_grad(module):
    return torch.cat([p.reshape(-1) for p in module.parameters()])


_HINTS = {
    "adam": "try a smaller learning_rate_init",
    "lbfgs": "standardise X and y, or use solver='adam' with a small learning_rate_init",
    "vi": "try a smaller learning_rate_init or a larger initial_precision",
}


def _diverged(iteration, learning_rate, solver):
    return ValueError(
        f"Training diverged: the objective became non-finite at iteration {iteration}; "
        f"{_HINTS[solver]} (learning_rate_init={learning_rate:g})."
    )


@torch.no_grad()
@torch.no_grad()
def full_objective(module, likelihood, X, y, weights, prior_precision):
    """The summed objective over all of the data, without gradients."""
    w = flat_parameters(module)
    return likelihood.total_loss(module, X, y, weights) + float(prior_penalty(prior_precision, w))


def _minibatches(n, batch_size, generator, device):
    """Index the examples of one epoch: in order for a full batch, else shuffled."""
    if batch_size >= n:
        yield slice(0, n)
        return
    order = torch.randperm(n, generator=generator).to(device)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def trend_is_flat(values, tol):
    """Whether the least-squares slope of ``values`` (one per epoch) is no
    significant decrease: above ``-tol``, or less than two standard errors
    below zero, the errors from the residuals about the line."""
    v = torch.as_tensor(values, dtype=torch.float64)
    t = torch.arange(len(v), dtype=torch.float64)
    t -= t.mean()
    spread = float(t @ t)
    slope = float(t @ (v - v.mean())) / spread
    residual = v - v.mean() - slope * t
    error = math.sqrt(float(residual @ residual) / (len(v) - 2) / spread)
    return slope > -max(tol, 2 * error)


def _run_epochs(run_epoch, *, max_iter, tol, total_weight, n_iter_no_change, learning_rate,
                solver, name, verbose, burn_in=0, on_plateau=None, window=None):
    """Call ``run_epoch(epoch) -> objective`` until it stops improving.

    Shared by Adam and the VI optimisers. ``tol`` is on the objective per unit
    of sample weight, as scikit-learn's MLP uses a mean loss. Epochs up to
    ``burn_in`` never count towards stopping. ``run_epoch`` may return a pair:
    the objective to record, and the one to watch. Without ``window`` a
    plateau is ``n_iter_no_change`` epochs without an improvement of ``tol``;
    with it, a slope that :func:`trend_is_flat` finds flat over the last
    ``window`` epochs before the first plateau, ``n_iter_no_change`` after it
    (the epochs since the last plateau). At a plateau ``on_plateau(epoch)``
    may return True to go on (e.g. with a smaller step size) instead of stopping.
    """
    loss_curve, best, stall, recent = [], math.inf, 0, []
    progress = Progress(verbose, name, max_iter, "epoch")
    for epoch in range(1, max_iter + 1):
        loss = run_epoch(epoch)
        loss, watched = loss if isinstance(loss, tuple) else (loss, loss)
        if not (math.isfinite(loss) and math.isfinite(watched)):
            raise _diverged(epoch, learning_rate, solver)
        loss_curve.append(loss)
        progress.update(epoch, loss)
        if window is not None:
            recent = (recent + [watched])[-window:]
            plateau = (epoch > burn_in and len(recent) == window
                       and trend_is_flat(recent, tol * total_weight))
        else:
            stall = 0 if epoch <= burn_in or watched <= best - tol * total_weight else stall + 1
            best = min(best, watched)
            plateau = stall >= n_iter_no_change
        if plateau:
            recent, stall = [], 0
            if window is not None:
                window = n_iter_no_change
            if on_plateau is not None and on_plateau(epoch):
                continue
            break
    else:
        warnings.warn(
            f"{name} reached max_iter={max_iter} before the objective stopped improving; "
            "increase max_iter.",
            ConvergenceWarning,
        )
    progress.update(len(loss_curve), loss_curve[-1], final=True)
    return loss_curve, len(loss_curve)


def _check_not_worse(initial, final, slack, name, solver):
    """Warn when training ended above the objective it started from: steps that
    large give a network worse than its random initialisation, silently."""
    if final > initial + slack:
        warnings.warn(
            f"{name} ended with a larger objective ({final:.4g}) than it started from "
            f"({initial:.4g}): its steps diverged and the fit is worse than the initial "
            f"network; {_HINTS[solver]}.",
            ConvergenceWarning,
            stacklevel=5,
        )


def _total_weight(X, weights):
    return float(weights.sum()) if weights is not None else float(X.shape[0])


def train_map(module, likelihood, X, y, weights, *, prior_precision, solver, max_iter,
              learning_rate, batch_size, tol, n_iter_no_change, generator, verbose=0,
              warm=False):
    """Train ``module`` in place to the MAP. Return ``(loss_curve, n_iter)``.

    ``warm``: the weights are already a fit (the evidence search's neighbour). Adam
    restarts its moment estimates there, and its first steps can leave a point it
    cannot improve on; a warm-started Adam that ends above its start keeps the start.

    ``loss_curve`` holds the summed objective after each epoch (adam) or each
    function evaluation of the accepted iterates (lbfgs). Minibatch losses are
    scaled by ``N / batch`` so their expectation is the summed objective.
    """
    n = X.shape[0]
    if solver == "lbfgs":
        return _train_lbfgs(module, likelihood, X, y, weights, prior_precision, max_iter,
                            tol, learning_rate, verbose)
    optimizer = torch.optim.Adam(module.parameters(), lr=learning_rate)

    def run_epoch(epoch):
        epoch_data = 0.0
        for idx in _minibatches(n, batch_size, generator, X.device):
            Xb, yb = X[idx], y[idx]
            wb = None if weights is None else weights[idx]
            optimizer.zero_grad()
            loss, data = _objective(module, likelihood, Xb, yb, wb, prior_precision,
                                    scale=n / Xb.shape[0])
            loss.backward()
            optimizer.step()
            epoch_data += float(data.detach())
        return epoch_data + float(prior_penalty(prior_precision, flat_parameters(module)))

    initial = full_objective(module, likelihood, X, y, weights, prior_precision)
    start = flat_parameters(module).detach().clone() if warm else None
    total_weight = _total_weight(X, weights)
    result = _run_epochs(run_epoch, max_iter=max_iter, tol=tol, total_weight=total_weight,
                         n_iter_no_change=n_iter_no_change, learning_rate=learning_rate,
                         solver="adam", name="Adam", verbose=verbose)
    final = full_objective(module, likelihood, X, y, weights, prior_precision)
    if warm and final > initial:
        set_flat_parameters(module, start)
        return result
    _check_not_worse(initial, final, tol * total_weight, "Adam", "adam")
    return result


def lbfgs_gradient_tolerance(X, weights, tol):
    """L-BFGS's threshold on the largest gradient entry of the summed objective:
    ``tol * max(1, total sample weight)``.

    The summed objective ``sum_i w_i l_i + delta/2 |w|^2`` and its gradient grow
    with the total sample weight; measured per unit of it, ``tol`` bounds the
    gradient of the *mean* loss, as scikit-learn's MLP does (``gtol``), whatever
    the data size. The ``max(1, .)`` keeps the absolute ``tol`` for tiny or
    heavily down-weighted data. (It is not divided by a Gaussian's noise
    precision ``1 / sigma^2``, which would loosen it with a small ``noise_std``:
    the evidence identities the tests check at default settings need the
    tighter one.)
    """
    return tol * max(1.0, _total_weight(X, weights))


def _train_lbfgs(module, likelihood, X, y, weights, prior_precision, max_iter, tol,
                 learning_rate, verbose):
    """Full-batch L-BFGS (strong Wolfe line search) until the gradient's max-norm
    is below :func:`lbfgs_gradient_tolerance`, or when an iteration changes the
    objective (or every weight) by less than ``1e-6`` of that threshold: ``1e-6
    tol`` per unit of sample weight, a relative change of ~1e-11 for a loss of
    order one per example, where L-BFGS has stalled (float32 arithmetic, or a
    flat valley it would take thousands more iterations to cross). A
    ConvergenceWarning says that ``max_iter`` came first, with the gradient
    still above the threshold."""
    threshold = lbfgs_gradient_tolerance(X, weights, tol)
    optimizer = torch.optim.LBFGS(
        module.parameters(), lr=1.0, max_iter=max_iter, max_eval=2 * max_iter,
        tolerance_grad=threshold, tolerance_change=threshold * 1e-6, history_size=20,
        line_search_fn="strong_wolfe",
    )
    evaluations = []
    progress = Progress(verbose, "L-BFGS", max_iter, "iteration")
    state = optimizer.state[optimizer._params[0]]

    def closure():
        optimizer.zero_grad()
        loss, _ = _objective(module, likelihood, X, y, weights, prior_precision)
        value = loss.item()
        if not math.isfinite(value):
            raise _diverged(len(evaluations) + 1, learning_rate, "lbfgs")
        loss.backward()
        evaluations.append(value)
        progress.update(state.get("n_iter", 0), value)
        return loss

    optimizer.step(closure)
    n_iter = int(state["n_iter"])
    progress.update(n_iter, evaluations[-1], final=True)
    grad_norm = max(float(p.grad.abs().max()) for p in module.parameters())
    if n_iter >= max_iter and grad_norm > threshold:
        warnings.warn(
            f"L-BFGS reached max_iter={max_iter} with a gradient of max-norm "
            f"{grad_norm:.3g} > {threshold:.3g} (tol={tol:g} per unit of sample weight); "
            "increase max_iter, or standardise X (StandardScaler in a Pipeline): "
            "L-BFGS converges slowly on features that are not centred and scaled.",
            ConvergenceWarning,
        )
    return evaluations, n_iter
