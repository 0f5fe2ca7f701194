"""Candidates that share networks: grouping by everything but the closed-form
hyperparameters, grid neighbours, and the climb of the exact evidence over
them."""

import time

import numpy as np

from .._utils import worker_torch_threads
from ._common import _CLOSED_FORM, _evidence_model, _evidence_prefix, _try_train


def _fit_candidate(estimator, params, X, y, fit_params, error_score, verbose, threads,
                   caller_pid):
    """One candidate, trained once. Returns ``(estimator or None, score, fit time, error)``."""
    with worker_torch_threads(threads, caller_pid):
        return _try_train(estimator, params, X, y, fit_params, error_score, verbose)



def _fit_group(estimator, params_list, settings, start, neighbours, X, y, fit_params,
               max_retrain, error_score, verbose, threads, caller_pid):
    """Candidates that differ only in closed-form hyperparameters, on few networks.

    Train at ``start``, then climb the *exact* evidence over grid neighbours
    of the best network so far, each retraining warm-started from it, until
    no untried neighbour of the best network is left or ``max_retrain``
    retrainings are spent. Among untried neighbours, those that regularise
    more (larger ``delta`` / ``sigma``) come first, then the one the best
    network's closed-form evidence prefers: a warm start towards more
    regularisation converges in a fraction of the iterations, and the closed
    form of a nonlinear network is biased towards small ``delta`` (it keeps
    the weights fixed).
    """
    n = len(params_list)
    exact, fit_time = np.full(n, np.nan), np.zeros(n)
    closed_form, score_time = np.full(n, np.nan), np.zeros(n)
    networks, error, n_failed = {}, None, 0

    def train(j, init=None):
        nonlocal error, n_failed
        fitted, exact[j], fit_time[j], failure = _try_train(
            estimator, params_list[j], X, y, fit_params, error_score, verbose, init)
        if failure is not None:
            error, n_failed = failure, n_failed + 1
            return False
        networks[j] = fitted
        return True

    def evaluate(j, candidates):
        model = _evidence_model(networks[j])
        for k in candidates:
            t0 = time.perf_counter()
            try:
                closed_form[k] = model.log_marginal_likelihood(**settings[k])
            except ValueError:
                # The closed form only proposes what to train next, so a setting it
                # rejects is not proposed rather than aborting the whole search.
                closed_form[k] = np.nan
            score_time[k] = time.perf_counter() - t0
        return closed_form

    tried = set()
    best = start
    with worker_torch_threads(threads, caller_pid):
        tried.add(start)
        if train(start):
            budget = max_retrain
            while budget > 0:
                untried = [k for k in neighbours[best] if k not in tried]
                if not untried:
                    break
                values = evaluate(best, untried)
                # NaN does not order, so an unavailable closed form ranks last.
                step = max(untried, key=lambda k: (
                    all(settings[k][name] >= settings[best][name] for name in settings[k]),
                    -np.inf if np.isnan(values[k]) else values[k]))
                budget -= 1
                tried.add(step)
                if train(step, networks[best]) and exact[step] > exact[best]:
                    best = step
            if best in networks:
                evaluate(best, range(n))
    return {
        "exact": exact,
        "closed_form": closed_form,
        "fit_time": fit_time,
        "score_time": score_time,
        "trained": np.array([j in networks for j in range(n)], dtype=bool),
        "best": best,
        "network": networks.get(best),
        "error": error,
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


def _candidate_groups(estimator, candidates):
    """Partition candidates by everything but the closed-form hyperparameters.

    Returns ``(indices, settings, start, neighbours)`` per group:
    ``settings`` are the keyword arguments of ``log_marginal_likelihood``
    for each candidate, ``start`` the candidate nearest the median of the
    log values, and ``neighbours[j]`` the candidates next to ``j`` along one
    hyperparameter with the others equal (local indices).
    """
    prefix = _evidence_prefix(estimator)
    base = estimator.get_params()
    names = [prefix + name for name in _CLOSED_FORM if prefix + name in base]
    # Per-target noise vectors may only be rescaled as a whole in closed form;
    # such candidates are trained separately.
    names = [name for name in names if all(
        np.ndim(params.get(name, base[name])) == 0 for params in candidates)]
    groups, alone = {}, []
    for i, params in enumerate(candidates):
        setting = _closed_form_setting(params, base, names, prefix)
        if setting is None:
            # An invalid value has no closed form and no log for the median: it is
            # trained on its own, fails like an unshared candidate and is scored
            # error_score, and leaves the valid candidates' networks alone.
            raw = {name[len(prefix):]: params.get(name, base[name]) for name in names}
            alone.append(([i], [raw], 0, [[]]))
            continue
        key = _freeze({k: v for k, v in params.items() if k not in names})
        groups.setdefault(key, []).append(i)
    result = []
    for idx in groups.values():
        settings = [_closed_form_setting(candidates[i], base, names, prefix)
                    for i in idx]
        if settings and settings[0]:
            logs = np.log([[s[k] for k in sorted(s)] for s in settings])
            start = int(np.argmin(((logs - np.median(logs, axis=0)) ** 2).sum(1)))
        else:
            start = 0
        result.append((idx, settings, start, _grid_neighbours(settings)))
    return result + alone
