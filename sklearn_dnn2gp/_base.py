"""The estimator skeleton shared by the regressor and the classifier:
validate -> train -> curvature -> posterior, and the Jacobian-based views."""

import copy
import functools
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from ._curvature import is_mlp, jacobian_batch_size, output_and_jacobian
from ._gp import ntk, vi_iterate_gp
from ._laplace import POSTERIORS, laplace
from ._likelihoods import Categorical
from ._network import (
    flat_parameters,
    make_mlp,
    make_module,
    n_parameters,
    same_architecture,
    set_flat_parameters,
)
from ._resources import (
    check_full_posterior,
    check_full_vi,
    check_memory,
    full_posterior_is_comfortable,
    jacobian_bytes,
)
from ._training import train_map, train_vi
from ._utils import (
    batches,
    choose_threads,
    make_generator,
    resolve_device,
    resolve_dtype,
    to_numpy,
    to_tensor,
    torch_threads,
)
from ._verbose import phase

# Full batch up to this many examples when batch_size='auto' (the objective is a sum,
# so a full batch is exact and deterministic).
_AUTO_FULL_BATCH = 4096
_AUTO_BATCH = 256
_CHUNK = 1000
# Inputs become floats: object / categorical columns are refused by check_array
# with scikit-learn's message rather than by torch.
_FLOAT_DTYPES = (np.float64, np.float32)


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


def _to_cpu(value, memo):
    """``value`` with every tensor and module inside it on the CPU; shared objects stay
    shared (``memo`` maps ids to their copies). Only containers and this package's own
    objects are entered; a value already on the CPU is returned as it is."""
    key = id(value)
    if key in memo:
        return memo[key]
    if isinstance(value, torch.Tensor):
        memo[key] = value.cpu()
    elif isinstance(value, torch.nn.Module):
        on_cpu = all(not t.is_cuda for t in value.state_dict().values())
        memo[key] = value if on_cpu else copy.deepcopy(value).cpu()
    elif isinstance(value, dict):
        memo[key] = {k: _to_cpu(v, memo) for k, v in value.items()}
    elif isinstance(value, list) or type(value) is tuple:
        memo[key] = type(value)(_to_cpu(v, memo) for v in value)
    elif type(value).__module__.startswith(__name__.rpartition(".")[0] + ".") and hasattr(
            value, "__dict__") and not isinstance(value, BaseEstimator):
        copied = memo[key] = copy.copy(value)
        copied.__dict__.update({k: _to_cpu(v, memo) for k, v in vars(value).items()})
    else:
        memo[key] = value
    return memo[key]


def scoped_threads(method):
    """Run a fitted estimator's method with the intra-op thread count its
    ``n_threads`` chooses for ``len(X)`` points, restoring the caller's after."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        work = 0
        if hasattr(self, "module_"):
            first = args[0] if args else None
            shape = getattr(first, "shape", None)  # () for numpy scalars
            n = shape[0] if shape else len(first) if isinstance(first, (list, tuple)) else 1
            work = max(n, 1) * self._n_outputs * self._n_params
        with torch_threads(choose_threads(self.n_threads, work)):
            return method(self, *args, **kwargs)

    return wrapper


def finite_evidence(value, **hyperparameters):
    """``value`` as a float, or a ValueError naming the hyperparameters that made it
    overflow."""
    value = float(value)
    if not np.isfinite(value):
        at = ", ".join(f"{name}={np.array2string(np.asarray(v), precision=4)}"
                       for name, v in hyperparameters.items())
        raise ValueError(
            f"The log evidence at {at} is not representable in float64 ({value}); "
            "these hyperparameters are too extreme for this network."
        )
    return value


def _solve_precision(likelihood, f, residual):
    """``Lambda^+ r`` for each example, (n, K), with ``r`` in the range of ``Lambda``."""
    precision = likelihood.precision(f)
    if not isinstance(likelihood, Categorical):
        return torch.linalg.solve(precision, residual)
    # diag(p) - p p^T is singular along 1, where r = p - onehot(y) has no component, and a
    # pseudo-inverse cannot tell that null direction from those of small p in float64.
    # diag(1/p) r solves Lambda x = r exactly; less its mean it is the solution orthogonal
    # to 1, Lambda^+ r.
    x = residual / torch.softmax(f, dim=1)
    return x - x.mean(dim=1, keepdim=True)


class BaseDNN2GP(BaseEstimator):
    """Shared machinery; not for direct use."""

    _parameter_constraints = {
        "hidden_layer_sizes": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "activation": [StrOptions({"tanh", "relu", "sigmoid", "identity"})],
        "prior_precision": [Interval(Real, 0, None, closed="neither")],
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
        y_t, likelihood, n_outputs = self._encode_targets(y, dtype, device)
        X_t = to_tensor(X, dtype, device)
        w_t = None if weights is None else to_tensor(weights, dtype, device)
        n = X.shape[0]
        if self.batch_size == "auto":
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
        self._output_dim = n_outputs
        if self.warm_start and same_architecture(getattr(self, "module_", None), module):
            # Start from the previous solution (e.g. a neighbouring prior_precision).
            set_flat_parameters(module, flat_parameters(self.module_).to(device, dtype))
        training = dict(max_iter=self.max_iter, learning_rate=self.learning_rate_init,
                        batch_size=batch_size, tol=self.tol,
                        n_iter_no_change=self.n_iter_no_change, generator=generator,
                        verbose=self.verbose)
        self.prior_precision_ = float(self.prior_precision)
        n_params = n_parameters(module)
        with torch_threads(choose_threads(self.n_threads, n * n_outputs * n_params)):
            return self._train_and_build(module, likelihood, X_t, y_t, w_t, batch_size,
                                         training, n_params)

    def _train_and_build(self, module, likelihood, X_t, y_t, w_t, batch_size, training,
                         n_params):
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
        self._posterior_structure = self._resolve_structure(
            module if self._fitted("subset_of_weights") == "all" else module[-1:],
            n * n_outputs, n_params, device)
        if self._structure() == "full":
            # Before training: a fit that cannot finish should not start.
            check_full_posterior(n * n_outputs, n_params, device)
            if self.inference == "vi":
                check_full_vi(n * n_outputs, batch_size * n_outputs, n_params,
                              self.max_iter, device)
        owner = type(self).__name__
        variational = None
        if self.inference == "vi":
            method = f"{self.vi_method.upper()}, {self._structure()} covariance"
        else:
            method = {"lbfgs": "L-BFGS", "adam": "Adam"}[self._solver(n)]
        with phase(self.verbose, owner, f"training ({method}; {n_params:,} parameters, "
                                        f"{n:,} examples)"):
            if self.inference == "vi":
                variational, self.loss_curve_, self.n_iter_ = train_vi(
                    module, likelihood, X_t, y_t, w_t, prior_precision=self.prior_precision,
                    method=self.vi_method, structure=self._structure(),
                    beta=self._precision_rate(), initial_precision=self.initial_precision,
                    mc_samples=self.mc_samples, callback=self.callback, **training,
                )
            else:
                self.loss_curve_, self.n_iter_ = train_map(
                    module, likelihood, X_t, y_t, w_t, prior_precision=self.prior_precision,
                    solver=self._solver(n), **training,
                )
        self.module_ = module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        # The evidence always comes from the exact GGN at the final weights (the
        # Laplace / GP view linearised there); under VI the posterior is q itself.
        self.likelihood_ = likelihood
        with phase(self.verbose, owner, f"curvature and {self._structure()} posterior"):
            head = self._posterior_module()
            laplace_posterior, self._evidence = laplace(
                head, likelihood, self._posterior_inputs(X_t), y_t, w_t,
                structure=self._structure(), prior_precision=self.prior_precision_)
        if variational is not None:
            # mu as the module holds it (rounded to its dtype), so that every view agrees.
            variational = variational.with_mean(flat_parameters(module).to(torch.float64))
        self.posterior_ = laplace_posterior if variational is None else variational
        self.log_marginal_likelihood_ = float(self.log_marginal_likelihood())
        if self.verbose:
            print(f"[{owner}] log marginal likelihood {self.log_marginal_likelihood_:.6g}",
                  flush=True)
        return self

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

    def _resolve_structure(self, module, n_rows, n_params, device):
        """``posterior``, with 'auto' resolved: diagonal for VI; for Laplace the exact
        full posterior while it is comfortable in memory and time, else K-FAC for an
        MLP and the diagonal for other networks."""
        posterior, inference = self._fitted("posterior"), self._fitted("inference")
        if inference == "vi" and posterior == "kron":
            raise ValueError("posterior='kron' is available with inference='laplace'; "
                             "VI takes posterior='diag' or 'full'.")
        if posterior != "auto":
            return posterior
        if inference == "vi":
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

    def _check_prior_precision(self, prior_precision):
        """``delta`` for an evidence re-evaluation: the fitted one when None."""
        if prior_precision is None:
            return self.prior_precision_
        return _positive_float(prior_precision, "prior_precision")

    # -------------------------------------------------------- jacobian views
    def _posterior_module(self):
        """The part of the network the posterior is over: all of it, or its last
        layer (``subset_of_weights='last_layer'``), a linear model on the features
        the layers before it learned."""
        if self._fitted("subset_of_weights") == "last_layer":
            return self.module_[-1:]  # a Sequential of one Linear: analytic Jacobians, K-FAC
        return self.module_

    @torch.no_grad()
    def _posterior_inputs(self, X_t):
        """What :meth:`_posterior_module` sees for the network inputs ``X_t``."""
        if self._fitted("subset_of_weights") == "last_layer":
            return self.module_[:-1](X_t)
        return X_t

    def _jacobian_chunks(self, X):
        """Yield ``(f, J)`` for ``X`` in chunks, on the module's device: the network
        outputs and their Jacobians with respect to the posterior's weights."""
        param = next(self.module_.parameters())
        X_t = to_tensor(X, param.dtype, param.device)
        head = self._posterior_module()
        chunk = jacobian_batch_size(self._n_outputs, self._n_params, largest=_CHUNK)
        for sl in batches(X_t.shape[0], chunk):
            yield output_and_jacobian(head, self._posterior_inputs(X_t[sl]))

    def _latent(self, X):
        """Network outputs (n, K) and latent covariances ``J Sigma J^T`` (n, K, K)."""
        outputs, variances = [], []
        for f, J in self._jacobian_chunks(X):
            outputs.append(f.to(torch.float64))
            variances.append(self.posterior_.functional_variance(J))
        return torch.cat(outputs), torch.cat(variances)

    def _forward(self, X):
        """Network outputs for ``X`` (n, K) as float64 numpy, in chunks."""
        param = next(self.module_.parameters())
        X_t = to_tensor(X, param.dtype, param.device)
        with torch.no_grad():
            out = [self.module_(X_t[sl]) for sl in batches(X_t.shape[0], 4096)]
        return to_numpy(torch.cat(out).to(torch.float64))

    def _jacobian(self, X):
        return torch.cat([J for _, J in self._jacobian_chunks(X)])

    @scoped_threads
    def features(self, X):
        """The DNN2GP feature map ``phi(x) = J(x)^T`` at the trained weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        features : ndarray of shape (n_samples, n_outputs, n_parameters)
            Per-example Jacobians of the network outputs with respect to all
            parameters (in module order).
        """
        check_is_fitted(self)
        X = self._validate_X(X)
        self._check_jacobian_memory(jacobian_bytes(len(X), self._n_outputs, self._n_params),
                                    f"features of {len(X):,} points")
        return to_numpy(self._jacobian(X))

    @scoped_threads
    def kernel(self, X, Y=None, mode="trace"):
        """The neural tangent kernel ``J(x) J(x')^T`` of the trained network.

        The DNN2GP prior covariance is this kernel divided by
        ``prior_precision``; it is returned without that factor.

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
        Y : array-like of shape (n_samples_Y, n_features), default=None
            Defaults to ``X``.
        mode : {'trace', 'full', 'sum'}, default='trace'
            ``'trace'``: ``tr(J(x_i) J(y_j)^T)``, the sum of the per-output
            kernels, shape (n_samples_X, n_samples_Y). ``'full'``: all
            ``K x K`` blocks, shape (n_samples_X * K, n_samples_Y * K), rows
            ordered example-major. ``'sum'``: the sum of every block's entries.

        Returns
        -------
        K : ndarray
        """
        check_is_fitted(self)
        if mode not in ("trace", "full", "sum"):
            raise ValueError(f"mode must be 'trace', 'full' or 'sum', got {mode!r}.")
        X = self._validate_X(X)
        Y = None if Y is None else self._validate_X(Y)
        n, m, k = len(X), len(X) if Y is None else len(Y), self._n_outputs
        blocks = k * k if mode == "full" else 1
        jacobians = jacobian_bytes(n + (0 if Y is None else m), k, self._n_params)
        self._check_jacobian_memory(jacobians + 8 * n * m * blocks,
                                    f"kernel(mode={mode!r}) on {n:,} x {m:,} points")
        JX = self._jacobian(X)
        JY = JX if Y is None else self._jacobian(Y)
        return to_numpy(ntk(JX, JY, mode))

    @scoped_threads
    def transformed_targets(self, X, y):
        """The targets ``y~ = J(x) w* - Lambda(x)^+ r(x, y)`` of the GP view (Theorem 1).

        With the trained weights ``w*``, the linear model ``y~_i = J_i w +
        eps_i``, ``eps_i ~ N(0, Lambda_i^-1)``, ``w ~ N(0, I / prior_precision)``
        has the Laplace-GGN posterior of the fit; a GP with kernel
        ``J(x) J(x')^T / prior_precision`` (see
        :class:`~sklearn_dnn2gp.kernels.NTKKernel`) on these targets gives its
        predictive. For a regressor ``y~ = y + J w* - f_{w*}(x)`` with noise
        variance ``noise_std_**2``; for two classes ``y~ = J w* - (p - y) / (p (1 - p))``
        with noise variance ``1 / (p (1 - p))``, ``p`` the network's probability.
        With more classes the softmax ``Lambda`` is singular along the all-ones
        direction, which the likelihood ignores; ``Lambda^+`` is its
        pseudo-inverse, so ``y~ - J w*`` sums to zero over the classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets or class labels, as passed to ``fit``.

        Returns
        -------
        y_tilde : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            One column per network output; 1-D for a regressor fitted on 1-D
            ``y`` and for a binary classifier (one logit).
        """
        check_is_fitted(self)
        X = self._validate_X(X)
        check_consistent_length(X, y)
        param = next(self.module_.parameters())
        targets = self._known_targets(y, param.device)
        # The posterior's weights: all of them, or the last layer's.
        mean = flat_parameters(self._posterior_module()).to(torch.float64)
        chunks, start = [], 0
        for f, J in self._jacobian_chunks(X):
            f, J = f.to(torch.float64), J.to(torch.float64)
            residual = self.likelihood_.residual(f, targets[start:start + len(f)])
            start += len(f)
            chunks.append(J @ mean - _solve_precision(self.likelihood_, f, residual))
        y_tilde = to_numpy(torch.cat(chunks))
        # 1-D like the targets of a single-output fit (a regressor remembers 2-D y).
        return y_tilde[:, 0] if getattr(self, "_y_is_1d", y_tilde.shape[1] == 1) else y_tilde

    @scoped_threads
    def iterate_gp(self, X, y, state=None, sample_weight=None):
        """The GP of Theorem 2 at a VI iterate: its posterior is the next OGN step.

        Starting from ``q_t = N(mu_t, Sigma_t)``, a full-batch step on
        ``(X, y)`` with expectations at ``mu_t`` gives exactly the posterior of
        the GP with prior mean ``J m_t``, kernel ``J V_t J^T`` and observations
        ``y~ = f + eps``, where ``V_t^-1 = (1 - beta) Sigma_t^-1 + beta delta I``,
        ``m_t = mu_t - alpha delta V_t mu_t`` (``= (1 - beta) V_t Sigma_t^-1 mu_t``
        when ``alpha = beta``), ``y~_i = J_i mu_t - (alpha / beta) Lambda_i^+ r_i``
        and ``eps_i ~ N(0, (beta w_i Lambda_i)^-1)``. ``J``, ``r`` and
        ``Lambda`` are taken at ``mu_t``; ``alpha`` is ``learning_rate_init``
        and ``beta`` the precision rate.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets as passed to ``fit``.
        state : VIState, default=None
            An iterate passed to ``callback`` during ``fit``; defaults to the
            final ``q``.
        sample_weight : array-like of shape (n_samples,), default=None
            The weights ``w_i``.

        Returns
        -------
        gp : dict of ndarray
            ``'prior_mean'`` (n_samples * K,), ``'kernel'`` (n_samples * K,
            n_samples * K), ``'targets'`` (n_samples, K) and
            ``'noise_precision'`` (n_samples, K, K), with ``K`` the number of
            network outputs and rows ordered example-major.
        """
        check_is_fitted(self)
        if self._fitted("inference") != "vi":
            raise ValueError("iterate_gp needs an estimator fitted with inference='vi'.")
        X = self._validate_X(X)
        check_consistent_length(X, y)
        weights = None
        if sample_weight is not None:
            weights = torch.as_tensor(_check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True))
        if state is None:
            mean, precision = self.posterior_.mean, self.posterior_.precision()
        else:
            mean, precision = state.mean, state.precision
        param = next(self.module_.parameters())
        module = copy.deepcopy(self.module_)
        set_flat_parameters(module, mean.to(param.device))
        X_t = to_tensor(X, param.dtype, param.device)
        f, J = output_and_jacobian(module, X_t)
        gp = vi_iterate_gp(
            f, J, self._known_targets(y, param.device), self.likelihood_,
            mean.to(param.device), precision.to(param.device),
            prior_precision=self.prior_precision_, beta=self._precision_rate(),
            learning_rate=self._fitted("learning_rate_init"),
            weights=None if weights is None else weights.to(param.device),
        )
        return {name: to_numpy(value) for name, value in gp._asdict().items()}

    # --------------------------------------------------------------- pickling
    def __getstate__(self):
        # Tensors go to the CPU so that a model fitted on a GPU unpickles anywhere,
        # with objects shared between attributes (the Laplace posterior is also the
        # evidence's) still shared after unpickling.
        return _to_cpu(super().__getstate__(), {})

    @property
    def _evidence_posterior(self):
        """The Laplace-GGN posterior behind the evidence (VI's ``q`` is ``posterior_``)."""
        return self._evidence.posterior

    @property
    def _n_outputs(self):
        return self._output_dim

    @property
    def _n_params(self):
        return n_parameters(self._posterior_module())

    def _check_jacobian_memory(self, n_bytes, what):
        device = next(self.module_.parameters()).device
        check_memory(n_bytes, what, "pass fewer points at a time", device)
