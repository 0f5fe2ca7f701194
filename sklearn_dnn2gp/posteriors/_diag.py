"""The diagonal posterior: the diagonal of ``s G + delta I``."""

import torch

from .._curvature import ggn
from .._network import flat_parameters
from ._gaussian import Gaussian, register_posterior


class DiagPosterior(Gaussian):
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


    @classmethod
    def data_curvature(cls, module, likelihood, X, weights):
        return ggn(module, likelihood, X, weights, "diag")

    @classmethod
    def constant_curvature(cls, module, n_parameters, total_weight, value, device=None):
        return torch.zeros((n_parameters,), dtype=torch.float64, device=device) + float(value)

    @classmethod
    def from_curvature(cls, mean, curvature, prior_precision):
        return cls(mean, prior_precision, curvature)


register_posterior("diag", DiagPosterior)

