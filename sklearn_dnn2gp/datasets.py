"""Small data sets for demos and the paper's reference experiments."""

import os
from pathlib import Path

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


def default_data_dir():
    """Folder of the reference data files.

    Returns
    -------
    path : pathlib.Path
        ``$SKLEARN_DNN2GP_DATA``, else ``shared/data`` beside the repository
        checkout.
    """
    env = os.environ.get("SKLEARN_DNN2GP_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def load_wine_split(split, data_dir=None):
    """One of the 20 red-wine train/test splits, preprocessed as in the DNN2GP paper.

    The values go through float32 (as the paper's loader did); X and y are
    standardised with the training split's mean and population std.

    Parameters
    ----------
    split : int
        Split index, 0 to 19.
    data_dir : str or path-like, default=None
        Folder holding ``winequality-red.csv`` and ``wine_splits/``;
        defaults to :func:`default_data_dir`.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Standardised inputs and targets.
    y_std : float
        The training targets' std: ``y_std**2 * MSE`` is the MSE in the
        original units.
    """
    data_dir = Path(default_data_dir() if data_dir is None else data_dir)
    data = np.loadtxt(data_dir / "winequality-red.csv", delimiter=",", skiprows=1)
    data = data.astype(np.float32).astype(np.float64)
    X, y = data[:, :11], data[:, 11]
    train = np.loadtxt(data_dir / "wine_splits" / f"index_train_{split}.txt", dtype=int)
    test = np.loadtxt(data_dir / "wine_splits" / f"index_test_{split}.txt", dtype=int)
    x_mean, x_std = X[train].mean(0), X[train].std(0)
    y_mean, y_std = y[train].mean(), y[train].std()
    X, y = (X - x_mean) / x_std, (y - y_mean) / y_std
    return X[train], y[train], X[test], y[test], float(y_std)


def load_snelson(data_dir=None, in_between=True):
    """The Snelson 1-D regression data; ``in_between`` drops 1.5 <= x <= 3 (148 points left).

    Parameters
    ----------
    data_dir : str or path-like, default=None
        Folder holding ``snelson_train_{inputs,outputs}.txt``; defaults to
        :func:`default_data_dir`.
    in_between : bool, default=True

    Returns
    -------
    X : ndarray of shape (n_samples, 1)
    y : ndarray of shape (n_samples,)
    """
    data_dir = Path(default_data_dir() if data_dir is None else data_dir)
    x = np.loadtxt(data_dir / "snelson_train_inputs.txt")
    y = np.loadtxt(data_dir / "snelson_train_outputs.txt")
    if in_between:
        keep = (x < 1.5) | (x > 3)
        x, y = x[keep], y[keep]
    return x[:, None], y
