"""The evidence at other hyperparameters: ``log_marginal_likelihood``'s checks of
its arguments and its ``theta`` form (log-hyperparameters in, log evidence and
its gradient out, as in scikit-learn's GaussianProcessRegressor)."""

from numbers import Real

import numpy as np
import torch

from ._utils import format_values


def _positive_float(value, name):
    """A positive, finite real scalar as a float, or a ValueError/TypeError that names it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a positive float, got {value!r} "
                        f"of type {type(value).__name__}.")
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive, finite float, got {value!r}.")
    return value


def finite_evidence(compute, **hyperparameters):
    """``compute()`` as a float, or a ValueError naming the hyperparameters that made
    it overflow or its eigendecomposition fail."""
    at = format_values(hyperparameters)
    try:
        value = float(compute())
    except torch.linalg.LinAlgError as exc:
        # E.g. per-layer precisions 1e300 apart: the rescaled curvature is not
        # decomposable in float64.
        raise ValueError(
            f"The log evidence at {at} could not be computed ({exc}); these "
            "hyperparameters are too extreme for this network."
        ) from exc
    if not np.isfinite(value):
        raise ValueError(
            f"The log evidence at {at} is not representable in float64 ({value}); "
            "these hyperparameters are too extreme for this network."
        )
    return value



class EvidenceMixin:
    """The ``theta`` API of the evidence; the estimator supplies ``_theta_names``,
    ``_log_evidence_at``, ``_expand_prior`` and the fitted prior's layout."""

    def _theta_argument(self, theta, prior_precision, eval_gradient, *others):
        """``theta`` of ``log_marginal_likelihood``: given, or a 1-D array passed as the
        first argument (GaussianProcessRegressor's convention); None otherwise."""
        if theta is None and np.ndim(prior_precision) == 1 and not isinstance(
                prior_precision, str):
            theta, prior_precision = prior_precision, None
        if theta is None:
            if eval_gradient:
                raise ValueError("eval_gradient=True needs theta, the log-hyperparameters.")
            return None
        if prior_precision is not None or any(v is not None for v in others):
            raise ValueError("Give either theta or the hyperparameters, not both.")
        try:
            theta = np.asarray(theta, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"theta must be an array of floats, got {theta!r}.") from None
        names = self._theta_names()
        if theta.shape != (len(names),) or not np.all(np.isfinite(theta)):
            raise ValueError(
                f"theta must hold {len(names)} finite log-hyperparameters (log of "
                f"{', '.join(names)}), got {theta!r}."
            )
        return theta

    def _log_evidence_at_theta(self, theta, eval_gradient):
        n_prior = self._n_prior_values()

        def value(t):
            # An overflow to inf (or 0) is refused below, naming the hyperparameter.
            with np.errstate(over="ignore", under="ignore"):
                delta = np.exp(t[:n_prior])
                # The likelihood's own hyperparameters (the regression noise) follow.
                others = np.exp(t[n_prior:]) if len(t) > n_prior else None
            return self._log_evidence_at(delta if n_prior > 1 else float(delta[0]), others)

        lml = value(theta)
        if not eval_gradient:
            return lml
        # Central differences of a closed form: O(h^2) with h = 1e-4 in log units.
        step = 1e-4
        grad = np.array([(value(theta + step * e) - value(theta - step * e)) / (2 * step)
                         for e in np.eye(len(theta))])
        return lml, grad

    def _n_prior_values(self):
        """How many prior precisions the fit has: one, or one per layer."""
        return self._n_prior_groups if self._layerwise() else 1

    def _prior_theta_names(self):
        if self._layerwise():
            return [f"prior_precision[{i}]" for i in range(self._n_prior_groups)]
        return ["prior_precision"]

    def _check_prior_precision(self, prior_precision):
        """``delta`` for an evidence re-evaluation (the fitted one when None; a
        float is every layer's), and the form the evidence takes."""
        if prior_precision is None:
            prior_precision = self.prior_precision_
        elif (self._layerwise() and isinstance(prior_precision, np.ndarray)
              and prior_precision.shape == (self._n_prior_groups,)):
            # One value per layer comes only from theta, whose exp can overflow or vanish.
            for i, value in enumerate(prior_precision):
                _positive_float(value, f"prior_precision[{i}]")
        else:
            prior_precision = _positive_float(prior_precision, "prior_precision")
        return prior_precision, self._expand_prior(prior_precision)
