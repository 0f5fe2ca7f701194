"""evidence_scorer: the evidence as a scikit-learn scorer."""

from sklearn.utils._param_validation import HasMethods, validate_params

from ._common import _fitted_evidence


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
