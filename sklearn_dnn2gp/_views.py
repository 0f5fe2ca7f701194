"""The Jacobian views every fitted estimator offers: features, the NTK kernel, the
transformed targets of Theorem 1 and the GP of Theorem 2 at a VI iterate, and the
chunked Jacobians and latent covariances behind the predictive methods."""

import copy
import functools

import numpy as np
import torch
from sklearn.base import is_classifier
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import (
    _check_sample_weight,
    check_consistent_length,
    check_is_fitted,
)

from ._curvature import (
    is_mlp,
    jacobian_batch_size,
    layer_factor_batch_size,
    output_and_jacobian,
    output_and_layer_factors,
)
from ._gp import ntk, vi_iterate_gp, whitened_log_evidence
from ._network import (
    flat_parameters,
    n_parameters,
    set_flat_parameters,
)
from ._resources import (
    check_memory,
    jacobian_bytes,
)
from ._subset import check_subset_strategy, subset_indices
from ._utils import (
    LOG_2PI,
    batches,
    choose_threads,
    to_numpy,
    to_tensor,
    torch_threads,
)
from .posteriors import split_precisions

# Examples per chunk of the prediction methods (fewer for wide networks).
_CHUNK = 1000

_SUBSET_DOC = """subset_size : int, float or None, default=None
            Compute on a subset of the rows of ``X``: that many (int), that
            fraction of them (float in ``(0, 1]``, rounded, at least one) or all
            (None). The cost grows with the cube of the number of points, so a
            subset is how a large data set gets a function-space view.
        subset_strategy : {'random', 'stratified'}, default='random'
            How the subset is drawn: uniformly without replacement, or with each
            class's share of the rows (rounded, at least one row per class) and
            uniformly within each class, as the paper's Fig. 4 shows each digit.
        random_state : int, RandomState instance or None, default=None
            The draw of the subset; None uses numpy's global random state."""


def _subset_doc(method):
    """Put the shared entries of the subset parameters into ``method``'s docstring."""
    method.__doc__ = method.__doc__.replace("%(subset)s", _SUBSET_DOC)
    return method


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


class GPViewMixin:
    """Methods that read a fitted network through its Jacobians; mixed into
    :class:`~sklearn_dnn2gp._base.BaseDNN2GP`."""

    # -------------------------------------------------------- jacobian views
    def _posterior_module(self, module=None):
        """The part of the network (``module_`` unless given) the posterior is over:
        all of it, or its last layer (``subset_of_weights='last_layer'``), a linear
        model on the features the layers before it learned."""
        module = self.module_ if module is None else module
        if self._fitted("subset_of_weights") == "last_layer":
            return module[-1:]  # a Sequential of one Linear: analytic Jacobians, K-FAC
        return module

    @torch.no_grad()
    def _posterior_inputs(self, X_t, module=None):
        """What :meth:`_posterior_module` sees for the network inputs ``X_t``."""
        module = self.module_ if module is None else module
        if self._fitted("subset_of_weights") == "last_layer":
            return module[:-1](X_t)
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
        """Network outputs (n, K) and latent covariances ``J Sigma J^T`` (n, K, K).

        A posterior that reads an MLP's layer factors (K-FAC) gets those instead of
        the (n, K, P) Jacobians; anything else gets the Jacobians in chunks."""
        head = self._posterior_module()
        from_layers = getattr(self.posterior_, "functional_variance_from_layers", None)
        if from_layers is not None and is_mlp(head):
            return self._latent_from_layers(X, head, from_layers)
        outputs, variances = [], []
        for f, J in self._jacobian_chunks(X):
            outputs.append(f.to(torch.float64))
            variances.append(self.posterior_.functional_variance(J))
        return torch.cat(outputs), torch.cat(variances)

    def _latent_from_layers(self, X, head, from_layers):
        param = next(self.module_.parameters())
        X_t = to_tensor(X, param.dtype, param.device)
        chunk = layer_factor_batch_size(head, self._n_outputs)
        outputs, variances = [], []
        for sl in batches(X_t.shape[0], chunk):
            f, backs, inputs = output_and_layer_factors(head, self._posterior_inputs(X_t[sl]))
            outputs.append(f.to(torch.float64))
            variances.append(from_layers(backs, inputs))
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
        return to_numpy(self._output_jacobian(X))

    @scoped_threads
    @_subset_doc
    def kernel(self, X, Y=None, mode="trace", *, subset_size=None, subset_strategy="random",
               labels=None, random_state=None, return_indices=False):
        """The neural tangent kernel ``J(x) J(x')^T`` of the trained network.

        The DNN2GP prior covariance is this kernel divided by
        ``prior_precision``; it is returned without that factor.

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
        Y : array-like of shape (n_samples_Y, n_features), default=None
            Defaults to ``X`` (the subset of ``X`` when ``subset_size`` is
            given: the kernel of the subset). A given ``Y`` is used whole; only
            the rows of ``X`` are subsampled.
        mode : {'trace', 'full', 'sum'}, default='trace'
            ``'trace'``: ``tr(J(x_i) J(y_j)^T)``, the sum of the per-output
            kernels, shape (n_samples_X, n_samples_Y). ``'full'``: all
            ``K x K`` blocks, shape (n_samples_X * K, n_samples_Y * K), rows
            ordered example-major. ``'sum'``: the sum of every block's entries.
        %(subset)s
        labels : array-like of shape (n_samples_X,), default=None
            Class labels of the rows of ``X``, for ``subset_strategy='stratified'``.
        return_indices : bool, default=False
            Also return the rows of ``X`` the kernel is on.

        Returns
        -------
        K : ndarray
            ``n_samples_X`` is the subset's size when ``subset_size`` is given.
        indices : ndarray of shape (n_subset,)
            The rows of ``X`` used, increasing. Only when ``return_indices`` is True.
        """
        check_is_fitted(self)
        if mode not in ("trace", "full", "sum"):
            raise ValueError(f"mode must be 'trace', 'full' or 'sum', got {mode!r}.")
        X = self._validate_X(X)
        if labels is not None:
            check_consistent_length(X, labels)
        indices = self._subset(len(X), subset_size, subset_strategy, labels, random_state)
        X = X[indices]
        Y = None if Y is None else self._validate_X(Y)
        n, m, k = len(X), len(X) if Y is None else len(Y), self._n_outputs
        blocks = k * k if mode == "full" else 1
        jacobians = jacobian_bytes(n + (0 if Y is None else m), k, self._n_params)
        self._check_jacobian_memory(jacobians + 8 * n * m * blocks,
                                    f"kernel(mode={mode!r}) on {n:,} x {m:,} points")
        JX = self._output_jacobian(X)
        JY = JX if Y is None else self._output_jacobian(Y)
        K = to_numpy(ntk(JX, JY, mode))
        return (K, indices) if return_indices else K

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
        y_tilde = self._targets.to_output(to_numpy(torch.cat(
            [t for _, _, t, _ in self._gp_view_chunks(X, targets)])))
        # 1-D like the targets of a single-output fit (a regressor remembers 2-D y).
        return y_tilde[:, 0] if getattr(self, "_y_is_1d", y_tilde.shape[1] == 1) else y_tilde

    @scoped_threads
    @_subset_doc
    def iterate_gp(self, X, y, state=None, sample_weight=None, *, subset_size=None,
                   subset_strategy="random", random_state=None, return_indices=False):
        """The GP of Theorem 2 at a VI iterate: its posterior is the next OGN step.

        Starting from ``q_t = N(mu_t, Sigma_t)``, a full-batch step on
        ``(X, y)`` with expectations at ``mu_t`` gives exactly the posterior of
        the GP with prior mean ``J m_t``, kernel ``J V_t J^T`` and observations
        ``y~ = f + eps``, where ``V_t^-1 = (1 - beta) Sigma_t^-1 + beta delta I``,
        ``m_t = mu_t - alpha delta V_t mu_t`` (``= (1 - beta) V_t Sigma_t^-1 mu_t``
        when ``alpha = beta``), ``y~_i = J_i mu_t - (alpha / beta) Lambda_i^+ r_i``
        and ``eps_i ~ N(0, (beta w_i Lambda_i)^-1)``. ``J``, ``r`` and
        ``Lambda`` are taken at ``mu_t``; ``alpha`` is VI's step (``learning_rate_init``)
        and ``beta`` the precision rate.

        With ``subset_size``, ``X``, ``y`` and ``sample_weight`` are subsampled
        together and the GP is that of a full-batch step on the subset as if it
        were the data (a minibatch step would scale the noise precision by
        ``N / n_subset``); ``subset_strategy='stratified'`` needs a classifier,
        whose ``y`` gives the classes.

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
        %(subset)s
        return_indices : bool, default=False
            Also return the rows of ``X`` used.

        Returns
        -------
        gp : dict of ndarray
            ``'prior_mean'`` (n_samples * K,), ``'kernel'`` (n_samples * K,
            n_samples * K), ``'targets'`` (n_samples, K) and
            ``'noise_precision'`` (n_samples, K, K), with ``K`` the number of
            network outputs, rows ordered example-major and ``n_samples`` the
            subset's size when ``subset_size`` is given.
        indices : ndarray of shape (n_subset,)
            The rows of ``X`` used, increasing. Only when ``return_indices`` is True.
        """
        check_is_fitted(self)
        if self._fitted("inference") != "vi":
            raise ValueError("iterate_gp needs an estimator fitted with inference='vi'.")
        if self._structure() == "kron":
            # Theorem 2 holds for the exact step; a K-FAC q averages its factors one by
            # one, so its next iterate is not the posterior of that GP.
            raise ValueError("iterate_gp needs a full or diagonal q (posterior='full' or "
                             "'diag'); a K-FAC q (posterior='kron') is not the posterior "
                             "of Theorem 2's GP.")
        X = self._validate_X(X)
        check_consistent_length(X, y)
        weights = None
        if sample_weight is not None:
            weights = torch.as_tensor(_check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True))
        indices = self._subset(len(X), subset_size, subset_strategy, self._class_labels(y),
                               random_state)
        X, y = X[indices], _safe_indexing(y, indices)
        weights = None if weights is None else weights[indices]
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
            learning_rate=self._vi_settings()[0],
            weights=None if weights is None else weights.to(param.device),
        )
        gp = self._targets.gp_to_output(
            {name: to_numpy(value) for name, value in gp._asdict().items()})
        return (gp, indices) if return_indices else gp

    @scoped_threads
    @_subset_doc
    def gp_log_marginal_likelihood(self, X, y, sample_weight=None, *, subset_size=None,
                                   subset_strategy="random", random_state=None,
                                   return_indices=False):
        """The exact evidence of the GP view (Theorem 1) on ``(X, y)`` or a subset.

        ``log N(y~ | 0, J J^T / delta + Lambda^-1)`` with the trained network's
        Jacobians ``J``, transformed targets ``y~`` (:meth:`transformed_targets`)
        and noise precisions ``Lambda`` on the points, ``delta`` the fitted
        ``prior_precision_``: the marginal likelihood of the linearised model,
        by a Cholesky factorisation of the ``n K x n K`` kernel (or of the
        ``P x P`` curvature when ``P`` is smaller). With sample weights every
        example counts ``w_i`` times, as in ``fit``. For a regressor with a
        full posterior, on the training data and without a subset, this is
        ``log_marginal_likelihood_``; with a diagonal or K-FAC posterior that
        attribute is the Laplace evidence instead. For a classifier it is the
        GP view's evidence of ``y~``, not the Laplace evidence of the labels;
        the softmax ``Lambda`` is singular along the all-ones direction, so with
        more than two classes it is the evidence of ``y~`` on ``Lambda``'s range
        (``K - 1`` dimensions per example, ``log|Lambda|`` its
        pseudo-determinant). With ``subset_size``, ``X``, ``y`` and
        ``sample_weight`` are subsampled together; ``subset_strategy='stratified'``
        needs a classifier, whose ``y`` gives the classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets or class labels, as passed to ``fit``.
        sample_weight : array-like of shape (n_samples,), default=None
            The weights ``w_i``.
        %(subset)s
        return_indices : bool, default=False
            Also return the rows of ``X`` used.

        Returns
        -------
        log_marginal_likelihood : float
        indices : ndarray of shape (n_subset,)
            The rows of ``X`` used, increasing. Only when ``return_indices`` is True.
        """
        check_is_fitted(self)
        X = self._validate_X(X)
        check_consistent_length(X, y)
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                           ensure_non_negative=True)
        indices = self._subset(len(X), subset_size, subset_strategy, self._class_labels(y),
                               random_state)
        X, y = X[indices], _safe_indexing(y, indices)
        n, k, p = len(X), self._n_outputs, self._n_params
        space = "weight" if p < n * k else "function"
        side = min(p, n * k)
        self._check_jacobian_memory(
            2 * jacobian_bytes(n, k, p) + 3 * 8 * side**2,
            f"gp_log_marginal_likelihood on {n:,} points")
        param = next(self.module_.parameters())
        targets = self._known_targets(y, param.device)
        w = None
        if weights is not None:
            w = torch.as_tensor(weights[indices], dtype=torch.float64, device=param.device)
        likelihood = self.likelihood_
        Ms, us, log_det = [], [], 0.0
        for f, J, y_tilde, sl in self._gp_view_chunks(X, targets):
            w_chunk = None if w is None else w[sl]
            M = likelihood.whiten_weighted(f, J, w_chunk)
            u = likelihood.whiten_weighted(f, y_tilde, w_chunk)
            volume = likelihood.log_det_precision(f)
            if w is not None:
                volume = volume * w_chunk
            Ms.append(M.reshape(-1, M.shape[-1]))
            us.append(u.reshape(-1))
            log_det = log_det + volume.sum()
        M, u = torch.cat(Ms), torch.cat(us)
        # The whitened evidence counts n K unit-variance rows; the counts by weight of
        # the dimensions Lambda constrains replace them (the softmax's null direction
        # of each example is a row with u = 0, M = 0).
        count = n if w is None else float(w.sum())
        n_observations = count * likelihood.observed_dim(k)
        delta = self.prior_precision_
        if np.ndim(delta):
            # Per-layer precisions: the kernel M diag(1 / delta) M^T is that of the
            # columns M sqrt(delta0 / delta) at the common delta0.
            delta, root = split_precisions(self._expand_prior(delta))
            M = M * root
        value = (whitened_log_evidence(M, u, delta, space=space)
                 + 0.5 * (n * k - n_observations) * LOG_2PI + 0.5 * log_det)
        value = float(value) - self._targets.log_jacobian(count)
        return (value, indices) if return_indices else value

    def _gp_view_chunks(self, X, targets):
        """Yield ``(f, J, y~, rows)`` for ``X`` in chunks, float64: the network outputs,
        the Jacobians of the posterior's weights and the transformed targets."""
        # The posterior's weights: all of them, or the last layer's.
        mean = flat_parameters(self._posterior_module()).to(torch.float64)
        start = 0
        for f, J in self._jacobian_chunks(X):
            f, J = f.to(torch.float64), J.to(torch.float64)
            rows = slice(start, start + len(f))
            start += len(f)
            yield f, J, self.likelihood_.transformed_targets(f, J, mean, targets[rows]), rows

    def _class_labels(self, y):
        """The labels a stratified subset keeps the proportions of: a classifier's
        ``y``; None for a regressor, whose targets have no classes."""
        return y if is_classifier(self) else None

    def _subset(self, n_samples, size, strategy, labels, random_state):
        """The rows of a subset of ``n_samples`` (see :func:`._subset.subset_indices`)."""
        check_subset_strategy(strategy)
        if strategy == "stratified" and labels is None:
            raise ValueError(
                "subset_strategy='stratified' keeps the proportions of classes and needs "
                "class labels: those of a classifier's y, or labels= for kernel; "
                f"{type(self).__name__} got none. Use subset_strategy='random'."
            )
        return subset_indices(n_samples, size, y=labels, strategy=strategy,
                              random_state=random_state)
    def _output_jacobian(self, X):
        """Jacobians of the outputs in the units of y."""
        J = self._jacobian(X)
        scale = self._targets.output_scale
        if scale is None:
            return J
        return J * torch.as_tensor(scale, dtype=J.dtype, device=J.device)[:, None]

    @property
    def _n_outputs(self):
        return self._output_dim

    @property
    def _n_params(self):
        return n_parameters(self._posterior_module())

    def _check_jacobian_memory(self, n_bytes, what):
        device = next(self.module_.parameters()).device
        check_memory(n_bytes, what, "pass fewer points at a time", device)
