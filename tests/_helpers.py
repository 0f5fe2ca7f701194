"""Independent reference computations used by several test modules."""

import numpy as np


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
