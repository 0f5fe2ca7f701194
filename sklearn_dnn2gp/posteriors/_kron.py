"""The K-FAC posterior of an MLP: per layer a Kronecker product of two factors,
and the curvature VI keeps in that form."""

import torch

from .._curvature import kfac_factors, mlp_structure_for_kron, module_order
from .._network import flat_parameters
from ._gaussian import Gaussian, add_to_diagonal, register_posterior


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
                            module_order(linear, offset).to(device)))
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



class KronPosterior(Gaussian):
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


    # VI's S is a KronCurvature, averaged factor by factor.
    @classmethod
    def data_curvature(cls, module, likelihood, X, weights):
        return KronCurvature(*kfac_factors(module, likelihood, X, weights))

    @classmethod
    def constant_curvature(cls, module, n_parameters, total_weight, value, device=None):
        return KronCurvature.identity(module, total_weight, float(value), device=device)

    @classmethod
    def from_curvature(cls, mean, curvature, prior_precision):
        return cls.from_factors(mean, curvature.factors, curvature.total_weight,
                                prior_precision)

    @staticmethod
    def mix_curvature(curvature, other, beta):
        return curvature.mix(other, beta)

    @staticmethod
    def add_curvature(curvature, other):
        return curvature.add(other)

    @staticmethod
    def scale_curvature(curvature, scale, like):
        return curvature.scaled(scale, like.total_weight)

    @staticmethod
    def curvature_plus_identity(curvature, value, n_parameters):
        return curvature.plus_identity(value, n_parameters)


register_posterior("kron", KronPosterior)

