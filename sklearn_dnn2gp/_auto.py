"""Hyperparameters set by the evidence inside ``fit`` (``prior_precision='auto'``,
``noise_std='auto'``).

The quantity maximised is the *retrained* evidence: the log marginal likelihood
of a network trained at the hyperparameters it is evaluated at. The closed form
of one trained network (its weights held fixed) is biased towards small
``delta`` for a nonlinear network, because it ignores how the weights move with
the regularisation, so every point of the outer search is a (warm-started)
retraining. What makes this affordable for regression: the MAP of
``sum |y - f|^2 / (2 sigma^2) + delta/2 |w|^2`` depends on ``delta`` and
``sigma`` only through ``gamma = delta sigma^2``. One trained network therefore
gives the exact retrained evidence along the whole ray of constant ``gamma``,
and the search is one-dimensional in ``log gamma`` (``log delta`` for a
classifier), with ``sigma`` maximised in closed form on each ray.

The search itself (:func:`search_log_ratio`) climbs a grid of half-decade steps
from the start, trying the more regularised neighbour first (a warm start
towards more regularisation converges fastest), until the best point has
worse neighbours on both sides; successive parabolic interpolation through the
best point and its neighbours then refines it.
"""

import math
from typing import Any, NamedTuple

# Half a decade: the spacing of a 13-point grid over 1e-3 .. 1e3.
STEP = 0.5 * math.log(10.0)
# The outer variable stays within these (log of delta * sigma^2 or of delta).
LOG_BOUNDS = (math.log(1e-8), math.log(1e8))
# Parabolic refinements after the grid climb, and the step below which they stop.
REFINEMENTS = 3
XTOL = 0.01


class Trial(NamedTuple):
    """One retraining of the search.

    ``log_ratio`` is the outer variable it was trained at, ``log_evidence`` the
    evidence there (maximised over the noise along the ray for regression),
    ``hyperparameters`` the maximiser (``prior_precision``, ``noise_scale``)
    and ``state`` whatever the caller needs to rebuild the fit.
    """

    log_ratio: float
    log_evidence: float
    hyperparameters: dict
    state: Any


def _vertex(points):
    """The maximiser of the parabola through three ``(x, f)`` points with the
    middle one highest, clamped inside the outer two."""
    (x1, f1), (x2, f2), (x3, f3) = points
    numerator = (x2 - x1) ** 2 * (f2 - f3) - (x2 - x3) ** 2 * (f2 - f1)
    denominator = (x2 - x1) * (f2 - f3) - (x2 - x3) * (f2 - f1)
    if denominator == 0 or not math.isfinite(numerator / denominator):
        return x2
    return min(max(x2 - 0.5 * numerator / denominator, x1), x3)


# The farthest the first trial's closed form may move the climb's start, in steps.
MAX_JUMP = 8


def search_log_ratio(evaluate, start, *, propose=None, step=STEP, bounds=LOG_BOUNDS,
                     refinements=REFINEMENTS, xtol=XTOL):
    """Maximise a retrained evidence over one log-hyperparameter.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(log_ratio, warm) -> Trial``, training warm-started from
        the trial ``warm`` (None for the first).
    start : float
        Where the climb starts.
    propose : callable, default=None
        ``propose(trial) -> log_ratio``: where the first trial's own closed form
        puts the maximum. Biased for a nonlinear network, but a start for the
        climb that saves its steps when the maximum is far: the grid point
        nearest it (within ``MAX_JUMP`` steps) is trained second.

    Returns
    -------
    best : Trial
    trials : list of Trial
        Every trial, in the order they were run.
    """
    low, high = bounds
    start = min(max(start, low), high)
    trials = []

    def run(t, warm):
        trial = evaluate(t, warm)
        trials.append(trial)
        return trial

    def value(trial):
        # A fit whose evidence is not finite is never the best.
        return trial.log_evidence if math.isfinite(trial.log_evidence) else -math.inf

    grid = {0: run(start, None)}
    k = 0
    if propose is not None and math.isfinite(value(grid[0])):
        jump = propose(grid[0])
        if math.isfinite(jump):
            j = int(round(min(max((jump - start) / step, -MAX_JUMP), MAX_JUMP)))
            if abs(j) >= 2 and low <= start + j * step <= high:
                grid[j] = run(start + j * step, grid[0])
                k = max(grid, key=lambda i: value(grid[i]))
    while True:
        for j in (k + 1, k - 1):
            t = start + j * step
            if j not in grid and low <= t <= high:
                grid[j] = run(t, grid[k])
        best_k = max(grid, key=lambda j: value(grid[j]))
        if best_k == k:
            break
        k = best_k

    best = grid[k]
    for _ in range(refinements):
        below = [tr for tr in trials if tr.log_ratio < best.log_ratio]
        above = [tr for tr in trials if tr.log_ratio > best.log_ratio]
        if not below or not above:
            break  # the best point is at a bound: nothing to interpolate
        left = max(below, key=lambda tr: tr.log_ratio)
        right = min(above, key=lambda tr: tr.log_ratio)
        t = _vertex([(tr.log_ratio, value(tr)) for tr in (left, best, right)])
        finite = all(math.isfinite(value(tr)) for tr in (left, right))
        if not finite or abs(t - best.log_ratio) < xtol:
            break
        trial = run(t, best)
        if value(trial) > value(best):
            best = trial
    return best, trials
