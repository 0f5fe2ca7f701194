"""The likelihoods (``_likelihoods.py``): the residual and the noise precision as the
gradient and the Hessian of the loss, and the transformed targets of each likelihood
(Gaussian with one and two outputs, categorical) against an independent Jacobian."""

import numpy as np
import pytest
import torch

from sklearn_dnn2gp._likelihoods import Bernoulli, Categorical

from ._helpers import (
    _reference_jacobian,
    _weights,
)


@pytest.mark.parametrize("likelihood, n_out", [(Bernoulli(), 1), (Categorical(), 3)])
def test_noise_precision_is_hessian_of_loss(likelihood, n_out):
    f = torch.randn(4, n_out, dtype=torch.float64)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0]) if n_out == 1 else torch.tensor([0, 2, 1, 2])
    y = y.to(torch.float64) if n_out == 1 else y
    for i in range(4):
        hess = torch.autograd.functional.hessian(
            lambda fi, i=i: likelihood.loss(fi[None], y[i : i + 1]), f[i]
        )
        torch.testing.assert_close(likelihood.precision(f)[i], hess)
        grad = torch.autograd.functional.jacobian(
            lambda fi, i=i: likelihood.loss(fi[None], y[i : i + 1]), f[i]
        )
        torch.testing.assert_close(likelihood.residual(f, y)[i], grad)
    np.testing.assert_allclose(
        likelihood.precision(f)[0].sum(-1).numpy() if n_out > 1 else 0, 0, atol=1e-12
    )


# ----------------------------------------------------- transformed targets
# The fitted estimators are tests/conftest.py's.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_transformed_targets(regressor, multiclass, two_targets):
    est, X, y = regressor
    f = est.predict(X)
    Jw = _reference_jacobian(est, X)[:, 0] @ _weights(est)
    np.testing.assert_allclose(est.transformed_targets(X, y), y + Jw - f, rtol=1e-10)

    est, X, Y = two_targets
    y_tilde = est.transformed_targets(X, Y)
    assert y_tilde.shape == Y.shape
    Jw = _reference_jacobian(est, X) @ _weights(est)
    np.testing.assert_allclose(y_tilde, Y + Jw - est.predict(X), rtol=1e-10)

    # Softmax: Lambda y~ = Lambda J w* - r, the part of y~ the singular Lambda sees.
    est, X, y = multiclass
    y_tilde = est.transformed_targets(X, y)
    p = est.predict_proba(X, link_approximation="plugin")
    lam = np.einsum("ij,jk->ijk", p, np.eye(3)) - p[:, :, None] * p[:, None, :]
    Jw = _reference_jacobian(est, X) @ _weights(est)
    residual = p - np.eye(3)[np.searchsorted(est.classes_, y)]
    np.testing.assert_allclose(np.einsum("ijk,ik->ij", lam, y_tilde),
                               np.einsum("ijk,ik->ij", lam, Jw) - residual, atol=1e-10)
    np.testing.assert_allclose((y_tilde - Jw).sum(1), 0, atol=1e-10)  # on Lambda's range
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.transformed_targets(X, y[:-1])
