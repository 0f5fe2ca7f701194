"""What a search of the retrained evidence records (:mod:`._auto`, :mod:`._staged`)."""

import math
from typing import Any, NamedTuple

from ._evidence import maximize_log_evidence

# The searched log ratio stays within these (log of delta * sigma^2 or of delta).
LOG_BOUNDS = (math.log(1e-8), math.log(1e8))
# The scale maximised on each ray stays within this factor of where it was trained.
SCALE_SPAN = 1e3
# A search stops refining when a step would gain less than this in log evidence: a
# quarter of a nat, below what the trials' loose tolerance lets the evidence resolve
# (and far below a difference that would favour one model over another).
GAIN_TOL = 0.25


class Trial(NamedTuple):
    """One retraining of the search.

    ``log_ratio`` is the outer variable it was trained at, ``log_evidence`` the
    evidence there (maximised over the noise along the ray for regression),
    ``hyperparameters`` the maximiser (``prior_precision``, ``scale``)
    and ``state`` whatever the caller needs to rebuild the fit.
    """

    log_ratio: float
    log_evidence: float
    hyperparameters: dict
    state: Any


class SearchResult(NamedTuple):
    """What :meth:`EvidenceSearch.run` found.

    ``fit`` is the fit kept, trained to the full tolerance at ``hyperparameters``
    (``prior_precision``, ``scale``); ``trials`` every trial of the search, in
    order; ``finals`` the ``(log_evidence, hyperparameters, fit)`` of each
    finalist trained to the full tolerance, worst first (the kept one last).
    ``at_bound`` is ``'lower'`` or ``'upper'`` when the evidence was still rising
    at that bound of the searched ratio (its maximum lies beyond what the search
    may try), else None.
    """

    fit: Any
    hyperparameters: dict
    trials: list
    finals: list
    at_bound: Any = None


def ray_maximum(evidence, ratio, scale, floor):
    """``(value, delta, c)``: the maximum over the likelihood's scale ``c`` of
    ``evidence(delta, c)`` along the ray ``delta c^2 = ratio`` (every point of which
    has the same MAP), ``c`` within ``SCALE_SPAN`` of ``scale`` and above ``floor``."""
    def along_ray(c):
        return float(evidence(ratio / c[0] ** 2, c[0]))

    low = max(scale / SCALE_SPAN, floor)
    (c,), value = maximize_log_evidence(
        along_ray, [max(scale, low)], [[low, max(scale * SCALE_SPAN, low)]])
    return value, ratio / c**2, float(c)


def at_ratio(t, scale, fixed_delta=None, direction=1.0):
    """``(delta, scale)`` of training at log ratio ``t`` (``delta scale^2 =
    exp(t) direction``): the scale kept when delta is searched, else the fixed
    ``fixed_delta`` (times ``direction``, per-layer proportions) and the scale it
    implies."""
    if fixed_delta is not None:
        return fixed_delta * direction, math.sqrt(math.exp(t) / fixed_delta)
    return math.exp(t) * direction / scale**2, scale

