"""What the search, the scorer and the optimiser share: the estimator that
carries the evidence (also inside a pipeline), its fitted evidence, and the
training of one candidate."""

import time
from copy import deepcopy

from sklearn.base import clone


def _evidence_model(estimator):
    """The (final) estimator that carries the evidence: ``estimator`` itself or
    the last step of a pipeline, recursively."""
    while not hasattr(estimator, "log_marginal_likelihood") and hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator


def _closed_form(estimator):
    """The hyperparameters whose evidence a trained network of ``estimator`` (or of
    the last step of its pipeline) gives in closed form: those it lists in
    ``_closed_form_hyperparameters``, else ``prior_precision``, which any
    estimator with ``log_marginal_likelihood(prior_precision=None)`` takes."""
    return tuple(getattr(_evidence_model(estimator), "_closed_form_hyperparameters",
                         ("prior_precision",)))


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

