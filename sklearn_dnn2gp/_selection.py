"""The estimator's side of the ``'auto'`` hyperparameters: the closures that
train, evaluate and differentiate the retrained evidence for
:class:`._auto.EvidenceSearch`, and what the search leaves behind
(``evidence_trace_``, ``evidence_search_``, its warnings)."""

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from ._auto import TRIAL_MAX_ITER, TRIAL_TOL_FACTOR, EvidenceSearch, bound_warning
from ._hessian import map_sensitivity
from ._network import flat_parameters, set_flat_parameters
from ._staged import logdet_slope
from ._utils import format_values
from .posteriors import posterior_structure


class SelectionMixin:
    """``_select_by_evidence`` and its helpers, for :class:`._base.BaseDNN2GP`."""

    def _select_by_evidence(self, module, X_t, y_t, w_t, training, fixed_prior):
        """Train along the search of the retrained evidence (:class:`._auto.EvidenceSearch`)
        and return the fit it keeps; the trials go to ``evidence_trace_``."""
        initial = flat_parameters(module).detach().clone()
        trial_training = {**training, "tol": training["tol"] * TRIAL_TOL_FACTOR,
                          "max_iter": min(training["max_iter"], TRIAL_MAX_ITER)}
        hyper = self._likelihood_hyperparameters

        def train(warm, prior_precision, scale, trial):
            # Under VI the trials train MAPs (VI's evidence is the Laplace one at its
            # mean) and the finalist is one VI fit: from the initial weights, or from
            # the MAP that _train_at trains first, warm-started like any trial.
            restart = warm is None or (not trial and self.inference == "vi"
                                       and not self._vi_starts_at_map())
            set_flat_parameters(module, initial if restart else warm.weights)
            return self._train_at(module, X_t, y_t, w_t,
                                  trial_training if trial else training, prior_precision,
                                  hyper.likelihood_at(scale),
                                  inference="laplace" if trial else None, warm=not restart)

        def evidence(fit, prior_precision, scale=None):
            at = self._grouped(fit.evidence)
            if scale is None:
                return float(at(prior_precision))
            return float(at(prior_precision, **hyper.evidence_arguments(scale)))

        def reported(hyperparameters):
            return {"prior_precision": hyperparameters["prior_precision"],
                    **hyper.reported(hyperparameters["scale"])}

        def on_trial(trial):
            if self.verbose:
                print(f"[{type(self).__name__}] evidence search: "
                      + format_values(reported(trial.hyperparameters))
                      + ", log evidence "
                        f"{self._targets.evidence_of_y(trial.log_evidence):.6g} "
                        f"({trial.state.n_iter} iterations)", flush=True)

        strategy = self._search_strategy()
        search = EvidenceSearch(
            train, evidence, fixed_prior=fixed_prior,
            search_scale=hyper.searched, scale_floor=hyper.floor, layerwise=self._layerwise(),
            n_groups=self._n_prior_groups, start=hyper.search_start, on_trial=on_trial,
            strategy=strategy,
            slope=self._slope_of(module, X_t, y_t, w_t, hyper) if strategy == "staged" else None)
        result = search.run()
        self.evidence_search_ = search.strategy

        def entry(hyperparameters, log_evidence, n_iter):
            if self._layerwise():
                hyperparameters = {**hyperparameters, "prior_precision": np.broadcast_to(
                    hyperparameters["prior_precision"], (self._n_prior_groups,)).copy()}
            return {**reported(hyperparameters),
                    "log_marginal_likelihood": self._targets.evidence_of_y(log_evidence),
                    "n_iter": n_iter}

        # The fit kept is the trace's last entry.
        self.evidence_trace_ = [
            entry(trial.hyperparameters, trial.log_evidence,
                  None if trial.state is None else trial.state.n_iter)
            for trial in result.trials]
        self.evidence_trace_ += [entry(chosen, value, fit.n_iter)
                                 for value, chosen, fit in result.finals]
        result.fit.emit_warnings()
        if hyper.searched and result.hyperparameters["scale"] <= hyper.floor * (1 + 1e-3):
            warnings.warn(hyper.floor_warning(), ConvergenceWarning)
        elif result.at_bound is not None and fixed_prior is None:
            warnings.warn(bound_warning(result.at_bound, self._chosen()), ConvergenceWarning)
        return result.fit

    def _search_strategy(self):
        """``evidence_search`` resolved: the staged search needs one prior precision
        over all of the weights."""
        if self._layerwise() or self._fitted("subset_of_weights") != "all":
            return "retrain"
        return self._fitted("evidence_search")

    def _slope_of(self, module, X_t, y_t, w_t, hyper):
        """``slope(fit, prior_precision, scale=None)`` of :class:`._auto.EvidenceSearch`:
        ``-1/2 d/dt log|s G(w*(t)) + delta I|`` along ``dw*/dt = -delta H^-1 w*``
        (:func:`._hessian.map_sensitivity`)."""
        structure = posterior_structure(self._evidence_structure)
        inputs = self._posterior_inputs(X_t, module)
        head = self._posterior_module(module)

        def slope(fit, prior_precision, scale=None):
            posterior = fit.posterior
            s = 1.0 if scale is None else fit.likelihood.curvature_scale(
                **hyper.evidence_arguments(scale))
            w = posterior.mean
            set_flat_parameters(head, fit.weights)
            v = map_sensitivity(head, fit.likelihood, inputs, y_t, w_t,
                                float(fit.prior_precision), posterior.covariance_product)
            eps = 1e-4 if w.dtype == torch.float64 and fit.weights.dtype == torch.float64 \
                else 3e-3

            def log_det_at(step):
                at = posterior
                if step:
                    set_flat_parameters(head, (w + step * v).to(fit.weights))
                    at = structure.from_data(head, fit.likelihood, inputs, w_t,
                                             float(prior_precision))
                return float(at.with_hyperparameters(float(prior_precision), s).log_det_ratio())

            try:
                with torch.no_grad():
                    return logdet_slope(log_det_at, (float(w.norm()), float(v.norm())), eps)
            finally:
                set_flat_parameters(head, fit.weights)
        return slope

    def _grouped(self, evidence):
        """``evidence`` taking per-layer precisions (arrays) as well as a float."""
        def at(prior_precision=None, **hyperparameters):
            if prior_precision is not None:
                prior_precision = self._expand_prior(prior_precision,
                                                     like=evidence.posterior.mean)
            return evidence(prior_precision, **hyperparameters)
        return at
