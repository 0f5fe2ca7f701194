"""PredictiveDisplay: a 1-D regression with its predictive bands."""


import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted

from ._common import (
    _axes,
    _column,
    _name,
    _predictive,
)


class PredictiveDisplay:
    """A 1-D regression's predictive mean with bands of +- ``n_std`` std.

    Two bands: the total predictive std ``sqrt(epistemic + aleatoric)`` and,
    inside it, the epistemic std alone (the weight posterior's, which grows
    away from the data), with the training points and, optionally, the mean
    and band of a reference regressor.

    Parameters
    ----------
    x : array-like of shape (n_points,)
        The inputs the curves are drawn at.
    mean : array-like of shape (n_points,)
    std : array-like of shape (n_points,)
        Total predictive standard deviation of ``y``.
    epistemic_std : array-like of shape (n_points,), default=None
        Standard deviation of the latent function alone.
    X_train, y_train : array-like of shape (n_samples,), default=None
        Training points to draw.
    reference_mean, reference_std : array-like of shape (n_points,), default=None
        Another model's predictive mean and total std.
    reference_name : str, default=None
    estimator_name : str, default=None

    Attributes
    ----------
    line_ : matplotlib Line2D
        The mean.
    band_ : matplotlib PolyCollection
        The band of the total std.
    epistemic_band_ : matplotlib PolyCollection or None
    scatter_ : matplotlib PathCollection or None
        The training points.
    reference_line_ : matplotlib Line2D or None
    reference_band_ : list of two matplotlib Line2D or None
        The band's lower and upper edges.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_dnn2gp import DNN2GPRegressor
    >>> from sklearn_dnn2gp.datasets import make_gap_regression
    >>> from sklearn_dnn2gp.plotting import PredictiveDisplay
    >>> X, y = make_gap_regression(n_samples=40, noise=0.1, random_state=0)
    >>> reg = DNN2GPRegressor(hidden_layer_sizes=(10,), activation="relu", noise_std=0.1,
    ...                       random_state=0).fit(X, y)
    >>> display = PredictiveDisplay.from_estimator(reg, X, y)
    >>> display.line_.get_label()
    'DNN2GPRegressor mean'
    """

    def __init__(self, x, mean, std, *, epistemic_std=None, X_train=None, y_train=None,
                 reference_mean=None, reference_std=None, reference_name=None,
                 estimator_name=None):
        self.x = x
        self.mean = mean
        self.std = std
        self.epistemic_std = epistemic_std
        self.X_train = X_train
        self.y_train = y_train
        self.reference_mean = reference_mean
        self.reference_std = reference_std
        self.reference_name = reference_name
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, n_std=2, name=None, color="C0", legend=True):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; a new figure when None.
        n_std : float, default=2
            Half-width of the bands in standard deviations.
        name : str, default=None
            Label of the mean; defaults to ``estimator_name``.
        color : str, default='C0'
            Colour of the mean and its bands.
        legend : bool, default=True

        Returns
        -------
        display : PredictiveDisplay
        """
        self.figure_, self.ax_ = _axes(type(self).__name__, ax)
        ax = self.ax_
        x = np.ravel(self.x)
        order = np.argsort(x)
        x, mean, std = x[order], np.ravel(self.mean)[order], np.ravel(self.std)[order]
        name = name or self.estimator_name or "model"
        k = f"{n_std:g}"
        self.band_ = ax.fill_between(x, mean - n_std * std, mean + n_std * std, color=color,
                                     alpha=0.15, lw=0, label=f"$\\pm${k} std (total)")
        self.epistemic_band_ = None
        if self.epistemic_std is not None:
            epistemic = np.ravel(self.epistemic_std)[order]
            self.epistemic_band_ = ax.fill_between(
                x, mean - n_std * epistemic, mean + n_std * epistemic, color=color, alpha=0.3,
                lw=0, label=f"$\\pm${k} std (epistemic)")
        self.line_, = ax.plot(x, mean, color=color, lw=1.5, label=f"{name} mean")
        self.reference_line_ = self.reference_band_ = None
        if self.reference_mean is not None:
            ref_mean = np.ravel(self.reference_mean)[order]
            ref_name = self.reference_name or "reference"
            self.reference_line_, = ax.plot(x, ref_mean, color="0.3", lw=1, ls="--",
                                            label=f"{ref_name} mean")
            if self.reference_std is not None:
                # Edges only: a second filled band would hide the first.
                ref_std = np.ravel(self.reference_std)[order]
                self.reference_band_ = ax.plot(
                    x, np.column_stack([ref_mean - n_std * ref_std, ref_mean + n_std * ref_std]),
                    color="0.3", ls=":", lw=1, label=f"{ref_name} $\\pm${k} std")
                self.reference_band_[1].set_label(None)
        self.scatter_ = None
        if self.X_train is not None and self.y_train is not None:
            self.scatter_ = ax.scatter(np.ravel(self.X_train), np.ravel(self.y_train), s=6,
                                       color="k", zorder=3, label="training data")
        ax.set(xlabel="x", ylabel="y")
        if legend:
            ax.legend(fontsize=7)
        return self

    @classmethod
    def from_estimator(cls, estimator, X, y=None, *, x=None, n_points=300, mean="network",
                       target=None, noise_std=None, reference=None, reference_name=None,
                       n_std=2, ax=None, name=None, color="C0", legend=True):
        """Predict on a grid with a fitted regressor and plot.

        Parameters
        ----------
        estimator : fitted DNN2GPRegressor
            Or any regressor with ``predict(X, return_std=True)``; the
            epistemic band needs ``predict_uncertainty``.
        X : array-like of shape (n_samples, 1)
            Training inputs: drawn, and the grid's range (a quarter of it
            beyond each end) when ``x`` is None.
        y : array-like of shape (n_samples,), default=None
            Training targets, drawn when given.
        x : array-like of shape (n_points,), default=None
            Where to predict; defaults to ``n_points`` evenly spaced values.
        n_points : int, default=300
        mean : {'network', 'gp'}, default='network'
            Which mean of a DNN2GP estimator (see ``predict``).
        target : int, default=None
            Which target of a multi-output regressor.
        noise_std : float, default=None
            For a regressor without ``predict_uncertainty`` (``estimator`` or
            ``reference``) whose std leaves out the observation noise, as
            ``GaussianProcessRegressor``'s leaves out its ``alpha``: the noise
            std to add. Its std is then drawn as the epistemic one.
        reference : fitted regressor, default=None
            Another model with ``predict(X, return_std=True)`` whose mean and
            band are drawn too, e.g. a ``GaussianProcessRegressor``.
        reference_name : str, default=None
            Defaults to the class name of ``reference``.
        n_std : float, default=2
            As in :meth:`plot`.
        ax : matplotlib Axes, default=None
            As in :meth:`plot`.
        name : str, default=None
            As in :meth:`plot`.
        color : str, default='C0'
            As in :meth:`plot`.
        legend : bool, default=True
            As in :meth:`plot`.

        Returns
        -------
        display : PredictiveDisplay
        """
        check_is_fitted(estimator)
        X = check_array(X)
        if X.shape[1] != 1:
            raise ValueError(f"PredictiveDisplay draws 1-D inputs; X has {X.shape[1]} features.")
        if x is None:
            low, high = X.min(), X.max()
            pad = 0.25 * (high - low if high > low else 1.0)
            x = np.linspace(low - pad, high + pad, n_points)
        grid = np.reshape(x, (-1, 1))
        options = {} if mean == "network" else {"mean": mean}
        y_mean, y_std, epistemic = _predictive(estimator, grid, target, noise_std, options)
        ref_mean = ref_std = None
        if reference is not None:
            ref_mean, ref_std, _ = _predictive(reference, grid, target, noise_std, {})
        display = cls(np.ravel(x), y_mean, y_std, epistemic_std=epistemic, X_train=X[:, 0],
                      y_train=None if y is None else _column(y, target),
                      reference_mean=ref_mean, reference_std=ref_std,
                      reference_name=reference_name or (
                          None if reference is None else _name(reference)),
                      estimator_name=_name(estimator))
        return display.plot(ax=ax, n_std=n_std, name=name, color=color, legend=legend)
