"""The classifier's temperature: chosen on the training set for the predictive
(the criteria are in :mod:`._temperature`), and under VI the temperature that VI
trains at."""

import warnings

import torch

from ._temperature import (
    FALLBACK_TEMPERATURE,
    MIN_ROWS,
    TEMPERATURES,
    select_temperature,
    temperature_criteria,
    training_rows,
)
from ._utils import to_numpy


class TemperatureMixin:
    """``temperature_`` and ``temperature_curve_`` for :class:`DNN2GPClassifier`."""

    def _fixed_temperature(self):
        """The temperature when it is not chosen from data, else None."""
        temperature = self._fitted("temperature")
        if temperature != "auto":
            return float(temperature)
        if self._fitted("link_approximation") in ("plugin", "bridge"):
            # The plug-in ignores the covariance, and the bridge's mean is the same for
            # every common scale of it (each alpha_k is divided by the scale).
            return 1.0
        return None

    def _after_install(self, X_t, y_t, w_t):
        """Choose the predictive's temperature on the installed posterior, unless VI
        trained at one already (:meth:`_vi_temperature`)."""
        if self.inference == "vi":
            return
        self._choose_temperature(X_t, y_t, w_t)

    def _vi_starts_at_map(self):
        # 'auto' chooses the temperature on that MAP's Laplace posterior.
        return super()._vi_starts_at_map() or self._fixed_temperature() is None

    def _vi_temperature(self, module, start, X_t, y_t, w_t):
        """VI trains at the predictive's temperature. With ``'auto'`` it is chosen,
        as for Laplace, on the Laplace posterior of the MAP fit ``start`` that VI
        starts from."""
        fixed = self._fixed_temperature()
        if fixed is not None:
            self.temperature_, self.temperature_curve_ = fixed, None
            return fixed
        self._install(module, start)
        for p in module.parameters():
            p.requires_grad_(True)
        self._choose_temperature(X_t, y_t, w_t)
        return self.temperature_

    def _choose_temperature(self, X_t, y_t, w_t):
        """Set ``temperature_`` (and ``temperature_curve_``) on the training set (see
        :mod:`._temperature`)."""
        self.temperature_curve_ = None
        fixed = self._fixed_temperature()
        if fixed is not None:
            self.temperature_ = fixed
            return
        rows, n_observations = training_rows(X_t.shape[0], w_t, self._fitted("random_state"),
                                             X_t.device)
        if rows is None:
            warnings.warn(
                f"temperature='auto' needs at least {MIN_ROWS} training rows (or sample "
                "weights summing to that) to choose the predictive's temperature; got "
                f"{n_observations:g}, so temperature_={FALLBACK_TEMPERATURE:g} is used. "
                "Pass temperature= a number in [0, 1] to choose it yourself.",
                UserWarning, stacklevel=7)
            self.temperature_ = FALLBACK_TEMPERATURE
            return
        f, var = self._latent(to_numpy(X_t[rows]))
        device = f.device
        weights = None if w_t is None else w_t[rows].to(device, torch.float64)
        targets = y_t[rows].to(device)
        if self.likelihood_.binary:
            targets = targets.to(torch.float64)
        link = self._fitted("link_approximation")
        loo, fit = temperature_criteria(
            f, var, targets, self.likelihood_, lambda f_, v_: self._log_proba(f_, v_, link),
            TEMPERATURES, weights)
        chosen = select_temperature(TEMPERATURES, loo, fit)
        if chosen is None:
            warnings.warn(
                "The criteria of temperature='auto' are not finite on the training set "
                f"(diverged training?); temperature_={FALLBACK_TEMPERATURE:g} is used.",
                UserWarning, stacklevel=7)
            chosen = FALLBACK_TEMPERATURE
        self.temperature_ = chosen
        self.temperature_curve_ = {"temperature": TEMPERATURES.copy(), "loo_nll": loo,
                                   "fit_nll": fit}
