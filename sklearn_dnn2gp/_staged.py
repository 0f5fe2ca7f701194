"""``'auto'`` hyperparameters at about the cost of one training: the retrained
evidence climbed along one warm-started training, by its derivative.

The retrained evidence ``E(t) = E(w*(t), t)`` (``t`` the log of ``delta sigma^2``
for a regressor, of ``delta`` for a classifier; the rest of
:mod:`._auto`'s docstring) has, at the MAP ``w*`` of ``t``, the derivative

    dE/dt = dE/dt|_w  +  dE/dw . dw*/dt.

The first term is the closed form of one trained network: maximising it alone
is MacKay's fixed point, which ignores how the weights move with the
regularisation and, for a nonlinear network, lies at too small a ``delta``. The
second term is where that bias comes from. At the MAP the log joint is
stationary in ``w``, so of the Laplace evidence only ``-1/2 log|s G(w) + delta
I|`` depends on ``w`` to first order, and by the implicit function theorem
``dw*/dt = -delta H^-1 w*`` with ``H`` the exact Hessian of the training
objective (:mod:`._hessian`; the GGN's answer was half the measured one): the
same for every point of a regressor's ray. One more curvature at ``w* + eps
dw*/dt`` gives the second term by a finite difference (:func:`logdet_slope`).

The search (:func:`run_staged`): train at the start to the trials' tolerance;
then, in stages, take a Newton step on ``dE/dt`` (the closed form's curvature,
or the secant of the last two derivatives where that is more curved; twice the
last step while the retrained evidence is still convex), at most
``MAX_STAGE_STEP``, and train on from the current weights. A step that
reverses the previous one halves the largest step. The stages stop when a step
would gain less than ``gain_tol`` nats (once a secant confirms the curvature) or
moves ``t`` by less than ``STAGE_TOL``; the last point is trained to the full
tolerance.
"""

import math

from ._trials import LOG_BOUNDS, SearchResult, Trial, at_ratio, ray_maximum

# A stage moves t (a log) by at most this: two decades.
MAX_STAGE_STEP = 2 * math.log(10.0)
# Stages stop when t moves by less than this (5% in delta sigma^2 or delta).
STAGE_TOL = 0.05
MAX_STAGES = 10
# The step of the closed form's finite differences in t.
_H = 0.05


def logdet_slope(log_det_at, direction, eps=1e-4):
    """``-1/2 d/d eps log|s G(w + eps v) + delta I|`` at 0 by a forward difference:
    ``log_det_at(step)`` is the log-determinant with the weights moved by ``step``
    times the direction ``v`` (0: not moved); ``eps`` is relative to ``|w| / |v|``
    (``direction`` gives both norms)."""
    w_norm, v_norm = direction
    if v_norm == 0 or not math.isfinite(v_norm):
        return 0.0
    step = eps * max(w_norm, 1.0) / v_norm
    return -0.5 * (log_det_at(step) - log_det_at(0.0)) / step


def run_staged(search):
    """The staged search of :class:`._auto.EvidenceSearch` ``search`` (one common
    prior precision, or a fixed one with the scale searched): a
    :class:`._trials.SearchResult`."""
    fixed = search.fixed_prior
    floor = search.scale_floor
    low, high = LOG_BOUNDS
    if fixed is None:
        t = min(max(search.start, low), high)
        delta, scale = math.exp(t), 1.0
    else:
        delta, scale = float(fixed), 1.0
        t = math.log(delta)
        if search.search_scale:
            low = max(low, math.log(delta * floor**2))

    def profile(fit, t, scale, value=True):
        """The closed form's best ``(value, delta, scale)`` on the ray ``t`` of ``fit``
        (the scale maximised when it is searched with delta; ``value`` False: the
        value is not needed, unless to find the scale)."""
        if fixed is not None:
            c = math.sqrt(math.exp(t) / fixed) if search.search_scale else None
            at = float(search.evidence(fit, float(fixed), c)) if value else None
            return at, float(fixed), c or scale
        if not search.search_scale:
            return (float(search.evidence(fit, math.exp(t))) if value else None,
                    math.exp(t), scale)
        return ray_maximum(lambda d, c: search.evidence(fit, d, c), math.exp(t), scale, floor)

    trials, fit, max_step, last_step, previous = [], None, MAX_STAGE_STEP, 0.0, None
    for stage in range(MAX_STAGES + 1):
        try:
            fit = search.train(fit, delta, scale, True)
        except ValueError:
            if fit is None:
                raise
            # Training diverged at these hyperparameters: step back halfway.
            max_step /= 2
            t = trials[-1].log_ratio + math.copysign(max_step, last_step)
            delta, scale = at_ratio(t, scale, None if fixed is None else delta)
            continue
        value, best_delta, best_scale = profile(fit, t, scale)
        trial = Trial(t, value if math.isfinite(value) else -math.inf,
                      {"prior_precision": best_delta, "scale": best_scale}, fit)
        trials.append(trial)
        if search.on_trial is not None:
            search.on_trial(trial)
        if stage == MAX_STAGES or not math.isfinite(value):
            break
        # The closed form's derivatives in t (the scale re-maximised at each point:
        # the envelope), and the weights' part of the retrained derivative.
        below = profile(fit, t - _H, best_scale)[0]
        above = profile(fit, t + _H, best_scale)[0]
        closed_slope = (above - below) / (2 * _H)
        closed_curvature = (above - 2 * value + below) / _H**2
        derivative = closed_slope + search.slope(
            fit, best_delta, best_scale if search.search_scale else None)
        curvature, secant = closed_curvature, None
        if previous is not None and abs(t - previous[0]) > 1e-3:
            secant = (derivative - previous[1]) / (t - previous[0])
            # The secant of the retrained derivative where it is more curved than the
            # closed form (the weights' part changes fast): the shorter step.
            curvature = min(curvature, secant)
        previous = (t, derivative)
        converged = False
        if secant is not None and secant >= 0 and derivative * last_step > 0:
            # Still climbing where the retrained evidence is convex: no model of the
            # step's length; double it.
            step = 2 * last_step
        elif curvature < 0:
            step = -derivative / curvature
            # What the step gains by the quadratic model: below gain_tol nats the
            # evidence does not tell the hyperparameters apart. Only once a secant
            # confirms the model's curvature: the first stage's can be far off.
            converged = secant is not None and secant < 0 and \
                0.5 * derivative * step < search.gain_tol
        else:
            step = math.copysign(max_step, derivative)
        if step * last_step < 0:
            max_step /= 2
        step = max(-max_step, min(max_step, step))
        last_step = step
        t = min(max(t + step, low), high)
        _, delta, scale = profile(fit, t, best_scale, value=False)
        if converged or abs(step) < STAGE_TOL:
            break

    chosen = {"prior_precision": delta, "scale": scale}
    final = search.train(fit, delta, scale, False)
    value = float(search.evidence(final, delta))
    at_bound = None
    if fixed is None and t >= high - STAGE_TOL:
        at_bound = "upper"
    elif fixed is None and t <= low + STAGE_TOL:
        at_bound = "lower"
    return SearchResult(final, chosen, trials, [(value, chosen, final)], at_bound)

