"""Gaussian weight posteriors ``N(mean, (s G + delta I)^-1)``, one class per
structure, registered by name in :data:`POSTERIORS` (see :mod:`._gaussian`)."""

from ._diag import DiagPosterior
from ._full import FullPosterior
from ._gaussian import (
    POSTERIOR_OPTIONS,
    POSTERIORS,
    Gaussian,
    add_to_diagonal,
    posterior_structure,
    register_posterior,
)
from ._kron import KronCurvature, KronPosterior
from ._scaled import ScaledPosterior, split_precisions

__all__ = [
    "POSTERIORS",
    "POSTERIOR_OPTIONS",
    "DiagPosterior",
    "FullPosterior",
    "Gaussian",
    "KronCurvature",
    "KronPosterior",
    "ScaledPosterior",
    "add_to_diagonal",
    "posterior_structure",
    "register_posterior",
    "split_precisions",
]
