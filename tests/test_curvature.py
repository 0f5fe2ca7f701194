"""Jacobians and the GGN (``_curvature.py``): the analytic Jacobian against
autodiff and finite differences, and the GGN in each of its forms against the sum
of Jacobian products."""

import pytest
import torch
from torch import nn

from sklearn_dnn2gp._curvature import (
    _functional_jacobian,
    ggn,
    output_and_jacobian,
    whitened_jacobians,
)
from sklearn_dnn2gp._likelihoods import Bernoulli, Categorical, Gaussian
from sklearn_dnn2gp._network import flat_parameters, make_mlp, set_flat_parameters


def _net(activation, n_out=3, hidden=(5, 4)):
    return make_mlp(
        2,
        hidden,
        n_out,
        activation,
        dtype=torch.float64,
        device="cpu",
        generator=torch.Generator().manual_seed(0),
    )


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "identity"])
def test_analytic_jacobian_matches_autodiff_and_finite_differences(activation):
    net = _net(activation)
    X = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    f, J = output_and_jacobian(net, X)
    with torch.enable_grad():
        f_ref, J_ref = _functional_jacobian(net, X)
    torch.testing.assert_close(f, f_ref.detach())
    torch.testing.assert_close(J, J_ref.detach(), rtol=1e-12, atol=1e-12)
    w = flat_parameters(net)
    eps = 1e-6
    for j in range(0, w.numel(), 7):
        for sign in (1, -1):
            v = w.clone()
            v[j] += sign * eps
            set_flat_parameters(net, v)
            if sign == 1:
                plus = net(X).detach()
            else:
                minus = net(X).detach()
        set_flat_parameters(net, w)
        torch.testing.assert_close(J[:, :, j], (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_custom_module_falls_back_to_autodiff():
    net = nn.Sequential(
        nn.Linear(2, 3, dtype=torch.float64), nn.Softplus(), nn.Linear(3, 2, dtype=torch.float64)
    )
    X = torch.randn(4, 2, dtype=torch.float64)
    f, J = output_and_jacobian(net, X)
    assert J.shape == (4, 2, 17)
    torch.testing.assert_close(f, net(X).detach())


@pytest.mark.parametrize(
    "likelihood",
    [Gaussian(torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)), Bernoulli(), Categorical()],
)
def test_ggn_equals_sum_of_jacobian_products(likelihood):
    n_out = 1 if isinstance(likelihood, Bernoulli) else 3
    net = _net("tanh", n_out=n_out)
    X = torch.randn(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    weights = torch.rand(9, dtype=torch.float64)
    f, J = output_and_jacobian(net, X)
    Lam = likelihood.precision(f)
    expected = torch.einsum("n,nkp,nkl,nlq->pq", weights, J, Lam, J)
    G = ggn(net, likelihood, X, weights, batch_size=4)
    torch.testing.assert_close(G, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        ggn(net, likelihood, X, weights, structure="diag"),
        torch.diagonal(expected),
        rtol=1e-10,
        atol=1e-12,
    )


def test_integer_weights_equal_repeated_rows_in_the_ggn():
    net = _net("tanh", n_out=3)
    X = torch.randn(5, 2, dtype=torch.float64)
    counts = torch.tensor([2, 0, 1, 3, 1])
    lik = Categorical()
    weighted = ggn(net, lik, X, counts.to(torch.float64))
    repeated = ggn(net, lik, X.repeat_interleave(counts, dim=0))
    torch.testing.assert_close(weighted, repeated, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "identity"])
@pytest.mark.parametrize("structure", ["full", "diag"])
def test_kronecker_ggn_matches_jacobian_ggn(activation, structure):
    net = make_mlp(3, (6, 4, 5), 4, activation, dtype=torch.float64, device="cpu",
                   generator=torch.Generator().manual_seed(3))
    X = torch.randn(11, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    weights = torch.rand(11, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    lik = Categorical()
    expected = None
    for *_, M in whitened_jacobians(net, lik, X, weights):
        M = M.reshape(-1, M.shape[-1])
        expected = M.T @ M
    if structure == "diag":
        expected = torch.diagonal(expected)
    torch.testing.assert_close(ggn(net, lik, X, weights, structure=structure), expected,
                               rtol=1e-10, atol=1e-12)
