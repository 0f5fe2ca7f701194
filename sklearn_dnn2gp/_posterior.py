"""Gaussian weight posteriors ``N(mean, (s G + delta I)^-1)``.

``G = M^T M`` is a GGN (or a VI curvature estimate) and ``s`` a curvature scale
(``1 / c^2`` when every noise std of a regression is multiplied by ``c``).
The full posterior keeps one spectral factorisation, in weight space (of G,
P x P) or in function space (the SVD of the whitened Jacobian ``M``, n x P,
with ``n = N K`` rows), whichever is smaller; changing ``delta`` or ``s`` then
costs O(P) or O(n) and no new factorisation. Both spaces give the same numbers
(Woodbury) and are tested against each other.
"""

import copy
import math

import torch

from ._curvature import (
    _module_order,
    ggn,
    kfac_factors,
    mlp_structure_for_kron,
    whitened_jacobians,
)
from ._network import flat_parameters


class _Gaussian:
    """What the full, diagonal and K-FAC posteriors share: their size and cheap copies
    with other hyperparameters or another mean (the factorisation is shared, not
    copied)."""

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


class FullPosterior(_Gaussian):
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
                 curvature_scale=1.0, ggn=None):
        self.mean = mean
        self.prior_precision = float(prior_precision)
        self.space = space
        self.curvature_scale = float(curvature_scale)
        # Shared by every copy at other hyperparameters or another mean: the GGN, its
        # spectrum once computed, and the Cholesky factor at one (delta, s).
        self._cache = {"ggn": ggn}
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
        """From ``M`` (n, P) with ``G = M^T M``; its SVD gives ``U`` to round-off
        orthonormality, which the Gram matrix ``M M^T`` would not for small
        singular values."""
        M = M.to(torch.float64)
        try:
            _, singular, Vh = torch.linalg.svd(M, full_matrices=False)
        except RuntimeError:  # gesdd can fail to converge; the Gram route cannot
            eigvals, V = torch.linalg.eigh(M @ M.T)
            keep = eigvals > eigvals.max() * M.shape[0] * torch.finfo(M.dtype).eps
            U = torch.linalg.qr(M.T @ V[:, keep]).Q
            eigvals, W = torch.linalg.eigh(U.T @ (M.T @ (M @ U)))
            return cls(mean, prior_precision, eigvals.clamp_min(0), U @ W, "function")
        return cls(mean, prior_precision, singular**2, Vh.T, "function")

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
            eigvals, eigvecs = torch.linalg.eigh(self._cache["ggn"])
            self._cache["spectrum"] = (eigvals.clamp_min(0), eigvecs)
            # G = V diag(lambda) V^T from now on.
            self._cache["ggn"] = None
        return self._cache["spectrum"]

    def cholesky(self):
        """The lower Cholesky factor of ``s G + delta I``, or None where the spectrum
        serves instead.

        The first factor computed (at the fitted hyperparameters) is kept, so the
        fitted posterior answers every call by the same arithmetic even after a
        spectrum exists; copies at other hyperparameters compute the spectrum
        (once, shared) and use it. A factorisation that fails (``s G + delta I`` not positive
        definite in float64, e.g. ``delta`` ~ 0 with a singular ``G``) hands over to
        the spectrum."""
        key = (self.prior_precision, self.curvature_scale)
        cached = self._cache.get("cholesky")
        if cached is not None and cached[0] == key:
            return cached[1]
        if self.has_spectrum or cached is not None:
            # Other hyperparameters than the first factor's: one spectrum serves them
            # all at O(P) each, where a factor each would cost O(P^3).
            self._spectrum()
            return None
        A = self.curvature_scale * self._cache["ggn"]
        A.diagonal().add_(self.prior_precision)
        factor, info = torch.linalg.cholesky_ex(A)
        if int(info) != 0:
            self._spectrum()
            return None
        if cached is None:
            self._cache["cholesky"] = (key, factor)
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
        L = self.cholesky()
        if L is None:
            return super().log_det_ratio()
        return (2 * torch.log(torch.diagonal(L)).sum()
                - self.n_parameters * math.log(self.prior_precision))

    def functional_variance(self, J):
        """``J_i Sigma J_i^T`` for Jacobians ``J`` of shape (b, K, P): (b, K, K)."""
        J = J.to(torch.float64)
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


class DiagPosterior(_Gaussian):
    """Diagonal Gaussian posterior ``N(mean, diag(s g + delta)^-1)``."""

    space = "weight"

    @classmethod
    def from_data(cls, module, likelihood, X, weights, prior_precision):
        """The Laplace posterior with the diagonal of the GGN at ``module``'s weights."""
        mean = flat_parameters(module).to(torch.float64)
        return cls(mean, prior_precision, ggn(module, likelihood, X, weights, "diag"))

    def __init__(self, mean, prior_precision, diagonal, curvature_scale=1.0):
        self.mean = mean
        self.prior_precision = float(prior_precision)
        self.diagonal = diagonal.to(torch.float64)
        self.curvature_scale = float(curvature_scale)

    @property
    def curvature_eigenvalues(self):
        return self.diagonal

    def rescaled(self, root):
        """The posterior of ``w / root``: curvature ``root^2 g``."""
        root = root.to(torch.float64)
        return DiagPosterior(self.mean / root, self.prior_precision,
                             self.diagonal * root**2, self.curvature_scale)

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


class KronCurvature:
    """A K-FAC curvature ``S``: per layer ``G_l (x) A_l / N`` on the layer's
    ``(o, j)`` block (block diagonal over layers), as :func:`kfac_factors`
    returns it and :class:`KronPosterior` takes it.

    VI keeps ``S`` as a running average of minibatch GGNs. Averaging the
    Kronecker products themselves would leave the Kronecker form, so
    :meth:`mix` averages the factors one by one (Martens and Grosse, 2015;
    noisy K-FAC, Zhang et al., 2018): ``(1 - beta) G + beta G'`` and
    ``(1 - beta) A + beta A'``, whose product is not the average of the
    products. It is the standard K-FAC approximation on top of K-FAC's own
    (the GGN block as one Kronecker product), not an identity.

    Parameters
    ----------
    factors : sequence of (G_l, A_l, order_l)
        Float64 factors (d_out x d_out and (d_in + 1) x (d_in + 1)) and the
        positions of the layer's ``(o, j)`` entries in the flat parameter vector.
    total_weight : float
        ``N``, the total sample weight the ``A_l`` are sums over.
    """

    def __init__(self, factors, total_weight):
        self.factors = tuple(factors)
        self.total_weight = float(total_weight)

    @classmethod
    def identity(cls, module, total_weight, value, dtype=torch.float64, device=None):
        """``S = value I``: ``G_l = value I`` and ``A_l = N I`` (the second moment of
        standardised inputs with unit variance, so the factors start on the scale the
        data's will have)."""
        factors, offset = [], 0
        for linear in mlp_structure_for_kron(module)[0]:
            d_out, d_in = linear.weight.shape
            eye = lambda d: torch.eye(d, dtype=dtype, device=device)  # noqa: E731
            factors.append((value * eye(d_out), total_weight * eye(d_in + 1),
                            _module_order(linear, offset).to(device)))
            offset += d_out * (d_in + 1)
        return cls(factors, total_weight)

    def scaled(self, scale, total_weight):
        """``scale S`` expressed over ``total_weight``: ``G_l`` times ``scale`` and
        ``A_l`` times ``total_weight / N``, so that minibatches with different sample
        weights share one ``N`` and can be averaged."""
        ratio = total_weight / max(self.total_weight, 1e-300)
        return KronCurvature([(scale * G, ratio * A, order) for G, A, order in self.factors],
                             total_weight)

    def mix(self, other, beta):
        """``(1 - beta) self + beta other``, factor by factor (see the class); both
        must be over the same ``N``."""
        factors = [((1 - beta) * G + beta * G2, (1 - beta) * A + beta * A2, order)
                   for (G, A, order), (G2, A2, _) in zip(self.factors, other.factors)]
        return KronCurvature(factors, self.total_weight)

    def add(self, other):
        """The factor-by-factor sum (over the same ``N``), for averages over samples."""
        return KronCurvature([(G + G2, A + A2, order) for (G, A, order), (G2, A2, _)
                              in zip(self.factors, other.factors)], self.total_weight)

    def __truediv__(self, m):
        return KronCurvature([(G / m, A / m, order) for G, A, order in self.factors],
                             self.total_weight)

    def dense(self, n_parameters):
        """The P x P matrix ``S`` (for tests and callbacks: O(P^2) memory)."""
        G0 = self.factors[0][0]
        S = torch.zeros(n_parameters, n_parameters, dtype=G0.dtype, device=G0.device)
        for G, A, order in self.factors:
            S[order[:, None], order[None, :]] = torch.kron(G, A) / self.total_weight
        return S

    def plus_identity(self, value, n_parameters):
        """``S + value I`` as a dense matrix (what a VI callback receives)."""
        return add_to_diagonal(self.dense(n_parameters), value)


def from_curvature(mean, curvature, prior_precision):
    """``N(mean, (S + delta I)^-1)`` for a curvature ``S`` given as a P-vector
    (its diagonal: a :class:`DiagPosterior`), a P x P matrix (a :class:`FullPosterior`)
    or a :class:`KronCurvature` (a :class:`KronPosterior`)."""
    if isinstance(curvature, KronCurvature):
        return KronPosterior.from_factors(mean, curvature.factors, curvature.total_weight,
                                          prior_precision)
    if curvature.dim() == 1:
        return DiagPosterior(mean, prior_precision, curvature)
    return FullPosterior.from_ggn(mean, curvature, prior_precision)


def add_to_diagonal(curvature, value):
    """``S + value I`` for ``S`` given as its diagonal (P,) or as a P x P matrix."""
    if curvature.dim() == 1:
        return curvature + value
    return curvature + value * torch.eye(curvature.shape[0], dtype=curvature.dtype,
                                         device=curvature.device)


class KronPosterior(_Gaussian):
    """K-FAC Gaussian posterior: block diagonal over layers, each block the
    Kronecker product ``s (G_l (x) A_l) / N + delta I``.

    Each factor is eigendecomposed once (``d_out^3 + d_in^3`` per layer instead
    of ``P^3``), so memory is ``O(sum_l d_out^2 + d_in^2)``, every variance is a
    sum of squares in the factors' eigenbases, and the evidence at any
    ``delta`` or noise scale costs O(P) from the eigenvalue products.
    """

    space = "weight"

    def __init__(self, mean, prior_precision, layers, total_weight, curvature_scale=1.0):
        self.mean = mean
        self.prior_precision = float(prior_precision)
        self.curvature_scale = float(curvature_scale)
        # Per layer: eigenvalues and eigenvectors of G_l and A_l, and the layer's
        # positions in the flat parameter vector, in (o, j) order.
        self.layers = layers
        self.total_weight = float(total_weight)

    @classmethod
    def from_data(cls, module, likelihood, X, weights, prior_precision):
        """The K-FAC Laplace posterior at ``module``'s weights (an MLP)."""
        mean = flat_parameters(module).to(torch.float64)
        factors, total = kfac_factors(module, likelihood, X, weights)
        return cls.from_factors(mean, factors, total, prior_precision)

    @classmethod
    def from_factors(cls, mean, factors, total_weight, prior_precision):
        """From ``(G_l, A_l, order_l)`` per layer and ``N = sum_i w_i``."""
        layers = []
        for G, A, order in factors:
            g_vals, g_vecs = torch.linalg.eigh(G)
            a_vals, a_vecs = torch.linalg.eigh(A)
            layers.append((g_vals.clamp_min(0), g_vecs, a_vals.clamp_min(0), a_vecs, order))
        return cls(mean, prior_precision, layers, max(total_weight, 1e-300))

    @property
    def curvature_eigenvalues(self):
        return torch.cat([(g[:, None] * a[None, :]).reshape(-1) / self.total_weight
                          for g, _, a, _, _ in self.layers])

    def layer_values(self, values):
        """One entry of a P-vector per layer, which must be constant on each layer."""
        firsts = []
        for *_, order in self.layers:
            block = values[order]
            if not torch.allclose(block, block[0].expand_as(block), rtol=1e-12, atol=0):
                raise ValueError("posterior='kron' needs one prior precision per layer.")
            firsts.append(block[0])
        return torch.stack(firsts)

    def rescaled(self, root):
        """The posterior of ``w / root`` for a ``root`` constant on each layer: each
        layer's ``G_l`` factor times that constant squared."""
        root = root.to(torch.float64)
        factors = self.layer_values(root)
        layers = [(g_vals * r**2, g_vecs, a_vals, a_vecs, order)
                  for (g_vals, g_vecs, a_vals, a_vecs, order), r in zip(self.layers, factors)]
        return KronPosterior(self.mean / root, self.prior_precision, layers,
                             self.total_weight, self.curvature_scale)

    def _factor_key(self):
        return id(self.layers)

    def _layer_inverse(self, g_vals, a_vals):
        """``1 / (s lambda_g lambda_a / N + delta)`` on the (o, j) grid."""
        return 1.0 / (self.curvature_scale * g_vals[:, None] * a_vals[None, :]
                      / self.total_weight + self.prior_precision)

    def functional_variance(self, J):
        """``J_i Sigma J_i^T`` for Jacobians ``J`` of shape (b, K, P): (b, K, K)."""
        J = J.to(torch.float64)
        variance = J.new_zeros(J.shape[0], J.shape[1], J.shape[1])
        for g_vals, g_vecs, a_vals, a_vecs, order in self.layers:
            block = J[..., order].reshape(*J.shape[:2], g_vecs.shape[0], a_vecs.shape[0])
            T = (g_vecs.T @ block @ a_vecs) * torch.sqrt(self._layer_inverse(g_vals, a_vals))
            variance += torch.einsum("bkoj,bloj->bkl", T, T)
        return variance

    def functional_variance_from_layers(self, backs, inputs):
        """``J_i Sigma J_i^T`` (b, K, K) for an MLP from its layer factors, without
        the (b, K, P) Jacobians.

        ``backs[l]`` (b, K, d_out) and ``inputs[l]`` (b, d_in + 1) are layer l's
        output Jacobian with respect to its pre-activation and its input with a 1
        appended (:func:`~sklearn_dnn2gp._curvature.output_and_layer_factors`), one
        per block of this posterior, in the same order. Output k's Jacobian block is
        ``g_k (x) a``; in the factors' eigenbases ``Q_G``, ``Q_A`` with ``D^-1`` the
        block's inverse eigenvalues on the (o, j) grid,

            J Sigma J^T [k, k'] = sum_o (g_k Q_G)_o (g_k' Q_G)_o sum_j (a Q_A)_j^2 D^-1[o, j],

        which costs ``O(b (K d_out^2 + d_in^2 + d_in d_out + K^2 d_out))`` per layer
        instead of ``O(b K P)`` for the Jacobian path. The diagonal is a sum of
        non-negative terms, as there.
        """
        if len(backs) != len(self.layers) or len(inputs) != len(self.layers):
            raise ValueError(f"{len(self.layers)} layers in the posterior, "
                             f"{len(backs)} in the factors.")
        variance = None
        for (g_vals, g_vecs, a_vals, a_vecs, _), B, a in zip(self.layers, backs, inputs):
            if B.shape[-1] != g_vecs.shape[0] or a.shape[-1] != a_vecs.shape[0]:
                raise ValueError("The layer factors do not match the posterior's layers.")
            rotated = B.to(torch.float64) @ g_vecs  # (b, K, d_out)
            # sum_j (a Q_A)_j^2 D^-1[o, j] per example: (b, d_out).
            weight = ((a.to(torch.float64) @ a_vecs) ** 2) @ self._layer_inverse(
                g_vals, a_vals).T
            term = (rotated * weight[:, None, :]) @ rotated.transpose(1, 2)
            variance = term if variance is None else variance + term
        return variance

    def functional_covariance(self, J):
        Jf = J.reshape(-1, J.shape[-1]).to(torch.float64)
        return self.functional_variance(Jf[None])[0]

    def _map_layers(self, v, scale):
        """Apply ``U diag(scale(inverse)) U^T`` layer by layer to P-vectors (..., P)."""
        v = v.to(torch.float64)
        out = torch.zeros_like(v)
        for g_vals, g_vecs, a_vals, a_vecs, order in self.layers:
            V = v[..., order].reshape(*v.shape[:-1], g_vecs.shape[0], a_vecs.shape[0])
            rotated = g_vecs.T @ V @ a_vecs * scale(self._layer_inverse(g_vals, a_vals))
            out[..., order] = (g_vecs @ rotated @ a_vecs.T).reshape(*v.shape[:-1], -1)
        return out

    def covariance_product(self, v):
        return self._map_layers(v, lambda inverse: inverse)

    def covariance(self):
        eye = torch.eye(self.n_parameters, dtype=torch.float64, device=self.mean.device)
        return self.functional_variance(eye[None])[0]

    def precision(self):
        # Symmetric, so mapping the rows of I gives the matrix.
        eye = torch.eye(self.n_parameters, dtype=torch.float64, device=self.mean.device)
        return self._map_layers(eye, lambda inverse: 1.0 / inverse)

    def sample(self, n_samples, generator):
        eps = torch.randn(n_samples, self.n_parameters, dtype=torch.float64,
                          generator=generator).to(self.mean.device)
        z = self._map_layers(eps, torch.sqrt)
        return self.mean.to(torch.float64) + z


def split_precisions(prior_precisions):
    """Per-parameter precisions ``delta`` (P,) as ``(delta0, root)`` with ``delta =
    delta0 / root^2``: ``delta0`` their geometric mean, so that ``root`` stays near 1."""
    delta = torch.as_tensor(prior_precisions, dtype=torch.float64)
    delta0 = float(torch.exp(torch.log(delta).mean()))
    return delta0, torch.sqrt(delta0 / delta)


class ScaledPosterior:
    """A Laplace posterior under a prior with one precision per parameter,
    ``N(0, diag(delta)^-1)``, as a change of variables of an isotropic one.

    With ``delta = delta0 / root^2`` (elementwise; ``root`` is 1 where a
    parameter's precision is ``delta0``) and ``w~ = w / root``, the prior of
    ``w~`` is ``N(0, I / delta0)``, its Jacobians are ``J diag(root)`` and its
    GGN ``diag(root) G diag(root)``. So ``inner``, any isotropic structure
    built for ``w~``, is the posterior: ``Sigma = diag(root) Sigma~ diag(root)``,
    ``J Sigma J^T = (J root) Sigma~ (J root)^T``, and ``log|s G + diag(delta)| -
    sum log delta = log|s G~ + delta0 I| - P log delta0``; the evidence, the
    predictive and the spectral reuse of the isotropic structures carry over
    unchanged. Other precisions in the same proportions only change ``delta0``;
    other proportions rescale the curvature (a new factorisation).
    """

    def __init__(self, inner, root):
        self.inner, self.root = inner, root.to(torch.float64)

    @classmethod
    def wrap(cls, posterior, prior_precisions):
        """``posterior`` (isotropic, built at any ``delta``) under the per-parameter
        precisions ``prior_precisions`` (P,)."""
        delta0, root = split_precisions(prior_precisions)
        return cls(posterior.rescaled(root).with_hyperparameters(prior_precision=delta0), root)

    # ------------------------------------------------------------- attributes
    @property
    def mean(self):
        return self.inner.mean * self.root

    @property
    def prior_precision(self):
        """``delta0``, the precision in the rescaled coordinates."""
        return self.inner.prior_precision

    @property
    def prior_precisions(self):
        """The per-parameter precisions ``delta`` (P,)."""
        return self.inner.prior_precision / self.root**2

    def __getattr__(self, name):
        # What the isotropic structure has and the change of variables leaves alone:
        # the curvature scale, the spectrum, the space, the Cholesky factor.
        if name in {"curvature_scale", "curvature_eigenvalues", "eigvals", "spectrum",
                    "space", "cholesky", "has_spectrum", "n_parameters", "log_det_ratio"}:
            return getattr(self.inner, name)
        if name == "spectral_coordinates" and hasattr(self.inner, name):
            return lambda b: self.inner.spectral_coordinates(self.root * b.to(torch.float64))
        if name == "functional_variance_from_layers" and hasattr(self.inner, name):
            return self._functional_variance_from_layers
        raise AttributeError(name)

    def __getstate__(self):
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)

    # ---------------------------------------------------------------- changes
    def with_hyperparameters(self, prior_precision=None, curvature_scale=None):
        """At other precisions (a scalar: the same for every parameter; or a
        P-vector) and/or curvature scale."""
        if prior_precision is None:
            return ScaledPosterior(
                self.inner.with_hyperparameters(curvature_scale=curvature_scale), self.root)
        delta = torch.as_tensor(prior_precision, dtype=torch.float64,
                                device=self.root.device).expand_as(self.root)
        ratio = delta * self.root**2
        if torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-12, atol=0):
            return ScaledPosterior(self.inner.with_hyperparameters(
                float(ratio[0]), curvature_scale), self.root)
        # Other proportions: w / root' = (w / root) / (root' / root), one rescaling of
        # the inner structure.
        delta0, root = split_precisions(delta)
        inner = self.inner.rescaled(root / self.root)
        return ScaledPosterior(inner.with_hyperparameters(delta0, curvature_scale), root)

    def with_mean(self, mean):
        return ScaledPosterior(self.inner.with_mean(mean / self.root), self.root)

    def shares_factorisation(self, other):
        return (isinstance(other, ScaledPosterior) and self.inner.shares_factorisation(other.inner)
                and torch.equal(self.root, other.root))

    # ---------------------------------------------------------------- methods
    def prior_quadratic(self, w):
        return self.inner.prior_quadratic(w.to(torch.float64) / self.root)

    def functional_variance(self, J):
        return self.inner.functional_variance(J.to(torch.float64) * self.root)

    def functional_covariance(self, J):
        return self.inner.functional_covariance(J.to(torch.float64) * self.root)

    def _functional_variance_from_layers(self, backs, inputs):
        # The root is constant on each layer, and a layer's Jacobian is linear in
        # its back-propagated gradients.
        factors = self.inner.layer_values(self.root)
        return self.inner.functional_variance_from_layers(
            [B.to(torch.float64) * r for B, r in zip(backs, factors)], inputs)

    def covariance_product(self, v):
        return self.root * self.inner.covariance_product(v.to(torch.float64) * self.root)

    def covariance(self):
        return self.root[:, None] * self.inner.covariance() * self.root[None, :]

    def precision(self):
        precision = self.inner.precision()
        if precision.dim() == 1:
            return precision / self.root**2
        return precision / self.root[:, None] / self.root[None, :]

    def variances(self):
        return self.inner.variances() * self.root**2

    def sample(self, n_samples, generator):
        draws = self.inner.sample(n_samples, generator)
        return self.mean + (draws - self.inner.mean) * self.root
