"""The estimator skeleton shared by the regressor and the classifier: its parameter
constraints and ``fit``, validate -> train -> curvature -> posterior. The search
of ``'auto'`` hyperparameters is :mod:`._auto`'s (run by :mod:`._selection`),
the ``theta`` API of the evidence :mod:`._theta`'s, and the GP views (kernel,
features, latent covariances) :mod:`._views`'s."""

import time
import warnings
from numbers import Integral, Real
from typing import Any, NamedTuple

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    validate_data,
)

from ._laplace import laplace
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
    choose_structure,
)
from ._selection import SelectionMixin
from ._theta import EvidenceMixin, _positive_float
from ._training import train_map
from ._utils import (
    choose_threads,
    format_values,
    make_generator,
    resolve_device,
    resolve_dtype,
    to_cpu,
    to_tensor,
    torch_threads,
)
from ._verbose import phase
from ._vi import burn_in_steps, train_vi
from ._views import GPViewMixin, scoped_threads  # noqa: F401 (re-exported)
from .posteriors import POSTERIOR_OPTIONS

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



# learning_rate_init='auto': Adam's and VI's step, except VI's with a full q, whose
# step is an exact Gauss-Newton direction (no diagonal's overshoot to guard against).
_LEARNING_RATE = 1e-2
_FULL_VI_STEP = 3e-2


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

    def emit_warnings(self, context=""):
        """Raise the warnings its training recorded, once it is the fit kept, each
        message after ``context``."""
        for caught in self.warnings:
            message = caught.message
            if context:
                message = caught.category(f"{context}{message}")
            warnings.warn_explicit(message, caught.category, caught.filename, caught.lineno)


class BaseDNN2GP(SelectionMixin, EvidenceMixin, GPViewMixin, BaseEstimator):
    """Shared machinery; not for direct use."""

    # The hyperparameters whose evidence a trained network gives in closed form (the
    # likelihood's own follow in an estimator whose likelihood has some).
    _closed_form_hyperparameters = ("prior_precision",)

    _parameter_constraints = {
        "hidden_layer_sizes": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "activation": [StrOptions({"tanh", "relu", "sigmoid", "identity"})],
        "prior_precision": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"}),
                            "array-like"],
        "prior_structure": [StrOptions({"scalar", "layerwise"})],
        "evidence_search": [StrOptions({"retrain", "staged"})],
        "posterior": [StrOptions(POSTERIOR_OPTIONS)],
        "inference": [StrOptions({"laplace", "vi"})],
        "vi_method": [StrOptions({"vogn", "ogn"})],
        "mc_samples": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "precision_rate": [Interval(Real, 0, 1, closed="right"), None],
        "initial_precision": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "callback": [callable, None],
        "solver": [StrOptions({"auto", "adam", "lbfgs"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
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
        started = time.perf_counter()
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
        training = dict(max_iter=self.max_iter, learning_rate=self._learning_rate(),
                        batch_size=batch_size, tol=self.tol,
                        n_iter_no_change=self.n_iter_no_change, generator=generator,
                        verbose=self.verbose)
        n_params = n_parameters(module)
        with torch_threads(choose_threads(self.n_threads, n * n_outputs * n_params)):
            self._train_and_build(module, likelihood, X_t, y_t, w_t, batch_size, training,
                                  n_params, fixed_prior)
        if self.verbose:
            print(self._summary(time.perf_counter() - started), flush=True)
        return self

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
        if fixed_prior is None or self._likelihood_hyperparameters.searched:
            fit = self._select_by_evidence(module, X_t, y_t, w_t, training, fixed_prior)
        else:
            fit = self._train_at(module, X_t, y_t, w_t, training, fixed_prior, likelihood)
            fit.emit_warnings()
            # The trace describes a search; a fit without one has none (not a stale one).
            self.__dict__.pop("evidence_trace_", None)
            self.evidence_search_ = None
        self._install(module, fit)
        self._after_install(X_t, y_t, w_t)
        return self

    def _chosen(self):
        """The hyperparameters of the fit kept: the search's last trace entry's, or
        the fixed prior precision."""
        trace = getattr(self, "evidence_trace_", None)
        if trace is None:
            return {"prior_precision": self.prior_precision_}
        return {k: v for k, v in trace[-1].items()
                if k not in ("log_marginal_likelihood", "n_iter")}

    def _summary(self, seconds):
        """``verbose``'s last line: the chosen hyperparameters, the trainings, the time."""
        trace = getattr(self, "evidence_trace_", None)
        how = ("1 training" if trace is None
               else f"{len(trace)} trainings ({self.evidence_search_} evidence search)")
        return (f"[{type(self).__name__}] fitted in {seconds:.2f} s: "
                f"{format_values(self._chosen())}; {how}; "
                f"log marginal likelihood {self.log_marginal_likelihood_:.6g}")

    def _train_at(self, module, X_t, y_t, w_t, training, prior_precision, likelihood,
                  inference=None, warm=False):
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
        if inference == "vi":
            start = None
            if self._vi_starts_at_map():
                start = self._train_at(module, X_t, y_t, w_t, training, prior_precision,
                                       likelihood, inference="laplace", warm=warm)
                start.emit_warnings("The MAP that VI starts from: ")
            temperature = self._vi_temperature(module, start, X_t, y_t, w_t)
            step, mc_samples = self._vi_settings()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with phase(self.verbose, owner, f"training ({method}; {n_parameters(module):,} "
                                            f"parameters, {n:,} examples)"):
                if inference == "vi":
                    variational, loss_curve, n_iter = train_vi(
                        module, likelihood, X_t, y_t, w_t, prior_precision=training_prior,
                        method=self.vi_method, structure=self._structure(),
                        beta=self._precision_rate(), initial_precision=self.initial_precision,
                        mc_samples=mc_samples, momentum=self.momentum,
                        callback=self.callback, temperature=temperature,
                        warm=start is not None, **{**training, "learning_rate": step},
                    )
                else:
                    loss_curve, n_iter = train_map(
                        module, likelihood, X_t, y_t, w_t, prior_precision=training_prior,
                        solver=self._solver(n), warm=warm, **training,
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
        self.n_outputs_ = self._output_dim
        self._evidence = fit.evidence
        self.posterior_ = fit.posterior if fit.variational is None else fit.variational
        self.log_marginal_likelihood_ = float(self.log_marginal_likelihood())

    def _data_checks(self):
        """Extra arguments of ``validate_data`` for ``y`` (the regressor's: numeric,
        several targets)."""
        return {}

    def _after_install(self, X_t, y_t, w_t):
        """What an estimator derives from the installed posterior and the training
        data (the classifier: its predictive's temperature)."""

    def _vi_starts_at_map(self):
        """Whether VI starts from the MAP at its hyperparameters (trained first),
        ``q`` at its Laplace posterior: for a full ``q``, which from a random start
        settled on a smoother fit than L-BFGS's on one Snelson seed in three
        (``delta = 0.1``: training RMSE 0.39 against 0.28). Not for a diagonal
        ``q``: from the MAP it stayed ~80 nats of ELBO short of where it got from
        a random start (``make_gap_regression``), the mean field's optimum lying
        far from the MAP."""
        return self._structure() == "full"

    def _vi_temperature(self, module, start, X_t, y_t, w_t):
        """The temperature VI trains at (see ``train_vi``), given the MAP fit
        ``start`` that VI starts from, or None (the classifier's may be chosen on it)."""
        return 1.0

    # ------------------------------------------------- hyperparameters by evidence
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
        """``posterior`` with 'auto' resolved (:func:`._resources.choose_structure`);
        ``inference`` overrides the fitted one."""
        return choose_structure(
            self._fitted("posterior"),
            self._fitted("inference") if inference is None else inference, module, n_rows,
            n_params, device, batch_rows=batch_rows,
            burn_in=lambda: burn_in_steps(self._precision_rate()))

    def _learning_rate(self):
        rate = self._fitted("learning_rate_init")
        return _LEARNING_RATE if rate == "auto" else rate

    def _vi_settings(self):
        """VI's mean step ``alpha`` and ``mc_samples`` with 'auto' resolved: for a
        full ``q`` 3e-2 and an antithetic pair, else 1e-2 and one draw (see the
        parameters' docs)."""
        full = self._structure() == "full"
        samples = self._fitted("mc_samples")
        step = (_FULL_VI_STEP if full and self._fitted("learning_rate_init") == "auto"
                else self._learning_rate())
        return step, (2 if full else 1) if samples == "auto" else samples

    def _precision_rate(self):
        rate, beta = self._learning_rate(), self._fitted("precision_rate")
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


    # --------------------------------------------------------------- pickling
    def __getstate__(self):
        # Tensors go to the CPU so that a model fitted on a GPU unpickles anywhere,
        # with objects shared between attributes (the Laplace posterior is also the
        # evidence's) still shared after unpickling.
        return to_cpu(super().__getstate__(), {})
