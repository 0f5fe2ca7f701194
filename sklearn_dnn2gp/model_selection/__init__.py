"""Hyperparameter selection by the training-set marginal likelihood.

The DNN2GP evidence ``log p(y | delta, sigma, architecture)`` is computed on
the training set at the end of every fit, so choosing hyperparameters needs
one fit per candidate and no held-out data (Khan et al., 2019, Section 5.3).
The evidence of a trained network at other ``prior_precision`` /
``noise_std`` values is a closed form of its spectrum. It keeps the weights
fixed, so it guides rather than replaces retraining: it proposes which
candidates to train when they differ only in those two
(``reuse_network=True``), and it is maximised continuously, alternating with
retraining, by :func:`maximize_evidence`.
"""

from ._maximize import maximize_evidence
from ._scorer import evidence_scorer
from ._search import EvidenceSearchCV

__all__ = ["EvidenceSearchCV", "evidence_scorer", "maximize_evidence"]
