"""Class probabilities from a Gaussian over the logits: the link approximations.

Every function takes logits ``f`` (n, K) and their covariances ``var``
(n, K, K) under the GP posterior ``N(f, var)`` and returns log-probabilities
(n, K). They stay in log space, so logits far from the data (|f| in the
thousands) give finite log-probabilities rather than ``inf / inf``.
"""

import math

import torch

LINKS = ("probit", "meanfield", "plugin", "bridge", "mc")


def probit_scaled_logits(f, var):
    """``f / sqrt(1 + pi/8 v)`` with ``v`` the variance of each logit."""
    v = torch.diagonal(var, dim1=1, dim2=2).clamp_min(0)
    return f / torch.sqrt(1 + math.pi / 8 * v)


def _mean_field(f, var):
    """The softmax written over pairs of logits, ``p_k = 1 / sum_j exp(-(f_k - f_j))``,
    with each difference probit-moderated by its own variance
    ``v_kj = V_kk + V_jj - 2 V_kj``, then renormalised (the mean-field approximation
    of Lu, Ie and Sha, 2020, with the full covariance).

    A shift common to all logits changes no difference, so, unlike the per-logit
    probit, variance the logits share (the softmax ignores it) does not flatten the
    probabilities. For two classes it is the probit exactly."""
    d = f[:, :, None] - f[:, None, :]
    diag = torch.diagonal(var, dim1=1, dim2=2)
    v = (diag[:, :, None] + diag[:, None, :] - 2 * var).clamp_min(0)
    log_p = -torch.logsumexp(-d / torch.sqrt(1 + math.pi / 8 * v), dim=2)
    return torch.log_softmax(log_p, dim=1)


def psd_sqrt(var):
    """A square root ``L`` with ``L L^T = var`` for (n, K, K) covariances that may be
    singular or, through round-off, slightly indefinite (where a Cholesky fails).

    Each matrix is scaled to a unit largest diagonal first: eigh does not converge on
    entries near the float range's end (inputs scaled by 1e300)."""
    diag = torch.diagonal(var, dim1=1, dim2=2).abs()
    scale = diag.amax(dim=1).clamp_min(torch.finfo(var.dtype).tiny)
    eigvals, eigvecs = torch.linalg.eigh(var / scale[:, None, None])
    return eigvecs * torch.sqrt(eigvals.clamp_min(0) * scale[:, None])[:, None, :]


def infinite_rows(var):
    """The rows whose latent covariance overflowed (inputs far beyond the data)."""
    return ~torch.isfinite(var).flatten(1).all(dim=1)


def _bridge(f, var, symmetric_binary):
    """Mean of the Dirichlet that the Laplace bridge matches to ``N(f, var)``."""
    diag = torch.diagonal(var, dim1=1, dim2=2).clamp_min(0)
    if symmetric_binary:  # the two-class logits (-f/2, f/2), each with variance v/4
        f = f - f[:, 1:] / 2
        diag = diag[:, 1:].expand(-1, 2) / 4
    k = f.shape[1]
    mu = f - f.mean(dim=1, keepdim=True)
    # alpha_k = (1 - 2/K + e^mu_k sum_l e^-mu_l / K^2) / v_k, in logs.
    spread = mu + torch.logsumexp(-mu, dim=1, keepdim=True) - 2 * math.log(k)
    constant = torch.full_like(spread, math.log1p(-2 / k) if k > 2 else -math.inf)
    log_alpha = torch.logaddexp(constant, spread) - torch.log(diag.clamp_min(1e-12))
    return torch.log_softmax(log_alpha, dim=1)


def _monte_carlo(f, var, n_samples, generator):
    # The same draws serve every point (common random numbers), so a point's
    # estimate does not depend on the other rows of X.
    k = f.shape[1]
    eps = torch.randn(n_samples, 1, k, dtype=f.dtype, generator=generator).to(f.device)
    samples = f + (psd_sqrt(var) @ eps[..., None])[..., 0]
    log_p = torch.log_softmax(samples, dim=2)
    return torch.logsumexp(log_p, dim=0) - math.log(n_samples)


def log_class_probabilities(f, var, link, *, n_samples=100, generator=None, binary=False):
    """Log predictive class probabilities under the link approximation ``link``.

    With ``binary=True``, ``f`` holds the K logits of a softmax whose first is
    the fixed 0 of a sigmoid (the Bernoulli as a two-class softmax); the bridge
    then uses the symmetric pair ``(-f/2, f/2)`` it was derived for.
    """
    if link == "plugin":
        return torch.log_softmax(f, dim=1)
    if link not in LINKS:
        raise ValueError(f"link_approximation must be one of {LINKS}, got {link!r}.")
    infinite = infinite_rows(var)
    if infinite.any():
        # A latent variance beyond float64 (an input far out, e.g. scaled by 1e300) is
        # taken at its limit: as v -> inf with f fixed, the probit's and the Monte-Carlo
        # predictive tend to uniform, which the bridge is then given as well.
        var = torch.where(infinite[:, None, None], torch.eye(f.shape[1], dtype=var.dtype,
                                                             device=var.device), var)
    if link == "probit":
        log_p = torch.log_softmax(probit_scaled_logits(f, var), dim=1)
    elif link == "meanfield":
        log_p = _mean_field(f, var)
    elif link == "bridge":
        log_p = _bridge(f, var, binary)
    else:
        log_p = _monte_carlo(f, var, n_samples, generator)
    return torch.where(infinite[:, None], torch.full_like(log_p, -math.log(f.shape[1])),
                       log_p)


def label_uncertainty(lam, var):
    """The diagonals of Eq. 48's two terms of the one-hot labels' covariance,
    ``Cov[y*] = Lambda + Lambda V Lambda``: epistemic and aleatoric, each (n, classes),
    from the likelihood's ``Lambda`` (n, K, K) and the latent covariance ``V``."""
    # diag(Lambda V Lambda) as row norms of Lambda V^1/2: not below 0 where round-off
    # leaves V slightly indefinite (float32 with a tiny prior precision gave -32).
    # Eq. 48 is the first-order term of Var_f[p_k(f)], which no probability's
    # variance exceeds 1/4; far from the data the linearisation can, and is capped.
    infinite = infinite_rows(var)
    var = torch.where(infinite[:, None, None], torch.zeros_like(var), var)
    epistemic = ((lam @ psd_sqrt(var)) ** 2).sum(-1).clamp(max=0.25)
    # An overflowed latent variance is the cap's limit.
    epistemic = torch.where(infinite[:, None], torch.full_like(epistemic, 0.25), epistemic)
    aleatoric = torch.diagonal(lam, dim1=1, dim2=2)
    if lam.shape[1] == 1:  # both classes of a Bernoulli share its variance
        epistemic, aleatoric = epistemic.expand(-1, 2), aleatoric.expand(-1, 2)
    return epistemic, aleatoric
