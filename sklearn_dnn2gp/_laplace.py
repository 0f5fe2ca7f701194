"""The Laplace-GGN posterior of a trained network, and its evidence.

A structure is a class of :mod:`.posteriors`, looked up by name in its
table; per-layer precisions wrap it in a :class:`~.posteriors.ScaledPosterior`.
"""

import torch

from .posteriors import ScaledPosterior, posterior_structure


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
        A name registered in :data:`.posteriors.POSTERIORS`.
    prior_precision : float or tensor of shape (P,)
        ``delta``, or one precision per parameter (a :class:`ScaledPosterior`
        around the structure).

    Returns
    -------
    posterior : an instance of the structure, or a ScaledPosterior around one
    evidence : callable
        ``evidence(prior_precision=None, **likelihood_hyperparameters)``, the log
        marginal likelihood at other hyperparameters without refitting.
    """
    per_parameter = torch.is_tensor(prior_precision)
    posterior = posterior_structure(structure).from_data(
        module, likelihood, X, weights,
        float(prior_precision.max()) if per_parameter else prior_precision)
    if per_parameter:
        posterior = ScaledPosterior.wrap(posterior, prior_precision)
    statistics = likelihood.statistics(module, X, y, weights, posterior)
    return posterior, likelihood.evidence(posterior, statistics)
