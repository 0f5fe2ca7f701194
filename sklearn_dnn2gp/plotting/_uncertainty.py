"""UncertaintyDisplay: epistemic and aleatoric variances (Eq. 48)."""


import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted

from ._common import (
    _axes,
    _check_target,
    _group_order,
    _mark_groups,
    _name,
)


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
        ax : sequence of matplotlib Axes, default=None
            As in :meth:`plot`.
        cmap : str or Colormap, default='Reds'
            As in :meth:`plot`.
        vmax : float, default=None
            As in :meth:`plot`.
        colorbar : bool, default=True
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
