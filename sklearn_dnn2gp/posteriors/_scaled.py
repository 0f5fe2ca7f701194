"""A prior with one precision per parameter, as a change of variables of any
isotropic structure."""

import torch


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
