"""maximize_evidence: the hyperparameters set by the evidence inside ``fit``."""

from sklearn.base import clone
from sklearn.utils._param_validation import HasMethods, InvalidParameterError, validate_params

from ._common import _closed_form, _evidence_model, _evidence_prefix


@validate_params(
    {
        "estimator": [HasMethods(["fit", "get_params"])],
        "X": ["array-like", "sparse matrix"],
        "y": ["array-like"],
        # Which names are valid is the estimator's to say (checked in the body).
        "hyperparameters": [str, list, tuple],
        "return_path": ["boolean"],
    },
    # The estimator is fitted here with parameters nobody has validated yet.
    prefer_skip_nested_validation=False,
)
def maximize_evidence(estimator, X, y, *, hyperparameters="auto", return_path=False,
                      **fit_params):
    """Fit ``estimator`` with ``prior_precision`` and ``noise_std`` chosen by the evidence.

    A clone of ``estimator`` is fitted with the named hyperparameters set to
    ``'auto'``: ``fit`` then maximises the *retrained* evidence, the log
    marginal likelihood of a network trained at the hyperparameters it is
    evaluated at, by a one-dimensional search with warm-started retrainings
    (for a regressor along ``log(delta sigma^2)``, the only combination the
    MAP depends on, with ``sigma`` maximised in closed form on each ray). Its
    trials are the path. The closed form of a single network is not
    maximised alone: it keeps the weights fixed, which for a nonlinear
    network biases it towards small ``delta``.

    Parameters
    ----------
    estimator : estimator
        A DNN2GP estimator, or a pipeline ending in one; it is not modified.
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
    hyperparameters : 'auto', str or list of str, default='auto'
        Which of ``'prior_precision'`` and ``'noise_std'`` the evidence sets;
        'auto' takes those the estimator has (both for a regressor, the prior
        precision for a classifier). The others keep the estimator's values.
    return_path : bool, default=False
        Also return the path: the fitted ``evidence_trace_``, one dict per
        trained network with its hyperparameters, its evidence
        (``log_marginal_likelihood``) and its iterations, in the order trained.
    **fit_params : dict
        Passed to ``fit``.

    Returns
    -------
    estimator : estimator
        The fitted clone, whose ``prior_precision_`` / ``noise_std_`` are the
        evidence's choice.
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
    >>> reg = DNN2GPRegressor(hidden_layer_sizes=(10,), prior_precision=1.0, noise_std=1.0,
    ...                       random_state=0)
    >>> best = maximize_evidence(reg, X, y)
    >>> bool(0.05 < best.noise_std_[0] < 0.2)  # the data's noise std is 0.1
    True
    """
    prefix = _evidence_prefix(estimator)
    params = estimator.get_params()
    closed_form = _closed_form(estimator)
    if hyperparameters == "auto":
        names = [name for name in closed_form if prefix + name in params]
    else:
        # A single name is one hyperparameter, not a sequence of characters.
        names = [hyperparameters] if isinstance(hyperparameters, str) else hyperparameters
        names = list(dict.fromkeys(names))
        unknown = [name for name in names if name not in closed_form]
        if unknown or not all(prefix + name in params for name in names):
            raise InvalidParameterError(
                f"hyperparameters must be among {closed_form} and parameters of the "
                f"estimator, got {hyperparameters!r}."
            )
    if not names:
        raise ValueError(f"{type(_evidence_model(estimator)).__name__} has no "
                         "hyperparameter the evidence sets in closed form.")
    fitted = clone(estimator).set_params(**{prefix + name: "auto" for name in names})
    fitted.fit(X, y, **fit_params)
    if return_path:
        return fitted, list(_evidence_model(fitted).evidence_trace_)
    return fitted
