"""Subsets of the data for the function-space views, which cost O((n K)^2) memory
and O((n K)^3) time on n points: a uniform draw, or one stratified by class (as the
paper's Fig. 4 shows 30 test digits of each class)."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target

SUBSET_STRATEGIES = ("random", "stratified")


def subset_size_count(size, n_samples):
    """``size`` as a number of rows out of ``n_samples``: an int in ``[1, n_samples]``
    as it is, a float in ``(0, 1]`` as the fraction ``round(size * n_samples)`` (at
    least 1), None as all of them."""
    if size is None:
        return n_samples
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (Integral, Real)):
        raise TypeError(f"subset_size must be an int, a float or None, got {size!r} "
                        f"of type {type(size).__name__}.")
    if isinstance(size, Integral):
        if not 1 <= size <= n_samples:
            raise ValueError(
                f"subset_size={size!r} should be either positive and at most the number "
                f"of samples {n_samples} or a float in the (0, 1] range."
            )
        return int(size)
    if not 0 < size <= 1:  # also refuses NaN
        raise ValueError(
            f"subset_size={size!r} should be either positive and at most the number "
            f"of samples {n_samples} or a float in the (0, 1] range."
        )
    return max(1, int(np.floor(size * n_samples + 0.5)))


def check_subset_strategy(strategy):
    if not isinstance(strategy, str) or strategy not in SUBSET_STRATEGIES:
        raise ValueError(
            f"subset_strategy must be 'random' or 'stratified', got {strategy!r}."
        )
    return strategy


def subset_indices(n_samples, size, *, y=None, strategy="random", random_state=None):
    """Sorted indices of a subset of ``n_samples`` rows.

    Parameters
    ----------
    n_samples : int
    size : int, float or None
        Number of rows (int in ``[1, n_samples]``), fraction of them (float in
        ``(0, 1]``, rounded to the nearest count, at least 1) or None for all.
    y : array-like of shape (n_samples,), default=None
        Class labels; needed by ``strategy='stratified'``, ignored otherwise.
    strategy : {'random', 'stratified'}, default='random'
        ``'random'``: ``size`` rows uniformly without replacement.
        ``'stratified'``: each class gets its share ``size * n_c / n_samples``
        of the rows, rounded by largest remainder (ties drawn at random), and at
        least one row, so every class is present; uniform within each class.
    random_state : int, RandomState instance or None, default=None
        The draw; None uses numpy's global random state.

    Returns
    -------
    indices : ndarray of shape (n_subset,), dtype int
        Increasing row indices; ``arange(n_samples)`` when the subset is all
        of the rows.
    """
    check_subset_strategy(strategy)
    count = subset_size_count(size, n_samples)
    if strategy == "stratified":
        codes, n_classes = _class_codes(y, n_samples)
        if count < n_classes:
            raise ValueError(
                f"A stratified subset needs at least one row per class: subset_size gives "
                f"{count} rows but y has {n_classes} classes."
            )
    if count == n_samples:
        return np.arange(n_samples)
    rng = check_random_state(random_state)
    if strategy == "random":
        return np.sort(rng.choice(n_samples, count, replace=False))
    counts = np.bincount(codes, minlength=n_classes)
    taken = _allocate(counts, count, rng)
    chosen = [rng.choice(np.flatnonzero(codes == c), k, replace=False)
              for c, k in enumerate(taken)]
    return np.sort(np.concatenate(chosen))


def _class_codes(y, n_samples):
    if y is None:
        raise ValueError("subset_strategy='stratified' needs class labels y; got y=None.")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    kind = type_of_target(y, input_name="y")
    if kind not in ("binary", "multiclass"):
        raise ValueError(
            "subset_strategy='stratified' needs class labels (binary or multiclass "
            f"targets), got targets of type {kind!r}."
        )
    if len(y) != n_samples:
        raise ValueError(f"y has {len(y)} labels for {n_samples} samples.")
    classes, codes = np.unique(y, return_inverse=True)
    return codes.ravel(), len(classes)


def _allocate(counts, total, rng):
    """Rows per class: the shares ``total * counts / sum(counts)`` rounded by largest
    remainder with random tie-breaks, at least one per class, at most ``counts``."""
    share = total * counts / counts.sum()
    taken = np.maximum(np.floor(share).astype(int), 1)
    tie_break = rng.permutation(len(counts))
    while taken.sum() > total:  # the floor of one made a small class too large
        over = np.where(taken > 1, taken - share, -np.inf)
        taken[np.lexsort((tie_break, -over))[0]] -= 1
    while taken.sum() < total:
        under = np.where(taken < counts, share - taken, -np.inf)
        taken[np.lexsort((tie_break, -under))[0]] += 1
    return taken
