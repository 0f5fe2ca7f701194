"""The function-space view (Theorem 1): NTK kernel blocks, transformed targets and
the exact GP computations on the whitened linear model.

Whitening: with ``Lambda_i = R_i^T R_i`` and sample weights ``w_i``, the linear
model ``y~ = J w + eps``, ``eps ~ N(0, Lambda^-1 / w)``, ``w ~ N(0, I / delta)``
becomes ``u = M w + e``, ``e ~ N(0, I)``, with ``M_i = sqrt(w_i) R_i J_i`` and
``u_i = sqrt(w_i) R_i y~_i``; its kernel is ``M M^T / delta``. These functions
are the direct (Cholesky) function-space path; :mod:`._posterior` and
:mod:`._evidence` hold the spectral path, and the tests keep them equal.
"""

import math

import torch

_LOG_2PI = math.log(2 * math.pi)


def gaussian_transformed_targets(f, J, w, y):
    """``y~ = J w* - Lambda^-1 r = y + J w* - f`` for a Gaussian likelihood, (n, K)."""
    return y + J @ w.to(J.dtype) - f


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


def whitened_log_evidence(M, u, prior_precision):
    """``log N(u | 0, M M^T / delta + I)`` by a Cholesky factorisation (n x n)."""
    M, u = M.to(torch.float64), u.to(torch.float64)
    n = M.shape[0]
    cov = M @ M.T / prior_precision + torch.eye(n, dtype=M.dtype, device=M.device)
    chol = torch.linalg.cholesky(cov)
    alpha = torch.cholesky_solve(u[:, None], chol)[:, 0]
    return (
        -0.5 * u @ alpha
        - torch.log(torch.diagonal(chol)).sum()
        - 0.5 * n * _LOG_2PI
    )


def whitened_latent_variance(M, J_test, prior_precision):
    """``k** - k*^T (K + I)^-1 k*`` per test point, K x K blocks (b, K, K).

    ``M`` holds the whitened training Jacobians (n, P), ``J_test`` the
    Jacobians of the test points (b, K, P).
    """
    M, J_test = M.to(torch.float64), J_test.to(torch.float64)
    n = M.shape[0]
    K = M @ M.T / prior_precision + torch.eye(n, dtype=M.dtype, device=M.device)
    chol = torch.linalg.cholesky(K)
    k_cross = J_test @ M.T / prior_precision  # (b, K, n)
    v = torch.linalg.solve_triangular(chol, k_cross.reshape(-1, n).T, upper=False)
    v = v.T.reshape(k_cross.shape)
    return J_test @ J_test.transpose(1, 2) / prior_precision - v @ v.transpose(1, 2)
