"""The K-FAC posterior (posterior='kron') against brute-force references."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from sklearn_dnn2gp import _resources
from sklearn_dnn2gp._curvature import output_and_jacobian
from sklearn_dnn2gp._evidence import laplace_log_evidence
from sklearn_dnn2gp._likelihoods import Categorical, Gaussian
from sklearn_dnn2gp._network import flat_parameters, make_mlp
from sklearn_dnn2gp.posteriors import FullPosterior, KronPosterior

from ._helpers import FixedClassifier, FixedRegressor, gap_data

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _mlp(sizes, n_in, n_out, seed=0):
    return make_mlp(n_in, sizes, n_out, "tanh", dtype=torch.float64, device="cpu",
                    generator=torch.Generator().manual_seed(seed))


def test_kron_is_exact_for_one_example_of_a_linear_model():
    # One example, one output, no hidden layer: the GGN is (c c^T) (x) (a a^T),
    # a Kronecker product, so K-FAC loses nothing.
    net = _mlp((), 4, 1)
    X = torch.tensor(np.random.RandomState(0).randn(1, 4))
    likelihood = Gaussian(torch.tensor([0.3], dtype=torch.float64))
    kron = KronPosterior.from_data(net, likelihood, X, None, 0.7)
    full = FullPosterior.from_ggn(flat_parameters(net), _exact_ggn(net, likelihood, X), 0.7)
    np.testing.assert_allclose(kron.covariance(), full.covariance(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(kron.log_det_ratio(), full.log_det_ratio(), rtol=1e-10)


def _exact_ggn(net, likelihood, X):
    f, J = output_and_jacobian(net, X)
    M = likelihood.whiten(f, J).reshape(-1, J.shape[-1])
    return M.T @ M


def _brute_force_kfac(net, likelihood, X, weights):
    """Layer inputs from forward hooks, back-propagated gradients as the Jacobian with
    respect to each bias (autograd): an independent construction of K-FAC."""
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    inputs = {}
    hooks = [lin.register_forward_hook(
        lambda mod, args, out, i=i: inputs.__setitem__(i, args[0].detach()))
        for i, lin in enumerate(linears)]
    f = net(X).detach()
    for hook in hooks:
        hook.remove()
    blocks, offset = [], 0
    for i, lin in enumerate(linears):
        d_out, d_in = lin.weight.shape
        # Jacobian of the outputs with respect to this layer's bias: B_i (n, K, d_out).
        B = torch.stack([
            torch.autograd.functional.jacobian(lambda b, x=x, i=i: torch.func.functional_call(
                net, {**dict(net.named_parameters()), f"{2 * i}.bias": b}, (x[None],))[0],
                lin.bias.detach())
            for x in X])
        C = likelihood.whiten(f, B) * torch.sqrt(weights)[:, None, None]
        a = torch.cat([inputs[i], torch.ones(len(X), 1, dtype=X.dtype)], 1)
        G = torch.einsum("nko,nkq->oq", C, C)
        A = (a * weights[:, None]).T @ a
        # Flat positions of [W | b] in (o, j) order: weights row-major, then biases.
        o, j = np.meshgrid(np.arange(d_out), np.arange(d_in + 1), indexing="ij")
        order = np.where(j < d_in, offset + o * d_in + j, offset + d_out * d_in + o).ravel()
        blocks.append((G, A, order))
        offset += d_out * (d_in + 1)
    return blocks, float(weights.sum())


def test_kron_blocks_equal_a_brute_force_kfac():
    X, y = make_blobs(30, n_features=3, centers=3, random_state=0)
    X = torch.tensor(X)
    weights = torch.tensor(np.random.RandomState(1).uniform(0.5, 2, 30))
    net = _mlp((5, 4), 3, 3)
    likelihood = Categorical()
    delta, scale = 0.4, 1.0
    kron = KronPosterior.from_data(net, likelihood, X, weights, delta)
    blocks, total = _brute_force_kfac(net, likelihood, X, weights)
    cov = kron.covariance().numpy()
    log_det, P = 0.0, cov.shape[0]
    seen = np.zeros(P, dtype=bool)
    for G, A, order in blocks:
        precision = scale * np.kron(G.numpy(), A.numpy()) / total + delta * np.eye(len(order))
        np.testing.assert_allclose(cov[np.ix_(order, order)], np.linalg.inv(precision),
                                   rtol=1e-8, atol=1e-12)
        log_det += np.linalg.slogdet(precision)[1]
        seen[order] = True
        others = np.setdiff1d(np.arange(P), order)
        np.testing.assert_allclose(cov[np.ix_(order, others)], 0, atol=1e-14)
    assert seen.all()
    np.testing.assert_allclose(kron.log_det_ratio(), log_det - P * np.log(delta), rtol=1e-10)
    # Every view is the same Gaussian: Sigma v, the precision and J Sigma J^T.
    v = torch.tensor(np.random.RandomState(2).randn(P))
    np.testing.assert_allclose(kron.covariance_product(v), cov @ v.numpy(), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(kron.precision() @ kron.covariance(), np.eye(P), atol=1e-8)
    _, J = output_and_jacobian(net, X[:4])
    expected = np.einsum("bkp,pq,blq->bkl", J.numpy(), cov, J.numpy())
    np.testing.assert_allclose(kron.functional_variance(J), expected, rtol=1e-9, atol=1e-12)
    samples = kron.sample(20000, torch.Generator().manual_seed(0)) - kron.mean
    np.testing.assert_allclose(np.cov(samples.numpy().T), cov, atol=0.05 * cov.diagonal().max())


def test_kron_evidence_reevaluation_equals_a_direct_recomputation():
    X, y = gap_data(40)
    reg = FixedRegressor(hidden_layer_sizes=(6,), noise_std=0.2, posterior="kron",
                          random_state=0).fit(X, y)
    assert isinstance(reg.posterior_, KronPosterior)
    pred = reg.predict(X)
    for delta, sigma in [(0.1, 0.2), (3.0, 0.5), (30.0, 0.05)]:
        direct = KronPosterior.from_factors(
            reg.posterior_.mean,
            [(g_vecs @ torch.diag(g) @ g_vecs.T * (0.2 / sigma) ** 2,
              a_vecs @ torch.diag(a) @ a_vecs.T, order)
             for g, g_vecs, a, a_vecs, order in reg.posterior_.layers],
            reg.posterior_.total_weight, delta)
        log_lik = np.sum(-0.5 * ((y - pred) / sigma) ** 2 - np.log(sigma)
                         - 0.5 * np.log(2 * np.pi))
        expected = laplace_log_evidence(torch.tensor(log_lik), direct.mean, direct)
        np.testing.assert_allclose(reg.log_marginal_likelihood(delta, sigma), float(expected),
                                   rtol=1e-9)


def test_kron_predictive_and_classifier():
    X, y = make_blobs(60, centers=3, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(8,), posterior="kron", random_state=0).fit(X, y)
    far = X * 30
    _, var = clf.predict_latent(far)
    _, var_data = clf.predict_latent(X)
    # Saturated tanh units cap the growth; the logits are still less certain away
    # from the data than on it.
    assert np.median(np.trace(var, axis1=1, axis2=2)) > np.median(
        np.trace(var_data, axis1=1, axis2=2))
    proba = clf.predict_proba(far, "probit")
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-12)
    assert np.isfinite(clf.log_marginal_likelihood_)


def test_auto_takes_kron_when_the_full_posterior_is_too_big(monkeypatch):
    X, y = gap_data(300)  # 300 rows > 286 parameters: the weight-space full posterior
    reg = FixedRegressor(hidden_layer_sizes=(15, 15), max_iter=20, random_state=0).fit(X, y)
    assert reg._structure() == "full"
    monkeypatch.setattr(_resources, "available_memory", lambda device: 10**6)
    assert reg.fit(X, y)._structure() == "kron"
    assert isinstance(reg.posterior_, KronPosterior)
    # VI takes a K-FAC q too (tests/test_vi_kron.py).
    vi = FixedRegressor(hidden_layer_sizes=(3,), inference="vi", posterior="kron", max_iter=2)
    assert isinstance(vi.fit(X, y).posterior_, KronPosterior)


def _jacobian_path_latent(est, X):
    """``J Sigma J^T`` from the full per-example Jacobians, with the fitted posterior."""
    f, var = [], []
    for f_chunk, J in est._jacobian_chunks(X):
        f.append(f_chunk.to(torch.float64))
        var.append(est.posterior_.functional_variance(J))
    return torch.cat(f), torch.cat(var)


def _relative_error(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("likelihood, n_out", [("gaussian", 1), ("gaussian", 2),
                                               ("categorical", 3)])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_kron_variance_from_layer_factors_equals_the_jacobian_path(likelihood, n_out,
                                                                   activation):
    # The layer-factor formula against J Sigma J^T with the same posterior, at
    # random weights, weighted data and a delta and noise scale other than the fit's.
    from sklearn_dnn2gp._curvature import output_and_layer_factors
    from sklearn_dnn2gp._likelihoods import Categorical

    rng = np.random.RandomState(0)
    net = make_mlp(4, (7, 5), n_out, activation, dtype=torch.float64, device="cpu",
                   generator=torch.Generator().manual_seed(1))
    X = torch.tensor(rng.randn(50, 4))
    weights = torch.tensor(rng.uniform(0.5, 2, 50))
    lik = (Gaussian(torch.full((n_out,), 0.3, dtype=torch.float64))
           if likelihood == "gaussian" else Categorical())
    kron = KronPosterior.from_data(net, lik, X, weights, 0.7)
    X_new = torch.tensor(3 * rng.randn(20, 4))
    for posterior in (kron, kron.with_hyperparameters(5.0, 0.2)):
        _, J = output_and_jacobian(net, X_new)
        f, backs, inputs = output_and_layer_factors(net, X_new)
        expected = posterior.functional_variance(J)
        got = posterior.functional_variance_from_layers(backs, inputs)
        assert got.shape == (20, n_out, n_out) and got.dtype == torch.float64
        assert _relative_error(got, expected) < 1e-12
        np.testing.assert_allclose(f, net(X_new).detach())


@pytest.mark.parametrize("subset", ["all", "last_layer"])
@pytest.mark.parametrize("task", ["regression", "regression2", "binary", "multiclass"])
def test_kron_predictive_uses_the_layer_factors(task, subset, monkeypatch):
    # Every predictive method of a fitted kron estimator reads the layer factors and
    # gives the Jacobian path's numbers to round-off (float64).
    rng = np.random.RandomState(0)
    X = rng.randn(60, 3)
    if task.startswith("regression"):
        y = np.sin(X[:, 0]) + 0.1 * rng.randn(60)
        if task == "regression2":
            y = np.column_stack([y, np.cos(X[:, 1])])
        est = FixedRegressor(hidden_layer_sizes=(6, 5), posterior="kron", noise_std=0.3,
                              subset_of_weights=subset, max_iter=50, random_state=0)
    else:
        y = (X[:, 0] + X[:, 1] > 0).astype(int)
        if task == "multiclass":
            y = y + (X[:, 2] > 0.5)
        est = FixedClassifier(hidden_layer_sizes=(6, 5), posterior="kron",
                               subset_of_weights=subset, max_iter=50, random_state=0)
    est.fit(X, y)
    X_new = 2 * rng.randn(25, 3)
    f_ref, var_ref = _jacobian_path_latent(est, X_new)
    f, var = est._latent(X_new)
    assert var.shape == var_ref.shape
    assert _relative_error(var, var_ref) < 1e-10
    np.testing.assert_allclose(f, f_ref, rtol=1e-12, atol=1e-12)

    # The public methods take the layer path: the Jacobians are never formed.
    def no_jacobians(*args, **kwargs):
        raise AssertionError("the Jacobian path was taken")

    monkeypatch.setattr(type(est), "_jacobian_chunks", no_jacobians)
    if task.startswith("regression"):
        _, std = est.predict(X_new, return_std=True)
        std = std.reshape(len(X_new), -1)
        latent = np.diagonal(var_ref.numpy(), axis1=1, axis2=2)
        np.testing.assert_allclose(std**2, latent + est.noise_std_**2, rtol=1e-10)
        epistemic, _ = est.predict_uncertainty(X_new)
        np.testing.assert_allclose(epistemic.reshape(latent.shape), latent, rtol=1e-10)
    else:
        _, latent = est.predict_latent(X_new)
        assert _relative_error(latent, var_ref) < 1e-10
        np.testing.assert_allclose(est.predict_proba(X_new, "probit").sum(1), 1, rtol=1e-12)
        est.predict_uncertainty(X_new)

