"""The trained network's kernel and feature map as scikit-learn components.

A fitted DNN2GP estimator is, by Theorem 1 of Khan et al. (2019), a Gaussian
process with kernel ``kappa(x, x') = J(x) J(x')^T / delta`` (``J`` the
Jacobian of the network outputs with respect to all parameters at the trained
weights ``w*``, ``delta`` the prior precision) on the transformed targets
``y~`` (:meth:`~sklearn_dnn2gp.DNN2GPRegressor.transformed_targets`).

* :class:`NTKKernel` is that kernel as a
  :class:`sklearn.gaussian_process.kernels.Kernel`, for
  :class:`~sklearn.gaussian_process.GaussianProcessRegressor`, kernel
  arithmetic and anything else that takes a scikit-learn kernel.
* :class:`NTKFeatures` is its feature map ``phi(x) = J(x)^T`` as a
  transformer, for a :class:`~sklearn.pipeline.Pipeline` ending in a linear
  model.

Both wrap an estimator that is already fitted and never refit it: cloning
them (as every scikit-learn meta-estimator does) shares the trained network,
as :class:`sklearn.frozen.FrozenEstimator` would.

Which outputs (``mode``)
------------------------
A network with ``K`` outputs (targets of a regressor, logits of a classifier
with three or more classes; a binary classifier has one logit) has ``K x K``
kernel blocks, while a scikit-learn kernel has one number per pair of inputs.
``mode`` chooses the number:

* an integer ``k``: ``J_k(x) J_k(x')^T``, the prior kernel of output ``k``
  alone (times ``delta``);
* ``'trace'``: ``sum_k J_k(x) J_k(x')^T``, the sum of the per-output kernels
  (the kernel the paper draws for a ten-class network, Fig. 4);
* ``'sum'``: ``(sum_k J_k(x)) (sum_k J_k(x'))^T``, the kernel of the sum of
  the outputs. The softmax ignores that sum, so for a multiclass classifier
  this is rarely the kernel you want.

With one output the three agree. With several, the DNN2GP posterior couples
the outputs (they share the weights, and the softmax noise ``Lambda`` is not
diagonal), so a single-output GP with any one of these kernels reproduces
the estimator's predictive only for a single-output network: a regressor on
one target, or a binary classifier with per-point noise ``1 / (p (1 - p))``.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel
from sklearn.utils.validation import check_is_fitted

__all__ = ["NTKFeatures", "NTKKernel"]


def _check_mode(mode, n_outputs):
    """``mode`` as the feature map takes it, or a ValueError naming the choices."""
    if isinstance(mode, str) and mode in ("trace", "sum"):
        return mode
    if isinstance(mode, Integral) and not isinstance(mode, bool) and 0 <= mode < n_outputs:
        return int(mode)
    raise ValueError(
        f"mode must be 'trace', 'sum' or an output index in [0, {n_outputs}), got {mode!r}."
    )


def _check_dnn2gp(estimator, caller):
    """A TypeError unless ``estimator`` has the DNN2GP feature map."""
    if not callable(getattr(estimator, "features", None)):
        raise TypeError(
            f"{caller} needs a DNN2GPRegressor or DNN2GPClassifier (an estimator with the "
            f"feature map features(X)); got {type(estimator).__name__}."
        )


def _feature_map(estimator, X, mode="trace"):
    """``phi(x)`` with ``phi(x) phi(x')^T`` the NTK of ``estimator`` in ``mode``.

    Parameters
    ----------
    estimator : fitted DNN2GPRegressor or DNN2GPClassifier
    X : array-like of shape (n_samples, n_features)
    mode : {'trace', 'sum'} or int, default='trace'
        See the module's documentation.

    Returns
    -------
    phi : ndarray of shape (n_samples, n_outputs * n_parameters) for 'trace',
        else (n_samples, n_parameters)
        The Jacobian rows: all outputs side by side ('trace', whose inner
        products sum the per-output kernels), their sum ('sum'), or one
        output's.
    """
    _check_dnn2gp(estimator, "NTKKernel")
    check_is_fitted(estimator)
    J = estimator.features(X)
    mode = _check_mode(mode, J.shape[1])
    if mode == "trace":
        return J.reshape(J.shape[0], -1)
    if mode == "sum":
        return J.sum(axis=1)
    return J[:, mode]


class NTKKernel(Kernel):
    """The neural tangent kernel of a fitted DNN2GP estimator, as a scikit-learn kernel.

    ``k(x, x') = scale * J(x) J(x')^T`` with ``J`` the Jacobian of the trained
    network at its weights ``w*``. With ``scale = 1 / prior_precision_`` this
    is the prior kernel of the estimator's Gaussian process (Theorem 1 of Khan
    et al., 2019): a :class:`~sklearn.gaussian_process.GaussianProcessRegressor`
    with that kernel, ``alpha = noise_std**2`` and ``optimizer=None``, fitted
    on the training inputs and the transformed targets
    (:meth:`~sklearn_dnn2gp.DNN2GPRegressor.transformed_targets`), predicts
    the estimator's latent standard deviation
    (``sqrt`` of the epistemic part of
    :meth:`~sklearn_dnn2gp.DNN2GPRegressor.predict_uncertainty`), and its mean
    plus ``f_{w*}(x) - J(x) w*`` is ``predict(X, mean='gp')``. The default
    ``scale=1`` gives ``estimator.kernel(X, Y, mode)``; ``NTKKernel(est) /
    delta`` divides the scale.

    The kernel wraps the fitted estimator and never refits it: ``clone``
    shares it, so a ``GaussianProcessRegressor`` (which clones its kernel)
    uses the same trained network. Pickling stores the estimator with the
    kernel.

    Parameters
    ----------
    estimator : fitted DNN2GPRegressor or DNN2GPClassifier
        Its network gives the Jacobians.
    mode : {'trace', 'sum'} or int, default='trace'
        Which outputs make the kernel of a network with several: the sum of
        the per-output kernels, the kernel of the sum of the outputs, or one
        output's (see :mod:`sklearn_dnn2gp.kernels`). For a multiclass
        classifier, ``k`` is the prior kernel of logit ``k`` and ``'trace'``
        the summary the paper draws. With one output all agree.
    scale : float, default=1.0
        Factor on ``J J^T``; ``1 / prior_precision_`` for the DNN2GP prior.
    scale_bounds : pair of floats >= 0 or 'fixed', default='fixed'
        The range within which a ``GaussianProcessRegressor`` may tune
        ``scale``; by default it is fixed, and the kernel then has no
        hyperparameters (the network is fixed too).

    See Also
    --------
    NTKFeatures : The feature map ``J(x)^T`` as a transformer.
    sklearn_dnn2gp.DNN2GPRegressor.kernel : The kernel matrix in every mode.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.gaussian_process import GaussianProcessRegressor
    >>> from sklearn.gaussian_process.kernels import WhiteKernel
    >>> from sklearn_dnn2gp import DNN2GPRegressor
    >>> from sklearn_dnn2gp.kernels import NTKKernel
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-3, 3, size=(30, 1))
    >>> y = np.sin(X[:, 0]) + 0.1 * rng.randn(30)
    >>> reg = DNN2GPRegressor(hidden_layer_sizes=(8,), activation="relu", prior_precision=2.0,
    ...                       noise_std=0.1, random_state=0).fit(X, y)
    >>> kernel = NTKKernel(reg) / reg.prior_precision_
    >>> kernel
    NTKKernel(DNN2GPRegressor, mode='trace', scale=0.5)
    >>> gp = GaussianProcessRegressor(kernel, alpha=0.1**2, optimizer=None)
    >>> gp = gp.fit(X, reg.transformed_targets(X, y))
    >>> X_new = np.array([[0.5], [6.0]])
    >>> _, latent_std = gp.predict(X_new, return_std=True)
    >>> epistemic, _ = reg.predict_uncertainty(X_new)
    >>> bool(np.allclose(latent_std, np.sqrt(epistemic), rtol=1e-6))
    True
    >>> (NTKKernel(reg) + WhiteKernel(0.01))(X).shape
    (30, 30)
    """

    def __init__(self, estimator, mode="trace", scale=1.0, scale_bounds="fixed"):
        self.estimator = estimator
        self.mode = mode
        self.scale = scale
        self.scale_bounds = scale_bounds

    @property
    def hyperparameter_scale(self):
        return Hyperparameter("scale", "numeric", self.scale_bounds)

    def __call__(self, X, Y=None, eval_gradient=False):
        """The kernel ``k(X, Y)`` and, optionally, its gradient.

        Parameters
        ----------
        X : ndarray of shape (n_samples_X, n_features)
        Y : ndarray of shape (n_samples_Y, n_features), default=None
            Defaults to ``X``.
        eval_gradient : bool, default=False
            Also return the gradient with respect to the log of the
            hyperparameters (only when ``Y`` is None).

        Returns
        -------
        K : ndarray of shape (n_samples_X, n_samples_Y)
        K_gradient : ndarray of shape (n_samples_X, n_samples_X, n_dims)
            Empty (``n_dims = 0``) when ``scale`` is fixed, else ``K`` itself:
            ``d K / d log(scale) = K``.
        """
        if eval_gradient and Y is not None:
            raise ValueError("Gradient can only be evaluated when Y is None.")
        phi_X = _feature_map(self.estimator, X, self.mode)
        phi_Y = phi_X if Y is None else _feature_map(self.estimator, Y, self.mode)
        K = self.scale * (phi_X @ phi_Y.T)
        if not eval_gradient:
            return K
        if self.hyperparameter_scale.fixed:
            return K, np.empty((K.shape[0], K.shape[0], 0))
        return K, K[:, :, np.newaxis]

    def diag(self, X):
        """``k(x, x)`` for each row of ``X``, without forming the matrix.

        Parameters
        ----------
        X : ndarray of shape (n_samples_X, n_features)

        Returns
        -------
        K_diag : ndarray of shape (n_samples_X,)
        """
        phi = _feature_map(self.estimator, X, self.mode)
        return self.scale * np.einsum("ij,ij->i", phi, phi)

    def is_stationary(self):
        """Whether the kernel is stationary.

        Returns
        -------
        bool
            False: the NTK depends on where the inputs are, not only on their
            difference.
        """
        return False

    def __truediv__(self, b):
        # kernel / delta: the DNN2GP prior. scikit-learn kernels have no division.
        if not isinstance(b, Real) or isinstance(b, bool):
            return NotImplemented
        bounds = self.scale_bounds
        if not isinstance(bounds, str):
            bounds = tuple(np.asarray(bounds, dtype=float) / b)
        return type(self)(self.estimator, self.mode, self.scale / b, bounds)

    def __sklearn_clone__(self):
        # clone() would otherwise clone the estimator too, and an unfitted copy has no
        # network: the trained estimator is shared, the kernel's own settings copied.
        return type(self)(**self.get_params(deep=False))

    def __repr__(self):
        name = type(self.estimator).__name__
        return f"{type(self).__name__}({name}, mode={self.mode!r}, scale={self.scale:.3g})"


class NTKFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """The feature map ``phi(x) = J(x)^T`` of a DNN2GP estimator, as a transformer.

    ``transform(X)`` returns the Jacobians of the network at its trained
    weights, one row per example, such that ``phi(X) phi(Y)^T`` is
    ``NTKKernel(estimator, mode)(X, Y)``. A linear model on these features is
    the Bayesian linear model of the GP view: ridge regression with
    ``alpha = prior_precision * noise_std**2`` and no intercept, fitted on the
    transformed targets, has as coefficients the posterior mean ``w_lin`` of
    the linearised network (``w*`` at a stationary point of the training
    objective), so its predictions plus ``f_{w*}(x) - J(x) w*`` are
    ``predict(X, mean='gp')``.

    A fitted ``estimator`` is used as it is and never refitted (clones share
    it); an unfitted one is cloned and fitted by :meth:`fit` on ``X, y``.

    Parameters
    ----------
    estimator : DNN2GPRegressor or DNN2GPClassifier
        Fitted, or to be fitted by :meth:`fit`.
    mode : {'trace', 'sum'} or int, default='trace'
        Which outputs: all side by side (``n_outputs * n_parameters``
        columns), their sum, or one output's (``n_parameters`` columns). See
        :class:`NTKKernel`.

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator whose Jacobians are returned.
    n_features_in_ : int
        Number of input features.

    See Also
    --------
    NTKKernel : The kernel ``phi(x) phi(x')^T`` of these features.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn_dnn2gp import DNN2GPRegressor
    >>> from sklearn_dnn2gp.kernels import NTKFeatures
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-3, 3, size=(30, 1))
    >>> y = np.sin(X[:, 0]) + 0.1 * rng.randn(30)
    >>> reg = DNN2GPRegressor(hidden_layer_sizes=(8,), activation="relu", prior_precision=2.0,
    ...                       noise_std=0.1, normalize_y=False, random_state=0).fit(X, y)
    >>> NTKFeatures(reg).fit_transform(X).shape  # 8 + 8 + 8 + 1 parameters
    (30, 25)
    >>> linear = make_pipeline(NTKFeatures(reg), Ridge(alpha=2.0 * 0.1**2, fit_intercept=False))
    >>> linear = linear.fit(X, reg.transformed_targets(X, y))
    >>> X_new = np.array([[0.5], [6.0]])
    >>> w_star = reg.posterior_.mean.numpy()  # the trained weights
    >>> offset = reg.predict(X_new) - NTKFeatures(reg).fit_transform(X_new) @ w_star
    >>> bool(np.allclose(linear.predict(X_new) + offset, reg.predict(X_new, mean="gp")))
    True
    """

    def __init__(self, estimator, mode="trace"):
        self.estimator = estimator
        self.mode = mode

    def fit(self, X, y=None):
        """Use the fitted estimator, or fit a clone of it on ``X, y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets), default=None
            Needed only when ``estimator`` is not fitted.

        Returns
        -------
        self : object
        """
        _check_dnn2gp(self.estimator, "NTKFeatures")
        try:
            check_is_fitted(self.estimator)
            self.estimator_ = self.estimator
        except NotFittedError:
            if y is None:
                raise ValueError(
                    "NTKFeatures needs y to fit its unfitted estimator; pass a fitted "
                    "estimator to use the network as it is."
                ) from None
            self.estimator_ = clone(self.estimator).fit(X, y)
        self.n_features_in_ = self.estimator_.n_features_in_
        if hasattr(self.estimator_, "feature_names_in_"):
            self.feature_names_in_ = self.estimator_.feature_names_in_
        # The posterior's outputs and weights: a user module need not end in a Linear,
        # and a last-layer posterior's features are the last layer's.
        n_outputs = self.estimator_.n_outputs_
        n_params = self.estimator_.posterior_.n_parameters
        _check_mode(self.mode, n_outputs)
        self._n_features_out = n_params * (n_outputs if self.mode == "trace" else 1)
        return self

    def transform(self, X):
        """The Jacobian rows ``phi(x)`` of each example.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        phi : ndarray of shape (n_samples, n_features_out)
        """
        check_is_fitted(self, "estimator_")
        return _feature_map(self.estimator_, X, self.mode)

    def __sklearn_clone__(self):
        # Shares a fitted network (as FrozenEstimator does); an unfitted one is cloned.
        try:
            check_is_fitted(self.estimator)
        except NotFittedError:
            return type(self)(clone(self.estimator), self.mode)
        return type(self)(self.estimator, self.mode)
