"""The Laplace-GGN posterior of a trained network, and its evidence.

:data:`POSTERIORS` is the one place that maps the ``posterior`` parameter to a
posterior structure. A structure is a class with a ``from_data`` constructor
(module, likelihood, data, prior precision -> posterior) and the interface of
:mod:`._posterior` (``mean``, ``functional_variance``, ``log_det_ratio``,
``with_hyperparameters``, ``sample``, ...); adding one (K-FAC, last layer) is
one class and one entry here.
"""

import torch

from ._posterior import DiagPosterior, FullPosterior, KronPosterior, ScaledPosterior

POSTERIORS = {"full": FullPosterior, "diag": DiagPosterior, "kron": KronPosterior}


def laplace(module, likelihood, X, y, weights, *, structure, prior_precision):
    """The Laplace-GGN posterior at ``module``'s weights and the evidence of the fit.

    Parameters
    ----------
    module : torch.nn.Module
        The trained network; its weights are the posterior mean.
    likelihood : Likelihood
    X, y : tensors
        The training data, on the module's device.
    weights : tensor of shape (n,) or None
        Sample weights.
    structure : str
        A key of :data:`POSTERIORS`.
    prior_precision : float or tensor of shape (P,)
        ``delta``, or one precision per parameter (a :class:`ScaledPosterior`
        around the structure).

    Returns
    -------
    posterior : FullPosterior, DiagPosterior, KronPosterior or ScaledPosterior
    evidence : callable
        ``evidence(prior_precision=None, **likelihood_hyperparameters)``, the log
        marginal likelihood at other hyperparameters without refitting.
    """
    per_parameter = torch.is_tensor(prior_precision)
    posterior = POSTERIORS[structure].from_data(
        module, likelihood, X, weights,
        float(prior_precision.max()) if per_parameter else prior_precision)
    if per_parameter:
        posterior = ScaledPosterior.wrap(posterior, prior_precision)
    statistics = likelihood.statistics(module, X, y, weights, posterior)
    return posterior, likelihood.evidence(posterior, statistics)
