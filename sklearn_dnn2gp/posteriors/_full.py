"""The full posterior: one spectral factorisation of ``s G + delta I``.

``G = M^T M`` is a GGN (or a VI curvature estimate) and ``s`` a curvature scale
(``1 / c^2`` when every noise std of a regression is multiplied by ``c``).
The full posterior keeps one spectral factorisation, in weight space (of G,
P x P) or in function space (the SVD of the whitened Jacobian ``M``, n x P,
with ``n = N K`` rows), whichever is smaller; changing ``delta`` or ``s`` then
costs O(P) or O(n) and no new factorisation. Both spaces give the same numbers
(Woodbury) and are tested against each other.
"""

import math

import torch

from .._curvature import ggn, whitened_jacobians
from .._network import flat_parameters
from ._gaussian import Gaussian, add_to_diagonal, register_posterior

# Cholesky factors a full posterior keeps, at as many (delta, s) points.
MAX_FACTORS = 3


class FullPosterior(Gaussian):
    """Full-covariance Gaussian posterior.

    Use :meth:`from_ggn` (weight space) or :meth:`from_whitened_jacobian`
    (function space) rather than the constructor. In weight space the
    posterior holds ``G`` and factorises it on demand: a Cholesky factor of
    ``s G + delta I`` at its own hyperparameters, and the eigendecomposition
    only once something needs the spectrum (the evidence at other
    hyperparameters), after which the spectrum serves everything. In function
    space it holds the ``n <= P`` right singular vectors ``U`` of the whitened
    Jacobian and their eigenvalues. Every variance is written as a sum of
    squares (``|L^-1 J^T|^2``, or ``|J U D^-1/2|^2 + |J (I - U U^T)|^2 /
    delta``), so none can come out negative, whatever ``delta`` and the noise
    scale.
    """

    def __init__(self, mean, prior_precision, eigvals=None, eigvecs=None, space="weight",
                 curvature_scale=1.0, ggn=None, jacobian=None):
        self.mean = mean
        self.prior_precision = float(prior_precision)
        self.space = space
        self.curvature_scale = float(curvature_scale)
        # Shared by every copy at other hyperparameters or another mean: the GGN, its
        # spectrum once computed, and the Cholesky factor at one (delta, s).
        self._cache = {"ggn": ggn}
        if jacobian is not None:
            # Function space, not yet factorised: the whitened Jacobian M.
            self._cache["jacobian"] = jacobian
        if eigvals is not None:
            # (P, r) eigenvectors: r = P in weight space, r = n in function space.
            self._cache["spectrum"] = (eigvals, eigvecs)

    @classmethod
    def from_data(cls, module, likelihood, X, weights, prior_precision):
        """The Laplace-GGN posterior at ``module``'s weights, in the smaller space:
        function space (the SVD of the N K x P whitened Jacobian) when N K < P."""
        mean = flat_parameters(module).to(torch.float64)
        with torch.no_grad():
            n_outputs = module(X[:1]).shape[1]
        if X.shape[0] * n_outputs < mean.numel():
            M = torch.cat([M.reshape(-1, mean.numel())
                           for *_, M in whitened_jacobians(module, likelihood, X, weights)])
            return cls.from_whitened_jacobian(mean, M, prior_precision)
        return cls.from_ggn(mean, ggn(module, likelihood, X, weights, "full"), prior_precision)

    @classmethod
    def from_ggn(cls, mean, G, prior_precision):
        """From the P x P curvature ``G``. Nothing is factorised yet: a Cholesky factor
        serves the predictive and the evidence at these hyperparameters, and the
        eigendecomposition (several times dearer) is computed only when a spectrum is
        needed, for the evidence at other hyperparameters."""
        return cls(mean, prior_precision, space="weight", ggn=G.to(torch.float64))

    @classmethod
    def from_whitened_jacobian(cls, mean, M, prior_precision):
        """From ``M`` (n, P) with ``G = M^T M``. Nothing is factorised yet: the
        evidence at a few hyperparameters needs only ``log|s M M^T + delta I_n|``
        (a Cholesky factor of the n x n Gram matrix, :meth:`log_det_ratio`), and
        the SVD (several times dearer) is computed when the spectrum or the
        singular vectors are needed (:func:`_function_space_spectrum`)."""
        return cls(mean, prior_precision, space="function", jacobian=M.to(torch.float64))

    def rescaled(self, root):
        """The posterior of ``w / root`` (elementwise): curvature ``root G root``, the
        same ``delta``. (See :class:`ScaledPosterior`.)"""
        root = root.to(torch.float64)
        mean = self.mean / root
        if self.space == "function":
            # G = M^T M with M = diag(sqrt(lambda)) U^T, the same n rows.
            M = torch.sqrt(self.eigvals)[:, None] * self.eigvecs.T
            new = self.from_whitened_jacobian(mean, M * root, self.prior_precision)
        else:
            G = self._cache.get("ggn")
            if G is None:
                U = self.eigvecs
                G = (U * self.eigvals) @ U.T
            new = self.from_ggn(mean, root[:, None] * G * root[None, :], self.prior_precision)
        return new._replace(curvature_scale=self.curvature_scale)

    def _factor_key(self):
        return id(self._cache)

    # ------------------------------------------------------------ factorisations
    @property
    def has_spectrum(self):
        return "spectrum" in self._cache

    def _spectrum(self):
        if not self.has_spectrum:
            if self.space == "function":
                self._cache["spectrum"] = _function_space_spectrum(self._cache["jacobian"])
                self._cache["jacobian"] = None
            else:
                eigvals, eigvecs = torch.linalg.eigh(self._cache["ggn"])
                self._cache["spectrum"] = (eigvals.clamp_min(0), eigvecs)
                # G = V diag(lambda) V^T from now on.
                self._cache["ggn"] = None
        return self._cache["spectrum"]

    def _factor(self, name, matrix):
        """The lower Cholesky factor of ``s A + delta I`` for ``A = matrix()``, kept in
        the cache ``name`` per ``(delta, s)``, at most ``MAX_FACTORS`` of them; None
        once a spectrum exists, beyond them, or where the factorisation fails."""
        key = (self.prior_precision, self.curvature_scale)
        factors = self._cache.setdefault(name, {})
        if key in factors:
            return factors[key]
        if self.has_spectrum or len(factors) >= MAX_FACTORS:
            return None
        A = self.curvature_scale * matrix()
        A.diagonal().add_(self.prior_precision)
        factor, info = torch.linalg.cholesky_ex(A)
        if int(info) != 0:
            return None
        factors[key] = factor
        return factor

    def _gram_factor(self):
        """The Cholesky factor of ``s M M^T + delta I_n`` (function space, while the
        whitened Jacobian is kept), or None where the spectrum serves instead."""
        def gram():
            if "gram" not in self._cache:
                M = self._cache["jacobian"]
                self._cache["gram"] = M @ M.T
            return self._cache["gram"]
        return self._factor("gram_factors", gram)

    def _woodbury(self):
        """The Gram factor and the whitened Jacobian ``M`` that Woodbury's identity
        needs (function space, while ``M`` is kept), or None."""
        M = self._cache.get("jacobian") if self.space == "function" else None
        K = None if M is None else self._gram_factor()
        return None if K is None else (K, M)

    def cholesky(self):
        """The lower Cholesky factor of ``s G + delta I``, or None where the spectrum
        serves instead.

        The first factor computed (at the fitted hyperparameters) is kept, so the
        fitted posterior answers every call by the same arithmetic even after a
        spectrum exists. Up to ``MAX_FACTORS - 1`` further points get a factor of
        their own (a derivative by finite differences needs two, and a factor
        costs a tenth of the eigendecomposition); beyond them, or once a spectrum
        exists, one spectrum serves every other point at O(P) each. A
        factorisation that fails (``s G + delta I`` not positive definite in
        float64, e.g. ``delta`` ~ 0 with a singular ``G``) hands over to the
        spectrum."""
        if self.space == "function":
            self._spectrum()
            return None
        factor = self._factor("cholesky", lambda: self._cache["ggn"])
        if factor is None:
            self._spectrum()
        return factor

    @property
    def eigvals(self):
        return self._spectrum()[0]

    @property
    def eigvecs(self):
        return self._spectrum()[1]

    @property
    def curvature_eigenvalues(self):
        """Eigenvalues of ``G`` along :attr:`eigvecs` (P of them, or n in function space)."""
        return self.eigvals

    @property
    def spectrum(self):
        """Eigenvalues of ``s G`` (the nonzero ones, padded with zeros)."""
        return self.curvature_scale * self.eigvals

    def _inverse_roots(self):
        """``(s lambda + delta)^-1/2`` per kept direction."""
        return torch.rsqrt(self.curvature_scale * self.eigvals + self.prior_precision)

    # ------------------------------------------------------------------ methods
    def spectral_coordinates(self, b):
        """Coordinates of ``b`` (a P-vector in the row space of M) in G's eigenbasis."""
        return self.eigvecs.T @ b.to(torch.float64)

    def log_det_ratio(self):
        """``log|s G + delta I| - P log delta``."""
        if self.space == "function":
            # Sylvester: log|s M^T M + delta I_P| = log|s M M^T + delta I_n| + (P - n)
            # log delta, from the Gram matrix's factor while it is kept.
            K = self._gram_factor()
            if K is not None:
                return (2 * torch.log(torch.diagonal(K)).sum()
                        - K.shape[0] * math.log(self.prior_precision))
        L = self.cholesky()
        if L is None:
            return super().log_det_ratio()
        return (2 * torch.log(torch.diagonal(L)).sum()
                - self.n_parameters * math.log(self.prior_precision))

    def functional_variance(self, J):
        """``J_i Sigma J_i^T`` for Jacobians ``J`` of shape (b, K, P): (b, K, K)."""
        J = J.to(torch.float64)
        woodbury = self._woodbury()
        if woodbury is not None:
            # Woodbury with the Gram factor the evidence already holds, as in
            # covariance_product: J Sigma J^T = (J J^T - s T^T T) / delta with
            # T = K^-1 M J^T. O(n P b K), where the SVD it spares cost O(n^2 P) (on
            # breast_cancer most of the temperature's choice).
            K, M = woodbury
            T = torch.linalg.solve_triangular(K, M @ J.reshape(-1, J.shape[-1]).T,
                                              upper=False)
            T = T.T.reshape(J.shape[0], J.shape[1], -1)
            return ((J @ J.transpose(1, 2) - self.curvature_scale * T @ T.transpose(1, 2))
                    / self.prior_precision)
        L = self.cholesky()
        if L is not None:
            # Sigma = L^-T L^-1: each variance is |L^-1 J^T|^2, a sum of squares.
            T = torch.linalg.solve_triangular(L, J.reshape(-1, J.shape[-1]).T, upper=False)
            T = T.T.reshape(J.shape)
            return T @ T.transpose(1, 2)
        JU = J @ self.eigvecs
        T = JU * self._inverse_roots()
        variance = T @ T.transpose(1, 2)
        if self.space == "function":
            # Directions outside the data's row space keep the prior's 1 / delta.
            outside = J - JU @ self.eigvecs.T
            variance = variance + outside @ outside.transpose(1, 2) / self.prior_precision
        return variance

    def functional_covariance(self, J):
        """The joint ``J Sigma J^T`` over all rows of ``J`` (n, K, P): (n K, n K)."""
        Jf = J.reshape(-1, J.shape[-1]).to(torch.float64)
        return self.functional_variance(Jf[None])[0]

    def covariance(self):
        """The dense P x P covariance."""
        L = self.cholesky()
        if L is not None:
            return torch.cholesky_inverse(L)
        eye = torch.eye(self.n_parameters, dtype=torch.float64, device=self.mean.device)
        return self.functional_variance(eye[None])[0]

    def covariance_product(self, v):
        """``Sigma v`` for a P-vector ``v``, without forming ``Sigma``."""
        v = v.to(torch.float64)
        woodbury = self._woodbury()
        if woodbury is not None:
            # Woodbury: (s M^T M + delta I)^-1 v = (v - s M^T (s M M^T + delta I)^-1 M v)
            # / delta, with the Gram factor the evidence already holds.
            K, M = woodbury
            inner = torch.cholesky_solve((M @ v)[:, None], K)[:, 0]
            return (v - self.curvature_scale * (M.T @ inner)) / self.prior_precision
        L = self.cholesky()
        if L is not None:
            return torch.cholesky_solve(v[:, None], L)[:, 0]
        U = self.eigvecs
        coords = U.T @ v
        inside = U @ (coords * self._inverse_roots() ** 2)
        if self.space == "weight":
            return inside
        return inside + (v - U @ coords) / self.prior_precision

    def precision(self):
        """The dense P x P precision ``s G + delta I``."""
        eye = torch.eye(self.n_parameters, dtype=torch.float64, device=self.mean.device)
        G = self._cache.get("ggn")
        if G is not None:
            return self.curvature_scale * G + self.prior_precision * eye
        U = self.eigvecs
        return (U * self.spectrum) @ U.T + self.prior_precision * eye

    def sample(self, n_samples, generator):
        """Draw ``n_samples`` weight vectors, shape (n_samples, P)."""
        eps = torch.randn(n_samples, self.n_parameters, dtype=torch.float64,
                          generator=generator).to(self.mean.device)
        L = self.cholesky()
        if L is not None:
            z = torch.linalg.solve_triangular(L.T, eps.T, upper=True).T
            return self.mean.to(torch.float64) + z
        U = self.eigvecs
        coords = eps @ U
        if self.space == "weight":
            z = (coords * self._inverse_roots()) @ U.T
        else:
            shrink = self._inverse_roots() - self.prior_precision**-0.5
            z = eps * self.prior_precision**-0.5 + (coords * shrink) @ U.T
        return self.mean.to(torch.float64) + z


    @classmethod
    def data_curvature(cls, module, likelihood, X, weights):
        return ggn(module, likelihood, X, weights, "full")

    @classmethod
    def constant_curvature(cls, module, n_parameters, total_weight, value, device=None):
        return add_to_diagonal(torch.zeros((n_parameters, n_parameters), dtype=torch.float64,
                                           device=device), float(value))

    @classmethod
    def from_curvature(cls, mean, curvature, prior_precision):
        return cls.from_ggn(mean, curvature, prior_precision)


register_posterior("full", FullPosterior)


def _function_space_spectrum(M):
    """``(eigenvalues of G, U)`` from the whitened Jacobian ``M`` (n, P): its SVD,
    which gives ``U`` to round-off orthonormality, where the Gram matrix ``M M^T``
    would not for small singular values."""
    try:
        _, singular, Vh = torch.linalg.svd(M, full_matrices=False)
    except RuntimeError:  # gesdd can fail to converge; the Gram route cannot
        eigvals, V = torch.linalg.eigh(M @ M.T)
        keep = eigvals > eigvals.max() * M.shape[0] * torch.finfo(M.dtype).eps
        U = torch.linalg.qr(M.T @ V[:, keep]).Q
        eigvals, W = torch.linalg.eigh(U.T @ (M.T @ (M @ U)))
        return eigvals.clamp_min(0), U @ W
    return singular**2, Vh.T
