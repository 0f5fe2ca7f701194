"""DNN2GPRegressor: an MLP trained to the MAP, with its Laplace-GGN posterior and GP view."""

import warnings
from numbers import Real

import numpy as np
import torch
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from ._base import BaseDNN2GP, scoped_threads
from ._docs import fill_shared_parameters
from ._gp import gp_weight_shift
from ._likelihoods import GaussianNoise
from ._resources import jacobian_bytes
from ._targets import TargetScaling
from ._theta import finite_evidence
from ._utils import to_numpy, to_tensor

# Noise stds whose square and inverse square are normal float64 numbers.
_NOISE_RANGE = (1e-150, 1e150)


@fill_shared_parameters
class DNN2GPRegressor(RegressorMixin, BaseDNN2GP):
    """Neural-network regression with the uncertainty of its DNN2GP Gaussian process.

    ``fit`` trains a multi-layer perceptron ``f_w`` to the minimum of the summed
    objective ``sum_i w_i l(y_i, f_w(x_i)) + prior_precision / 2 |w|^2`` with the
    Gaussian negative log-likelihood ``l`` of noise std ``noise_std``, then forms
    the Laplace posterior ``N(w*, (G + prior_precision I)^-1)`` with the
    generalized Gauss-Newton ``G = sum_i J_i^T Lambda_i J_i``. This posterior is
    exactly that of a Gaussian process whose kernel is the network's neural
    tangent kernel ``J(x) J(x')^T / prior_precision`` (Khan et al., 2019,
    "Approximate Inference Turns Deep Networks into Gaussian Processes").
    With ``inference='vi'`` the network is instead trained by the variational
    online Gauss-Newton method (VOGN, or its deterministic variant OGN), whose
    Gaussian ``q`` is the posterior and whose every step is exact inference in
    a GP (Theorem 2 of the paper; see :meth:`iterate_gp`).

    Parameters
    ----------
    %(network)s
    noise_std : float, array-like of shape (n_targets,) or 'auto', default='auto'
        Standard deviation ``sigma`` of the Gaussian observation noise, in the
        units of ``y``; one value per target for multi-output ``y``.
        ``'auto'``: set by the evidence during ``fit`` together with
        ``prior_precision`` (see there), as one common multiple of each
        target's standard deviation; ``noise_std_`` holds the result. It
        stays above ``10**-2.5`` times that standard deviation (a noise
        variance of 1e-5 of y's, the lower bound of scikit-learn's
        ``WhiteKernel``); a ConvergenceWarning says when the evidence chose
        that bound, i.e. the targets look noise-free.
    normalize_y : bool, default=True
        Train on targets standardised per target (weighted by
        ``sample_weight``), as ``GaussianProcessRegressor(normalize_y=True)``,
        so that the same ``prior_precision`` suits targets in any units. All
        outputs are in the units of ``y``: means, stds and covariances,
        ``noise_std_``, the kernel and features (the Jacobians of the outputs
        in those units), the transformed targets and the evidence, which
        includes the log Jacobian ``-sum_i w_i sum_k log std_k`` of the
        normalisation so that it stays comparable across settings.
        ``prior_precision`` acts on the weights of the network that predicts
        the standardised targets.
    temperature : float in [0, 1], default=1.0
        The temperature ``T`` of the posterior: likelihood and prior raised to
        ``1 / T``, whose Gaussian is ``N(w*, T Sigma)`` around the same mean.
        The predictive then has the epistemic variance ``T J Sigma J^T``
        (``predict``'s std and covariance, ``predict_uncertainty``), and VI
        trains at it: VOGN draws from ``N(mu, T Sigma)``, which weights the KL
        term of the ELBO by ``T`` (a KL weight, as VOGN's authors temper their
        ImageNet results), so that ``q``'s mean fits the data more closely. 1
        is the posterior itself; 0 the network alone. On red wine (the paper's
        splits, 11-20-20-1, ``prior_precision=30``, ``noise_std=0.64``) the
        default diagonal VI's test MSE was within one paired standard error of
        the MAP's on 3 of 5 splits at ``T = 1`` and on all 5 at ``T = 0.3``, at
        1.8-4 times the fit time (``benchmarks/bench_vi.py``). The evidence,
        the kernel, the features and ``iterate_gp`` are those of the
        untempered posterior.
    %(inference)s
    %(training)s

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network.
    %(fitted)s
    noise_std_ : ndarray of shape (n_targets,)
        The noise standard deviations of the fit, in the units of ``y``:
        ``noise_std``, or the evidence's choice when it is ``'auto'``.
    temperature_ : float
        The temperature of the predictive and of VI (see ``temperature``).
    log_marginal_likelihood_ : float
        Log evidence of the training targets: the GP evidence of the
        transformed targets for a full posterior, the Laplace-GGN
        evidence with the diagonal GGN for ``posterior='diag'``. Under
        ``inference='vi'`` the same formulas at the final mean ``mu``, with
        the exact GGN there (not VI's averaged, sampled ``S``): the evidence
        of the DNN2GP GP linearised at ``mu``.
    loss_curve_ : list of float
        Summed objective per Adam epoch or per L-BFGS function evaluation;
        under ``inference='vi'`` the negative ELBO per epoch (its Monte-Carlo
        estimate for VOGN).
    n_iter_ : int
        Iterations (L-BFGS) or epochs (Adam, VI) run.
    n_outputs_ : int
        Outputs of the network: the number of targets.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    DNN2GPClassifier : The classification counterpart.
    sklearn.gaussian_process.GaussianProcessRegressor : A GP with a fixed kernel.

    References
    ----------
    M. E. Khan, A. Immer, E. Abedi, M. Korzepa. Approximate Inference Turns Deep
    Networks into Gaussian Processes. NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dnn2gp import DNN2GPRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-3, 3, size=(60, 1))
    >>> y = np.sin(X[:, 0]) + 0.1 * rng.randn(60)
    >>> reg = DNN2GPRegressor(hidden_layer_sizes=(20,), random_state=0).fit(X, y)
    >>> mean, std = reg.predict(np.array([[0.0], [8.0]]), return_std=True)
    >>> bool(std[1] > std[0])
    True
    >>> bool(0.05 < reg.noise_std_[0] < 0.2)  # set by the evidence
    True
    """

    _parameter_constraints = {
        **BaseDNN2GP._parameter_constraints,
        "noise_std": [Interval(Real, 0, None, closed="neither"), "array-like",
                      StrOptions({"auto"})],
        "normalize_y": ["boolean"],
        "temperature": [Interval(Real, 0, 1, closed="both")],
    }

    _closed_form_hyperparameters = ("prior_precision", "noise_std")

    # The keyword-only parameters in the docstring's order (numpydoc's PR03).
    def __init__(self, hidden_layer_sizes=(50,), activation="tanh", *, module=None,
                 prior_precision="auto", prior_structure="scalar", evidence_search="retrain",
                 noise_std="auto", normalize_y=True, temperature=1.0, posterior="auto",
                 subset_of_weights="all", inference="laplace", vi_method="vogn",
                 mc_samples="auto", precision_rate=None, initial_precision="auto", solver="auto",
                 max_iter=5000,
                 learning_rate_init="auto", batch_size="auto", tol=1e-5, n_iter_no_change=10,
                 random_state=None, device="auto", dtype="float64", verbose=0, callback=None,
                 warm_start=False, n_threads="auto", momentum=0.9):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.prior_precision = prior_precision
        self.prior_structure = prior_structure
        self.evidence_search = evidence_search
        self.noise_std = noise_std
        self.normalize_y = normalize_y
        self.temperature = temperature
        self.posterior = posterior
        self.inference = inference
        self.vi_method = vi_method
        self.mc_samples = mc_samples
        self.precision_rate = precision_rate
        self.initial_precision = initial_precision
        self.solver = solver
        self.max_iter = max_iter
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose
        self.callback = callback
        self.warm_start = warm_start
        self.n_threads = n_threads
        self.subset_of_weights = subset_of_weights
        self.module = module
        self.momentum = momentum

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network and build its posterior and GP view.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None
            Multiplies each example's loss and GGN term, so integer weights
            equal repeated rows.

        Returns
        -------
        self : object
        """
        self._fit(X, y, sample_weight)
        if not isinstance(self.noise_std, str):
            statistics = self._evidence.statistics
            _warn_if_noise_mismatched(to_numpy(statistics["rss"]) * self._targets.std**2,
                                      statistics["sum_weights"], self.noise_std_)
        return self

    def _install(self, module, fit):
        self.noise_std_ = (to_numpy(fit.likelihood.noise_std).astype(np.float64)
                           * self._targets.std)
        self.temperature_ = float(self._fitted("temperature"))
        super()._install(module, fit)

    def _vi_temperature(self, module, start, X_t, y_t, w_t):
        return float(self._fitted("temperature"))

    def _data_checks(self):
        return {"multi_output": True, "y_numeric": True}

    def _encode_targets(self, y, dtype, device, weights=None):
        if y.dtype.kind not in "biuf":
            # check_array keeps string arrays as they are; refuse them here, not in torch.
            raise ValueError(
                f"DNN2GPRegressor needs numeric targets, got y of dtype {y.dtype}; encode "
                "string targets as numbers or use DNN2GPClassifier for class labels."
            )
        self._y_is_1d = y.ndim == 1
        Y = y.reshape(y.shape[0], -1).astype(np.float64)
        n_targets = Y.shape[1]
        self._targets = targets = TargetScaling.of(Y, weights, self.normalize_y)
        if isinstance(self.noise_std, str):
            if len(Y) < 2:
                raise ValueError(
                    "noise_std='auto' estimates the noise from the spread of the targets "
                    f"and needs at least 2 samples, got n_samples={len(Y)}; set noise_std."
                )
            # The search's unit of noise: y's own spread, per target.
            base = targets.spread / targets.std
        else:
            base = _check_noise_std(self.noise_std, n_targets) / targets.std
        self._likelihood_hyperparameters = noise = GaussianNoise.build(
            base, targets, isinstance(self.noise_std, str), dtype, device)
        return to_tensor(targets.to_network(Y), dtype, device), noise.likelihood, n_targets

    def _theta_names(self):
        return self._prior_theta_names() + ["noise_std"] * self._n_outputs

    def _known_targets(self, y, device):
        """``y`` as the network sees it: normalised when ``normalize_y``."""
        Y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        Y = Y.reshape(Y.shape[0], -1)
        if Y.shape[1] != self._n_outputs:
            raise ValueError(
                f"y has {Y.shape[1]} targets but the model was fitted with "
                f"{self._n_outputs}."
            )
        return to_tensor(self._targets.to_network(Y), torch.float64, device)

    @scoped_threads
    def log_marginal_likelihood(self, prior_precision=None, noise_std=None, *, theta=None,
                                eval_gradient=False):
        """Log evidence at other hyperparameters, without retraining.

        The network, its Jacobians and the transformed targets stay those of
        the fit; only ``delta`` and the noise change. With a full posterior
        this is the GP evidence of the transformed targets (the linearised
        model's weights re-fitted, exact for a linear model); the first call
        at new values eigendecomposes the curvature once, and each call then
        costs O(P) (or O(N K)). With ``'kron'`` and ``'diag'`` it is the
        Laplace evidence at the trained weights, O(P) per call.

        Parameters
        ----------
        prior_precision : float or array-like of shape (1 + n_targets,), default=None
            ``delta``; defaults to the fitted one. A 1-D array is taken as
            ``theta``, as ``GaussianProcessRegressor.log_marginal_likelihood``
            takes its first argument.
        noise_std : float or array-like of shape (n_targets,), default=None
            Defaults to ``noise_std_``, in the units of y. For multi-output
            models it must be proportional to ``noise_std_`` (one common
            factor), since other changes need the per-output curvature again.
        theta : array-like of shape (1 + n_targets,), default=None
            The log-hyperparameters ``[log delta, log sigma_1, ...]``, instead
            of ``prior_precision`` and ``noise_std``.
        eval_gradient : bool, default=False
            With ``theta``, also return the gradient with respect to
            ``theta`` (by central differences of the closed form).

        Returns
        -------
        log_marginal_likelihood : float
            The evidence of ``y`` in its own units (with ``normalize_y``, that
            of the normalised targets plus the log Jacobian of the
            normalisation, so that it is comparable across settings).
        log_marginal_likelihood_gradient : ndarray of shape (1 + n_targets,)
            Only when ``eval_gradient`` is True.
        """
        check_is_fitted(self)
        theta = self._theta_argument(theta, prior_precision, eval_gradient, noise_std)
        if theta is not None:
            return self._log_evidence_at_theta(theta, eval_gradient)
        return self._log_evidence_at(prior_precision, noise_std)

    def _log_evidence_at(self, prior_precision, noise_std=None):
        delta, expanded = self._check_prior_precision(prior_precision)
        sigma = self.noise_std_ if noise_std is None else _check_noise_std(
            noise_std, self.noise_std_.size)
        internal = None if noise_std is None else sigma / self._targets.std
        return finite_evidence(
            lambda: self._targets.evidence_of_y(
                float(self._evidence(expanded, noise_std=internal))),
            prior_precision=delta, noise_std=sigma)

    @scoped_threads
    def predict(self, X, return_std=False, return_cov=False, mean="network"):
        """Predict with the trained network and, optionally, the DNN2GP uncertainty.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the predictive standard deviation of ``y``:
            ``sqrt(T J Sigma J^T + sigma^2)`` (``T``: ``temperature_``).
        return_cov : bool, default=False
            Also return the predictive covariance of ``y`` over the points of
            ``X`` (per target, as GaussianProcessRegressor does).
        mean : {'network', 'gp'}, default='network'
            ``'network'``: the network output ``f_{w*}(x)``. ``'gp'``: the
            mean of the DNN2GP Gaussian process (Theorem 1),
            ``f_{w*}(x) + J(x) (w_lin - w*)`` with ``w_lin = Sigma J^T Lambda y~``
            the posterior mean of the linear model on the transformed
            targets; the two agree at a stationary point of the training
            objective and differ by how far from one training stopped. It
            needs a full posterior (the GP view of Theorem 1 is that of the
            exact GGN).

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
            The network output, or the GP mean.
        y_std : ndarray, same shape as ``y_mean``
            Only when ``return_std`` is True.
        y_cov : ndarray of shape (n_samples, n_samples) or (n_samples, n_samples, n_targets)
            Only when ``return_cov`` is True.
        """
        if return_std and return_cov:
            raise RuntimeError("At most one of return_std or return_cov can be requested.")
        if mean not in ("network", "gp"):
            raise ValueError(f"mean must be 'network' or 'gp', got {mean!r}.")
        check_is_fitted(self)
        X = self._validate_X(X)
        y_mean = self._forward(X)
        if mean == "gp":
            if "b" not in self._evidence.statistics:
                raise ValueError(
                    "mean='gp' needs the GP view of a full posterior (posterior='full', "
                    "or 'auto' on a network small enough for it); this model was fitted "
                    f"with posterior={self._structure()!r}."
                )
            shift = gp_weight_shift(self._evidence.posterior, self._evidence.statistics["b"])
            y_mean = y_mean + to_numpy(self._jacobian(X).to(torch.float64) @ shift)
        y_mean = self._targets.to_output(y_mean)
        if return_cov:
            n, k = y_mean.shape
            self._check_jacobian_memory(
                jacobian_bytes(n, k, self._n_params) + 3 * 8 * (n * k) ** 2,
                f"predict(return_cov=True) on {n:,} points")
            J = self._jacobian(X)
            cov = self.posterior_.functional_covariance(J) * self.temperature_
            n, k = y_mean.shape
            cov = to_numpy(cov).reshape(n, k, n, k)
            cov = (np.stack([cov[:, j, :, j] for j in range(k)], axis=-1)
                   * self._targets.std**2)
            cov = cov + np.eye(n)[:, :, None] * self.noise_std_**2
            return self._shape(y_mean), cov[:, :, 0] if self._y_is_1d else cov
        if return_std:
            std = np.sqrt(self._epistemic_variance(X) + self.noise_std_**2)
            return self._shape(y_mean), self._shape(std)
        return self._shape(y_mean)

    @scoped_threads
    def predict_uncertainty(self, X):
        """The two components of the predictive variance of ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        epistemic : ndarray of shape (n_samples,) or (n_samples, n_targets)
            ``T diag(J(x) Sigma J(x)^T)``, the variance from the weight
            posterior (tempered at ``T``, ``temperature_``).
        aleatoric : ndarray, same shape
            ``sigma^2``, the observation noise.
        """
        check_is_fitted(self)
        X = self._validate_X(X)
        epistemic = self._epistemic_variance(X)
        aleatoric = np.broadcast_to(self.noise_std_**2, epistemic.shape).copy()
        return self._shape(epistemic), self._shape(aleatoric)

    def _epistemic_variance(self, X):
        """``T diag(J Sigma J^T)`` per point and target (n, K), in the units of y^2."""
        _, latent = self._latent(X)
        return (to_numpy(torch.diagonal(latent, dim1=1, dim2=2)) * self.temperature_
                * self._targets.std**2)

    def _shape(self, array):
        return array[:, 0] if self._y_is_1d else array


# Training residuals this many noise stds wide mean the stated noise is wrong.
_NOISE_MISMATCH = 10.0


def _warn_if_noise_mismatched(rss, sum_weights, noise_std):
    """Warn when the training residuals are far wider than ``noise_std``: the
    predictive std (about ``noise_std`` on the data) is then far too small, as
    for raw targets in the thousands with ``noise_std=1``."""
    if sum_weights <= 0:
        return
    rms = np.sqrt(rss / sum_weights)
    worst = int(np.argmax(rms / noise_std))
    if rms[worst] > _NOISE_MISMATCH * noise_std[worst]:
        warnings.warn(
            f"The training residuals have a root mean square of {rms[worst]:.4g}, "
            f"{rms[worst] / noise_std[worst]:.3g} times noise_std={noise_std[worst]:.4g}"
            f"{f' (target {worst})' if len(rms) > 1 else ''}: the predictive std will be "
            "far too small. Standardise y (e.g. with "
            "sklearn.compose.TransformedTargetRegressor and a StandardScaler) or set "
            "noise_std to the noise level in the units of y.",
            UserWarning,
            stacklevel=5,
        )


def _check_noise_std(noise_std, n_targets):
    try:
        sigma = np.asarray(noise_std, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"noise_std must be a float or an array of floats, got {noise_std!r}."
        ) from None
    if sigma.ndim == 0:
        sigma = np.full(n_targets, float(sigma))
    if sigma.shape != (n_targets,):
        raise ValueError(
            f"noise_std must be a float or have one value per target ({n_targets}), "
            f"got shape {sigma.shape}."
        )
    # sigma^2 and 1 / sigma^2 must both be normal floats, or the evidence and the
    # curvature overflow to inf or underflow to 0 (and then NaN).
    if not np.all(np.isfinite(sigma) & (sigma >= _NOISE_RANGE[0]) & (sigma <= _NOISE_RANGE[1])):
        raise ValueError(
            f"noise_std must be positive and within [{_NOISE_RANGE[0]:g}, {_NOISE_RANGE[1]:g}] "
            f"(its square must be a normal float), got {noise_std!r}."
        )
    return sigma
