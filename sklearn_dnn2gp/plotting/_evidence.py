"""EvidenceDisplay: the evidence against a hyperparameter, with errors."""


import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._common import (
    _as_number,
    _axes,
    _mean_se,
)


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
        error_name : str, default='error'
            What the errors are, as in the constructor.
        ax : matplotlib Axes, default=None
            As in :meth:`plot`.
        xscale : {'log', 'log2', 'linear'}, default=None
            As in :meth:`plot`.
        mark_best : bool, default=True
            As in :meth:`plot`.
        legend : bool, default=True
            As in :meth:`plot`.

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
        error_name : str, default='error'
            What the errors are, as in the constructor.
        ax : matplotlib Axes, default=None
            As in :meth:`plot`.
        xscale : {'log', 'log2', 'linear'}, default=None
            As in :meth:`plot`.
        mark_best : bool, default=True
            As in :meth:`plot`.
        legend : bool, default=True
            As in :meth:`plot`.

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
