"""The function-space view (Theorem 1): NTK kernel blocks, the GP mean's weights and
the exact GP evidence on the whitened linear model by a Cholesky factorisation (the
transformed targets and the whitening are the likelihood's,
:meth:`Likelihood.transformed_targets` and :meth:`Likelihood.whiten_weighted`; the
Gaussian density itself is :func:`._evidence.gaussian_log_density`).

Whitening: with ``Lambda_i = R_i^T R_i`` and sample weights ``w_i``, the linear
model ``y~ = J w + eps``, ``eps ~ N(0, Lambda^-1 / w)``, ``w ~ N(0, I / delta)``
becomes ``u = M w + e``, ``e ~ N(0, I)``, with ``M_i = sqrt(w_i) R_i J_i`` and
``u_i = sqrt(w_i) R_i y~_i``; its kernel is ``M M^T / delta``. These functions
are the direct (Cholesky) function-space path; :mod:`.posteriors` and
:mod:`._evidence` hold the spectral path, and the tests keep them equal.
"""

import math
from typing import NamedTuple

import torch

from ._evidence import gaussian_log_density
from .posteriors import DiagPosterior, FullPosterior, add_to_diagonal


def gp_weight_shift(posterior, b):
    """``w_lin - w*`` with ``w_lin = Sigma J^T Lambda y~ = Sigma b``: the weights of
    the GP mean (Theorem 1) relative to the network's. ``-Sigma grad L(w*)``, one
    Gauss-Newton step, so it vanishes at a stationary point."""
    return posterior.covariance_product(b) - posterior.mean


def ntk(J1, J2=None, mode="trace"):
    """Kernel ``J(x) J(x')^T`` between two sets of Jacobians (n, K, P) and (m, K, P).

    ``mode='trace'`` gives ``tr(J_i J_j^T)`` (n, m), the sum of the per-output
    kernels; ``'full'`` the (n K, m K) matrix of all K x K blocks; ``'sum'`` the
    sum of all entries of each block (n, m).
    """
    J2 = J1 if J2 is None else J2
    if mode == "trace":
        return torch.einsum("ikp,jkp->ij", J1, J2)
    if mode == "sum":
        return J1.sum(1) @ J2.sum(1).T
    if mode == "full":
        return J1.reshape(-1, J1.shape[-1]) @ J2.reshape(-1, J2.shape[-1]).T
    raise ValueError(f"mode must be 'trace', 'full' or 'sum', got {mode!r}.")


def whitened_log_evidence(M, u, prior_precision, space="function"):
    """``log N(u | 0, M M^T / delta + I)`` by a Cholesky factorisation.

    ``space='function'`` factorises the (n, n) covariance; ``'weight'`` the (P, P)
    matrix ``M^T M + delta I`` (Woodbury and Sylvester), the cheaper one when
    ``P < n``.
    """
    M, u = M.to(torch.float64), u.to(torch.float64)
    n, p = M.shape
    if space == "weight":
        delta = float(prior_precision)
        chol = torch.linalg.cholesky(add_to_diagonal(M.T @ M, delta))
        b = M.T @ u
        # |u|^2 - b^T (M^T M + delta I)^-1 b = u^T (M M^T / delta + I)^-1 u >= 0.
        quad = (u @ u - b @ torch.cholesky_solve(b[:, None], chol)[:, 0]).clamp_min(0)
        log_det = 2 * torch.log(torch.diagonal(chol)).sum() - p * math.log(delta)
        return gaussian_log_density(quad, log_det, n)
    cov = M @ M.T / prior_precision + torch.eye(n, dtype=M.dtype, device=M.device)
    chol = torch.linalg.cholesky(cov)
    alpha = torch.cholesky_solve(u[:, None], chol)[:, 0]
    return gaussian_log_density(u @ alpha, 2 * torch.log(torch.diagonal(chol)).sum(), n)


class IterateGP(NamedTuple):
    """The GP whose posterior is one VI step (Theorem 2); rows example-major.

    Attributes
    ----------
    prior_mean : tensor of shape (n K,)
        ``J m_t``.
    kernel : tensor of shape (n K, n K)
        ``J V_t J^T``.
    targets : tensor of shape (n, K)
        Transformed targets ``y~_i = J_i mu_t - (alpha / beta) Lambda_i^+ r_i``.
    noise_precision : tensor of shape (n, K, K)
        Precision of the observation noise on ``y~_i``: ``beta c w_i Lambda_i / m``.
    """

    prior_mean: torch.Tensor
    kernel: torch.Tensor
    targets: torch.Tensor
    noise_precision: torch.Tensor


def vi_iterate_gp(f, J, y, likelihood, mean, precision, *, prior_precision, beta,
                  learning_rate=None, weights=None, scale=1.0, n_samples=1):
    """The GP of Theorem 2 at a VI iterate ``q_t = N(mu_t, Sigma_t)``.

    The next iterate of :func:`~sklearn_dnn2gp._vi.natural_gradient_step`
    (step ``alpha``, averaging rate ``beta``) is exactly the posterior of the
    linear model ``y~ = J w + eps``, ``eps_i ~ N(0, (beta c w_i Lambda_i / m)^-1)``,
    ``w ~ N(m_t, V_t)`` with

        V_t^-1 = (1 - beta) Sigma_t^-1 + beta delta I,
        m_t    = mu_t - alpha delta V_t mu_t,

    so the GP over the outputs has prior mean ``J m_t`` and kernel ``J V_t J^T``.
    For ``alpha = beta`` (the natural-gradient step) ``m_t = (1 - beta) V_t
    Sigma_t^-1 mu_t`` and ``y~ = J mu_t - Lambda^-1 r``: the paper's statement.

    Parameters
    ----------
    f, J : tensors of shape (n, K) and (n, K, P)
        Outputs and Jacobians where the step evaluates them: at ``mu_t`` (OGN)
        or at one Monte-Carlo sample (VOGN; ``m`` samples are ``m`` stacked
        copies of the data, each with ``n_samples=m``).
    y : tensor
        Targets of the minibatch, as the likelihood takes them.
    likelihood : object
    mean : tensor of shape (P,)
        ``mu_t``.
    precision : tensor of shape (P,) or (P, P)
        ``Sigma_t^-1``, diagonal or full.
    prior_precision : float
        ``delta``.
    beta : float
        Averaging rate of the precision.
    learning_rate : float, default=None
        Step size ``alpha`` of the mean; defaults to ``beta``.
    weights : tensor of shape (n,), default=None
        Sample weights ``w_i``.
    scale : float, default=1.0
        ``c = N / batch size``.
    n_samples : int, default=1

    Returns
    -------
    gp : IterateGP
    """
    alpha = beta if learning_rate is None else learning_rate
    mean = mean.to(torch.float64)
    precision = precision.to(torch.float64)
    delta = float(prior_precision)
    curvature = add_to_diagonal(precision, -delta)
    # V_t^-1 = (1 - beta) (S + delta I) + beta delta I = (1 - beta) S + delta I.
    structure = DiagPosterior if precision.dim() == 1 else FullPosterior
    prior = structure.from_curvature(mean, (1 - beta) * curvature, delta)
    prior_mean = mean - alpha * delta * prior.covariance_product(mean)
    J64, f64 = J.to(torch.float64), f.to(torch.float64)
    lam = likelihood.precision(f64)
    # Lambda^+ r: for the singular softmax precision, the targets on its range, which
    # is all the data see.
    residual = likelihood.residual(f64, y.to(torch.float64) if y.is_floating_point() else y)
    correction = likelihood.solve_precision(f64, residual)
    targets = J64 @ mean - (alpha / beta) * correction
    noise = beta * scale / n_samples * lam
    if weights is not None:
        noise = noise * weights.to(torch.float64)[:, None, None]
    return IterateGP(
        prior_mean=(J64 @ prior_mean).reshape(-1),
        kernel=prior.functional_covariance(J64),
        targets=targets,
        noise_precision=noise,
    )
