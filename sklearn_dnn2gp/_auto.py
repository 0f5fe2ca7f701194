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

:class:`EvidenceSearch` is the whole of ``'auto'``: it knows what is searched
(the prior precision, one per layer or one for all, and the likelihood's scale)
and how, but not what a network, a likelihood or an estimator is. The
estimator hands it a ``train`` and an ``evidence`` callable and installs the
fit it returns. The likelihood's *scale* ``c`` is generic: the Gaussian noise
is ``c`` times a base noise, and a likelihood without hyperparameters has no
scale to search.
"""

import math

import numpy as np

from ._evidence import maximize_log_evidence
from ._staged import run_staged
from ._trials import GAIN_TOL, LOG_BOUNDS, SCALE_SPAN, SearchResult, Trial, at_ratio, ray_maximum
from ._utils import format_values

# Half a decade: the spacing of a 13-point grid over 1e-3 .. 1e3.
STEP = 0.5 * math.log(10.0)
# Parabolic refinements after the grid climb, and the step below which they stop.
REFINEMENTS = 3
XTOL = 0.01


def _parabola_at(points, x):
    """The parabola through three ``(x, f)`` points, evaluated at ``x``."""
    (x1, f1), (x2, f2), (x3, f3) = points
    return (f1 * (x - x2) * (x - x3) / ((x1 - x2) * (x1 - x3))
            + f2 * (x - x1) * (x - x3) / ((x2 - x1) * (x2 - x3))
            + f3 * (x - x1) * (x - x2) / ((x3 - x1) * (x3 - x2)))


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
# The search's trials stop at this multiple of the training's tolerance, or after
# this many iterations (epochs for Adam): they only rank hyperparameters, and the
# kept one is trained on to ``tol``. On friedman1 (1,000 rows) trials of up to
# 5,000 L-BFGS iterations made 60-70% of the search's time; capped at 500 the
# search took a third of it, at the same test R^2 within its standard error.
TRIAL_TOL_FACTOR = 10.0
TRIAL_MAX_ITER = 500


def search_log_ratio(evaluate, start, *, propose=None, step=STEP, bounds=LOG_BOUNDS,
                     refinements=REFINEMENTS, xtol=XTOL, gain_tol=GAIN_TOL):
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
    gain_tol : float, default=GAIN_TOL
        The parabolic refinement stops when its parabola promises less than
        this over the best trial (as well as at a step below ``xtol``).

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
        points = [(tr.log_ratio, value(tr)) for tr in (left, best, right)]
        finite = all(math.isfinite(value(tr)) for tr in (left, right))
        if not finite:
            break
        t = _vertex(points)
        if abs(t - best.log_ratio) < xtol or _parabola_at(points, t) - value(best) < gain_tol:
            break
        trial = run(t, best)
        if value(trial) > value(best):
            best = trial
    return best, trials


def _profile(evidence, log_ratio, delta, scale, *, direction=1.0, profile_scale, floor):
    """The evidence of a fit and its maximiser along its ray ``delta * scale^2 =
    exp(log_ratio) * direction`` (every point of which has the same MAP) when
    ``profile_scale`` (the scale kept above ``floor``); else at the
    hyperparameters it was trained at. ``evidence(prior_precision, scale=None)``."""
    if not profile_scale:
        return float(evidence(delta)), {"prior_precision": delta, "scale": scale}
    value, delta, c = ray_maximum(evidence, math.exp(log_ratio) * direction, scale, floor)
    return value, {"prior_precision": delta, "scale": c}


def _at_bound(best, trials, bounds):
    """``'lower'``/``'upper'`` when ``best`` is the trial nearest that bound and no
    step towards it fits inside: the climb stopped there, not at a maximum."""
    low, high = bounds
    tried = [t.log_ratio for t in trials]
    if best.log_ratio == max(tried) and best.log_ratio + STEP > high:
        return "upper"
    if best.log_ratio == min(tried) and best.log_ratio - STEP < low:
        return "lower"
    return None


def bound_warning(bound, chosen):
    """What the evidence running into a bound of its search means, and what to do
    (``chosen``: the hyperparameters of the fit kept)."""
    at = format_values(chosen, precision=3)
    if bound == "upper":
        meaning = ("the most regularised network the search tries, which predicts nearly "
                   "a constant: the evidence finds no dependence on X that pays for the "
                   "network's weights (too few examples, features that carry no signal, "
                   "or unscaled features)")
    else:
        meaning = ("the least regularised network the search tries: the evidence "
                   "prefers the data fitted ever more closely (noise-free targets, or "
                   "far more examples than weights)")
    return (f"The evidence was still rising at the {bound} bound of its search of "
            f"prior_precision and chose {at}, {meaning}. Check the inputs (scaled? "
            "informative?), or set prior_precision yourself.")


class EvidenceSearch:
    """Hyperparameters by the retrained evidence: what ``'auto'`` means in ``fit``.

    Parameters
    ----------
    train : callable
        ``train(warm, prior_precision, scale, trial) -> fit``: a network
        trained at these hyperparameters, warm-started from the fit ``warm``
        (None: from the initial weights), with ``fit.evidence``, ``fit.n_iter``
        and ``fit.emit_warnings()``. ``trial`` is True for the search's trials,
        which only rank hyperparameters (a looser tolerance and at most
        ``TRIAL_MAX_ITER`` iterations), and False for the finalists.
    evidence : callable
        ``evidence(fit, prior_precision, scale=None) -> float``: the fit's
        closed-form evidence elsewhere (``scale`` None: the scale it was
        trained at); ``prior_precision`` a float or one value per layer.
    fixed_prior : None, float or ndarray
        The prior precision when it is not 'auto' (one value per layer: an
        array of ``n_groups``), else None.
    search_scale : bool
        Whether the likelihood's scale is 'auto'.
    scale_floor : float or None
        The smallest scale the search may choose (None when it is not searched).
    layerwise : bool
        One precision per layer (``n_groups`` of them).
    n_groups : int
    start : float
        The log ratio where the climb starts when ``prior_precision`` is 'auto'.
    on_trial : callable, default=None
        Called with each trial of the search (progress for ``verbose``).
    strategy : {'retrain', 'staged'}, default='retrain'
        ``'retrain'``: the climb over retrained trials described above;
        ``'staged'``: one warm-started training moved by the retrained evidence's
        derivative (:mod:`._staged`; one common precision only).
    slope : callable, default=None
        ``slope(fit, prior_precision, scale=None) -> float``: the part of the
        retrained evidence's derivative in the log ratio that comes from the
        weights moving (:func:`._staged.logdet_slope`); needed by ``'staged'``.
    """

    def __init__(self, train, evidence, *, fixed_prior, search_scale, scale_floor, layerwise,
                 n_groups, start, on_trial=None, strategy="retrain", slope=None,
                 gain_tol=GAIN_TOL):
        self.strategy, self.slope, self.gain_tol = strategy, slope, gain_tol
        self.train, self.evidence = train, evidence
        self.fixed_prior, self.search_scale = fixed_prior, search_scale
        self.scale_floor = scale_floor
        self.layerwise, self.n_groups = layerwise, n_groups
        self.start, self.on_trial = start, on_trial

    def run(self):
        """Search, then train the best point (and, per layer, the common
        precision's best too) to the full tolerance: a :class:`SearchResult`."""
        if self.strategy == "staged":
            return run_staged(self)
        fixed = self.fixed_prior
        # The searched ratio delta c^2 (or delta) is exp(t) times ``direction``:
        # 1 for one precision, per layer the fixed precisions' proportions (geometric
        # mean 1) or exp of the layers' offsets.
        if fixed is None:
            direction, fixed_delta = 1.0, None
        elif np.ndim(fixed) == 0:
            direction, fixed_delta = 1.0, fixed
        else:
            fixed_delta = float(np.exp(np.log(fixed).mean()))
            direction = fixed / fixed_delta

        def evaluate(t, warm, direction=direction):
            scale = 1.0 if warm is None else warm.hyperparameters["scale"]
            delta, scale = at_ratio(t, scale, fixed_delta, direction)
            try:
                fit = self.train(None if warm is None else warm.state, delta, scale, True)
            except ValueError:
                if warm is None:
                    raise
                # Training diverged at these extreme hyperparameters: not a candidate.
                return Trial(t, -math.inf, {"prior_precision": delta, "scale": scale}, None)
            value, chosen = _profile(
                lambda d, c=None: self.evidence(fit, d, c), t, delta, scale,
                direction=direction, profile_scale=self.search_scale and fixed_delta is None,
                floor=self.scale_floor)
            if not math.isfinite(value):
                value = -math.inf
            trial = Trial(t, value, chosen, fit)
            if self.on_trial is not None:
                self.on_trial(trial)
            return trial

        def propose(trial):
            # The first network's closed-form maximiser over (delta, c), as log ratio.
            fit, scale = trial.state, trial.hyperparameters["scale"]
            (delta, c), _ = maximize_log_evidence(
                lambda theta: self.evidence(fit, theta[0], theta[1]),
                [trial.hyperparameters["prior_precision"], scale],
                [[1e-8, 1e8], [max(scale / SCALE_SPAN, self.scale_floor), scale * SCALE_SPAN]])
            return math.log(delta * c**2)

        start = self.start if fixed_delta is None else math.log(fixed_delta)
        # Only where the closed form is at hand: a regressor's profile already holds
        # the spectrum its maximisation needs.
        both = self.search_scale and fixed_delta is None
        bounds = LOG_BOUNDS
        if self.search_scale and fixed_delta is not None:
            # Here t fixes the scale: c^2 = exp(t) / delta.
            bounds = (max(LOG_BOUNDS[0], math.log(fixed_delta * self.scale_floor**2)),
                      LOG_BOUNDS[1])
        best, trials = search_log_ratio(evaluate, start, propose=propose if both else None,
                                        gain_tol=self.gain_tol,
                                        bounds=bounds)
        at_bound = _at_bound(best, trials, bounds)
        finalists = [best]
        if fixed is None and self.layerwise:
            layered, more = self._search_layers(evaluate, best)
            trials += more
            if layered is not best:
                # Trials stop early, so their evidences carry that error; the common
                # precision's best and the layers' are both trained to the full
                # tolerance and compared there (the per-layer family contains the
                # common one).
                finalists.insert(0, layered)

        # The fit kept is trained at the chosen point from the best trial (the same
        # MAP along its ray).
        finals = []
        for candidate in finalists:
            chosen = candidate.hyperparameters
            fit = self.train(candidate.state, chosen["prior_precision"], chosen["scale"], False)
            finals.append((self.evidence(fit, chosen["prior_precision"]), chosen, fit))
        finals.sort(key=lambda item: item[0] if math.isfinite(item[0]) else -math.inf)
        _, chosen, fit = finals[-1]
        return SearchResult(fit, chosen, trials, finals, at_bound)

    def _search_layers(self, evaluate, best):
        """One sweep of coordinate searches of the retrained evidence, layer by
        layer, over the log offset of that layer's precision from the common one
        ``best`` found (each a :func:`search_log_ratio` started at the current
        offset, whose first point is the best fit so far, not retrained)."""
        t0, offsets, trials = best.log_ratio, np.zeros(self.n_groups), []
        for layer in range(self.n_groups):
            current = best

            def along(u, warm, layer=layer, current=current):
                if warm is None:  # the start: the best fit so far
                    return current._replace(log_ratio=u)
                moved = offsets.copy()
                moved[layer] = u
                trial = evaluate(t0, warm, direction=np.exp(moved))
                return trial._replace(log_ratio=u)

            found, run = search_log_ratio(along, offsets[layer], gain_tol=self.gain_tol)
            trials += run[1:]
            if found.log_evidence > best.log_evidence:
                best, offsets[layer] = found, found.log_ratio
        return best._replace(log_ratio=t0), trials
