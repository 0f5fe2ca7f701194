"""Log marginal likelihoods of a fitted network, at any hyperparameters.

A fit's evidence is an object, built once from the posterior and the
likelihood's statistics of the data, and called at any prior precision (and
likelihood hyperparameters): :class:`LaplaceEvidence` for every likelihood and
posterior, :class:`GaussianProcessEvidence` for a Gaussian likelihood with a
full posterior. ``gaussian_log_evidence`` is the GP evidence of the
transformed targets written in G's eigenbasis, so every further
(``delta``, noise scale) pair costs O(P) or O(n) once the posterior holds its
spectrum; ``laplace_log_evidence`` is the weight-space Laplace-GGN evidence.
"""


import numpy as np
import torch
from scipy.optimize import minimize

from ._utils import LOG_2PI


def _kept(eigvals):
    """Eigenvalues of G that are not round-off (relative to the largest)."""
    return eigvals > eigvals.max().clamp_min(0) * eigvals.numel() * torch.finfo(eigvals.dtype).eps


def gaussian_log_density(quad, log_det, n_observations):
    """``log N(u | 0, C) = -1/2 u^T C^-1 u - 1/2 log|C| - n/2 log 2 pi`` from the
    quadratic form and the log-determinant: the GP evidence, whichever
    factorisation (a Cholesky factor in function or weight space, or the
    curvature's spectrum) gives the two."""
    return -0.5 * quad - 0.5 * log_det - 0.5 * n_observations * LOG_2PI


def residual_sq_norm(posterior, sq_norm, coords):
    """``|u_perp|^2``: the part of ``|u|^2`` outside the column space of ``M``.

    ``|u|^2 = |u_perp|^2 + sum_j c_j^2 / lambda_j``; splitting it once at fit
    time lets :func:`gaussian_log_evidence` add only non-negative terms.
    """
    keep = _kept(posterior.eigvals)
    inside = (coords[keep] ** 2 / posterior.eigvals[keep]).sum()
    return (sq_norm - inside).clamp_min(0)


def gaussian_log_evidence(posterior, residual, coords, n_observations, sum_log_noise):
    """GP evidence ``log N(y~ | 0, J J^T / delta + Lambda^-1)``.

    Parameters
    ----------
    posterior : FullPosterior
        Carries ``delta`` and the curvature scale ``s``: the noise stds are
        ``c`` times those the whitening used, with ``s = 1 / c^2``.
    residual : tensor
        ``|u_perp|^2`` (:func:`residual_sq_norm`) for the whitened targets
        ``u`` at ``s = 1``.
    coords : tensor
        Spectral coordinates ``c`` of ``b = M^T u`` at ``s = 1``.
    n_observations : float
        ``K sum_i w_i``, the number of scalar observations.
    sum_log_noise : float
        ``sum_i w_i sum_k log sigma_k`` at the new noise stds.

    Notes
    -----
    The data term ``s |u|^2 - s^2 sum_j c_j^2 / (s lambda_j + delta)`` is
    evaluated as ``s |u_perp|^2 + sum_j c_j^2 s delta / (lambda_j (s lambda_j + delta))``,
    a sum of non-negative terms, so it does not cancel when ``s`` is large.
    """
    s, delta = posterior.curvature_scale, posterior.prior_precision
    lam = posterior.eigvals
    keep = _kept(lam)
    inside = coords[keep] ** 2 * s * delta / (lam[keep] * (s * lam[keep] + delta))
    quad = s * residual + inside.sum()
    return (gaussian_log_density(quad, posterior.log_det_ratio(), n_observations)
            - sum_log_noise)


class LaplaceEvidence:
    """The Laplace-GGN evidence of a fit, as a function of the hyperparameters.

    ``evidence(prior_precision=None, **hyperparameters)``: the likelihood turns
    its own hyperparameters (the regression noise) into a data fit and a
    factor on the curvature; None keeps the fitted values.
    """

    def __init__(self, posterior, likelihood, statistics):
        self.posterior, self.likelihood, self.statistics = posterior, likelihood, statistics

    def __call__(self, prior_precision=None, **hyperparameters):
        posterior = self.posterior.with_hyperparameters(
            prior_precision, self.likelihood.curvature_scale(**hyperparameters))
        log_likelihood = self.likelihood.log_likelihood(self.statistics, **hyperparameters)
        return laplace_log_evidence(log_likelihood, posterior.mean, posterior)


class GaussianProcessEvidence(LaplaceEvidence):
    """The GP evidence ``log N(y~ | 0, J J^T / delta + Lambda^-1)`` of a Gaussian fit
    with a full posterior, at any ``prior_precision`` and common noise factor.

    At the fitted hyperparameters the posterior's Cholesky factor gives it
    directly (no eigendecomposition at fit time). Elsewhere it is written in G's
    eigenbasis: the spectral coordinates of ``b = M^T u`` and the part of
    ``|u|^2`` outside the column space of ``M`` are computed once, the first
    time, and each call is then O(P) or O(n).
    """

    def __init__(self, posterior, likelihood, statistics):
        super().__init__(posterior, likelihood, statistics)
        self.n_observations = statistics["sum_weights"] * likelihood.noise_std.numel()
        self._spectral = None

    def __call__(self, prior_precision=None, noise_std=None):
        posterior = self.posterior.with_hyperparameters(
            prior_precision, self.likelihood.curvature_scale(noise_std))
        log_noise = self.likelihood.log_noise_volume(self.statistics, noise_std)
        fitted = (posterior.prior_precision == self.posterior.prior_precision
                  and posterior.curvature_scale == self.posterior.curvature_scale)
        if fitted and posterior.cholesky() is not None:
            # s |u|^2 - s^2 b^T (s G + delta I)^-1 b, the minimum of the linear model's
            # regularised residual: non-negative.
            s, b = posterior.curvature_scale, self.statistics["b"]
            quad = (s * self.statistics["sq_norm"]
                    - s**2 * (b @ posterior.covariance_product(b))).clamp_min(0)
            return (gaussian_log_density(quad, posterior.log_det_ratio(), self.n_observations)
                    - log_noise)
        if not posterior.shares_factorisation(self.posterior):
            # Prior precisions in other proportions: another curvature (ScaledPosterior).
            residual, coords = self._split(posterior)
        else:
            if self._spectral is None:
                self._spectral = self._split(self.posterior)
            residual, coords = self._spectral
        return gaussian_log_evidence(posterior, residual, coords, self.n_observations,
                                     log_noise)

    def _split(self, posterior):
        """``(|u_perp|^2, c)`` in ``posterior``'s eigenbasis."""
        coords = posterior.spectral_coordinates(self.statistics["b"])
        return residual_sq_norm(posterior, self.statistics["sq_norm"], coords), coords


def laplace_log_evidence(log_likelihood, weights, posterior):
    """``log p(y|w*) + log N(w*|0, I/delta) + P/2 log 2 pi - 1/2 log|s G + delta I|``
    (``delta I`` is ``diag(delta)`` for per-parameter precisions)."""
    return (log_likelihood - 0.5 * posterior.prior_quadratic(weights)
            - 0.5 * posterior.log_det_ratio())


def maximize_log_evidence(log_evidence, start, bounds):
    """Maximise ``log_evidence(theta)`` over positive hyperparameters ``theta``.

    The search runs on ``log theta`` with L-BFGS-B and finite-difference
    gradients: each evaluation is a closed form of a fixed spectrum, O(P) or
    O(n), so a few hundred of them cost less than one Cholesky.

    Parameters
    ----------
    log_evidence : callable
        Maps an array of positive hyperparameters to a float.
    start : array-like of shape (n_hyperparameters,)
        Positive starting point.
    bounds : array-like of shape (n_hyperparameters, 2)
        Positive lower and upper bounds.

    Returns
    -------
    theta : ndarray of shape (n_hyperparameters,)
    value : float
        ``log_evidence(theta)``.
    """
    log_bounds = np.log(np.asarray(bounds, dtype=np.float64))
    x0 = np.clip(np.log(np.asarray(start, dtype=np.float64)), log_bounds[:, 0], log_bounds[:, 1])

    def objective(x):
        value = log_evidence(np.exp(x))
        # L-BFGS-B cannot step back from a NaN; a huge finite value makes it backtrack.
        return -value if np.isfinite(value) else 1e300

    result = minimize(objective, x0, method="L-BFGS-B", bounds=log_bounds)
    # The start is kept when the line search never improved on it (flat evidence).
    if result.fun > objective(x0):
        theta = np.exp(x0)
    else:
        theta = np.exp(result.x)
    return theta, float(log_evidence(theta))
