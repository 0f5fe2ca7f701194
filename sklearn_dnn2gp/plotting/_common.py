"""Helpers the Displays share: the optional matplotlib, axes, grouping, arrays."""

from numbers import Integral

import numpy as np

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
    from matplotlib.axes import Axes

    wrong = [a for a in np.ravel(np.asarray(ax, dtype=object)) if not isinstance(a, Axes)]
    if wrong:
        what = "a matplotlib Axes" if n_axes == 1 else f"{n_axes} matplotlib Axes"
        raise TypeError(f"{caller}: ax must be {what} or None (a new figure), got "
                        f"{type(wrong[0]).__name__} {wrong[0]!r:.60}.")
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



def _check_target(target, n_columns):
    if target is not None and not (isinstance(target, Integral) and 0 <= target < n_columns):
        raise ValueError(f"target must be an index in [0, {n_columns}), got {target!r}.")
