"""The interface every posterior structure has, and the table of structures.

A *structure* is one class: how ``N(mean, (s G + delta I)^-1)`` holds its
curvature ``G``. It builds itself from a trained network (``from_data``, the
Laplace-GGN posterior) and from a curvature that VI's natural-gradient steps
keep (``data_curvature``, ``constant_curvature``, ``from_curvature`` and the
curvature arithmetic, ``mix_curvature`` ...), and it answers the predictive,
the evidence and the GP view (``functional_variance``,
``functional_covariance``, ``log_det_ratio``, ``with_hyperparameters``,
``sample``, ``covariance_product`` ...). :data:`POSTERIORS` maps the
estimators' ``posterior`` parameter to the classes, and
:func:`register_posterior` adds one: nothing else in the package names a
structure, except the choice of ``posterior='auto'``.
"""

import copy
import math

import torch

# The ``posterior`` parameter's values: 'auto' and every registered structure. The
# estimators' parameter constraints hold this very set, so a structure registered
# later is accepted by ``fit``.
POSTERIOR_OPTIONS = {"auto"}
POSTERIORS = {}


def register_posterior(name, structure):
    """Make ``structure`` (a class with :class:`Gaussian`'s interface) the estimators'
    ``posterior=name``; return it."""
    if not isinstance(name, str) or name == "auto":
        raise ValueError(f"A posterior structure's name must be a string other than "
                         f"'auto', got {name!r}.")
    POSTERIORS[name] = structure
    POSTERIOR_OPTIONS.add(name)
    return structure


def posterior_structure(name):
    """The structure registered as ``name``, or a ValueError naming those there are."""
    try:
        return POSTERIORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown posterior structure {name!r}; the registered ones are "
                         f"{sorted(POSTERIORS)}.") from None


def add_to_diagonal(curvature, value):
    """``S + value I`` for ``S`` given as its diagonal (P,) or as a P x P matrix."""
    if curvature.dim() == 1:
        return curvature + value
    return curvature + value * torch.eye(curvature.shape[0], dtype=curvature.dtype,
                                         device=curvature.device)


class Gaussian:
    """What every structure shares: its size and cheap copies with other
    hyperparameters or another mean (the factorisation is shared, not copied),
    and VI's curvature held as a tensor (a P x P matrix or its diagonal), which
    K-FAC overrides with its factors."""

    @property
    def n_parameters(self):
        return self.mean.numel()

    def _replace(self, **changes):
        new = copy.copy(self)
        new.__dict__.update(changes)
        return new

    def log_det_ratio(self):
        """``log|s G + delta I| - P log delta``, as ``sum_j softplus(log(s lambda_j / delta))``
        so that an extreme ``s / delta`` cannot overflow the ratio to inf."""
        log_ratio = (torch.log(self.curvature_eigenvalues)
                     + math.log(self.curvature_scale) - math.log(self.prior_precision))
        return torch.nn.functional.softplus(log_ratio).sum()

    def with_hyperparameters(self, prior_precision=None, curvature_scale=None):
        """The same curvature at another ``delta`` and/or scale, without refactorising."""
        changes = {}
        if prior_precision is not None:
            changes["prior_precision"] = float(prior_precision)
        if curvature_scale is not None:
            changes["curvature_scale"] = float(curvature_scale)
        return self._replace(**changes)

    def with_mean(self, mean):
        """The same covariance around another mean."""
        return self._replace(mean=mean)

    def prior_quadratic(self, w):
        """``w^T diag(delta) w``, the prior's quadratic form at ``w``."""
        w = w.to(torch.float64)
        return self.prior_precision * (w @ w)

    def shares_factorisation(self, other):
        """Whether ``other`` is this posterior at other hyperparameters (the same
        curvature in the same coordinates), so that spectral quantities carry over."""
        return type(other) is type(self) and self._factor_key() == other._factor_key()

    def _factor_key(self):
        return id(self.curvature_eigenvalues)  # a stored tensor, shared by copies


    # ------------------------------------------------- VI's curvature S (a tensor)
    @classmethod
    def data_curvature(cls, module, likelihood, X, weights):
        """``S`` of a batch: the GGN ``sum_i w_i J_i^T Lambda_i J_i`` in this form."""
        raise NotImplementedError

    @classmethod
    def constant_curvature(cls, module, n_parameters, total_weight, value, device=None):
        """``S = value I`` in this form."""
        raise NotImplementedError

    @classmethod
    def from_curvature(cls, mean, curvature, prior_precision):
        """``N(mean, (S + delta I)^-1)``."""
        raise NotImplementedError

    @staticmethod
    def mix_curvature(curvature, other, beta):
        """``(1 - beta) S + beta S'``: VI's running average."""
        return (1 - beta) * curvature + beta * other

    @staticmethod
    def add_curvature(curvature, other):
        return curvature + other

    @staticmethod
    def divide_curvature(curvature, m):
        return curvature / m

    @staticmethod
    def scale_curvature(curvature, scale, like):
        """``scale S``, expressed like ``like`` (K-FAC: over its ``N``)."""
        return scale * curvature

    @staticmethod
    def curvature_plus_identity(curvature, value, n_parameters):
        """``S + value I`` as a tensor (what a VI callback receives)."""
        return add_to_diagonal(curvature, value)

