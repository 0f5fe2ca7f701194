"""EvidenceSearchCV: a search over candidates ranked by their evidence."""

import os
from copy import deepcopy
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, MetaEstimatorMixin, _fit_context, clone
from sklearn.model_selection import ParameterGrid, ParameterSampler
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._common import _train
from ._grid import _candidate_groups, _fit_group
from ._results import _gather


def _first_argmax(values):
    """Index of the first maximum, ignoring NaNs; None when all are NaN."""
    values = np.asarray(values, dtype=np.float64)
    if np.all(np.isnan(values)):
        return None
    return int(np.nanargmax(values))


def _as_cv_results(results):
    """``results_`` under the names scikit-learn's searches use, as one split whose
    test score is the evidence (the arrays are shared, not copied)."""
    cv_results = dict(results)
    scores = results["log_marginal_likelihood"]
    zeros = np.zeros_like(scores)
    cv_results.update({
        "split0_test_score": scores,
        "mean_test_score": scores,
        "std_test_score": zeros,
        "rank_test_score": results["rank_log_marginal_likelihood"],
        "mean_fit_time": results["fit_time"],
        "std_fit_time": zeros,
        "mean_score_time": results["score_time"],
        "std_score_time": zeros,
    })
    return cv_results


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
        no neighbours, and only the first is then trained. A value
        ``'auto'`` (chosen by the evidence inside each fit, the estimators'
        default) or a vector (per-target noise, per-layer precisions) is not
        climbed over: candidates that share it form their own groups, and the
        closed form takes the fitted value for it. A candidate whose
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

    cv_results_ : dict of numpy (masked) ndarrays
        ``results_`` with, in addition, the keys of
        ``GridSearchCV.cv_results_`` for a single split whose test score is
        the evidence: ``split0_test_score``, ``mean_test_score``,
        ``rank_test_score``, ``mean_fit_time``, ``mean_score_time`` and their
        ``std_*`` (zeros), so that code written for scikit-learn's searches
        reads it unchanged.

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

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
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
        groups = _candidate_groups(self.estimator, candidates, self.reuse_network)
        if self.verbose > 0:
            networks = (f"{len(groups)} groups of shared networks" if self.reuse_network
                        else f"{len(candidates)} networks")
            print(f"[EvidenceSearchCV] {len(candidates)} candidates, {networks}", flush=True)
        outputs = Parallel(n_jobs=self.n_jobs, return_as="generator")(
            delayed(_fit_group)(
                self.estimator, [candidates[i] for i in group.indices], group, X, y,
                fit_params, max_retrain=self.max_retrain, error_score=self.error_score,
                verbose=self.verbose, threads=self.worker_threads, caller_pid=os.getpid())
            for group in groups)

        results, networks, n_networks = _gather(candidates, groups, outputs,
                                                self.error_score, self.reuse_network)
        scores = results["log_marginal_likelihood"]
        best = _first_argmax(scores)
        if best is None:
            raise ValueError(f"All {n_networks} fits failed.")

        self.refit_time_ = 0.0
        if best in networks:
            self.best_estimator_ = networks[best]
        else:
            # A group keeps only the network it climbed to; a tie in evidence
            # within the group can rank another of its candidates first.
            self.best_estimator_, _, self.refit_time_ = _train(
                self.estimator, candidates[best], X, y, fit_params)
            n_networks += 1

        self.results_ = results
        self.cv_results_ = _as_cv_results(results)
        self.best_index_ = best
        self.best_params_ = candidates[best]
        self.best_score_ = float(scores[best])
        self.n_networks_ = n_networks
        return self

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
