"""The temperature of the classifier's predictive, chosen on the training set.

The Laplace posterior of an MLP with one isotropic prior is broad where the
network is confident: the GGN term ``J^T Lambda J`` vanishes on training points
classified with ``p ~ 1``, so the posterior there stays near the prior and the
probit (or Monte-Carlo) predictive of the untempered posterior is underconfident
in distribution (digits: test NLL 0.43 against the plug-in's 0.088). The latent
variance still separates the data from what is far from it by orders of
magnitude, so the predictive uses the posterior tempered at ``T``: likelihood and
prior raised to ``1/T``, whose Laplace covariance is ``T Sigma`` around the same
mode. ``T = 1`` is the posterior; ``T -> 0`` the plug-in.

``T`` is chosen on a grid from two criteria computed from the training points'
latent means and covariances (no held-out data); it is the smaller of

* the largest ``T`` up to which the approximate leave-one-out NLL (the GP
  view's cavity of each point, :mod:`._loo`) exceeds its minimum over the grid
  by at most a factor ``1 + loo_tolerance``, from that minimum on: the
  leave-one-out predictive of a point the network did not see is where the
  uncertainty pays;
* the largest ``T`` up to which the NLL of the training labels exceeds the
  plug-in's by at most a factor ``1 + fit_tolerance``: the cost on points like
  those the network fitted. The leave-one-out estimate alone is optimistic on
  small data sets (iris, wine: 105-125 rows; its one Newton step overshoots for
  the few points that dominate their own posterior) and picked temperatures
  that raised the test NLL by 10-50 %; this bound caps that cost.

With sample weights (repetitions, as in the training loss), each row's cavity
removes one observation (weight ``min(w_i, 1)``) and the NLLs are weighted means,
so integer weights and repeated rows choose the same ``T``.

Every function here is pure: tensors in, tensors out.
"""

import numpy as np
import torch

from ._loo import leave_one_out_latents
from ._utils import make_generator

#: The candidate temperatures: the plug-in and quarter decades from 1e-4 to 1.
TEMPERATURES = np.concatenate([[0.0], np.logspace(-4, 0, 17)])
#: Below this many training rows the criteria are too noisy to choose from.
MIN_ROWS = 20
#: The temperature taken below ``MIN_ROWS`` rows (and where no criterion is finite).
FALLBACK_TEMPERATURE = 1e-3
#: The criteria average over at most this many training rows (a random subset):
#: their latent covariances cost ``O(rows K P^2)``, and with 500 the choice added 15 %
#: to a default fit on digits.
MAX_ROWS = 500
#: ... and at most this many rows times outputs (K), but at least ``5 MIN_ROWS`` rows.
#: On digits (K = 10: 250 rows) the temperature, the residual and their test NLL,
#: ECE and AUROCs stayed within the splits' spread of those at 500 rows (5 splits of
#: ``benchmarks/bench_ood.py``), and the choice's cost fell from 21 % to 10 %.
MAX_ROW_OUTPUTS = 2500


def _mean_nll(log_proba, codes, weights):
    nll = -log_proba.gather(1, codes[:, None])[:, 0]
    # A cavity that overflows (a point that makes up nearly all of its own posterior
    # precision, Lambda_i V_i -> I) is left out rather than making the mean infinite.
    finite = torch.isfinite(nll)
    if weights is not None:
        finite &= weights > 0
    if not finite.any():
        return float("nan")
    if weights is None:
        return float(nll[finite].mean())
    return float((nll[finite] * weights[finite]).sum() / weights[finite].sum())


def mean_nll(log_proba, y, likelihood, weights=None):
    """The (weighted) mean NLL of targets ``y`` as ``likelihood`` takes them."""
    codes = (y.long() if likelihood.binary else y).to(log_proba.device)
    return _mean_nll(log_proba, codes, weights)


def training_rows(n_rows, weights, random_state, device, n_outputs=1, min_rows=MIN_ROWS):
    """The training rows the choice reads, and the observations they stand for
    (sample weights count as repetitions, as in the training loss): at most
    ``MAX_ROWS`` (and ``MAX_ROW_OUTPUTS / n_outputs``) of the rows of positive
    weight, a random subset under ``random_state``; rows None when there are
    fewer than ``min_rows`` observations."""
    limit = min(MAX_ROWS, max(5 * MIN_ROWS, MAX_ROW_OUTPUTS // n_outputs))
    rows = torch.arange(n_rows, device=device)
    n_observations = len(rows) if weights is None else float(weights.sum())
    if weights is not None:
        rows = rows[weights > 0]
    if n_observations < min_rows:
        return None, n_observations
    if len(rows) > limit:
        generator = make_generator(random_state)
        pick = torch.randperm(len(rows), generator=generator)[:limit]
        rows = rows[pick.to(rows.device)]
    return rows, n_observations


def temperature_criteria(f, var, y, likelihood, log_proba, temperatures, weights=None):
    """Leave-one-out and training NLL of the tempered predictive at each temperature.

    Parameters
    ----------
    f, var : tensors of shapes (n, K) and (n, K, K)
        Latent means and (untempered) covariances at the training points.
    y : tensor of shape (n,)
        The training targets as the likelihood takes them.
    likelihood : the fitted classification likelihood.
    log_proba : callable
        ``log_proba(f, var)`` -> log class probabilities (n, n_classes) of the link.
    temperatures : ndarray of shape (n_temperatures,)
    weights : tensor of shape (n,), default=None
        Sample weights; a row of weight 0 does not count.

    Returns
    -------
    loo_nll, fit_nll : ndarrays of shape (n_temperatures,)
    """
    codes = (y.long() if likelihood.binary else y).to(f.device)
    removed = None if weights is None else weights.clamp(max=1)
    f_loo, var_loo = leave_one_out_latents(f, var, likelihood.residual(f, y),
                                           likelihood.precision(f), removed)
    loo, fit = [], []
    for t in temperatures:
        loo.append(_mean_nll(log_proba(f_loo, t * var_loo), codes, weights))
        fit.append(_mean_nll(log_proba(f, t * var), codes, weights))
    return np.array(loo), np.array(fit)


def largest_within(temperatures, criterion, start, tolerance):
    """The largest temperature up to which the criterion, from index ``start`` on,
    stays within ``criterion[start] (1 + tolerance)`` (non-finite values fail)."""
    bound = criterion[start] + tolerance * abs(criterion[start])
    passes = np.isfinite(criterion[start:]) & (criterion[start:] <= bound)
    failed = np.flatnonzero(~passes)
    last = len(passes) - 1 if failed.size == 0 else failed[0] - 1
    return temperatures[start + last]


def select_temperature(temperatures, loo_nll, fit_nll, *, loo_tolerance=0.01,
                       fit_tolerance=0.05):
    """The smaller of the two temperatures of the module's rule, at least the smallest
    positive one of the grid.

    The floor keeps the variance's ranking of inputs (what the out-of-distribution
    signal needs) at no measurable cost where the plug-in fits the training labels
    perfectly. Returns ``None`` where a criterion is nowhere finite.
    """
    finite = np.isfinite(loo_nll)
    if not finite.any() or not np.isfinite(fit_nll[0]):
        return None
    best = int(np.flatnonzero(finite)[np.argmin(loo_nll[finite])])
    by_loo = largest_within(temperatures, loo_nll, best, loo_tolerance)
    by_fit = largest_within(temperatures, fit_nll, 0, fit_tolerance)
    floor = temperatures[temperatures > 0].min()
    return float(max(min(by_loo, by_fit), floor))
