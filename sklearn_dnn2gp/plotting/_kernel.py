"""KernelDisplay: the kernel matrix as a heat map, grouped by class."""


import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..kernels import NTKKernel
from ._common import (
    _axes,
    _group_order,
    _mark_groups,
    _name,
)


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
        ax : matplotlib Axes, default=None
            As in :meth:`plot`.
        cmap : str or Colormap, default='RdBu_r'
            As in :meth:`plot`.
        colorbar : bool, default=True
            As in :meth:`plot`.

        Returns
        -------
        display : KernelDisplay
        """
        check_is_fitted(estimator)
        if np.ndim(estimator.prior_precision_):
            raise ValueError(
                "KernelDisplay draws J J^T / delta for one prior precision; this "
                "estimator has one per layer (its prior kernel is sum_l J_l J_l^T / "
                "delta_l). Draw estimator.kernel(X) for the network's NTK.")
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
