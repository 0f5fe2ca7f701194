"""The residual GP of the classifier's predictive: uncertainty that grows away from
the training inputs.

The latent covariance ``J Sigma J^T`` stops growing where the network saturates: a
tanh network's Jacobian vanishes far from the data, and a ReLU network's logits
grow as fast as their standard deviation, so a posterior of the network's weights
alone leaves the predictive confident far away (moons at ``10 X``: mean maximum
probability 0.94-0.95 at the chosen temperature, 0.89 untempered). Following
Kristiadi, Hein and Hennig (NeurIPS 2021, "An infinite-feature extension for
Bayesian ReLU nets that fixes their asymptotic overconfidence"), each logit gets an
independent residual ``f^(x) ~ GP(0, s k)`` whose kernel is that of infinitely many
ReLU features on each input, in both directions,

    k(x, x') = 1/D sum_d [a_d^3 / 3 + (b_d - a_d) a_d^2 / 2]  where x_d x'_d > 0,

``a_d = min(|x_d|, |x'_d|)``, ``b_d = max(...)`` (the cubic spline; 0 for
coordinates of opposite sign), on the inputs standardised with the training rows'
mean and standard deviation. Its variance grows as ``|x|^3``: its standard
deviation as ``|x|^1.5``, faster than a ReLU network's logits.

Unlike that paper, which adds the prior of ``f^``, the residual here is conditioned
on the training inputs with a small noise ``NOISE`` (relative to the kernel's mean
variance there), as if the network's fit had observed it to be zero: its variance
is small near the data and of the prior's order far from it (the spline extrapolates
part of it). On one moons split, the prior at the scale that raised the training
NLL by 1 % left the far-away confidence at 0.80 (tanh) and 0.92 (relu); conditioned,
0.53 and 0.59; over 5 splits 0.54 and 0.61 (``benchmarks/bench_ood.py``).

``s`` is chosen on the training set: the largest on a grid up to which the NLL of
the training labels, with each row's residual variance that of its leave-one-out
(the closed form of a GP: ``1 / [(K + tau I)^-1]_ii - tau`` without weights),
stays within a factor ``1 + TOLERANCE`` of the NLL without it. The leave-one-out
variance is what a new point as close to the data as a training point would get.

The functions here are pure (tensors in, tensors out); :class:`ResidualGP` holds
the standardisation and the Cholesky factor a fitted classifier keeps.
"""

import numpy as np
import torch

from ._temperature import largest_within

#: The candidate scales: none, and half decades from 1e-4 to 1e4.
SCALES = np.concatenate([[0.0], np.logspace(-4, 4, 17)])
#: The residual's observation noise at the training inputs, relative to the mean of
#: its prior variance there. On 3 moons splits, 1e-3 gave a far-away confidence of
#: 0.52-0.58 with a test NLL up to 2.6 % above the temperature's alone; 1e-2 gave
#: 0.53-0.63 and about 1 %.
NOISE = 1e-2
#: Elements of the cross-kernel block a prediction builds at a time.
_BLOCK = 2 ** 19
#: How much the residual may raise the NLL of the training labels (leave-one-out).
TOLERANCE = 0.01


def spline_kernel(A, B):
    """The additive two-sided cubic-spline kernel between the rows of ``A`` (n, D)
    and ``B`` (m, D): the covariance of infinitely many ReLU features per input."""
    # Per input, a^3/3 + (b - a) a^2/2 = a (|x| |x'| / 2 - a^2 / 6) with a the smaller
    # magnitude where the signs agree; min(x+, x'+) + min(x-, x'-) is that a, and 0
    # where they differ. One input at a time keeps the work in (n, m) buffers: 4x
    # faster than broadcasting over (n, m, D) on digits.
    out = A.new_zeros(A.shape[0], B.shape[0])
    A_abs, B_abs = A.abs(), B.abs()
    A_pos, B_pos = A.clamp(min=0), B.clamp(min=0)
    A_neg, B_neg = (-A).clamp(min=0), (-B).clamp(min=0)
    for d in range(A.shape[1]):
        low = torch.minimum(A_pos[:, d, None], B_pos[None, :, d])
        low.add_(torch.minimum(A_neg[:, d, None], B_neg[None, :, d]))
        term = A_abs[:, d, None] * B_abs[None, :, d]
        out.add_(term.mul_(0.5).sub_(low.square() / 6).mul_(low))
    return out / A.shape[1]


def spline_kernel_diagonal(A):
    """``spline_kernel(A, A)``'s diagonal, in O(n D)."""
    return (A.abs() ** 3).sum(-1) / (3 * A.shape[1])


class ResidualGP:
    """The residual conditioned on training inputs (see the module); holds the
    standardisation, the conditioning rows and the Cholesky factor of
    ``K + tau W^-1``.

    Sample weights count as repetitions, as in the training loss: a row of weight
    ``w`` is ``w`` observations of noise ``tau``, i.e. one of noise ``tau / w``, and
    the standardisation and ``tau``'s reference are weighted means.
    """

    def __init__(self, X_train, X_rows, train_weights=None, row_weights=None):
        self.center, scale = _weighted_moments(X_train, train_weights)
        # As StandardScaler: a constant column keeps its units.
        self.scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        self.inputs = self._standardise(X_rows)
        self.weights = (torch.ones(len(X_rows), dtype=X_rows.dtype, device=X_rows.device)
                        if row_weights is None else row_weights.to(X_rows))
        gram = spline_kernel(self.inputs, self.inputs)
        prior = torch.diagonal(gram)
        reference = float((prior * self.weights).sum() / self.weights.sum())
        self.noise = NOISE * max(reference, 1e-12)
        # Round-off can leave K + tau W^-1 a hair from positive definite where rows
        # repeat far from the centre; more noise there changes nothing that matters.
        for extra in (1.0, 10.0, 100.0):
            noise = extra * self.noise / self.weights
            factor, info = torch.linalg.cholesky_ex(gram + torch.diag(noise))
            if int(info) == 0:
                break
        self.noise *= extra
        self.factor = factor

    def _standardise(self, X):
        return (X - self.center) / self.scale

    def leave_one_out_variance(self):
        """Each conditioning row's variance with one of its observations (weight
        ``min(w, 1)``) left out, per unit scale: the cavity of the GP posterior,
        whose precision at the row loses that observation's ``1 / tau``."""
        d = self.noise / self.weights
        a = torch.diagonal(torch.cholesky_inverse(self.factor))
        # K - K A^-1 K = D - D A^-1 D with A = K + D: the posterior variance at the rows.
        posterior = d * (1 - d * a)
        precision = 1 / posterior - self.weights.clamp(max=1) / self.noise
        return 1 / precision.clamp(min=torch.finfo(d.dtype).tiny)

    def variance(self, X):
        """The posterior variance at the rows of ``X`` (per unit scale)."""
        Z = self._standardise(X.to(self.inputs.dtype))
        # In blocks of rows: the (m, rows) cross-kernel and its solve, a few MB each.
        step = max(1, _BLOCK // len(self.inputs))
        explained = torch.cat([
            (torch.linalg.solve_triangular(
                self.factor, spline_kernel(self.inputs, Z[start:start + step]),
                upper=False) ** 2).sum(0)
            for start in range(0, len(Z), step)]) if len(Z) else Z.new_zeros(0)
        return (spline_kernel_diagonal(Z) - explained).clamp(min=0)


def _weighted_moments(X, weights):
    if weights is None:
        return X.mean(0), X.std(0, unbiased=False)
    w = (weights / weights.sum()).to(X)[:, None]
    mean = (w * X).sum(0)
    return mean, ((w * (X - mean) ** 2).sum(0)).sqrt()


def add_residual(var, residual):
    """The latent covariances ``var`` (n, K, K) with each logit's independent residual
    variance ``residual`` (n,) added."""
    eye = torch.eye(var.shape[-1], dtype=var.dtype, device=var.device)
    return var + residual.to(var)[:, None, None] * eye


def select_scale(scales, nll, tolerance=TOLERANCE):
    """The largest scale up to which ``nll`` (one value per scale, ``scales[0] = 0``)
    stays within ``nll[0] (1 + tolerance)``; 0 where ``nll[0]`` is not finite."""
    if not np.isfinite(nll[0]):
        return 0.0
    return float(largest_within(scales, nll, 0, tolerance))
