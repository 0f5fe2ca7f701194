"""The classifier's predictive, chosen on the training set: its temperature (the
criteria are in :mod:`._temperature`; under VI also the temperature VI trains at)
and the scale of its residual GP (:mod:`._residual`)."""

import warnings

import numpy as np
import torch

from ._residual import SCALES as RESIDUAL_SCALES
from ._residual import ResidualGP, add_residual, select_scale
from ._temperature import (
    FALLBACK_TEMPERATURE,
    MIN_ROWS,
    TEMPERATURES,
    mean_nll,
    select_temperature,
    temperature_criteria,
    training_rows,
)
from ._utils import to_numpy


class TemperatureMixin:
    """``temperature_``, ``residual_scale_`` and their curves for :class:`DNN2GPClassifier`."""

    def _predictive_latent(self, X):
        """The logits' Gaussian that the links see: the posterior tempered at
        ``temperature_`` (covariance ``temperature_ * J Sigma J^T``), plus the
        residual GP's variance on each logit."""
        f, var = self._latent(X)
        var = var * self.temperature_
        residual = getattr(self, "_residual", None)
        if residual is None:
            return f, var
        return f, add_residual(var, self.residual_scale_ * residual.variance(
            torch.as_tensor(X).to(residual.inputs.device)))

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
        """Choose the predictive's temperature (unless VI trained at one already, see
        :meth:`_vi_temperature`) and its residual on the installed posterior."""
        temperature = self.inference != "vi"
        residual = (self._fitted("residual_scale") == "auto"
                    and self._fitted("link_approximation") != "plugin")
        criteria = self._criterion_data(
            X_t, y_t, w_t, (temperature and self._fixed_temperature() is None) or residual)
        if temperature:
            self._choose_temperature(criteria)
        self._choose_residual(X_t, w_t, criteria)

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
        self._choose_temperature(self._criterion_data(X_t, y_t, w_t, True))
        return self.temperature_

    def _criterion_data(self, X_t, y_t, w_t, needed):
        """What both choices read: the training rows (see :func:`training_rows`),
        their latent means and covariances, targets and weights; ``rows`` None
        (and no latents) below ``MIN_ROWS`` observations or where not ``needed``."""
        data = {"rows": None, "n_observations": None}
        if not needed:
            return data
        rows, data["n_observations"] = training_rows(
            X_t.shape[0], w_t, self._fitted("random_state"), X_t.device, self._n_outputs)
        if rows is None:
            return data
        f, var = self._latent(to_numpy(X_t[rows]))
        targets = y_t[rows].to(f.device)
        if self.likelihood_.binary:
            targets = targets.to(torch.float64)
        data.update(rows=rows, f=f, var=var, targets=targets,
                    weights=None if w_t is None else w_t[rows].to(f.device, torch.float64))
        return data

    def _criterion_log_proba(self):
        link = self._fitted("link_approximation")
        return lambda f_, v_: self._log_proba(f_, v_, link)

    def _choose_temperature(self, data):
        """Set ``temperature_`` (and ``temperature_curve_``) on the training set (see
        :mod:`._temperature`)."""
        self.temperature_curve_ = None
        fixed = self._fixed_temperature()
        if fixed is not None:
            self.temperature_ = fixed
            return
        if data["rows"] is None:
            warnings.warn(
                f"temperature='auto' needs at least {MIN_ROWS} training rows (or sample "
                "weights summing to that) to choose the predictive's temperature; got "
                f"{data['n_observations']:g}, so temperature_={FALLBACK_TEMPERATURE:g} "
                "is used (and no residual). Pass temperature= a number in [0, 1] to "
                "choose it yourself.", UserWarning, stacklevel=7)
            self.temperature_ = FALLBACK_TEMPERATURE
            return
        loo, fit = temperature_criteria(
            data["f"], data["var"], data["targets"], self.likelihood_,
            self._criterion_log_proba(), TEMPERATURES, data["weights"])
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

    def _choose_residual(self, X_t, w_t, data):
        """Set ``residual_scale_`` (and ``residual_curve_``) and the residual GP the
        predictive adds (see :mod:`._residual`)."""
        self.residual_scale_, self.residual_curve_, self._residual = 0.0, None, None
        scale = self._fitted("residual_scale")
        if self._fitted("link_approximation") == "plugin" or scale == 0:
            return
        if scale == "auto" and data["rows"] is None:
            return
        rows = data["rows"]
        if rows is None:
            # A fixed scale: the same subset the criteria read, or on a few rows all.
            rows, _ = training_rows(X_t.shape[0], w_t, self._fitted("random_state"),
                                    X_t.device, self._n_outputs, min_rows=0)
        residual = ResidualGP(X_t.to(torch.float64), X_t[rows].to(torch.float64),
                              None if w_t is None else w_t.to(torch.float64),
                              None if w_t is None else w_t[rows].to(torch.float64))
        if scale == "auto":
            loo = residual.leave_one_out_variance().to(data["f"].device)
            log_proba = self._criterion_log_proba()
            nll = np.array([
                mean_nll(log_proba(data["f"],
                                   add_residual(data["var"] * self.temperature_, s * loo)),
                         data["targets"], self.likelihood_, data["weights"])
                for s in RESIDUAL_SCALES])
            scale = select_scale(RESIDUAL_SCALES, nll)
            self.residual_curve_ = {"scale": RESIDUAL_SCALES.copy(), "fit_nll": nll}
        self.residual_scale_ = float(scale)
        if self.residual_scale_ > 0:
            self._residual = residual
