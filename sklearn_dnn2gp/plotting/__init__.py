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
* :class:`ConfidenceDisplay`: any classifier's confidence (largest probability
  or negative entropy) on in-distribution data against out-of-distribution
  sets, as empirical CDFs with each set's AUROC, for an out-of-distribution
  detector that thresholds the confidence.

matplotlib is an optional dependency (``pip install 'sklearn-dnn2gp[plot]'``);
it is imported only when something is drawn.
"""

from ._confidence import ConfidenceDisplay
from ._evidence import EvidenceDisplay
from ._kernel import KernelDisplay
from ._predictive import PredictiveDisplay
from ._uncertainty import UncertaintyDisplay

__all__ = [
    "ConfidenceDisplay",
    "EvidenceDisplay",
    "KernelDisplay",
    "PredictiveDisplay",
    "UncertaintyDisplay",
]
