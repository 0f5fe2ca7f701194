"""Candidates that share networks: grouping by everything but the closed-form
hyperparameters, grid neighbours, and the climb of the exact evidence over
them."""

import time
from typing import NamedTuple

import numpy as np

from .._utils import worker_torch_threads
from ._common import _closed_form, _evidence_model, _evidence_prefix, _try_train


class _Group(NamedTuple):
    """Candidates trained together, starting from one network.

    ``indices`` are the candidates' positions in ``results_``; ``settings``
    the keyword arguments of ``log_marginal_likelihood`` for each, or None
    when no closed form is evaluated (no sharing); ``start`` the candidate
    trained first; ``neighbours[j]`` the candidates next to ``j`` along one
    hyperparameter with the others equal (positions within the group).
    """

    indices: list
    settings: list | None
    start: int
    neighbours: list


def _alone(i, settings=None):
    """Candidate ``i`` as a group of one: trained once, with nothing to climb to."""
    return _Group([i], settings, 0, [[]])


def _fit_group(estimator, params_list, group, X, y, fit_params, *, max_retrain, error_score,
               verbose, threads, caller_pid):
    """Train a group's candidates on as few networks as its grid allows.

    Train at ``start``, then climb the *exact* evidence over grid neighbours
    of the best network so far, each retraining warm-started from it, until
    no untried neighbour of the best network is left or ``max_retrain``
    retrainings are spent. Among untried neighbours, those that regularise
    more (larger ``delta`` / ``sigma``) come first, then the one the best
    network's closed-form evidence prefers: a warm start towards more
    regularisation converges in a fraction of the iterations, and the closed
    form of a nonlinear network is biased towards small ``delta`` (it keeps
    the weights fixed). A group of one is simply trained.
    """
    settings, neighbours = group.settings, group.neighbours
    n = len(params_list)
    exact, fit_time = np.full(n, np.nan), np.zeros(n)
    closed_form, score_time = np.full(n, np.nan), np.zeros(n)
    trained = np.zeros(n, dtype=bool)
    error, n_trained, n_failed = None, 0, 0

    def train(j, init=None):
        nonlocal error, n_trained, n_failed
        fitted, exact[j], fit_time[j], failure = _try_train(
            estimator, params_list[j], X, y, fit_params, error_score, verbose, init)
        n_trained += 1
        if failure is not None:
            error, n_failed = failure, n_failed + 1
        trained[j] = fitted is not None
        return fitted

    def evaluate(network, candidates):
        model = _evidence_model(network)
        for k in candidates:
            t0 = time.perf_counter()
            try:
                closed_form[k] = model.log_marginal_likelihood(**settings[k])
            except (ValueError, TypeError):
                # The closed form only proposes what to train next, so a setting it
                # rejects is not proposed rather than aborting the whole search.
                closed_form[k] = np.nan
            score_time[k] = time.perf_counter() - t0
        return closed_form

    best = group.start
    tried = {best}
    with worker_torch_threads(threads, caller_pid):
        # Only the best network so far is held: the climb starts from it.
        network = train(best)
        budget = max_retrain if network is not None else 0
        while budget > 0:
            untried = [k for k in neighbours[best] if k not in tried]
            if not untried:
                break
            values = evaluate(network, untried)
            # NaN does not order, so an unavailable closed form ranks last.
            step = max(untried, key=lambda k: (
                all(settings[k][name] >= settings[best][name] for name in settings[k]),
                -np.inf if np.isnan(values[k]) else values[k]))
            budget -= 1
            tried.add(step)
            fitted = train(step, network)
            if fitted is not None and exact[step] > exact[best]:
                best, network = step, fitted
        if network is not None and settings is not None:
            evaluate(network, range(n))
    return {
        "exact": exact,
        "closed_form": closed_form,
        "fit_time": fit_time,
        "score_time": score_time,
        "trained": trained,
        "best": best,
        "network": network,
        "error": error,
        "n_trained": n_trained,
        "n_failed": n_failed,
    }


def _grid_neighbours(settings):
    """For each setting, the nearest lower and higher values along each key
    among the settings that agree on every other key."""
    neighbours = [set() for _ in settings]
    keys = sorted(settings[0]) if settings else []
    for key in keys:
        lines = {}
        for j, setting in enumerate(settings):
            rest = tuple(setting[k] for k in keys if k != key)
            lines.setdefault(rest, []).append(j)
        for members in lines.values():
            values = sorted({settings[j][key] for j in members})
            for j in members:
                position = values.index(settings[j][key])
                adjacent = values[max(position - 1, 0):position + 2]
                neighbours[j].update(k for k in members if settings[k][key] in adjacent
                                     and settings[k][key] != settings[j][key])
    return [sorted(n) for n in neighbours]


def _closed_form_setting(params, base, names, prefix):
    """The ``log_marginal_likelihood`` keyword arguments of a candidate, or None
    when one of them is not a positive finite number."""
    setting = {}
    for name in names:
        value = params.get(name, base[name])
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        if not (np.isfinite(value) and value > 0):
            return None
        setting[name[len(prefix):]] = value
    return setting


def _is_scalar(value):
    """Whether a closed-form hyperparameter's value is one number to climb over
    (or an invalid one, which fails in its own fit), not 'auto' nor a vector."""
    if isinstance(value, str):
        return value != "auto"
    return np.ndim(value) == 0


def _freeze(value):
    """A hashable, order-insensitive stand-in for a parameter value."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return value


def _candidate_groups(estimator, candidates, reuse_network):
    """The groups (:class:`_Group`) in which ``candidates`` are trained.

    Without ``reuse_network`` every candidate is a group of one. With it,
    candidates are grouped by everything but the closed-form
    hyperparameters, and each group starts at the candidate nearest the
    median of their log values.
    """
    if not reuse_network:
        return [_alone(i) for i in range(len(candidates))]
    prefix = _evidence_prefix(estimator)
    base = estimator.get_params()
    names = [prefix + name for name in _closed_form(estimator) if prefix + name in base]
    groups, alone = {}, []
    for i, params in enumerate(candidates):
        # A value the fit chooses ('auto') or a vector (per-target noise, per-layer
        # precisions, rescaled only as a whole in closed form) is not climbed over:
        # it is part of what the group shares, and the closed form takes the fitted
        # value for it.
        free = [name for name in names if _is_scalar(params.get(name, base[name]))]
        setting = _closed_form_setting(params, base, free, prefix)
        if setting is None:
            # An invalid value has no closed form and no log for the median: it is
            # trained on its own, fails like an unshared candidate and is scored
            # error_score, and leaves the valid candidates' networks alone.
            raw = {name[len(prefix):]: params.get(name, base[name]) for name in free}
            alone.append(_alone(i, [raw]))
            continue
        shared = {k: v for k, v in params.items() if k not in free}
        groups.setdefault((tuple(free), _freeze(shared)), []).append((i, setting))
    result = []
    for members in groups.values():
        idx, settings = (list(column) for column in zip(*members))
        if settings and settings[0]:
            logs = np.log([[s[k] for k in sorted(s)] for s in settings])
            start = int(np.argmin(((logs - np.median(logs, axis=0)) ** 2).sum(1)))
        else:
            start = 0
        result.append(_Group(idx, settings, start, _grid_neighbours(settings)))
    return result + alone
