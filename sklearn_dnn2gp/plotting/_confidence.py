"""ConfidenceDisplay: a classifier's confidence in and out of distribution, with AUROCs."""

from collections.abc import Mapping

import numpy as np
from scipy.special import entr
from sklearn.metrics import roc_auc_score
from sklearn.utils.validation import check_is_fitted

from ._common import _axes, _name

# The score of each measure (higher = more confident = more in-distribution) and its
# axis label. The entropy enters negated, so that one direction holds for both.
_MEASURES = {
    "max_proba": "confidence: largest class probability",
    "entropy": "confidence: negative predictive entropy (nats)",
}


def _check_measure(measure):
    if measure not in _MEASURES:
        raise ValueError(f"measure must be one of {sorted(_MEASURES)}, got {measure!r}.")


def _check_sets(sets, what):
    """``sets`` as a dict of name -> 1-D float array: a non-empty mapping is required."""
    if not isinstance(sets, Mapping):
        raise TypeError(f"{what} must be a dict of name -> array (out-of-distribution sets), "
                        f"got {type(sets).__name__}.")
    if not sets:
        raise ValueError(f"{what} must hold at least one out-of-distribution set; it is empty.")
    return dict(sets)


def _confidence_scores(proba, measure="max_proba"):
    """Confidence of each row of class probabilities: higher = more confident.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_classes)
    measure : {'max_proba', 'entropy'}, default='max_proba'
        'max_proba': the largest class probability. 'entropy': the negative
        predictive entropy ``sum_k p_k log p_k`` (natural log, ``0 log 0 = 0``),
        between ``-log(n_classes)`` and 0.

    Returns
    -------
    scores : ndarray of shape (n_samples,)
    """
    _check_measure(measure)
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2:
        raise ValueError(f"Class probabilities must be 2-D (n_samples, n_classes), got shape "
                         f"{proba.shape}.")
    if measure == "max_proba":
        return proba.max(axis=1)
    return -entr(proba).sum(axis=1)


class ConfidenceDisplay:
    """A classifier's confidence on in-distribution data against out-of-distribution sets.

    For thresholding the confidence as an out-of-distribution detector: an
    input whose confidence is at or below a threshold is flagged. Each set is
    drawn as the empirical CDF of its confidence, so the height of a curve at
    a threshold is the fraction of that set flagged: false alarms for the
    in-distribution set, detections for the others. The legend gives each
    out-of-distribution set's AUROC of separating it from the in-distribution
    set by the confidence (in-distribution the positive class), 1 for a
    perfect separation, 0.5 for none, below 0.5 when the classifier is more
    confident out of distribution than in it.

    Any classifier with ``predict_proba`` will do, e.g. a ``DNN2GPClassifier``
    against a ``MLPClassifier`` trained on the same data.

    Parameters
    ----------
    scores_in : array-like of shape (n_samples,)
        Confidence on the in-distribution set (higher = more confident).
    scores_out : dict of str to array-like of shape (n_samples_set,)
        Confidence on each out-of-distribution set.
    measure : {'max_proba', 'entropy'}, default='max_proba'
        What the scores are (the x-axis label); for 'entropy' they are the
        negative entropies.
    estimator_name : str, default=None
        The title.

    Attributes
    ----------
    auroc_ : dict of str to float
        Per out-of-distribution set, the area under the ROC curve of telling
        the in-distribution set (positive) from it by the score.
    in_line_ : matplotlib Line2D
        The in-distribution set's empirical CDF.
    lines_ : dict of str to matplotlib Line2D
        Each out-of-distribution set's empirical CDF.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_dnn2gp.plotting import ConfidenceDisplay
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=1000).fit(X, y)
    >>> noise = np.random.RandomState(0).uniform(0, 8, size=(50, 4))
    >>> display = ConfidenceDisplay.from_estimator(clf, X, {"noise": noise},
    ...                                            measure="entropy")
    >>> sorted(display.auroc_), display.ax_.get_title()
    (['noise'], 'LogisticRegression')
    >>> display = ConfidenceDisplay.from_predictions([0.9, 0.8, 0.95],
    ...                                              {"far": [0.5, 0.85]})
    >>> round(display.auroc_["far"], 3)
    0.833
    """

    def __init__(self, scores_in, scores_out, *, measure="max_proba", estimator_name=None):
        self.scores_in = scores_in
        self.scores_out = scores_out
        self.measure = measure
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, legend=True):
        """Draw the empirical CDFs of the confidence and compute the AUROCs.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        legend : bool, default=True
            A legend with each set's AUROC.

        Returns
        -------
        display : ConfidenceDisplay
        """
        _check_measure(self.measure)
        sets = _check_sets(self.scores_out, "scores_out")
        self.figure_, self.ax_ = _axes(type(self).__name__, ax)
        scores_in = np.ravel(np.asarray(self.scores_in, dtype=float))
        sets = {name: np.ravel(np.asarray(scores, dtype=float)) for name, scores in sets.items()}
        self.auroc_ = {}
        for name, scores in sets.items():
            truth = np.r_[np.ones(len(scores_in)), np.zeros(len(scores))]
            self.auroc_[name] = float(roc_auc_score(truth, np.r_[scores_in, scores]))
        # Empirical CDFs, not histograms: the height at a threshold reads off directly the
        # fraction of each set flagged (the detector's false-alarm and detection rates);
        # there are no bins to choose, although confident scores crowd near the top of
        # their range; and four or more overlaid curves stay legible where filled or step
        # histograms hide one another. All curves span the same range, 0 to 1.
        every = np.concatenate([scores_in, *sets.values()])
        low, high = every.min(), every.max()

        def ecdf(scores, **kwargs):
            x = np.r_[low, np.sort(scores), high]
            y = np.r_[0.0, np.arange(1, len(scores) + 1) / len(scores), 1.0]
            return self.ax_.step(x, y, where="post", **kwargs)[0]

        self.in_line_ = ecdf(scores_in, color="k", lw=2, label="in-distribution")
        self.lines_ = {
            name: ecdf(scores, color=f"C{i}", lw=1.5,
                       label=f"{name} (AUROC {self.auroc_[name]:.3f})")
            for i, (name, scores) in enumerate(sets.items())}
        self.ax_.set(xlabel=_MEASURES[self.measure], ylim=(-0.02, 1.02),
                     ylabel="fraction at or below this confidence")
        if self.estimator_name:
            self.ax_.set_title(self.estimator_name, fontsize=10)
        if legend:
            self.ax_.legend(loc="best", fontsize=8)
        return self

    @classmethod
    def from_estimator(cls, estimator, X, X_out, *, measure="max_proba", ax=None, name=None,
                       legend=True):
        """Compute the confidence of a fitted classifier with ``predict_proba`` and plot it.

        Parameters
        ----------
        estimator : fitted classifier or Pipeline with ``predict_proba``
        X : array-like of shape (n_samples, n_features)
            In-distribution inputs, e.g. a test set.
        X_out : dict of str to array-like of shape (n_samples_set, n_features)
            Out-of-distribution sets, by name.
        measure : {'max_proba', 'entropy'}, default='max_proba'
            The largest class probability, or the negative predictive entropy
            (natural log): higher is more confident for both.
        ax : matplotlib Axes, default=None
        name : str, default=None
            The title; the estimator's class name when None.
        legend : bool, default=True

        Returns
        -------
        display : ConfidenceDisplay
        """
        _check_measure(measure)
        X_out = _check_sets(X_out, "X_out")
        check_is_fitted(estimator)
        if not hasattr(estimator, "predict_proba"):
            raise AttributeError(
                f"ConfidenceDisplay needs a classifier with predict_proba; "
                f"{_name(estimator)} has none.")
        scores_in = _confidence_scores(estimator.predict_proba(X), measure)
        scores_out = {key: _confidence_scores(estimator.predict_proba(inputs), measure)
                      for key, inputs in X_out.items()}
        display = cls(scores_in, scores_out, measure=measure,
                      estimator_name=_name(estimator) if name is None else name)
        return display.plot(ax=ax, legend=legend)

    @classmethod
    def from_predictions(cls, scores_in, scores_out, *, measure="max_proba", ax=None,
                         name=None, legend=True):
        """Plot precomputed confidence scores.

        Parameters
        ----------
        scores_in : array-like of shape (n_samples,)
            Confidence on the in-distribution set; higher = more confident
            (for 'entropy', the negative entropy ``sum_k p_k log p_k``).
        scores_out : dict of str to array-like of shape (n_samples_set,)
        measure : {'max_proba', 'entropy'}, default='max_proba'
            What the scores are (the x-axis label).
        ax : matplotlib Axes, default=None
        name : str, default=None
            The title.
        legend : bool, default=True

        Returns
        -------
        display : ConfidenceDisplay
        """
        _check_measure(measure)
        scores_out = _check_sets(scores_out, "scores_out")
        display = cls(scores_in, scores_out, measure=measure, estimator_name=name)
        return display.plot(ax=ax, legend=legend)
