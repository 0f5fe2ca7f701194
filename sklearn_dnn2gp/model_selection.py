"""Hyperparameter selection by the training-set marginal likelihood.

The DNN2GP evidence ``log p(y | delta, sigma, architecture)`` is computed on
the training set at the end of every fit, so choosing hyperparameters needs
one fit per candidate and no held-out data (Khan et al., 2019, Section 5.3).
The evidence of a trained network at other ``prior_precision`` /
``noise_std`` values is a closed form of its spectrum. It keeps the weights
fixed, so it guides rather than replaces retraining: it proposes which
candidates to train when they differ only in those two
(``reuse_network=True``), and it is maximised continuously, alternating with
retraining, by :func:`maximize_evidence`.
"""

import os
import time
import warnings
from copy import deepcopy
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, MetaEstimatorMixin, _fit_context, clone
from sklearn.exceptions import FitFailedWarning, NotFittedError
from sklearn.model_selection import ParameterGrid, ParameterSampler
from sklearn.utils import get_tags
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_params,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._evidence import maximize_log_evidence
from ._utils import worker_torch_threads

__all__ = ["EvidenceSearchCV", "evidence_scorer", "maximize_evidence"]

# The hyperparameters whose evidence a trained network gives in closed form.
_CLOSED_FORM = ("prior_precision", "noise_std")


# ------------------------------------------------------------------ helpers
def _evidence_model(estimator):
    """The (final) estimator that carries the evidence: ``estimator`` itself or
    the last step of a pipeline, recursively."""
    while not hasattr(estimator, "log_marginal_likelihood") and hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator


def _evidence_prefix(estimator):
    """The ``set_params`` prefix that addresses :func:`_evidence_model`."""
    prefix = ""
    while not hasattr(estimator, "log_marginal_likelihood") and hasattr(estimator, "steps"):
        name, estimator = estimator.steps[-1]
        prefix += name + "__"
    return prefix


class _NoEvidenceError(TypeError):
    """The estimator cannot be selected by evidence; never scored as a failed fit."""


def _fitted_evidence(estimator):
    value = getattr(_evidence_model(estimator), "log_marginal_likelihood_", None)
    if value is None:
        raise _NoEvidenceError(
            f"{type(estimator).__name__} has no log_marginal_likelihood_ after fit; "
            "evidence-based selection needs a DNN2GP estimator (or a pipeline ending "
            "in one)."
        )
    return float(value)


def _clone_params(params):
    return {k: clone(v, safe=False) for k, v in params.items()}


def _train(estimator, params, X, y, fit_params, init=None):
    """Fit a clone of ``estimator`` at ``params``; warm-started from the fitted
    ``init`` (same architecture, other closed-form hyperparameters) when given."""
    start = time.perf_counter()
    warm = None if init is None else _evidence_prefix(init) + "warm_start"
    if warm is None or warm not in init.get_params():
        fitted = clone(estimator).set_params(**_clone_params(params)).fit(X, y, **fit_params)
    else:
        original = init.get_params()[warm]
        fitted = deepcopy(init).set_params(**_clone_params(params), **{warm: True})
        fitted.fit(X, y, **fit_params).set_params(**{warm: original})
    return fitted, _fitted_evidence(fitted), time.perf_counter() - start


def _report(verbose, params, value, seconds):
    if verbose > 1:
        print(f"[EvidenceSearchCV] {params}: log evidence {value:.4f} ({seconds:.2f}s)",
              flush=True)


def _try_train(estimator, params, X, y, fit_params, error_score, verbose, init=None):
    """:func:`_train`, with a failed fit scored ``error_score`` unless it is 'raise'.

    Returns ``(estimator or None, score, fit time, error or None)``.
    """
    start = time.perf_counter()
    try:
        fitted, value, seconds = _train(estimator, params, X, y, fit_params, init)
    except _NoEvidenceError:
        raise
    except Exception as exc:
        if error_score == "raise":
            raise
        return None, float(error_score), time.perf_counter() - start, repr(exc)
    _report(verbose, params, value, seconds)
    return fitted, value, seconds, None


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


def _first_argmax(values):
    """Index of the first maximum, ignoring NaNs; None when all are NaN."""
    values = np.asarray(values, dtype=np.float64)
    if np.all(np.isnan(values)):
        return None
    return int(np.nanargmax(values))


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


# ------------------------------------------------------------------- search
class EvidenceSearchCV(MetaEstimatorMixin, BaseEstimator):
    """Select hyperparameters by the training-set marginal likelihood.

    Every candidate is fitted once on the whole training set and ranked by its
    ``log_marginal_likelihood_``, the DNN2GP evidence of the training targets.
    No data are held out and nothing is refitted: the best candidate's fitted
    estimator is kept as ``best_estimator_``. With ``param_grid`` the
    candidates are a :class:`~sklearn.model_selection.ParameterGrid` (as in
    :class:`~sklearn.model_selection.GridSearchCV`); with
    ``param_distributions`` they are ``n_iter`` draws of a
    :class:`~sklearn.model_selection.ParameterSampler` (as in
    :class:`~sklearn.model_selection.RandomizedSearchCV`).

    Parameters
    ----------
    estimator : estimator object
        A DNN2GP estimator (or a pipeline ending in one): after ``fit`` it has
        ``log_marginal_likelihood_`` and a method
        ``log_marginal_likelihood(prior_precision=None[, noise_std=None])``.

    param_grid : dict or list of dicts, default=None
        Parameter names mapped to lists of values, as in ``GridSearchCV``.
        Exactly one of ``param_grid`` and ``param_distributions`` is given.

    param_distributions : dict or list of dicts, default=None
        Parameter names mapped to distributions (with an ``rvs`` method) or
        lists, as in ``RandomizedSearchCV``.

    n_iter : int, default=10
        Number of candidates drawn from ``param_distributions``.

    reuse_network : bool, default=False
        If True, candidates that differ only in ``prior_precision`` and/or
        ``noise_std`` (scalar values) form a group in which only a few
        networks are trained. The first is trained at the candidate nearest
        the median ``log delta`` and ``log sigma``; then the *exact* evidence
        is climbed over grid neighbours (adjacent values of one
        hyperparameter, the others equal) of the best network so far, each
        retraining warm-started (``warm_start=True``) from that network,
        until every neighbour of the best network has been trained and is
        worse, or ``max_retrain`` retrainings are spent. Neighbours that
        regularise more (larger ``delta`` or ``sigma``) are tried first, since
        a warm start towards a simpler fit converges in a fraction of a cold
        fit's iterations; among those, the one the best network's closed-form
        evidence (``log_marginal_likelihood(prior_precision=...,
        noise_std=...)``, O(P) per candidate, reported as
        ``closed_form_log_marginal_likelihood``) prefers. Candidates are
        ranked by exact evidence only, so the winner always has its own
        network and nothing is refitted. The closed form alone is not used
        for ranking: it keeps the trained weights fixed, and for a nonlinear
        network it can favour a much smaller ``delta`` than retraining does
        (on the red-wine data, networks trained anywhere between ``delta`` =
        10 and 500 all put the closed-form maximum near 5, against an exact
        maximum between 20 and 50). With an unstructured candidate set (e.g.
        ``param_distributions`` over two hyperparameters) candidates may have
        no neighbours, and only the first is then trained. A candidate whose
        ``prior_precision`` or ``noise_std`` is not a positive finite number
        is trained on its own, as without sharing (its fit fails and it is
        scored ``error_score``). If False, every candidate is trained from
        scratch.

    max_retrain : int, default=10
        With ``reuse_network=True``, the most retrainings per group after the
        first network.

    n_jobs : int, default=None
        Number of jobs to run in parallel through joblib: candidates (or, with
        ``reuse_network=True``, groups) are independent tasks. ``None`` means
        1 unless in a :func:`joblib.parallel_backend` context; ``-1`` uses
        all processors. Any joblib backend works, e.g. Dask
        (``with joblib.parallel_backend('dask'):`` after creating a
        ``distributed.Client``) or Ray (``ray.util.joblib.register_ray()``
        then ``with joblib.parallel_backend('ray'):``) in the same way.

    worker_threads : int or None, default=1
        Torch intra-op threads inside each worker *process*, set for the
        duration of a task and restored afterwards; the parallelism then comes
        from the candidates rather than from oversubscribed BLAS threads. It is
        never applied in the calling process (sequential, threading, or Dask
        ``processes=False`` runs), whose setting is left untouched. ``None``
        leaves workers as they are.

    error_score : 'raise' or float, default=np.nan
        Score of a candidate whose fit raised. With 'raise', the error
        propagates; otherwise a :class:`~sklearn.exceptions.FitFailedWarning`
        is issued. Failed candidates rank last.

    random_state : int, RandomState instance or None, default=None
        Seeds the sampling of ``param_distributions``. Set the estimator's own
        ``random_state`` for reproducible fits.

    verbose : int, default=0
        1 prints a summary; above 1, one line per trained network (from the
        workers when ``n_jobs`` is not 1).

    Attributes
    ----------
    results_ : dict of numpy (masked) ndarrays
        One entry per candidate, in the layout of ``GridSearchCV.cv_results_``
        (``pandas.DataFrame(search.results_)`` gives a table): ``params``,
        ``param_<name>``, ``log_marginal_likelihood`` (the exact evidence of
        the network trained at the candidate; NaN where, with
        ``reuse_network=True``, none was trained, or for a failed fit),
        ``rank_log_marginal_likelihood`` (1 is best; NaN ranks last),
        ``fit_time`` (seconds of training at the candidate, 0 where none
        was trained), ``score_time`` (seconds of the closed-form evaluation)
        and ``trained``. With ``reuse_network=True`` also
        ``closed_form_log_marginal_likelihood``: the closed-form evidence of
        the group's best network at the candidate's hyperparameters.

    best_estimator_ : estimator
        The fitted estimator of the best candidate.

    best_score_ : float
        Its log marginal likelihood.

    best_params_ : dict
        Its parameters.

    best_index_ : int
        Its index in ``results_``.

    n_networks_ : int
        Number of networks trained, the final refit included.

    refit_time_ : float
        Seconds spent refitting the best candidate (0 when it was not needed).

    n_features_in_ : int
        Number of features seen by ``best_estimator_``.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen by ``best_estimator_``, when it has them.

    classes_ : ndarray of shape (n_classes,)
        Class labels of ``best_estimator_`` (classifiers only).

    See Also
    --------
    evidence_scorer : Select by the evidence with a plain ``GridSearchCV``.
    maximize_evidence : Continuous maximisation over ``prior_precision`` and
        ``noise_std``.

    Notes
    -----
    A 5-fold cross-validation trains ``5 * n_candidates + 1`` networks on
    80% of the data; this search trains ``n_candidates`` networks on all of it
    (at most ``(max_retrain + 1) * n_groups + 1`` with ``reuse_network=True``).
    The evidence is only comparable between candidates fitted to the same
    targets in the same units.

    References
    ----------
    M. E. Khan, A. Immer, E. Abedi, M. Korzepa. Approximate Inference Turns Deep
    Networks into Gaussian Processes. NeurIPS 2019, Section 5.3.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dnn2gp import DNN2GPRegressor
    >>> from sklearn_dnn2gp.model_selection import EvidenceSearchCV
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-3, 3, size=(60, 1))
    >>> y = np.sin(X[:, 0]) + 0.1 * rng.randn(60)
    >>> reg = DNN2GPRegressor(hidden_layer_sizes=(10,), noise_std=0.1,
    ...                       random_state=0)
    >>> search = EvidenceSearchCV(reg, {"prior_precision": [0.1, 1.0, 10.0]})
    >>> search.fit(X, y).best_params_
    {'prior_precision': 1.0}
    >>> search.results_["rank_log_marginal_likelihood"]
    array([2, 1, 3], dtype=int32)
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit"])],
        "param_grid": [dict, list, None],
        "param_distributions": [dict, list, None],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "reuse_network": ["boolean"],
        "max_retrain": [Interval(Integral, 0, None, closed="left")],
        "n_jobs": [Integral, None],
        "worker_threads": [Interval(Integral, 1, None, closed="left"), None],
        "error_score": [StrOptions({"raise"}), Real],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, estimator, param_grid=None, *, param_distributions=None, n_iter=10,
                 reuse_network=False, max_retrain=10, n_jobs=None, worker_threads=1,
                 error_score=np.nan, random_state=None, verbose=0):
        self.estimator = estimator
        self.param_grid = param_grid
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.reuse_network = reuse_network
        self.max_retrain = max_retrain
        self.n_jobs = n_jobs
        self.worker_threads = worker_threads
        self.error_score = error_score
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        sub = get_tags(self.estimator)
        tags.estimator_type = sub.estimator_type
        tags.classifier_tags = deepcopy(sub.classifier_tags)
        tags.regressor_tags = deepcopy(sub.regressor_tags)
        tags.target_tags = deepcopy(sub.target_tags)
        return tags

    def _candidates(self):
        if (self.param_grid is None) == (self.param_distributions is None):
            raise ValueError("Give exactly one of param_grid and param_distributions.")
        if self.param_grid is not None:
            candidates = list(ParameterGrid(self.param_grid))
        else:
            candidates = list(ParameterSampler(self.param_distributions, self.n_iter,
                                               random_state=self.random_state))
        if not candidates:
            raise ValueError("The parameter grid is empty: there are no candidates to fit.")
        for params in candidates:
            # Unknown names fail here, before any training, with set_params' ValueError.
            clone(self.estimator).set_params(**params)
        return candidates

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, **fit_params):
        """Fit every candidate on ``(X, y)`` and keep the one of highest evidence.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Training targets.
        **fit_params : dict
            Passed to the estimator's ``fit`` (e.g. ``sample_weight``).

        Returns
        -------
        self : object
        """
        candidates = self._candidates()
        if self.reuse_network:
            groups = self._groups(candidates)
        else:
            groups = None
        if self.verbose > 0:
            networks = (f"{len(candidates)} networks" if groups is None else
                        f"{len(groups)} groups of shared networks")
            print(f"[EvidenceSearchCV] {len(candidates)} candidates, {networks}", flush=True)
        parallel = Parallel(n_jobs=self.n_jobs, return_as="generator")
        task_args = (X, y, fit_params)
        common = dict(error_score=self.error_score, verbose=self.verbose,
                      threads=self.worker_threads, caller_pid=os.getpid())

        n = len(candidates)
        scores, fit_time = np.full(n, np.nan), np.zeros(n)
        score_time, trained = np.zeros(n), np.zeros(n, dtype=bool)
        networks, errors, n_networks, n_failed = {}, [], 0, 0
        if groups is None:
            best_value = -np.inf
            outputs = parallel(
                delayed(_fit_candidate)(self.estimator, params, *task_args, **common)
                for params in candidates)
            for i, (fitted, value, seconds, error) in enumerate(outputs):
                scores[i], fit_time[i], trained[i] = value, seconds, fitted is not None
                n_networks += 1
                if error is not None:
                    errors.append(error)
                    n_failed += 1
                # Only the running best is kept, so memory holds one network.
                if fitted is not None and value > best_value:
                    best_value, networks = value, {i: fitted}
        else:
            closed_form = np.full(n, np.nan)
            outputs = parallel(
                delayed(_fit_group)(
                    self.estimator, [candidates[i] for i in idx], settings, start,
                    neighbours, *task_args, max_retrain=self.max_retrain, **common)
                for idx, settings, start, neighbours in groups)
            for (idx, *_), out in zip(groups, outputs):
                idx = np.asarray(idx)
                trained[idx] = out["trained"]
                scores[idx], fit_time[idx] = out["exact"], out["fit_time"]
                closed_form[idx], score_time[idx] = out["closed_form"], out["score_time"]
                n_networks += int(np.count_nonzero(out["fit_time"]))
                n_failed += out["n_failed"]
                if out["error"] is not None:
                    errors.append(out["error"])
                if out["network"] is not None:
                    networks[int(idx[out["best"]])] = out["network"]

        if errors:
            if n_failed >= n_networks:
                raise ValueError(
                    f"All {n_networks} fits failed; the last error was:\n{errors[-1]}")
            warnings.warn(
                f"{n_failed} of {n_networks} fits failed and were scored "
                f"error_score={self.error_score}; the last error was:\n{errors[-1]}",
                FitFailedWarning,
            )
        best = _first_argmax(scores)
        if best is None:
            raise ValueError(f"All {n_networks} fits failed.")

        self.refit_time_ = 0.0
        if best in networks:
            self.best_estimator_ = networks[best]
        else:
            # Only kept networks are those of each group's best (or the running
            # best); a tie in evidence can rank another candidate first.
            self.best_estimator_, _, self.refit_time_ = _train(
                self.estimator, candidates[best], X, y, fit_params)
            n_networks += 1

        self.results_ = self._results(candidates, scores, fit_time, score_time, trained)
        if groups is not None:
            self.results_["closed_form_log_marginal_likelihood"] = closed_form
        self.best_index_ = best
        self.best_params_ = candidates[best]
        self.best_score_ = float(scores[best])
        self.n_networks_ = n_networks
        return self

    def _groups(self, candidates):
        """Partition candidates by everything but the closed-form hyperparameters.

        Returns ``(indices, settings, start, neighbours)`` per group:
        ``settings`` are the keyword arguments of ``log_marginal_likelihood``
        for each candidate, ``start`` the candidate nearest the median of the
        log values, and ``neighbours[j]`` the candidates next to ``j`` along one
        hyperparameter with the others equal (local indices).
        """
        prefix = _evidence_prefix(self.estimator)
        base = self.estimator.get_params()
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

    @staticmethod
    def _results(candidates, scores, fit_time, score_time, trained):
        n = len(candidates)
        results = {"params": candidates}
        names = sorted({name for params in candidates for name in params})
        for name in names:
            column = np.ma.MaskedArray(np.empty(n, dtype=object), mask=True)
            for i, params in enumerate(candidates):
                if name in params:
                    column[i] = params[name]
            results[f"param_{name}"] = column
        # NaN (failed) candidates rank last, as in scikit-learn's searches.
        ranked = np.where(np.isnan(scores), -np.inf, scores)
        results["log_marginal_likelihood"] = scores
        results["rank_log_marginal_likelihood"] = rankdata(
            -ranked, method="min").astype(np.int32)
        results["fit_time"] = fit_time
        results["score_time"] = score_time
        results["trained"] = trained
        return results

    # ---------------------------------------------------------- delegation
    def _has(attr):
        def check(self):
            if hasattr(self, "best_estimator_"):
                return hasattr(self.best_estimator_, attr)
            return hasattr(self.estimator, attr)

        return check

    @available_if(_has("predict"))
    def predict(self, X, **predict_params):
        """Predict with ``best_estimator_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        **predict_params : dict
            Passed on, e.g. ``return_std=True`` for a regressor.

        Returns
        -------
        y_pred : ndarray or tuple of ndarrays
        """
        check_is_fitted(self)
        return self.best_estimator_.predict(X, **predict_params)

    @available_if(_has("predict_proba"))
    def predict_proba(self, X, **predict_params):
        """Class probabilities of ``best_estimator_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        **predict_params : dict
            Passed on.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.best_estimator_.predict_proba(X, **predict_params)

    @available_if(_has("score"))
    def score(self, X, y=None, **score_params):
        """Score of ``best_estimator_`` (R^2 or accuracy), not the evidence.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        **score_params : dict
            Passed on, e.g. ``sample_weight``.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        return self.best_estimator_.score(X, y, **score_params)

    @property
    def n_features_in_(self):
        check_is_fitted(self)
        return self.best_estimator_.n_features_in_

    @property
    def feature_names_in_(self):
        check_is_fitted(self)
        return self.best_estimator_.feature_names_in_

    @property
    def classes_(self):
        check_is_fitted(self)
        return self.best_estimator_.classes_

    del _has


# ------------------------------------------------------------------- scorer
# X and y are ignored, so they are not constrained: a scorer receives whatever the
# search passes on (a DataFrame, a list of documents for a text pipeline...).
@validate_params({"estimator": [HasMethods(["fit"])]}, prefer_skip_nested_validation=True)
def evidence_scorer(estimator, X=None, y=None, **kwargs):
    """The fitted estimator's training-set log marginal likelihood, as a scorer.

    A scorer with scikit-learn's ``scorer(estimator, X, y)`` signature. The
    evidence is a property of the fit, so ``X`` and ``y`` are ignored: pass
    ``cv=[(idx, idx)]`` with ``idx = np.arange(n_samples)`` so that a plain
    :class:`~sklearn.model_selection.GridSearchCV` fits every candidate on the
    whole training set and selects by its evidence, as
    :class:`EvidenceSearchCV` does (which fits nothing twice and can share
    networks). With ordinary folds it scores each candidate by the evidence of
    its training folds.

    Parameters
    ----------
    estimator : fitted estimator
        A DNN2GP estimator, or a pipeline ending in one.
    X, y : ignored
    **kwargs : ignored
        E.g. ``sample_weight`` passed by scikit-learn's routing.

    Returns
    -------
    score : float
        ``log_marginal_likelihood_`` (greater is better).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_dnn2gp import DNN2GPRegressor
    >>> from sklearn_dnn2gp.model_selection import evidence_scorer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-3, 3, size=(60, 1))
    >>> y = np.sin(X[:, 0]) + 0.1 * rng.randn(60)
    >>> reg = DNN2GPRegressor(hidden_layer_sizes=(10,), noise_std=0.1,
    ...                       random_state=0)
    >>> idx = np.arange(len(X))
    >>> search = GridSearchCV(reg, {"prior_precision": [0.1, 1.0, 10.0]},
    ...                       scoring=evidence_scorer, cv=[(idx, idx)]).fit(X, y)
    >>> search.best_params_
    {'prior_precision': 1.0}
    """
    return _fitted_evidence(estimator)


# ------------------------------------------------------ continuous optimiser
@validate_params(
    {
        "estimator": [HasMethods(["fit", "get_params"])],
        "X": ["array-like", "sparse matrix"],
        "y": ["array-like"],
        "hyperparameters": [StrOptions({"auto", *_CLOSED_FORM}), list, tuple],
        "bounds": ["array-like"],
        "max_step": [Interval(Real, 1, None, closed="neither")],
        "max_retrain": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "return_path": ["boolean"],
    },
    # The estimator is fitted here with parameters nobody has validated yet.
    prefer_skip_nested_validation=False,
)
def maximize_evidence(estimator, X, y, *, hyperparameters="auto", bounds=(1e-5, 1e5),
                      max_step=10.0, max_retrain=5, tol=0.05, return_path=False,
                      **fit_params):
    """Maximise the evidence over ``prior_precision`` and ``noise_std`` continuously.

    For a trained network the evidence is a closed form of
    ``(log delta, log sigma)``; it is maximised with L-BFGS-B (in the spirit of
    the optimizer of ``GaussianProcessRegressor``), the network is retrained
    at the maximiser, and the two steps alternate (MacKay's scheme) until the
    maximiser moves by less than ``tol`` in log units or ``max_retrain``
    retrainings have been done. The trained network of highest (exact)
    evidence is returned.

    The alternation stops where a network's own closed-form evidence is
    stationary at the hyperparameters it was trained with. The closed form
    ignores how the weights move with ``delta``, so for a strongly nonlinear
    network this point can differ from the maximiser of the retrained
    evidence (on the red-wine data it lands near ``delta`` = 5 to 10, where
    retraining peaks at 20 to 50); compare with :class:`EvidenceSearchCV`
    over a grid when that matters.

    Parameters
    ----------
    estimator : estimator
        A DNN2GP estimator, or a pipeline ending in one. If it is already
        fitted (to this ``X, y``), its network is the first one and it is not
        modified; otherwise a clone is fitted at its current parameters.
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
    hyperparameters : 'auto', str or list of str, default='auto'
        Which of ``'prior_precision'`` and ``'noise_std'`` to optimise; 'auto'
        takes those the estimator has (both for a regressor, the prior
        precision for a classifier). A single name optimises that one alone.
        A vector ``noise_std`` is rescaled by one common factor.
    bounds : tuple of float, default=(1e-5, 1e5)
        Lower and upper bounds of every hyperparameter (of the common noise
        factor for ``noise_std``).
    max_step : float, default=10.0
        Each closed-form maximisation stays within this factor of the
        hyperparameters the current network was trained at: the closed form
        is a local model (it keeps the weights), and far from the training
        point it is inaccurate and, at extreme noise ratios, numerically
        unreliable.
    max_retrain : int, default=5
        The most retrainings after the first network.
    tol : float, default=0.05
        Stop when no log-hyperparameter moves by more than this.
    return_path : bool, default=False
        Also return the path: one dict per trained network with its
        ``params``, its exact ``log_marginal_likelihood`` and the
        ``predicted`` closed-form maximum that led to the next one.
    **fit_params : dict
        Passed to ``fit``.

    Returns
    -------
    estimator : estimator
        Fitted at the selected hyperparameters.
    path : list of dict
        Only when ``return_path`` is True.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dnn2gp import DNN2GPRegressor
    >>> from sklearn_dnn2gp.model_selection import maximize_evidence
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-3, 3, size=(60, 1))
    >>> y = np.sin(X[:, 0]) + 0.1 * rng.randn(60)
    >>> reg = DNN2GPRegressor(hidden_layer_sizes=(10,), noise_std=0.1, random_state=0)
    >>> best = maximize_evidence(reg, X, y)
    >>> bool(best.log_marginal_likelihood_ > reg.fit(X, y).log_marginal_likelihood_)
    True
    """
    prefix = _evidence_prefix(estimator)
    params = estimator.get_params()
    if hyperparameters == "auto":
        names = [name for name in _CLOSED_FORM if prefix + name in params]
    else:
        # A single name is one hyperparameter, not a sequence of characters.
        names = [hyperparameters] if isinstance(hyperparameters, str) else hyperparameters
        # Each name once: a repeated one would be a second, redundant coordinate.
        names = list(dict.fromkeys(names))
        unknown = [name for name in names if name not in _CLOSED_FORM]
        if unknown or not all(prefix + name in params for name in names):
            raise ValueError(
                f"hyperparameters must be among {_CLOSED_FORM} and parameters of the "
                f"estimator, got {hyperparameters!r}."
            )
    if not names:
        raise ValueError("The estimator has no prior_precision or noise_std to optimise.")
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        low = high = np.nan
    # NaN fails every comparison, so it is rejected here too.
    if not 0 < low < high:
        raise ValueError(
            f"bounds must be two numbers with 0 < low < high, got {bounds!r}.")

    try:
        check_is_fitted(_evidence_model(estimator), "log_marginal_likelihood_")
        network = estimator
    except NotFittedError:
        network, _, _ = _train(estimator, {}, X, y, fit_params)

    def current(net):
        values = net.get_params()
        return {name: values[prefix + name] for name in names}

    def settings(net, theta):
        # noise_std is optimised as a common factor of the fitted noise, so vector
        # noise stays valid for the closed form and the retraining.
        out = {}
        for name, value in zip(names, theta):
            if name == "noise_std":
                out[name] = value * np.asarray(current(net)["noise_std"], dtype=np.float64)
                if out[name].ndim == 0:
                    out[name] = float(out[name])
            else:
                out[name] = float(value)
        return out

    def start(net):
        return [1.0 if name == "noise_std" else float(current(net)[name]) for name in names]

    path = []
    best, best_value = network, _fitted_evidence(network)
    for retrain in range(max_retrain + 1):
        model = _evidence_model(network)
        theta0 = np.asarray(start(network))
        region = np.column_stack([np.maximum(low, theta0 / max_step),
                                  np.minimum(high, theta0 * max_step)])
        theta, predicted = maximize_log_evidence(
            lambda t, model=model, net=network: model.log_marginal_likelihood(
                **settings(net, t)),
            theta0, region)
        path.append({"params": current(network),
                     "log_marginal_likelihood": _fitted_evidence(network),
                     "predicted": predicted})
        if retrain == max_retrain or np.max(np.abs(np.log(theta / theta0))) <= tol:
            break
        new = {prefix + k: v for k, v in settings(network, theta).items()}
        network, value, _ = _train(estimator, new, X, y, fit_params)
        if value > best_value:
            best, best_value = network, value
    if return_path:
        return best, path
    return best
