"""The estimator skeleton shared by the regressor and the classifier: the parameter
constraints, validate -> train -> curvature -> posterior, the evidence search of
``'auto'`` hyperparameters, and the ``theta`` API of the evidence. The GP views
(kernel, features, latent covariances) are :mod:`._views`'s."""

import math
import warnings
from numbers import Integral, Real
from typing import Any, NamedTuple

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    validate_data,
)

from ._auto import LOG_BOUNDS, Trial, search_log_ratio
from ._curvature import is_mlp
from ._evidence import maximize_log_evidence
from ._laplace import POSTERIORS, laplace
from ._module_check import check_module
from ._network import (
    flat_parameters,
    make_mlp,
    make_module,
    n_parameters,
    parameter_groups,
    same_architecture,
    set_flat_parameters,
)
from ._resources import (
    check_full_posterior,
    check_full_vi,
    full_posterior_is_comfortable,
    full_vi_is_comfortable,
)
from ._training import burn_in_steps, train_map, train_vi
from ._utils import (
    choose_threads,
    make_generator,
    resolve_device,
    resolve_dtype,
    to_cpu,
    to_tensor,
    torch_threads,
)
from ._verbose import phase
from ._views import GPViewMixin, scoped_threads  # noqa: F401 (re-exported)

# Full batch up to this many examples when batch_size='auto' (the objective is a sum,
# so a full batch is exact and deterministic).
_AUTO_FULL_BATCH = 4096
_AUTO_BATCH = 256
# VI's 'auto' minibatches: about this many examples each. Ten steps per epoch
# on digits cost about what one full-batch step does, and VOGN's Monte-Carlo
# noise is larger than the minibatch's anyway.
_AUTO_VI_BATCH = 128
# Inputs become floats: object / categorical columns are refused by check_array
# with scikit-learn's message rather than by torch.
_FLOAT_DTYPES = (np.float64, np.float32)


def _equal_batches(n, size):
    """The batch size that splits ``n`` examples into ``ceil(n / size)`` batches of
    (nearly) equal size: a last batch of a few examples, scaled by ``N / batch``,
    would make its steps the noisiest of the epoch."""
    n_batches = -(-n // size)
    return -(-n // n_batches)


def _check_hidden_layer_sizes(sizes):
    if isinstance(sizes, Integral):
        sizes = (sizes,)
    sizes = tuple(sizes)
    if not all(isinstance(s, Integral) and s >= 1 for s in sizes):
        raise ValueError(
            "hidden_layer_sizes must be a tuple of positive integers (or () for a "
            f"linear model), got {sizes!r}."
        )
    return tuple(int(s) for s in sizes)


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
    at = ", ".join(f"{name}={np.array2string(np.asarray(v), precision=4)}"
                   for name, v in hyperparameters.items())
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


class _Fit(NamedTuple):
    """One trained network with its posterior and evidence."""

    weights: torch.Tensor
    loss_curve: list
    n_iter: int
    variational: Any
    posterior: Any
    evidence: Any
    likelihood: Any
    prior_precision: float
    warnings: list

    def emit_warnings(self):
        """Raise the warnings its training recorded, once it is the fit kept."""
        for caught in self.warnings:
            warnings.warn_explicit(caught.message, caught.category, caught.filename,
                                   caught.lineno)


# The noise scale maximised on each ray stays within this factor of where it was trained.
_NOISE_SPAN = 1e3
# noise_std='auto' stays above this fraction of y's std: a noise variance of 1e-5 of
# y's, the lower bound of scikit-learn's WhiteKernel. On noise-free targets the
# evidence grows without bound as sigma -> 0, and training at delta sigma^2 ~ 1e-8
# (where the search's bound stopped it) hit max_iter without converging.
_NOISE_FLOOR = 10 ** -2.5
# The search's trials stop at this multiple of ``tol``.
_TRIAL_TOL_FACTOR = 10.0
# Where the search of delta * sigma^2 starts for standardised targets (sigma relative
# to y's std): strongly regularised, where training is fast and warm starts towards
# less regularisation are short (measured: on diabetes and red wine, 2-5x fewer
# iterations than from 1).
_START_LOG_RATIO = math.log(10.0)


def _profile(evidence, log_ratio, delta, scale, *, direction=1.0, profile_noise, noise_at):
    """The evidence of a fit and its maximiser along its ray ``delta * scale^2 =
    exp(log_ratio) * direction`` (every point of which has the same MAP) when
    ``profile_noise``; else at the hyperparameters it was trained at."""
    if not profile_noise:
        return float(evidence(delta)), {"prior_precision": delta, "noise_scale": scale}
    ratio = math.exp(log_ratio) * direction

    def along_ray(c):
        return float(evidence(ratio / c[0] ** 2, noise_std=noise_at(c[0])))

    low = max(scale / _NOISE_SPAN, _NOISE_FLOOR)
    (c,), value = maximize_log_evidence(
        along_ray, [max(scale, low)], [[low, max(scale * _NOISE_SPAN, low)]])
    return value, {"prior_precision": ratio / c**2, "noise_scale": float(c)}


class BaseDNN2GP(GPViewMixin, BaseEstimator):
    """Shared machinery; not for direct use."""

    _parameter_constraints = {
        "hidden_layer_sizes": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "activation": [StrOptions({"tanh", "relu", "sigmoid", "identity"})],
        "prior_precision": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"}),
                            "array-like"],
        "prior_structure": [StrOptions({"scalar", "layerwise"})],
        "posterior": [StrOptions({"auto", *POSTERIORS})],
        "inference": [StrOptions({"laplace", "vi"})],
        "vi_method": [StrOptions({"vogn", "ogn"})],
        "mc_samples": [Interval(Integral, 1, None, closed="left")],
        "precision_rate": [Interval(Real, 0, 1, closed="right"), None],
        "initial_precision": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "callback": [callable, None],
        "solver": [StrOptions({"auto", "adam", "lbfgs"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "dtype": [StrOptions({"float64", "float32"})],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "n_threads": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), None],
        "subset_of_weights": [StrOptions({"all", "last_layer"})],
        "module": [callable, None],
        "momentum": [Interval(Real, 0, 1, closed="left")],
    }

    # ----------------------------------------------------------------- fitting
    def _fit(self, X, y, sample_weight):
        # Everything after fit reads the parameters it was fitted with, so that a later
        # set_params changes nothing until the next fit.
        self._fit_params = self.get_params(deep=False)
        hidden = _check_hidden_layer_sizes(self.hidden_layer_sizes)
        X, y = validate_data(self, X, y, dtype=_FLOAT_DTYPES, **self._data_checks())
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                           ensure_non_negative=True)
        device, dtype = resolve_device(self.device), resolve_dtype(self.dtype)
        generator = make_generator(self.random_state)
        y_t, likelihood, n_outputs = self._encode_targets(y, dtype, device, weights)
        X_t = to_tensor(X, dtype, device)
        w_t = None if weights is None else to_tensor(weights, dtype, device)
        n = X.shape[0]
        if self.batch_size == "auto" and self.inference == "vi":
            batch_size = _equal_batches(n, _AUTO_VI_BATCH)
        elif self.batch_size == "auto":
            batch_size = n if n <= _AUTO_FULL_BATCH else _AUTO_BATCH
        else:
            batch_size = min(self.batch_size, n)

        if self.module is None:
            module = make_mlp(X.shape[1], hidden, n_outputs, self.activation, dtype=dtype,
                              device=device, generator=generator)
        else:
            seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
            module = make_module(self.module, X.shape[1], n_outputs, dtype=dtype,
                                 device=device, seed=seed)
        # Deterministic function of the weights: dropout off, batch norm frozen.
        module.eval()
        if self.module is not None:
            check_module(module, X_t, n_outputs)
        self._output_dim = n_outputs
        self._prior_groups, self._n_prior_groups = parameter_groups(module)
        fixed_prior = self._resolve_prior_precision()
        if self.warm_start and same_architecture(getattr(self, "module_", None), module):
            # Start from the previous solution (e.g. a neighbouring prior_precision).
            set_flat_parameters(module, flat_parameters(self.module_).to(device, dtype))
        training = dict(max_iter=self.max_iter, learning_rate=self.learning_rate_init,
                        batch_size=batch_size, tol=self.tol,
                        n_iter_no_change=self.n_iter_no_change, generator=generator,
                        verbose=self.verbose)
        n_params = n_parameters(module)
        with torch_threads(choose_threads(self.n_threads, n * n_outputs * n_params)):
            return self._train_and_build(module, likelihood, X_t, y_t, w_t, batch_size,
                                         training, n_params, fixed_prior)

    def _train_and_build(self, module, likelihood, X_t, y_t, w_t, batch_size, training,
                         n_params, fixed_prior):
        """Train ``module``, then build the posterior and the evidence (see ``_fit``)."""
        n, n_outputs, device = X_t.shape[0], self._output_dim, X_t.device
        if self._fitted("subset_of_weights") == "last_layer":
            if not (isinstance(module, torch.nn.Sequential)
                    and isinstance(module[-1], torch.nn.Linear)):
                raise ValueError("subset_of_weights='last_layer' needs a torch.nn.Sequential "
                                 "whose last layer is a torch.nn.Linear.")
            if self.inference == "vi":
                raise ValueError("subset_of_weights='last_layer' is available with "
                                 "inference='laplace'; VI trains and keeps q over all weights.")
            n_params = n_parameters(module[-1])
        if self._layerwise() and self.inference == "vi":
            raise ValueError("Per-layer prior precisions (prior_structure='layerwise' or an "
                             "array prior_precision) are available with "
                             "inference='laplace'; VI takes one prior precision.")
        posterior_module = self._posterior_module(module)
        self._posterior_groups, _ = parameter_groups(module, posterior_module)
        self._posterior_structure = self._resolve_structure(
            posterior_module, n * n_outputs, n_params, device, batch_rows=batch_size * n_outputs)
        self._evidence_structure = self._posterior_structure
        if self.inference == "vi" and self._fitted("posterior") == "auto":
            # The evidence ranks hyperparameters, and under VI it is the Laplace one at
            # q's mean: it takes the curvature a Laplace fit would, not the diagonal q
            # of a large network. The diagonal's log-determinant ignores every
            # correlation; on digits its evidence chose delta ~ 12 against 1-1.3 for
            # the full GGN's, and VI's test accuracy fell from 0.97-0.98 to 0.96.
            self._evidence_structure = self._resolve_structure(
                posterior_module, n * n_outputs, n_params, device, inference="laplace")
        if self._structure() == "full":
            # Before training: a fit that cannot finish should not start.
            check_full_posterior(n * n_outputs, n_params, device)
            if self.inference == "vi" and self._fitted("posterior") == "full":
                # 'auto' chose full only where a default fit is cheap (full_vi_cost);
                # the warning's bound of max_iter epochs would be a false alarm there.
                check_full_vi(n * n_outputs, batch_size * n_outputs, n_params,
                              self.max_iter, device)
        self.likelihood_ = likelihood
        if self._auto_hyperparameters():
            fit = self._select_by_evidence(module, X_t, y_t, w_t, training)
        else:
            fit = self._train_at(module, X_t, y_t, w_t, training, fixed_prior, likelihood)
            fit.emit_warnings()
        self._install(module, fit)
        self._after_install(X_t, y_t, w_t)
        if self.verbose:
            print(f"[{type(self).__name__}] log marginal likelihood "
                  f"{self.log_marginal_likelihood_:.6g}", flush=True)
        return self

    def _train_at(self, module, X_t, y_t, w_t, training, prior_precision, likelihood,
                  inference=None):
        """Train ``module`` in place at these hyperparameters (by ``inference``,
        default the estimator's), then build the Laplace posterior and the evidence
        there (warnings of the training are recorded in the result, not raised)."""
        owner, n = type(self).__name__, X_t.shape[0]
        inference = self.inference if inference is None else inference
        if self._layerwise() and np.ndim(prior_precision) == 0:
            prior_precision = np.full(self._n_prior_groups, float(prior_precision))
        variational = None
        if inference == "vi":
            method = f"{self.vi_method.upper()}, {self._structure()} covariance"
        else:
            method = {"lbfgs": "L-BFGS", "adam": "Adam"}[self._solver(n)]
        n_params = n_parameters(self._posterior_module(module))
        first = next(module.parameters())
        training_prior = self._expand_prior(prior_precision, self._prior_groups, first)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with phase(self.verbose, owner, f"training ({method}; {n_parameters(module):,} "
                                            f"parameters, {n:,} examples)"):
                if inference == "vi":
                    variational, loss_curve, n_iter = train_vi(
                        module, likelihood, X_t, y_t, w_t, prior_precision=training_prior,
                        method=self.vi_method, structure=self._structure(),
                        beta=self._precision_rate(), initial_precision=self.initial_precision,
                        mc_samples=self.mc_samples, momentum=self.momentum,
                        callback=self.callback, **training,
                    )
                else:
                    loss_curve, n_iter = train_map(
                        module, likelihood, X_t, y_t, w_t, prior_precision=training_prior,
                        solver=self._solver(n), **training,
                    )
        # The evidence always comes from the exact GGN at the final weights (the
        # Laplace / GP view linearised there); under VI the posterior is q itself.
        with torch.no_grad(), phase(self.verbose, owner,
                                    f"curvature and {self._evidence_structure} posterior "
                                    f"({n_params:,} weights)"):
            posterior, evidence = laplace(
                self._posterior_module(module), likelihood,
                self._posterior_inputs(X_t, module), y_t, w_t,
                structure=self._evidence_structure,
                prior_precision=self._expand_prior(
                    prior_precision, like=first.new_empty(0, dtype=torch.float64)))
        if variational is not None:
            # mu as the module holds it (rounded to its dtype), so that every view agrees.
            variational = variational.with_mean(flat_parameters(module).to(torch.float64))
        return _Fit(flat_parameters(module).detach().clone(), loss_curve, n_iter, variational,
                    posterior, evidence, likelihood, prior_precision, caught)

    def _install(self, module, fit):
        """Make ``fit`` (trained into ``module``'s architecture) the fitted state."""
        set_flat_parameters(module, fit.weights)
        self.module_ = module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        self.likelihood_ = fit.likelihood
        self.prior_precision_ = (np.array(fit.prior_precision, dtype=np.float64)
                                 if self._layerwise() else float(fit.prior_precision))
        self.loss_curve_, self.n_iter_ = fit.loss_curve, fit.n_iter
        self._evidence = fit.evidence
        self.posterior_ = fit.posterior if fit.variational is None else fit.variational
        self.log_marginal_likelihood_ = float(self.log_marginal_likelihood())

    def _after_install(self, X_t, y_t, w_t):
        """What an estimator derives from the installed posterior and the training
        data (the classifier: its predictive's temperature)."""

    # ------------------------------------------------- hyperparameters by evidence
    def _auto_hyperparameters(self):
        """The hyperparameters set to 'auto' (the evidence chooses them in fit)."""
        return [name for name in ("prior_precision", "noise_std")
                if isinstance(self._fit_params.get(name), str)]

    def _layerwise(self):
        """Whether the prior has one precision per layer (group of parameters)."""
        return (self._fitted("prior_structure") == "layerwise"
                or np.ndim(self._fitted("prior_precision")) == 1)

    def _resolve_prior_precision(self):
        """A fixed ``prior_precision`` as a float (every layer's, with
        ``prior_structure='layerwise'``: :meth:`_train_at` spreads it) or, per
        layer, an array of ``_n_prior_groups`` floats; None for 'auto'."""
        value = self._fitted("prior_precision")
        if isinstance(value, str):
            return None
        if np.ndim(value) == 0:
            return _positive_float(value, "prior_precision")
        values = np.asarray(value, dtype=np.float64)
        if values.shape != (self._n_prior_groups,) or not np.all(np.isfinite(values)) or \
                not np.all(values > 0):
            raise ValueError(
                f"prior_precision as an array needs one positive, finite precision per "
                f"layer: {self._n_prior_groups} for this network (its submodules that "
                f"hold parameters), got {value!r}.")
        return values

    def _expand_prior(self, prior_precision, groups=None, like=None):
        """``delta`` as the training and the posterior take it: a float, or, per
        layer, the tensor of each parameter's precision (``groups``: the
        posterior's parameters by default), with ``like``'s dtype and device
        (float64 on the network's device by default)."""
        if np.ndim(prior_precision) == 0:
            return float(prior_precision)
        groups = self._posterior_groups if groups is None else groups
        values = torch.as_tensor(np.asarray(prior_precision, dtype=np.float64))[groups]
        if like is None:
            like = next(self.module_.parameters()).new_empty(0, dtype=torch.float64)
        return values.to(device=like.device, dtype=like.dtype)

    def _select_by_evidence(self, module, X_t, y_t, w_t, training):
        """Train along a one-dimensional search of the retrained evidence (see
        :mod:`._auto`) and return the best fit, rebuilt at the chosen
        hyperparameters; the trials are kept in ``evidence_trace_``. With
        per-layer 'auto' precisions, one sweep of coordinate searches over each
        layer's precision follows the search of a common one."""
        auto = self._auto_hyperparameters()
        noise_auto = "noise_std" in auto
        fixed = self._resolve_prior_precision()
        # The searched ratio delta sigma^2 (or delta) is exp(t) times ``direction``:
        # 1 for one precision, per layer the fixed precisions' proportions (geometric
        # mean 1) or exp of the layers' offsets.
        if fixed is None:
            direction, fixed_delta = 1.0, None
        elif np.ndim(fixed) == 0:
            direction, fixed_delta = 1.0, fixed
        else:
            fixed_delta = float(np.exp(np.log(fixed).mean()))
            direction = fixed / fixed_delta
        initial = flat_parameters(module).detach().clone()
        # Trials only rank hyperparameters: they stop at a looser tolerance, and the
        # best one is trained on to ``tol`` at the end.
        trial_training = {**training, "tol": training["tol"] * _TRIAL_TOL_FACTOR}

        def split(t, scale, direction):
            """(delta, noise scale) of training at log-ratio ``t``."""
            if fixed_delta is not None:
                return fixed_delta * direction, math.sqrt(math.exp(t) / fixed_delta)
            return math.exp(t) * direction / scale**2, scale

        def evaluate(t, warm, direction=direction):
            scale = 1.0 if warm is None else warm.hyperparameters["noise_scale"]
            delta, scale = split(t, scale, direction)
            set_flat_parameters(module, initial if warm is None else warm.state.weights)
            try:
                # Under VI the search trains MAPs: VI's evidence is the Laplace one at
                # its mean, and one VI fit at the chosen point follows.
                fit = self._train_at(module, X_t, y_t, w_t, trial_training, delta,
                                     self._likelihood_at(scale), inference="laplace")
            except ValueError:
                if warm is None:
                    raise
                # Training diverged at these extreme hyperparameters: not a candidate.
                return Trial(t, -math.inf, {"prior_precision": delta, "noise_scale": scale},
                             None)
            value, chosen = _profile(self._grouped(fit.evidence), t, delta, scale,
                                     direction=direction,
                                     profile_noise=noise_auto and fixed_delta is None,
                                     noise_at=self._noise_at)
            if not math.isfinite(value):
                value = -math.inf
            trial = Trial(t, value, chosen, fit)
            if self.verbose:
                print(f"[{type(self).__name__}] evidence search: "
                      + ", ".join(f"{k}={np.array2string(np.asarray(v), precision=4)}"
                                  for k, v in self._reported(chosen).items())
                      + f", log evidence {self._reported_evidence(value):.6g} "
                        f"({fit.n_iter} iterations)", flush=True)
            return trial

        def propose(trial):
            # The first network's closed-form maximiser over (delta, sigma), as log ratio.
            fit, scale = trial.state, trial.hyperparameters["noise_scale"]
            (delta, c), _ = maximize_log_evidence(
                lambda theta: float(fit.evidence(theta[0], noise_std=self._noise_at(theta[1]))),
                [trial.hyperparameters["prior_precision"], scale],
                [[1e-8, 1e8], [max(scale / _NOISE_SPAN, _NOISE_FLOOR), scale * _NOISE_SPAN]])
            return math.log(delta * c**2)

        if fixed_delta is not None:
            start = math.log(fixed_delta)
        else:
            start = _START_LOG_RATIO if noise_auto and self._fitted("normalize_y") else 0.0
        # Only where the closed form is at hand: a regressor's profile already holds
        # the spectrum its maximisation needs.
        both = noise_auto and fixed_delta is None
        bounds = LOG_BOUNDS
        if noise_auto and fixed_delta is not None:
            # Here t fixes the noise: sigma^2 = exp(t) / delta.
            bounds = (max(LOG_BOUNDS[0], math.log(fixed_delta * _NOISE_FLOOR**2)), LOG_BOUNDS[1])
        best, trials = search_log_ratio(evaluate, start, propose=propose if both else None,
                                        bounds=bounds)
        finalists = [best]
        if fixed is None and self._layerwise():
            layered, more = self._search_layers(evaluate, best)
            trials += more
            if layered is not best:
                # Trials stop early, so their evidences carry that error; the common
                # precision's best and the layers' are both trained to ``tol`` and
                # compared there (the per-layer family contains the common one).
                finalists.insert(0, layered)

        def entry(hyperparameters, log_evidence, n_iter):
            if self._layerwise():
                hyperparameters = {**hyperparameters, "prior_precision": np.broadcast_to(
                    hyperparameters["prior_precision"], (self._n_prior_groups,)).copy()}
            return {**self._reported(hyperparameters),
                    "log_marginal_likelihood": self._reported_evidence(log_evidence),
                    "n_iter": n_iter}

        self.evidence_trace_ = [
            entry(trial.hyperparameters, trial.log_evidence,
                  None if trial.state is None else trial.state.n_iter)
            for trial in trials]
        # The fit kept, the trace's last entry, is trained at the chosen point: the best
        # trial trained on to ``tol`` along its ray (the same MAP), or under VI one VI
        # fit from the initial weights.
        final = []
        for candidate in finalists:
            chosen = candidate.hyperparameters
            set_flat_parameters(module, initial if self.inference == "vi"
                                else candidate.state.weights)
            fit = self._train_at(module, X_t, y_t, w_t, training, chosen["prior_precision"],
                                 self._likelihood_at(chosen["noise_scale"]))
            value = float(self._grouped(fit.evidence)(chosen["prior_precision"]))
            final.append((value, chosen, fit))
        final.sort(key=lambda item: item[0] if math.isfinite(item[0]) else -math.inf)
        for value, chosen, fit in final:
            self.evidence_trace_.append(entry(chosen, value, fit.n_iter))
        _, chosen, fit = final[-1]
        fit.emit_warnings()
        if noise_auto and chosen["noise_scale"] <= _NOISE_FLOOR * (1 + 1e-3):
            warnings.warn(
                f"The evidence put noise_std at its lower bound, {_NOISE_FLOOR:.3g} times "
                "the standard deviation of y: the targets look noise-free. Set noise_std "
                "to the noise you expect if that is so.", ConvergenceWarning)
        return fit

    def _search_layers(self, evaluate, best):
        """One sweep of coordinate searches of the retrained evidence, layer by
        layer, over the log offset of that layer's precision from the common one
        ``best`` found (each a :func:`search_log_ratio` started at the current
        offset, whose first point is the best fit so far, not retrained)."""
        t0, offsets, trials = best.log_ratio, np.zeros(self._n_prior_groups), []
        for layer in range(self._n_prior_groups):
            current = best

            def along(u, warm, layer=layer, current=current):
                if warm is None:  # the start: the best fit so far
                    return current._replace(log_ratio=u)
                moved = offsets.copy()
                moved[layer] = u
                trial = evaluate(t0, warm, direction=np.exp(moved))
                return trial._replace(log_ratio=u)

            found, run = search_log_ratio(along, offsets[layer])
            trials += run[1:]
            if found.log_evidence > best.log_evidence:
                best, offsets[layer] = found, found.log_ratio
        return best._replace(log_ratio=t0), trials

    def _grouped(self, evidence):
        """``evidence`` taking per-layer precisions (arrays) as well as a float."""
        def at(prior_precision=None, **hyperparameters):
            if prior_precision is not None:
                prior_precision = self._expand_prior(prior_precision,
                                                     like=evidence.posterior.mean)
            return evidence(prior_precision, **hyperparameters)
        return at

    # Hooks a likelihood with hyperparameters (the regressor's noise) overrides.
    def _likelihood_at(self, scale):
        return self.likelihood_

    def _noise_at(self, scale):
        return None

    def _reported(self, hyperparameters):
        return {"prior_precision": hyperparameters["prior_precision"]}

    def _reported_evidence(self, value):
        return value

    def _solver(self, n_samples):
        """``solver`` with 'auto' resolved: full-batch L-BFGS up to 4096 examples (exact
        and deterministic, and it reaches the stationary point the Laplace and GP views
        share), minibatch Adam beyond, where a full pass per iteration is too slow."""
        solver = self._fitted("solver")
        if solver == "auto":
            return "lbfgs" if n_samples <= _AUTO_FULL_BATCH else "adam"
        return solver

    def _structure(self):
        """The posterior structure the fit used (``posterior='auto'`` resolved)."""
        return self._posterior_structure

    def _resolve_structure(self, module, n_rows, n_params, device, batch_rows=None,
                           inference=None):
        """``posterior``, with 'auto' resolved: for Laplace the exact full posterior
        while it is comfortable in memory and time, else K-FAC for an MLP and the
        diagonal for other networks; for VI a full ``q`` while its per-step P x P
        factorisations are comfortable (small networks: see ``full_vi_cost``; a
        diagonal ``q`` cannot show in-between uncertainty), else the diagonal.
        ``inference`` overrides the fitted one."""
        posterior = self._fitted("posterior")
        inference = self._fitted("inference") if inference is None else inference
        if inference == "vi" and posterior == "kron" and not is_mlp(module):
            # Before training: VI's K-FAC q needs the layers' factors at every step.
            raise ValueError(
                "posterior='kron' with inference='vi' needs a network of Linear layers "
                f"and elementwise activations; got {type(module).__name__}. Use "
                "posterior='diag' or 'full'.")
        if posterior != "auto":
            return posterior
        if inference == "vi":
            steps = burn_in_steps(self._precision_rate())
            if full_vi_is_comfortable(n_rows, batch_rows or n_rows, n_params, steps, device):
                return "full"
            return "diag"
        if full_posterior_is_comfortable(n_rows, n_params, device):
            return "full"
        return "kron" if is_mlp(module) else "diag"

    def _precision_rate(self):
        rate, beta = self._fitted("learning_rate_init"), self._fitted("precision_rate")
        beta = rate if beta is None else beta
        if not 0 < beta <= 1:
            raise ValueError(
                "With inference='vi' and precision_rate=None the precision is averaged at "
                f"rate learning_rate_init, which must then be in (0, 1]; got {beta!r}."
            )
        return beta

    def _fitted(self, name):
        """The value parameter ``name`` had when the estimator was fitted."""
        return self._fit_params[name]

    def _validate_X(self, X):
        return validate_data(self, X, reset=False, dtype=_FLOAT_DTYPES)

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
                noise = np.exp(t[n_prior:]) if len(t) > n_prior else None
            return self._log_evidence_at(delta if n_prior > 1 else float(delta[0]), noise)

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

    # --------------------------------------------------------------- pickling
    def __getstate__(self):
        # Tensors go to the CPU so that a model fitted on a GPU unpickles anywhere,
        # with objects shared between attributes (the Laplace posterior is also the
        # evidence's) still shared after unpickling.
        return to_cpu(super().__getstate__(), {})

    @property
    def _evidence_posterior(self):
        """The Laplace-GGN posterior behind the evidence (VI's ``q`` is ``posterior_``)."""
        return self._evidence.posterior

