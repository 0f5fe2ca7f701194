"""Likelihoods: everything that depends on the observation model.

A likelihood works on network outputs ``f`` of shape (n, K) and owns: the
negative log-likelihood (the training loss), the residual and the noise
precision ``Lambda_i = d2 l / df2``, a square root ``R_i`` of that precision
(:meth:`~Likelihood.whiten` maps Jacobians ``J_i`` to ``R_i J_i``, so that
``G = sum_i (R_i J_i)^T (R_i J_i)`` and the singular softmax precision is never
inverted), its predictive in the space of ``y``, the statistics of the data
its part of the evidence needs, and which evidence it has
(:meth:`~Likelihood.evidence`).

A likelihood's own hyperparameters (the Gaussian noise) are an object beside it,
:class:`GaussianNoise` (none: :class:`NoHyperparameters`): the likelihood at a
search's scale ``c``, the evidence's arguments there, their value in the user's
units and where the search of ``c`` starts and stops. Nothing outside this
module and the regressor names the noise.
"""

import math

import torch
import torch.nn.functional as F

from ._curvature import whitened_jacobians
from ._evidence import GaussianProcessEvidence, LaplaceEvidence
from ._links import log_class_probabilities
from ._network import flat_parameters
from ._utils import LOG_2PI, batches, to_tensor


class Likelihood:
    """The protocol; the classification likelihoods use its defaults."""

    def loss(self, f, y, weights=None):
        """``sum_i w_i l(y_i, f_i)``."""
        raise NotImplementedError

    def residual(self, f, y):
        """``r_i = d l / d f_i``, (n, K)."""
        raise NotImplementedError

    def precision(self, f):
        """``Lambda_i = d2 l / d f_i^2``, (n, K, K)."""
        raise NotImplementedError

    def whiten(self, f, J):
        """``R_i J_i`` with ``R_i^T R_i = Lambda_i``, for ``J`` of shape (n, K, ...)."""
        raise NotImplementedError

    def whiten_weighted(self, f, A, weights=None):
        """``sqrt(w_i) R_i A_i``: the whitening of the GP view's linear model under
        sample weights (``A`` the Jacobians or the transformed targets)."""
        out = self.whiten(f, A)
        if weights is None:
            return out
        return out * torch.sqrt(weights).view((-1,) + (1,) * (out.dim() - 1))

    def transformed_targets(self, f, J, mean, y):
        """``y~ = J w* - Lambda^+ r`` (n, K): the GP view's targets (Theorem 1)."""
        return J @ mean - self.solve_precision(f, self.residual(f, y))

    def solve_precision(self, f, residual):
        """``Lambda_i^+ r_i`` for each example (n, K): the step from ``J w*`` to the
        transformed targets, ``y~ = J w* - Lambda^+ r``."""
        return torch.linalg.solve(self.precision(f), residual)

    def log_det_precision(self, f):
        """``log |Lambda_i|`` per example (n,): the volume of the whitening ``u_i = R_i y~_i``
        in the GP view's evidence (a pseudo-determinant where ``Lambda`` is singular)."""
        return torch.logdet(self.precision(f))

    def observed_dim(self, n_outputs):
        """Dimensions of ``y~_i`` the noise constrains: the rank of ``Lambda_i``."""
        return n_outputs

    @torch.no_grad()
    def total_loss(self, module, X, y, weights=None, batch_size=4096):
        """``sum_i w_i l(y_i, f(x_i))`` over all of the data, in batches, as a float."""
        return sum(float(self.loss(module(X[sl]), y[sl], None if weights is None else weights[sl]))
                   for sl in batches(X.shape[0], batch_size))

    def statistics(self, module, X, y, weights, posterior=None):
        """What the evidence of ``posterior`` needs of the data at the trained weights."""
        log_likelihood = -self.total_loss(module, X, y, weights)
        return {"log_likelihood": torch.tensor(log_likelihood, dtype=torch.float64)}

    def curvature_scale(self):
        """The factor on the GGN at other likelihood hyperparameters (none here)."""
        return 1.0

    def log_likelihood(self, statistics):
        """``log p(y | w*)`` at the likelihood's hyperparameters."""
        return statistics["log_likelihood"]

    def evidence(self, posterior, statistics):
        """The evidence of a fit: a callable of the hyperparameters."""
        return LaplaceEvidence(posterior, self, statistics)


class Gaussian(Likelihood):
    """Gaussian likelihood with one noise standard deviation per output."""

    def __init__(self, noise_std):
        self.noise_std = noise_std  # tensor of shape (K,)

    def loss(self, f, y, weights=None):
        sigma = self.noise_std
        per_example = (
            0.5 * ((y - f) / sigma) ** 2 + torch.log(sigma) + 0.5 * LOG_2PI
        ).sum(dim=1)
        return _weighted_sum(per_example, weights)

    def residual(self, f, y):
        return (f - y) / self.noise_std**2

    def precision(self, f):
        n, k = f.shape
        return torch.diag(self.noise_std**-2).expand(n, k, k)

    def whiten(self, f, J):
        shape = (1, -1) + (1,) * (J.dim() - 2)
        return J / self.noise_std.view(shape)

    def log_det_precision(self, f):
        return (-2 * torch.log(self.noise_std.to(f))).sum().expand(f.shape[0])

    def transformed_targets(self, f, J, mean, y):
        """``Lambda^-1 r = f - y``, so ``y~ = y + J w* - f`` (n, K): no division by
        the noise and back."""
        return y + J @ mean.to(J.dtype) - f

    def statistics(self, module, X, y, weights, posterior=None):
        """The per-output weighted residual sum of squares (the likelihood at any
        noise) and, for a posterior with the GP evidence (a full one), the whitened
        transformed targets ``u_i = sqrt(w_i) y~_i / sigma`` through ``b = M^T u`` and
        ``|u|^2``: the GP evidence at any (delta, noise scale) and the GP mean. Only
        the latter need a pass over the Jacobians; the others take a forward pass."""
        if posterior is not None and not _has_gp_evidence(posterior):
            return self._residual_statistics(module, X, y, weights)
        mean = flat_parameters(module).to(torch.float64)
        totals = {"b": 0.0, "sq_norm": 0.0, "rss": 0.0, "sum_weights": 0.0}
        for sl, f, J, M in whitened_jacobians(module, self, X, weights):
            w = None if weights is None else weights[sl]
            u = self.whiten_weighted(f, self.transformed_targets(f, J, mean, y[sl]), w)
            residual2 = (y[sl] - f) ** 2
            if w is not None:
                residual2 = residual2 * w[:, None]
            Mf = M.reshape(-1, M.shape[-1]).to(torch.float64)
            uf = u.reshape(-1).to(torch.float64)
            for key, value in (("b", Mf.T @ uf), ("sq_norm", uf @ uf),
                               ("rss", residual2.sum(0).to(torch.float64)),
                               ("sum_weights", float(y[sl].shape[0] if w is None else w.sum()))):
                totals[key] = totals[key] + value
        return totals

    @torch.no_grad()
    def _residual_statistics(self, module, X, y, weights):
        totals = {"rss": 0.0, "sum_weights": 0.0}
        for sl in batches(X.shape[0], 4096):
            w = None if weights is None else weights[sl]
            residual2 = (y[sl] - module(X[sl])) ** 2
            if w is not None:
                residual2 = residual2 * w[:, None]
            totals["rss"] = totals["rss"] + residual2.sum(0).to(torch.float64)
            totals["sum_weights"] += float(y[sl].shape[0] if w is None else w.sum())
        return totals

    def rescaled(self, noise_std):
        """The common factor ``c`` with ``noise_std = c * self.noise_std``, or a
        ValueError: other changes need the per-output curvature again."""
        ratio = torch.as_tensor(noise_std, dtype=torch.float64) / self.noise_std.to(
            torch.float64).cpu()
        if not torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-12, atol=0):
            raise ValueError(
                "noise_std must be proportional to the fitted noise_std_ to re-evaluate "
                "the evidence without refitting; refit with the new noise_std instead."
            )
        return float(ratio[0])

    def curvature_scale(self, noise_std=None):
        """``1 / c^2`` for noise stds ``c`` times the fitted ones: the GGN's factor."""
        if noise_std is None:
            return 1.0
        try:
            scale = self.rescaled(noise_std) ** -2
        except (OverflowError, ZeroDivisionError):
            scale = math.inf
        if not math.isfinite(scale) or scale == 0:
            raise ValueError(
                "noise_std is too far from the fitted noise_std_ to re-evaluate the "
                "evidence in float64; refit with the new noise_std instead."
            )
        return scale

    def log_likelihood(self, statistics, noise_std=None):
        """``sum_i w_i log N(y_i | f_i, diag(sigma^2))`` from the weighted RSS."""
        rss, n = statistics["rss"], statistics["sum_weights"]
        sigma = self._sigma(noise_std, rss)
        return -((rss / (2 * sigma**2)).sum()
                 + n * torch.log(sigma).sum() + 0.5 * n * sigma.numel() * LOG_2PI)

    def log_noise_volume(self, statistics, noise_std=None):
        """``sum_i w_i sum_k log sigma_k``: the noise's share of the GP evidence."""
        sigma = self._sigma(noise_std, statistics["rss"])
        return statistics["sum_weights"] * float(torch.log(sigma).sum())

    def _sigma(self, noise_std, like):
        sigma = self.noise_std if noise_std is None else noise_std
        return torch.as_tensor(sigma, dtype=torch.float64, device=like.device)

    def evidence(self, posterior, statistics):
        # A full posterior's spectrum gives the exact GP evidence of the transformed
        # targets; K-FAC and diagonal ones have only the Laplace form.
        if _has_gp_evidence(posterior):
            return GaussianProcessEvidence(posterior, self, statistics)
        return LaplaceEvidence(posterior, self, statistics)


class NoHyperparameters:
    """A likelihood without hyperparameters of its own: the evidence searches
    ``delta`` alone."""

    searched = False
    search_start = 0.0
    floor = None

    def __init__(self, likelihood):
        self.likelihood = likelihood

    def likelihood_at(self, scale):
        return self.likelihood

    def evidence_arguments(self, scale):
        return {}

    def reported(self, scale):
        return {}


class GaussianNoise:
    """``noise_std`` as the evidence sees it: a base noise per target in the units
    the network is trained in (``noise_std / std`` of the target scaling, or y's
    own spread for 'auto') times the search's scale ``c``.

    ``searched`` says whether ``noise_std='auto'``; ``floor`` is the smallest ``c``
    ('auto' keeps ``sigma`` above ``10**-2.5`` times y's std: a noise variance of
    1e-5 of y's, the lower bound of scikit-learn's WhiteKernel; on noise-free
    targets the evidence grows without bound as ``sigma -> 0``, and training at
    ``delta sigma^2 ~ 1e-8`` hit max_iter without converging).
    ``search_start`` is the log of ``delta c^2`` where the search starts:
    strongly regularised for normalised targets (log 10), where training is
    fast and warm starts towards less regularisation are short (on diabetes and
    red wine, 2-5x fewer iterations than from 1).
    """

    floor = 10 ** -2.5

    def __init__(self, base, targets, searched, likelihood):
        self.base, self.targets, self.searched = base, targets, searched
        self.likelihood = likelihood
        self.search_start = math.log(10.0) if searched and targets.normalized else 0.0

    @classmethod
    def build(cls, base, targets, searched, dtype, device):
        return cls(base, targets, searched, Gaussian(to_tensor(base * 1.0, dtype, device)))

    def likelihood_at(self, scale):
        """The Gaussian likelihood with noise ``scale`` times the base noise."""
        like = self.likelihood.noise_std
        return Gaussian(to_tensor(self.base * scale, like.dtype, like.device))

    def evidence_arguments(self, scale):
        return {"noise_std": self.base * scale}

    def reported(self, scale):
        """``noise_std`` in the units of y (a float for one target)."""
        noise = self.base * scale * self.targets.std
        return {"noise_std": float(noise[0]) if noise.size == 1 else noise}

    def floor_warning(self):
        return (f"The evidence put noise_std at its lower bound, {self.floor:.3g} times "
                "the standard deviation of y: the targets look noise-free. Set noise_std "
                "to the noise you expect if that is so.")


class _Classification(Likelihood):
    """What the Bernoulli and the categorical share: the class-probability predictive."""

    binary = False

    def log_class_probabilities(self, f, var, link, **options):
        """Log class probabilities (n, n_classes) from the logits' Gaussian."""
        if self.binary:  # a sigmoid is the softmax of the logits (0, f)
            f, var = _with_zero_logit(f, var)
        return log_class_probabilities(f, var, link, binary=self.binary, **options)


class Bernoulli(_Classification):
    """Bernoulli likelihood on one logit, ``p = sigmoid(f)``; targets in {0, 1}."""

    binary = True

    def loss(self, f, y, weights=None):
        per_example = F.binary_cross_entropy_with_logits(f[:, 0], y, reduction="none")
        return _weighted_sum(per_example, weights)

    def residual(self, f, y):
        return torch.sigmoid(f) - y[:, None]

    def precision(self, f):
        p = torch.sigmoid(f)
        return (p * (1 - p))[:, :, None]

    def whiten(self, f, J):
        p = torch.sigmoid(f)
        shape = tuple(p.shape) + (1,) * (J.dim() - 2)
        return J * torch.sqrt(p * (1 - p)).view(shape)

    def log_det_precision(self, f):
        # log p (1 - p) without the cancellation of 1 - p for large logits.
        return (F.logsigmoid(f) + F.logsigmoid(-f))[:, 0]


class Categorical(_Classification):
    """Categorical likelihood on K logits, ``p = softmax(f)``; targets are class indices."""

    def loss(self, f, y, weights=None):
        per_example = F.cross_entropy(f, y, reduction="none")
        return _weighted_sum(per_example, weights)

    def residual(self, f, y):
        return torch.softmax(f, dim=1) - F.one_hot(y, f.shape[1]).to(f.dtype)

    def precision(self, f):
        p = torch.softmax(f, dim=1)
        return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]

    def solve_precision(self, f, residual):
        # diag(p) - p p^T is singular along 1, where r = p - onehot(y) has no component,
        # and a pseudo-inverse cannot tell that null direction from those of small p in
        # float64. diag(1/p) r solves Lambda x = r exactly; less its mean it is the
        # solution orthogonal to 1, Lambda^+ r.
        x = residual / torch.softmax(f, dim=1)
        return x - x.mean(dim=1, keepdim=True)

    def whiten(self, f, J):
        # R = diag(sqrt p) - sqrt(p) p^T satisfies R^T R = diag(p) - p p^T.
        p = torch.softmax(f, dim=1)
        shape = tuple(p.shape) + (1,) * (J.dim() - 2)
        mixed = (p.view(shape) * J).sum(dim=1, keepdim=True)
        return torch.sqrt(p).view(shape) * (J - mixed)

    def log_det_precision(self, f):
        # diag(p) - p p^T is singular along 1; on its range (1^perp) its determinant,
        # the product of the other K - 1 eigenvalues, is K prod_k p_k.
        return math.log(f.shape[1]) + torch.log_softmax(f, dim=1).sum(dim=1)

    def observed_dim(self, n_outputs):
        return n_outputs - 1


def _has_gp_evidence(posterior):
    return hasattr(posterior, "spectral_coordinates")


def _with_zero_logit(f, var):
    """``(0, f)`` and the covariance with a zero row and column for the fixed logit."""
    n = f.shape[0]
    f2 = torch.cat([torch.zeros_like(f), f], dim=1)
    var2 = torch.zeros(n, 2, 2, dtype=var.dtype, device=var.device)
    var2[:, 1, 1] = var[:, 0, 0]
    return f2, var2


def _weighted_sum(per_example, weights):
    if weights is None:
        return per_example.sum()
    return (per_example * weights).sum()
