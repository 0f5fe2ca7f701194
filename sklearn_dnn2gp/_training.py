"""MAP training on the summed objective ``sum_i w_i l(y_i, f(x_i)) + delta/2 |w|^2``."""

import math
import warnings

import torch
from sklearn.exceptions import ConvergenceWarning

from ._network import flat_parameters


def _objective(module, likelihood, X, y, weights, prior_precision, scale=1.0):
    data = likelihood.loss(module(X), y, weights)
    w = flat_parameters_with_grad(module)
    return scale * data + 0.5 * prior_precision * (w @ w), data


def flat_parameters_with_grad(module):
    return torch.cat([p.reshape(-1) for p in module.parameters()])


def _diverged(iteration, learning_rate, solver):
    hint = (
        f"try a smaller learning_rate_init (now {learning_rate:g})"
        if solver == "adam"
        else "standardise X and y, or use solver='adam' with a small learning_rate_init"
    )
    return ValueError(
        f"Training diverged: the objective became non-finite at iteration {iteration}; "
        f"{hint}."
    )


def train_map(module, likelihood, X, y, weights, *, prior_precision, solver, max_iter,
              learning_rate, batch_size, tol, n_iter_no_change, generator, verbose=0):
    """Train ``module`` in place to the MAP. Return ``(loss_curve, n_iter)``.

    ``loss_curve`` holds the summed objective after each epoch (adam) or each
    function evaluation of the accepted iterates (lbfgs). Minibatch losses are
    scaled by ``N / batch`` so their expectation is the summed objective.
    """
    n = X.shape[0]
    total_weight = float(weights.sum()) if weights is not None else float(n)
    if solver == "lbfgs":
        return _train_lbfgs(module, likelihood, X, y, weights, prior_precision, max_iter,
                            tol, learning_rate, verbose)
    optimizer = torch.optim.Adam(module.parameters(), lr=learning_rate)
    loss_curve, best, stall = [], math.inf, 0
    for epoch in range(1, max_iter + 1):
        if batch_size >= n:
            order = None
        else:
            order = torch.randperm(n, generator=generator).to(X.device)
        epoch_data = 0.0
        for start in range(0, n, batch_size):
            idx = slice(start, start + batch_size) if order is None else order[
                start:start + batch_size]
            Xb, yb = X[idx], y[idx]
            wb = None if weights is None else weights[idx]
            optimizer.zero_grad()
            loss, data = _objective(module, likelihood, Xb, yb, wb, prior_precision,
                                    scale=n / Xb.shape[0])
            loss.backward()
            optimizer.step()
            epoch_data += float(data)
        w = flat_parameters(module)
        loss = epoch_data + 0.5 * prior_precision * float(w @ w)
        if not math.isfinite(loss):
            raise _diverged(epoch, learning_rate, solver)
        loss_curve.append(loss)
        if verbose:
            print(f"Iteration {epoch}, objective = {loss:.8g}")
        # tol is on the objective per unit of sample weight, as sklearn's MLP uses a mean loss.
        if loss > best - tol * total_weight:
            stall += 1
        else:
            stall = 0
        best = min(best, loss)
        if stall >= n_iter_no_change:
            return loss_curve, epoch
    warnings.warn(
        f"Adam reached max_iter={max_iter} before the objective stopped improving; "
        "increase max_iter.",
        ConvergenceWarning,
    )
    return loss_curve, max_iter


def _train_lbfgs(module, likelihood, X, y, weights, prior_precision, max_iter, tol,
                 learning_rate, verbose):
    optimizer = torch.optim.LBFGS(
        module.parameters(), lr=1.0, max_iter=max_iter, max_eval=2 * max_iter,
        tolerance_grad=tol, tolerance_change=tol * 1e-6, history_size=20,
        line_search_fn="strong_wolfe",
    )
    evaluations = []

    def closure():
        optimizer.zero_grad()
        loss, _ = _objective(module, likelihood, X, y, weights, prior_precision)
        value = loss.item()
        if not math.isfinite(value):
            raise _diverged(len(evaluations) + 1, learning_rate, "lbfgs")
        loss.backward()
        evaluations.append(value)
        if verbose:
            print(f"Evaluation {len(evaluations)}, objective = {value:.8g}")
        return loss

    optimizer.step(closure)
    n_iter = int(optimizer.state[optimizer._params[0]]["n_iter"])
    grad_norm = max(float(p.grad.abs().max()) for p in module.parameters())
    if n_iter >= max_iter and grad_norm > tol:
        warnings.warn(
            f"L-BFGS reached max_iter={max_iter} with a gradient of max-norm "
            f"{grad_norm:.3g} > tol={tol:g}; increase max_iter.",
            ConvergenceWarning,
        )
    return evaluations, n_iter
