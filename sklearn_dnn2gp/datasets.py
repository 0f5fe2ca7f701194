"""Small data sets for demos and the paper's reference experiments."""

import numpy as np
from sklearn.utils import check_random_state


def make_gap_regression(n_samples=100, noise=0.1, gap=(-1.0, 1.0), bounds=(-4.0, 4.0),
                        random_state=None):
    """A 1-D regression problem ``y = sin(x) + noise`` with no inputs inside a gap.

    Predictive uncertainty should grow inside the gap: the "in-between"
    uncertainty of Foong et al. and of the DNN2GP paper's Snelson experiment.

    Parameters
    ----------
    n_samples : int, default=100
    noise : float, default=0.1
        Standard deviation of the Gaussian noise on ``y``.
    gap : tuple of float, default=(-1.0, 1.0)
        Interval left without training inputs.
    bounds : tuple of float, default=(-4.0, 4.0)
        Range of the inputs.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    X : ndarray of shape (n_samples, 1)
    y : ndarray of shape (n_samples,)

    Examples
    --------
    >>> from sklearn_dnn2gp.datasets import make_gap_regression
    >>> X, y = make_gap_regression(n_samples=10, random_state=0)
    >>> X.shape, y.shape
    ((10, 1), (10,))
    """
    rng = check_random_state(random_state)
    left = gap[0] - bounds[0]
    right = bounds[1] - gap[1]
    u = rng.uniform(0, left + right, n_samples)
    x = np.where(u < left, bounds[0] + u, gap[1] + (u - left))
    x = np.sort(x)
    y = np.sin(x) + noise * rng.randn(n_samples)
    return x[:, None], y
