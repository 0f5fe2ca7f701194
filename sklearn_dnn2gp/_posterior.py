"""Gaussian weight posteriors ``N(mean, (s G + delta I)^-1)``.

``G = M^T M`` is a GGN (or a VI curvature estimate) and ``s`` a curvature scale
(``1 / c^2`` when every noise std of a regression is multiplied by ``c``).
The full posterior keeps one eigendecomposition, in weight space (of G,
P x P) or in function space (of ``M M^T``, n x n, with ``n = N K`` rows),
whichever is smaller; changing ``delta`` or ``s`` then costs O(P) or O(n) and
no new factorisation. Both spaces give the same numbers (Woodbury) and are
tested against each other.
"""

import copy

import torch


class _Gaussian:
    """What both posteriors share: their size and cheap copies with other
    hyperparameters or another mean (the factorisation is shared, not copied)."""

    @property
    def n_parameters(self):
        return self.mean.numel()

    def _replace(self, **changes):
        new = copy.copy(self)
        new.__dict__.update(changes)
        return new

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


class FullPosterior(_Gaussian):
    """Full-covariance Gaussian posterior.

    Use :meth:`from_ggn` (weight space) or :meth:`from_whitened_jacobian`
    (function space) rather than the constructor.
    """

    def __init__(self, mean, prior_precision, eigvals, eigvecs, space,
                 whitened_jacobian=None, curvature_scale=1.0):
        self.mean = mean
        self.prior_precision = float(prior_precision)
        self.eigvals = eigvals
        self.eigvecs = eigvecs
        self.space = space
        self.whitened_jacobian = whitened_jacobian
        self.curvature_scale = float(curvature_scale)

    @classmethod
    def from_ggn(cls, mean, G, prior_precision):
        eigvals, eigvecs = torch.linalg.eigh(G.to(torch.float64))
        return cls(mean, prior_precision, eigvals.clamp_min(0), eigvecs, "weight")

    @classmethod
    def from_whitened_jacobian(cls, mean, M, prior_precision):
        M = M.to(torch.float64)
        eigvals, eigvecs = torch.linalg.eigh(M @ M.T)
        return cls(mean, prior_precision, eigvals.clamp_min(0), eigvecs, "function",
                   whitened_jacobian=M)

    @property
    def spectrum(self):
        """Eigenvalues of ``s G`` (the nonzero ones, padded with zeros)."""
        return self.curvature_scale * self.eigvals

    def spectral_coordinates(self, b):
        """Coordinates of ``b`` (a P-vector in the row space of M) in G's eigenbasis."""
        b = b.to(torch.float64)
        if self.space == "weight":
            return self.eigvecs.T @ b
        # Right singular vectors of M are M^T V / sqrt(lambda); zero modes carry nothing.
        root = torch.sqrt(self.eigvals)
        proj = self.eigvecs.T @ (self.whitened_jacobian @ b)
        return torch.where(root > 0, proj / torch.where(root > 0, root, 1), 0)

    def log_det_ratio(self):
        """``log|s G + delta I| - P log delta``."""
        return torch.log1p(self.spectrum / self.prior_precision).sum()

    def functional_variance(self, J):
        """``J_i Sigma J_i^T`` for Jacobians ``J`` of shape (b, K, P): (b, K, K)."""
        J = J.to(torch.float64)
        delta, s = self.prior_precision, self.curvature_scale
        if self.space == "weight":
            T = (J @ self.eigvecs) / torch.sqrt(s * self.eigvals + delta)
            return T @ T.transpose(1, 2)
        T = J @ (self.whitened_jacobian.T @ self.eigvecs)
        T_scaled = T * torch.sqrt(s / (s * self.eigvals + delta))
        return (J @ J.transpose(1, 2) - T_scaled @ T_scaled.transpose(1, 2)) / delta

    def functional_covariance(self, J):
        """The joint ``J Sigma J^T`` over all rows of ``J`` (n, K, P): (n K, n K)."""
        Jf = J.reshape(-1, J.shape[-1]).to(torch.float64)
        return self.functional_variance(Jf[None])[0]

    def covariance(self):
        """The dense P x P covariance."""
        delta, s = self.prior_precision, self.curvature_scale
        if self.space == "weight":
            return (self.eigvecs / (s * self.eigvals + delta)) @ self.eigvecs.T
        P = self.n_parameters
        eye = torch.eye(P, dtype=torch.float64, device=self.mean.device)
        return self.functional_variance(eye[None])[0]

    def covariance_product(self, v):
        """``Sigma v`` for a P-vector ``v``, without forming ``Sigma``."""
        v = v.to(torch.float64)
        delta, s = self.prior_precision, self.curvature_scale
        if self.space == "weight":
            return self.eigvecs @ ((self.eigvecs.T @ v) / (s * self.eigvals + delta))
        # Woodbury in the row space of M; the complement keeps the prior's 1 / delta.
        M = self.whitened_jacobian
        coords = (self.eigvecs.T @ (M @ v)) * (s / (s * self.eigvals + delta))
        return (v - M.T @ (self.eigvecs @ coords)) / delta

    def precision(self):
        """The dense P x P precision ``s G + delta I``."""
        delta, s = self.prior_precision, self.curvature_scale
        if self.space == "weight":
            return (self.eigvecs * (s * self.eigvals)) @ self.eigvecs.T + delta * torch.eye(
                self.n_parameters, dtype=torch.float64, device=self.mean.device)
        M = self.whitened_jacobian
        return s * (M.T @ M) + delta * torch.eye(
            self.n_parameters, dtype=torch.float64, device=self.mean.device)

    def sample(self, n_samples, generator):
        """Draw ``n_samples`` weight vectors, shape (n_samples, P)."""
        delta, s = self.prior_precision, self.curvature_scale
        eps = torch.randn(n_samples, self.n_parameters, dtype=torch.float64,
                          generator=generator).to(self.mean.device)
        if self.space == "weight":
            z = (eps @ self.eigvecs) / torch.sqrt(s * self.eigvals + delta)
            return self.mean.to(torch.float64) + z @ self.eigvecs.T
        root = torch.sqrt(self.eigvals)
        keep = root > 0
        Q = (self.whitened_jacobian.T @ self.eigvecs[:, keep]) / root[keep]
        shrink = torch.rsqrt(s * self.eigvals[keep] + delta) - delta**-0.5
        z = eps * delta**-0.5 + ((eps @ Q) * shrink) @ Q.T
        return self.mean.to(torch.float64) + z


class DiagPosterior(_Gaussian):
    """Diagonal Gaussian posterior ``N(mean, diag(s g + delta)^-1)``."""

    space = "weight"

    def __init__(self, mean, prior_precision, diagonal, curvature_scale=1.0):
        self.mean = mean
        self.prior_precision = float(prior_precision)
        self.diagonal = diagonal.to(torch.float64)
        self.curvature_scale = float(curvature_scale)

    @property
    def spectrum(self):
        return self.curvature_scale * self.diagonal

    def precision(self):
        """The diagonal of the precision, ``s g + delta`` (a P-vector)."""
        return self.curvature_scale * self.diagonal + self.prior_precision

    def variances(self):
        return 1.0 / self.precision()

    def covariance_product(self, v):
        return v.to(torch.float64) * self.variances()

    def log_det_ratio(self):
        return torch.log1p(self.spectrum / self.prior_precision).sum()

    def functional_variance(self, J):
        J = J.to(torch.float64)
        return (J * self.variances()) @ J.transpose(1, 2)

    def functional_covariance(self, J):
        Jf = J.reshape(-1, J.shape[-1]).to(torch.float64)
        return (Jf * self.variances()) @ Jf.T

    def covariance(self):
        return torch.diag(self.variances())

    def sample(self, n_samples, generator):
        eps = torch.randn(n_samples, self.n_parameters, dtype=torch.float64,
                          generator=generator).to(self.mean.device)
        return self.mean.to(torch.float64) + eps * torch.sqrt(self.variances())


def from_curvature(mean, curvature, prior_precision):
    """``N(mean, (S + delta I)^-1)`` for a curvature ``S`` given as a P-vector
    (its diagonal: a :class:`DiagPosterior`) or a P x P matrix (a :class:`FullPosterior`)."""
    if curvature.dim() == 1:
        return DiagPosterior(mean, prior_precision, curvature)
    return FullPosterior.from_ggn(mean, curvature, prior_precision)


def add_to_diagonal(curvature, value):
    """``S + value I`` for ``S`` given as its diagonal (P,) or as a P x P matrix."""
    if curvature.dim() == 1:
        return curvature + value
    return curvature + value * torch.eye(curvature.shape[0], dtype=curvature.dtype,
                                         device=curvature.device)
