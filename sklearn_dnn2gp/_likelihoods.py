"""Likelihoods: negative log-likelihood, residual, noise precision and its square root.

Each likelihood works on network outputs ``f`` of shape (n, K). The noise
precision ``Lambda_i = d2 l / df2`` is never inverted; instead every consumer
uses a square root ``R_i`` with ``Lambda_i = R_i^T R_i`` through
:meth:`whiten`, which maps per-example Jacobians ``J_i`` (K x P) to
``R_i J_i``. Then ``G = sum_i (R_i J_i)^T (R_i J_i)`` in weight space and
``K = (R J)(R J)^T`` in function space, which stays stable for the singular
softmax precision.
"""

import math

import torch
import torch.nn.functional as F

_LOG_2PI = math.log(2 * math.pi)


class Gaussian:
    """Gaussian likelihood with one noise standard deviation per output."""

    def __init__(self, noise_std):
        self.noise_std = noise_std  # tensor of shape (K,)

    def loss(self, f, y, weights=None):
        sigma = self.noise_std
        per_example = (
            0.5 * ((y - f) / sigma) ** 2 + torch.log(sigma) + 0.5 * _LOG_2PI
        ).sum(dim=1)
        return _weighted_sum(per_example, weights)

    def mean(self, f):
        return f

    def residual(self, f, y):
        return (f - y) / self.noise_std**2

    def precision(self, f):
        n, k = f.shape
        return torch.diag(self.noise_std**-2).expand(n, k, k)

    def whiten(self, f, J):
        shape = (1, -1) + (1,) * (J.dim() - 2)
        return J / self.noise_std.view(shape)


class Bernoulli:
    """Bernoulli likelihood on one logit, ``p = sigmoid(f)``; targets in {0, 1}."""

    def loss(self, f, y, weights=None):
        per_example = F.binary_cross_entropy_with_logits(f[:, 0], y, reduction="none")
        return _weighted_sum(per_example, weights)

    def mean(self, f):
        return torch.sigmoid(f)

    def residual(self, f, y):
        return torch.sigmoid(f) - y[:, None]

    def precision(self, f):
        p = torch.sigmoid(f)
        return (p * (1 - p))[:, :, None]

    def whiten(self, f, J):
        p = torch.sigmoid(f)
        shape = tuple(p.shape) + (1,) * (J.dim() - 2)
        return J * torch.sqrt(p * (1 - p)).view(shape)


class Categorical:
    """Categorical likelihood on K logits, ``p = softmax(f)``; targets are class indices."""

    def loss(self, f, y, weights=None):
        per_example = F.cross_entropy(f, y, reduction="none")
        return _weighted_sum(per_example, weights)

    def mean(self, f):
        return torch.softmax(f, dim=1)

    def residual(self, f, y):
        return torch.softmax(f, dim=1) - F.one_hot(y, f.shape[1]).to(f.dtype)

    def precision(self, f):
        p = torch.softmax(f, dim=1)
        return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]

    def whiten(self, f, J):
        # R = diag(sqrt p) - sqrt(p) p^T satisfies R^T R = diag(p) - p p^T.
        p = torch.softmax(f, dim=1)
        shape = tuple(p.shape) + (1,) * (J.dim() - 2)
        mixed = (p.view(shape) * J).sum(dim=1, keepdim=True)
        return torch.sqrt(p).view(shape) * (J - mixed)


def _weighted_sum(per_example, weights):
    if weights is None:
        return per_example.sum()
    return (per_example * weights).sum()
