"""Plots of what a fitted network learned, seen as a Gaussian process.

Each plot is a Display in scikit-learn's style: ``XDisplay.from_estimator(est,
X, ...)`` (or another ``from_*``) computes what to draw and plots it; the
constructor takes precomputed arrays; ``plot(ax=...)`` draws on given axes (or
new ones) and stores the matplotlib artists, ``ax_`` and ``figure_``.

* :class:`PredictiveDisplay`: a 1-D regression's mean with bands of the total
  and the epistemic predictive std, the training data, optionally another
  regressor's band (e.g. a ``GaussianProcessRegressor`` with an RBF kernel).
* :class:`KernelDisplay`: the kernel matrix ``J J^T / delta`` as a heat map
  on a symmetric colour scale, rows and columns grouped by class.
* :class:`UncertaintyDisplay`: the epistemic and aleatoric variances (Eq. 48
  of the paper for classifiers) over a 2-D input grid, or per example and class.
* :class:`EvidenceDisplay`: the evidence against a hyperparameter with the
  train and test errors on a twin axis, from an ``EvidenceSearchCV`` or a table.

matplotlib is an optional dependency (``pip install 'sklearn-dnn2gp[plot]'``);
it is imported only when something is drawn.
"""

from numbers import Integral

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted

from .kernels import NTKKernel

__all__ = ["EvidenceDisplay", "KernelDisplay", "PredictiveDisplay", "UncertaintyDisplay"]

_INSTALL = "pip install 'sklearn-dnn2gp[plot]'"


def _pyplot(caller):
    """matplotlib.pyplot, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} needs matplotlib, which is not installed. Install it with "
            f"{_INSTALL}."
        ) from exc
    return plt


def _axes(caller, ax, n_axes=1, **figure_kw):
    """``(figure, axes)``: new ones when ``ax`` is None, else ``ax`` and its figure.
    ``axes`` is one Axes for ``n_axes=1``, else an array of ``n_axes``."""
    plt = _pyplot(caller)
    if ax is None:
        figure, ax = plt.subplots(1, n_axes, squeeze=True, **figure_kw)
    if n_axes > 1:
        ax = np.ravel(ax)
        if ax.size != n_axes:
            raise ValueError(f"{caller}.plot draws on {n_axes} axes, got {ax.size}.")
        return ax[0].figure, ax
    return ax.figure, ax


def _group_order(labels):
    """Row order that groups ``labels`` (stable), the sorted labels, and the groups'
    ``(first, stop)`` index ranges in that order."""
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    stops = np.r_[starts[1:], len(ordered)]
    return order, ordered, list(zip(starts, stops))


def _mark_groups(ax, ordered, groups, axis):
    """Lines between the groups and one tick label per group along ``axis`` ('x',
    'y' or 'both') of an image whose rows are ``ordered``."""
    centres = [(start + stop - 1) / 2 for start, stop in groups]
    names = [str(ordered[start]) for start, _ in groups]
    lines = []
    for start, _ in groups[1:]:
        if axis in ("y", "both"):
            lines.append(ax.axhline(start - 0.5, color="k", lw=0.6))
        if axis in ("x", "both"):
            lines.append(ax.axvline(start - 0.5, color="k", lw=0.6))
    if axis in ("y", "both"):
        ax.set_yticks(centres, names)
    if axis in ("x", "both"):
        ax.set_xticks(centres, names)
    return lines


def _name(estimator):
    return type(estimator).__name__


def _column(values, target):
    """One column of a 2-D prediction (the only one, or ``target``)."""
    values = np.asarray(values)
    if values.ndim == 1:
        return values
    if target is None:
        if values.shape[1] != 1:
            raise ValueError(
                f"The estimator predicts {values.shape[1]} targets; choose one with target=."
            )
        target = 0
    return values[:, target]


def _predictive(regressor, X, target, noise_std, options):
    """Mean, total std and epistemic std (or None) of one target of ``regressor``."""
    mean, std = regressor.predict(X, return_std=True, **options)
    mean, std = _column(mean, target), _column(std, target)
    epistemic = None
    if hasattr(regressor, "predict_uncertainty"):
        epistemic = np.sqrt(_column(regressor.predict_uncertainty(X)[0], target))
    elif noise_std is not None:
        epistemic, std = std, np.sqrt(std**2 + noise_std**2)
    return mean, std, epistemic


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
        n_std, ax, name, color, legend
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


class KernelDisplay:
    """The kernel matrix as a heat map, rows and columns grouped by class.

    Colours are on a symmetric scale around zero (blue negative, red
    positive), as in the paper's Figs. 2 and 4: a network that has learned
    the classes shows blocks along the diagonal.

    Parameters
    ----------
    kernel_matrix : array-like of shape (n_samples, n_samples)
    labels : array-like of shape (n_samples,), default=None
        Class of each row; rows and columns are drawn grouped by it (in a
        stable order), with lines between the groups.
    estimator_name : str, default=None

    Attributes
    ----------
    image_ : matplotlib AxesImage
    colorbar_ : matplotlib Colorbar or None
    group_lines_ : list of matplotlib Line2D
    order_ : ndarray of shape (n_samples,)
        The rows of ``kernel_matrix`` in the order drawn.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn_dnn2gp import DNN2GPClassifier
    >>> from sklearn_dnn2gp.plotting import KernelDisplay
    >>> X, y = make_blobs(n_samples=30, centers=3, random_state=0)
    >>> clf = DNN2GPClassifier(hidden_layer_sizes=(5,), random_state=0).fit(X, y)
    >>> display = KernelDisplay.from_estimator(clf, X, y)
    >>> display.image_.get_array().shape
    (30, 30)
    """

    def __init__(self, kernel_matrix, *, labels=None, estimator_name=None):
        self.kernel_matrix = kernel_matrix
        self.labels = labels
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, cmap="RdBu_r", colorbar=True, label="kernel"):
        """Draw the heat map.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        cmap : str or Colormap, default='RdBu_r'
            A diverging map: zero is its middle.
        colorbar : bool, default=True
        label : str, default='kernel'
            The colour bar's label.

        Returns
        -------
        display : KernelDisplay
        """
        self.figure_, self.ax_ = _axes(type(self).__name__, ax)
        K = np.asarray(self.kernel_matrix)
        self.order_ = np.arange(len(K))
        self.group_lines_ = []
        if self.labels is not None:
            self.order_, ordered, groups = _group_order(self.labels)
            K = K[np.ix_(self.order_, self.order_)]
        limit = np.abs(K).max() or 1.0
        self.image_ = self.ax_.imshow(K, cmap=cmap, vmin=-limit, vmax=limit)
        if self.labels is not None:
            self.group_lines_ = _mark_groups(self.ax_, ordered, groups, "both")
        self.ax_.set(xlabel="examples", ylabel="examples")
        if self.estimator_name:
            self.ax_.set_title(self.estimator_name, fontsize=9)
        self.colorbar_ = None
        if colorbar:
            self.colorbar_ = self.figure_.colorbar(self.image_, ax=self.ax_, label=label)
        return self

    @classmethod
    def from_estimator(cls, estimator, X, y=None, *, mode="trace", normalize=False, ax=None,
                       cmap="RdBu_r", colorbar=True):
        """Compute the kernel ``J(x) J(x')^T / prior_precision_`` on ``X`` and plot it.

        Parameters
        ----------
        estimator : fitted DNN2GPRegressor or DNN2GPClassifier
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,), default=None
            Labels to group by. When None, a classifier's predicted labels
            are used and a regressor's rows stay in their order.
        mode : {'trace', 'sum'} or int, default='trace'
            Which outputs (see :class:`~sklearn_dnn2gp.kernels.NTKKernel`);
            'trace', the sum of the per-class kernels, is the paper's.
        normalize : bool, default=False
            Draw ``k(x, x') / sqrt(k(x, x) k(x', x'))``, which shows
            similarity regardless of each example's scale.
        ax, cmap, colorbar
            As in :meth:`plot`.

        Returns
        -------
        display : KernelDisplay
        """
        check_is_fitted(estimator)
        K = NTKKernel(estimator, mode=mode)(X) / estimator.prior_precision_
        label = "$J J^T / \\delta$"
        if normalize:
            scale = np.sqrt(np.diag(K))
            K = K / np.outer(scale, scale)
            label = "normalised kernel"
        if y is None and hasattr(estimator, "classes_"):
            y = estimator.predict(X)
        display = cls(K, labels=y, estimator_name=f"{_name(estimator)}, mode={mode!r}")
        return display.plot(ax=ax, cmap=cmap, colorbar=colorbar, label=label)


class UncertaintyDisplay:
    """Epistemic against aleatoric uncertainty, over a 2-D input grid or per class.

    For a classifier these are the diagonals of the two terms of Eq. 48 of
    the paper, ``Cov[y*] = Lambda* + Lambda* J* Sigma J*^T Lambda*``: the
    aleatoric ``p (1 - p)`` (the label noise the network predicts) and the
    epistemic part, from the weight posterior, which grows away from the
    data. For a regressor, ``noise_std**2`` and ``J* Sigma J*^T``.

    Two layouts, chosen by whether ``grid`` is given:

    * grid: the (optional) mean, epistemic and aleatoric maps over a 2-D
      input grid, each with the training points;
    * per example: heat maps of examples (rows, grouped by ``labels``)
      against classes or targets (columns), as the paper's Fig. 4.

    Parameters
    ----------
    epistemic, aleatoric : array-like
        Of the grid's shape, or (n_samples, n_columns).
    mean : array-like, default=None
        The predictive mean (class probability), same shape.
    grid : tuple of two arrays, default=None
        The meshes ``(xx0, xx1)`` of the grid layout.
    X, labels : array-like, default=None
        Grid layout: training points (n_samples, 2) and their classes, to draw.
        Per example: ``labels`` groups the rows.
    column_labels : array-like, default=None
        Names of the columns (classes) in the per-example layout.
    estimator_name : str, default=None

    Attributes
    ----------
    images_ : list of matplotlib artists
        One map or heat map per panel (mean first when given).
    colorbars_ : list of matplotlib Colorbar
    scatters_ : list of matplotlib PathCollection
        The training points (grid layout).
    ax_ : ndarray of matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import make_moons
    >>> from sklearn_dnn2gp import DNN2GPClassifier
    >>> from sklearn_dnn2gp.plotting import UncertaintyDisplay
    >>> X, y = make_moons(n_samples=40, noise=0.1, random_state=0)
    >>> clf = DNN2GPClassifier(hidden_layer_sizes=(5,), random_state=0).fit(X, y)
    >>> display = UncertaintyDisplay.from_estimator(clf, X, y, grid_resolution=20)
    >>> [ax.get_title() for ax in display.ax_]
    ['mean', 'epistemic', 'aleatoric']
    """

    def __init__(self, epistemic, aleatoric, *, mean=None, grid=None, X=None, labels=None,
                 column_labels=None, estimator_name=None):
        self.epistemic = epistemic
        self.aleatoric = aleatoric
        self.mean = mean
        self.grid = grid
        self.X = X
        self.labels = labels
        self.column_labels = column_labels
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, cmap="Reds", mean_cmap="RdBu_r", vmax=None, colorbar=True):
        """Draw one panel each for the mean (when given), epistemic and aleatoric parts.

        Parameters
        ----------
        ax : sequence of matplotlib Axes, default=None
            Two axes, or three with a mean; a new figure when None.
        cmap : str or Colormap, default='Reds'
            For the variances, from zero up.
        mean_cmap : str or Colormap, default='RdBu_r'
            For the mean.
        vmax : float, default=None
            Top of the variances' colour scale (larger values get its top
            colour); each panel's largest value when None. The paper uses
            0.25 for classifiers, the largest aleatoric variance ``p (1 - p)``.
        colorbar : bool, default=True

        Returns
        -------
        display : UncertaintyDisplay
        """
        panels = [("epistemic", self.epistemic, cmap), ("aleatoric", self.aleatoric, cmap)]
        if self.mean is not None:
            panels.insert(0, ("mean", self.mean, mean_cmap))
        self.figure_, self.ax_ = _axes(type(self).__name__, ax, len(panels),
                                       figsize=(4 * len(panels), 3.4), layout="constrained")
        from matplotlib.ticker import MaxNLocator  # matplotlib is there: _axes checked

        self.images_, self.colorbars_, self.scatters_ = [], [], []
        for axis, (title, values, colours) in zip(self.ax_, panels):
            values = np.asarray(values, dtype=float)
            low = 0.0 if title != "mean" else min(0.0, np.nanmin(values))
            high = (np.nanmax(values) if vmax is None or title == "mean" else vmax) or 1.0
            if self.grid is not None:
                levels = MaxNLocator(12).tick_values(low, high)
                image = axis.contourf(*self.grid, values, levels=levels, cmap=colours,
                                      extend="neither" if vmax is None else "max")
                if self.X is not None:
                    X = np.asarray(self.X)
                    self.scatters_.append(axis.scatter(
                        X[:, 0], X[:, 1], c=self.labels, s=8, cmap="coolwarm",
                        edgecolors="k", linewidths=0.4))
                axis.set(xlabel="$x_1$", ylabel="$x_2$")
            else:
                image = self._heat_map(axis, values, low, high, colours)
            axis.set_title(title, fontsize=10)
            self.images_.append(image)
            if colorbar:
                self.colorbars_.append(self.figure_.colorbar(image, ax=axis))
        if self.estimator_name and ax is None:  # a caller's figure keeps its own title
            self.figure_.suptitle(self.estimator_name, fontsize=10)
        return self

    def _heat_map(self, axis, values, low, high, cmap):
        """Examples (rows, grouped by label) against columns."""
        if self.labels is not None:
            order, ordered, groups = _group_order(self.labels)
            values = values[order]
        # One block per cell: a smoothing filter would blend neighbouring classes.
        image = axis.imshow(values, aspect="auto", cmap=cmap, vmin=low, vmax=high,
                            interpolation="nearest")
        columns = self.column_labels
        if columns is None:
            columns = np.arange(values.shape[1])
        axis.set_xticks(np.arange(values.shape[1]), [str(c) for c in columns])
        axis.set(xlabel="class", ylabel="examples")
        if self.labels is not None:
            _mark_groups(axis, ordered, groups, "y")
        return image

    @classmethod
    def from_estimator(cls, estimator, X, y=None, *, kind="auto", target=None,
                       grid_resolution=100, eps=0.5, mean=True, ax=None, cmap="Reds",
                       vmax=None, colorbar=True):
        """Compute the two parts of the predictive variance and plot them.

        Parameters
        ----------
        estimator : fitted DNN2GPClassifier or DNN2GPRegressor
        X : array-like of shape (n_samples, n_features)
            Grid layout: the training inputs (two features), whose range plus
            ``eps`` the grid spans. Per example: the examples to show.
        y : array-like of shape (n_samples,), default=None
            Their classes: colours of the points, or the grouping of the rows.
        kind : {'auto', 'grid', 'per_class'}, default='auto'
            'auto' is 'grid' for two features, else 'per_class'.
        target : int, default=None
            Grid layout: which class (column of ``predict_uncertainty``) to
            map. None: the positive class of a binary classifier, the sum
            over classes (the trace of the covariances) of a multiclass one,
            the only target of a regressor.
        grid_resolution : int, default=100
            Grid points along each axis.
        eps : float, default=0.5
            How far the grid extends beyond the data.
        mean : bool, default=True
            Also draw the predictive mean (class probabilities; for the sum
            over classes, the largest probability).
        ax, cmap, vmax, colorbar
            As in :meth:`plot`.

        Returns
        -------
        display : UncertaintyDisplay
        """
        check_is_fitted(estimator)
        X = check_array(X)
        if kind == "auto":
            kind = "grid" if X.shape[1] == 2 else "per_class"
        if kind not in ("grid", "per_class"):
            raise ValueError(f"kind must be 'auto', 'grid' or 'per_class', got {kind!r}.")
        classes = getattr(estimator, "classes_", None)
        points, grid = X, None
        if kind == "grid":
            if X.shape[1] != 2:
                raise ValueError(f"kind='grid' needs two features; X has {X.shape[1]}.")
            axes = [np.linspace(X[:, j].min() - eps, X[:, j].max() + eps, grid_resolution)
                    for j in range(2)]
            grid = np.meshgrid(*axes)
            points = np.column_stack([g.ravel() for g in grid])
        epistemic, aleatoric = (np.reshape(v, (len(points), -1))
                                for v in estimator.predict_uncertainty(points))
        average = None
        if mean:
            average = (estimator.predict_proba(points) if classes is not None
                       else estimator.predict(points))
            average = np.reshape(average, (len(points), -1))
        if kind == "grid":
            _check_target(target, epistemic.shape[1])
            if target is None and classes is not None and len(classes) > 2:
                # The trace of the covariances; the largest probability as the mean.
                epistemic, aleatoric = epistemic.sum(1), aleatoric.sum(1)
                average = None if average is None else average.max(1)
            else:
                column = (1 if classes is not None and len(classes) == 2 else 0) \
                    if target is None else target
                epistemic, aleatoric = epistemic[:, column], aleatoric[:, column]
                average = None if average is None else average[:, column]
            epistemic, aleatoric = (np.reshape(v, grid[0].shape) for v in (epistemic, aleatoric))
            average = None if average is None else np.reshape(average, grid[0].shape)
        display = cls(epistemic, aleatoric, mean=average, grid=grid,
                      X=X if kind == "grid" else None, labels=y,
                      column_labels=classes, estimator_name=_name(estimator))
        return display.plot(ax=ax, cmap=cmap, vmax=vmax, colorbar=colorbar)


def _mean_se(values):
    """Mean and standard error over the second axis of ``values`` (NaNs left out); a
    1-D ``values`` is one number per point, with no error bar."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        return values, None
    count = np.sum(~np.isnan(values), axis=1)
    mean = np.nanmean(values, axis=1)
    std = np.nanstd(values, axis=1, ddof=1) if values.shape[1] > 1 else np.zeros(len(values))
    return mean, np.where(count > 1, std / np.sqrt(np.maximum(count, 1)), 0.0)


def _as_number(value, name):
    """A grid value as a float; a one-layer ``hidden_layer_sizes`` is its width."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"EvidenceDisplay plots numeric values of {name}; got {value!r}.") \
            from None


class EvidenceDisplay:
    """The evidence against a hyperparameter, with train and test errors on a twin axis.

    The paper's Figs. 5 and 6: the training set's log marginal likelihood
    peaks near the value of lowest test error, while the training error keeps
    falling as the model becomes more flexible. Each quantity is one value
    per hyperparameter value, or several (over data sets or splits), drawn as
    their mean with standard-error bars.

    Parameters
    ----------
    param_values : array-like of shape (n_values,)
    log_marginal_likelihood : array-like of shape (n_values,) or (n_values, n_repeats)
    train_error, test_error : array-like of the same shape, default=None
    param_name : str, default=None
        The x-axis label.
    error_name : str, default='error'
        What the errors are ('MSE', 'error rate', ...).

    Attributes
    ----------
    evidence_line_ : matplotlib ErrorbarContainer
    train_line_, test_line_ : matplotlib ErrorbarContainer or None
    best_evidence_line_ : matplotlib Line2D
        At the value of highest mean evidence.
    best_test_line_ : matplotlib Line2D or None
        At the value of lowest mean test error.
    handles_ : list of matplotlib artists
        For a legend elsewhere (e.g. one for several panels).
    ax_ : matplotlib Axes
        Holds the evidence.
    error_ax_ : matplotlib Axes or None
        The twin axis of the errors.
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_dnn2gp.plotting import EvidenceDisplay
    >>> display = EvidenceDisplay([0.1, 1.0, 10.0], [-40.0, -25.0, -31.0],
    ...                           train_error=[0.01, 0.02, 0.08], test_error=[0.09, 0.03, 0.08],
    ...                           param_name="prior precision", error_name="MSE").plot()
    >>> display.best_evidence_line_.get_xdata()[0], display.best_test_line_.get_xdata()[0]
    (np.float64(1.0), np.float64(1.0))
    """

    def __init__(self, param_values, log_marginal_likelihood, *, train_error=None,
                 test_error=None, param_name=None, error_name="error"):
        self.param_values = param_values
        self.log_marginal_likelihood = log_marginal_likelihood
        self.train_error = train_error
        self.test_error = test_error
        self.param_name = param_name
        self.error_name = error_name

    def plot(self, ax=None, *, xscale=None, mark_best=True, legend=True):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        xscale : {'log', 'log2', 'linear'}, default=None
            'log2' puts one tick at each value (for widths). None: 'log' when
            the values are positive and span a factor of 10 or more, else
            'linear'.
        mark_best : bool, default=True
            Vertical lines at the highest evidence and the lowest test error.
        legend : bool, default=True
            A legend under the axes; ``handles_`` serves one elsewhere.

        Returns
        -------
        display : EvidenceDisplay
        """
        self.figure_, self.ax_ = _axes(type(self).__name__, ax)
        values = np.asarray(self.param_values, dtype=float)
        if xscale is None:
            positive = np.all(values > 0)
            xscale = "log" if positive and values.max() >= 10 * values.min() else "linear"
        lml, lml_se = _mean_se(self.log_marginal_likelihood)
        self.evidence_line_ = self.ax_.errorbar(values, lml, lml_se, color="C2", marker="s",
                                                ms=3, capsize=2, label="train log evidence")
        self.ax_.set_ylabel("train log marginal likelihood")
        self.handles_ = [self.evidence_line_]
        self.error_ax_ = self.train_line_ = self.test_line_ = None
        test = None
        if self.train_error is not None or self.test_error is not None:
            self.error_ax_ = self.ax_.twinx()
            self.error_ax_.set_ylabel(self.error_name)
            for which, errors, color in (("train", self.train_error, "C0"),
                                         ("test", self.test_error, "C1")):
                if errors is None:
                    continue
                mean, se = _mean_se(errors)
                line = self.error_ax_.errorbar(values, mean, se, color=color, marker="o",
                                               ms=3, capsize=2,
                                               label=f"{which} {self.error_name}")
                setattr(self, f"{which}_line_", line)
                self.handles_.append(line)
                test = mean if which == "test" else test
        self.best_evidence_line_ = self.best_test_line_ = None
        if mark_best:
            self.best_evidence_line_ = self.ax_.axvline(
                values[np.nanargmax(lml)], color="C2", ls="--", lw=1, label="highest evidence")
            self.handles_.append(self.best_evidence_line_)
            if test is not None:
                self.best_test_line_ = self.ax_.axvline(
                    values[np.nanargmin(test)], color="C1", ls=":", lw=1.5,
                    label=f"lowest test {self.error_name}")
                self.handles_.append(self.best_test_line_)
        if xscale == "log2":
            self.ax_.set_xscale("log", base=2)
            self.ax_.set_xticks(values, [f"{v:g}" for v in values])
            self.ax_.minorticks_off()
        else:
            self.ax_.set_xscale(xscale)
        self.ax_.set_xlabel(self.param_name or "hyperparameter")
        if legend:
            # Under the axes: inside, every corner may hold points.
            self.ax_.legend(handles=self.handles_, loc="upper center", fontsize=7,
                            bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
        return self

    @classmethod
    def from_search(cls, search, param_name=None, *, fixed=None, train_error=None,
                    test_error=None, error_name="error", ax=None, xscale=None, mark_best=True,
                    legend=True):
        """Plot the evidence of the candidates of a fitted ``EvidenceSearchCV``.

        Parameters
        ----------
        search : fitted EvidenceSearchCV
            Its ``results_`` give the values and the evidence.
        param_name : str, default=None
            The hyperparameter on the x axis; may be left out when only one
            varies.
        fixed : dict, default=None
            When others vary too: their values on the plotted candidates.
        train_error, test_error : array-like of shape (n_candidates,), default=None
            Errors of the candidates in the order of ``results_`` (the search
            keeps no networks but the best, so they are the caller's).
        error_name, ax, xscale, mark_best, legend
            As in the constructor and :meth:`plot`.

        Returns
        -------
        display : EvidenceDisplay
        """
        check_is_fitted(search, "results_")
        results = search.results_
        candidates = results["params"]
        varying = sorted({name for params in candidates for name in params
                          if len({repr(p.get(name)) for p in candidates}) > 1})
        if param_name is None:
            if len(varying) != 1:
                raise ValueError(f"Several hyperparameters vary ({', '.join(varying)}); "
                                 "choose one with param_name=.")
            param_name = varying[0]
        fixed = dict(fixed or {})
        others = [name for name in varying if name != param_name and name not in fixed]
        if others:
            raise ValueError(f"{', '.join(others)} also vary; give their values with fixed=.")
        rows = [i for i, params in enumerate(candidates) if param_name in params and all(
            repr(params.get(name)) == repr(value) for name, value in fixed.items())]
        if not rows:
            raise ValueError(f"No candidate has {param_name} with fixed={fixed!r}.")
        values = np.array([_as_number(candidates[i][param_name], param_name) for i in rows])
        order = np.argsort(values, kind="stable")
        rows = np.asarray(rows)[order]

        def pick(column):
            return None if column is None else np.asarray(column, dtype=float)[rows]

        display = cls(values[order], pick(results["log_marginal_likelihood"]),
                      train_error=pick(train_error), test_error=pick(test_error),
                      param_name=param_name, error_name=error_name)
        return display.plot(ax=ax, xscale=xscale, mark_best=mark_best, legend=legend)

    @classmethod
    def from_table(cls, table, param_name, *, evidence="log_marginal_likelihood",
                   train_error=None, test_error=None, error_name="error", ax=None,
                   xscale=None, mark_best=True, legend=True):
        """Plot from a table with one row per fit, e.g. a ``pandas.DataFrame``.

        Rows with the same value of ``param_name`` (several data sets or
        splits) are drawn as their mean with a standard-error bar.

        Parameters
        ----------
        table : mapping of str to array-like, or DataFrame
            Columns of equal length.
        param_name : str
            The column of hyperparameter values.
        evidence : str, default='log_marginal_likelihood'
            The column of the evidence.
        train_error, test_error : str, default=None
            The columns of the errors.
        error_name, ax, xscale, mark_best, legend
            As in the constructor and :meth:`plot`.

        Returns
        -------
        display : EvidenceDisplay
        """
        values = np.array([_as_number(v, param_name) for v in table[param_name]])
        unique = np.unique(values)
        groups = [np.flatnonzero(values == v) for v in unique]
        width = max(len(g) for g in groups)

        def grouped(column):
            # Values by rows, repeats by columns; NaN pads groups with fewer repeats.
            if column is None:
                return None
            data = np.asarray(table[column], dtype=float)
            out = np.full((len(unique), width), np.nan)
            for i, rows in enumerate(groups):
                out[i, :len(rows)] = data[rows]
            return out[:, 0] if width == 1 else out

        display = cls(unique, grouped(evidence), train_error=grouped(train_error),
                      test_error=grouped(test_error), param_name=param_name,
                      error_name=error_name)
        return display.plot(ax=ax, xscale=xscale, mark_best=mark_best, legend=legend)


def _check_target(target, n_columns):
    if target is not None and not (isinstance(target, Integral) and 0 <= target < n_columns):
        raise ValueError(f"target must be an index in [0, {n_columns}), got {target!r}.")
