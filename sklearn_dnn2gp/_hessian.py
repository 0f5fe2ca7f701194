"""The exact Hessian of the training objective, as products with vectors, and
linear solves with it by preconditioned conjugate gradients.

The GGN drops the network's second derivatives weighted by the residuals; that
is right for the posterior's covariance, but how the MAP moves with the
prior precision, ``dw*/dt = -delta H^-1 w*`` (:mod:`._staged`), needs the
Hessian ``H`` itself: on diabetes the GGN's answer was 0.6 times as long as
the measured movement, and the evidence's derivative built on it half the
measured one.
"""

import torch

from ._network import flat_parameters

# Rows per pass of the Hessian-vector product, so the graph of its second
# derivatives stays small for large data.
_CHUNK = 4096


def hessian_vector_product(module, likelihood, X, y, weights, prior_precision, v):
    """``H v`` for the Hessian of ``sum_i w_i l(y_i, f(x_i)) + delta/2 |w|^2`` at
    ``module``'s weights (``v`` float64 of length P; the result too)."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    first = params[0]
    v_in = v.to(device=first.device, dtype=first.dtype)
    total = torch.zeros_like(v, dtype=torch.float64)
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            for start in range(0, X.shape[0], _CHUNK):
                rows = slice(start, start + _CHUNK)
                loss = likelihood.loss(module(X[rows]), y[rows],
                                       None if weights is None else weights[rows])
                grads = torch.autograd.grad(loss, params, create_graph=True)
                flat = torch.cat([g.reshape(-1) for g in grads])
                second = torch.autograd.grad(flat @ v_in, params)
                total += torch.cat([g.reshape(-1) for g in second]).to(torch.float64)
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
    return total + prior_precision * v


def conjugate_gradients(product, b, precondition, *, rtol=1e-3, max_iter=30):
    """Solve ``A x = b`` for a symmetric ``A`` given as ``product(x)``,
    preconditioned by ``precondition(r)`` (an approximation of ``A^-1 r``), from
    ``x = precondition(b)``.

    Stops at a residual ``rtol |b|``, after ``max_iter`` products, or at a
    direction of non-positive curvature; returns the iterate of smallest
    residual. Away from a minimum ``A`` need not be positive definite, CG's
    residual then wanders, and the preconditioner's answer (the start) may be
    the best there is.
    """
    x = precondition(b)
    r = b - product(x)
    best, best_norm = x, r.norm()
    z = precondition(r)
    p, rz = z, r @ z
    target = rtol * b.norm()
    for _ in range(max_iter):
        if best_norm <= target:
            break
        Ap = product(p)
        curvature = p @ Ap
        if not curvature > 0:
            break
        alpha = rz / curvature
        x = x + alpha * p
        r = r - alpha * Ap
        if r.norm() < best_norm:
            best, best_norm = x, r.norm()
        z = precondition(r)
        rz, previous = r @ z, rz
        p = z + (rz / previous) * p
    return best


def map_sensitivity(module, likelihood, X, y, weights, prior_precision, precondition):
    """``dw*/d log delta = -delta H^-1 w*`` at ``module``'s weights (the MAP of
    the objective at ``prior_precision``, a float), by :func:`conjugate_gradients`
    preconditioned by ``precondition`` (the posterior's covariance product)."""
    w = flat_parameters(module).to(torch.float64)

    def product(v):
        return hessian_vector_product(module, likelihood, X, y, weights, prior_precision, v)

    return -prior_precision * conjugate_gradients(product, w, precondition)
