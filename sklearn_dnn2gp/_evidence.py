"""Log marginal likelihoods from a posterior's spectrum.

``gaussian_log_evidence`` is the GP evidence of the transformed targets
(DESIGN section 1) written in G's eigenbasis, so every further
(``delta``, noise scale) pair costs O(P) or O(n) once the posterior holds its
eigendecomposition. ``laplace_log_evidence`` is the weight-space Laplace-GGN
evidence, used for classification and for diagonal posteriors.
"""

import math

import torch

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_evidence(posterior, sq_norm, coords, n_observations, sum_log_noise):
    """GP evidence ``log N(y~ | 0, J J^T / delta + Lambda^-1)``.

    Parameters
    ----------
    posterior : FullPosterior
        Carries ``delta`` and the curvature scale ``s``: the noise stds are
        ``c`` times those the whitening used, with ``s = 1 / c^2``.
    sq_norm : tensor
        ``|u|^2`` for the whitened targets ``u`` at ``s = 1``.
    coords : tensor
        Spectral coordinates of ``b = M^T u`` at ``s = 1``.
    n_observations : float
        ``K sum_i w_i``, the number of scalar observations.
    sum_log_noise : float
        ``sum_i w_i sum_k log sigma_k`` at the new noise stds.
    """
    s, delta = posterior.curvature_scale, posterior.prior_precision
    quad = s * sq_norm - s**2 * (coords**2 / (posterior.spectrum + delta)).sum()
    return (
        -0.5 * quad
        - 0.5 * posterior.log_det_ratio()
        - 0.5 * n_observations * _LOG_2PI
        - sum_log_noise
    )


def laplace_log_evidence(log_likelihood, weights, posterior):
    """``log p(y|w*) + log N(w*|0, I/delta) + P/2 log 2 pi - 1/2 log|s G + delta I|``."""
    delta = posterior.prior_precision
    w = weights.to(torch.float64)
    return log_likelihood - 0.5 * delta * (w @ w) - 0.5 * posterior.log_det_ratio()


def gaussian_log_likelihood(rss, sum_weights, noise_std):
    """``sum_i w_i log N(y_i | f_i, diag(sigma^2))`` from per-output weighted RSS."""
    noise_std = torch.as_tensor(noise_std, dtype=torch.float64)
    return -(
        (rss / (2 * noise_std**2)).sum()
        + sum_weights * torch.log(noise_std).sum()
        + 0.5 * sum_weights * noise_std.numel() * _LOG_2PI
    )


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
    import numpy as np
    from scipy.optimize import minimize

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
