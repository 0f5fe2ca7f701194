"""Deep networks as Gaussian processes (DNN2GP), as scikit-learn estimators."""

from ._classifier import DNN2GPClassifier
from ._regressor import DNN2GPRegressor
from .kernels import NTKFeatures, NTKKernel
from .model_selection import EvidenceSearchCV, evidence_scorer, maximize_evidence
from .plotting import (
    ConfidenceDisplay,
    EvidenceDisplay,
    KernelDisplay,
    PredictiveDisplay,
    UncertaintyDisplay,
)

__all__ = [
    "ConfidenceDisplay",
    "DNN2GPClassifier",
    "DNN2GPRegressor",
    "EvidenceDisplay",
    "EvidenceSearchCV",
    "KernelDisplay",
    "NTKFeatures",
    "NTKKernel",
    "PredictiveDisplay",
    "UncertaintyDisplay",
    "evidence_scorer",
    "maximize_evidence",
]
__version__ = "0.1.0"
