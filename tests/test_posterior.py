"""Posterior structures (``posteriors/``), each against dense linear algebra: the
table of structures and a new one registered in one place; FullPosterior in weight
and function space, through its Cholesky factor and its spectrum; KronPosterior and
KronCurvature against a brute-force K-FAC and the Jacobian path; ScaledPosterior
(per-layer prior precisions) against the dense Gaussian. The estimator-level
K-FAC tests are in tests/test_kron.py."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor
from sklearn_dnn2gp._curvature import ggn, output_and_jacobian, whitened_jacobians
from sklearn_dnn2gp._gp import whitened_log_evidence
from sklearn_dnn2gp._likelihoods import Bernoulli, Categorical, Gaussian
from sklearn_dnn2gp._network import flat_parameters, make_mlp
from sklearn_dnn2gp.posteriors import (
    POSTERIOR_OPTIONS,
    POSTERIORS,
    DiagPosterior,
    FullPosterior,
    KronCurvature,
    KronPosterior,
    ScaledPosterior,
    posterior_structure,
    register_posterior,
)

from ._helpers import (
    FixedClassifier,
    FixedRegressor,
    _exact_ggn,
    _mlp,
    _random_curvature,
    _relative_error,
    _whitened,
    gap_data,
)


# ------------------------------------------------- the table of structures
class IsotropicPosterior(DiagPosterior):
    """``N(w*, (s g + delta)^-1 I)`` with ``g`` the mean of the GGN's diagonal: a toy
    structure, written the way a user would add one (a class and its registration)."""

    @classmethod
    def data_curvature(cls, module, likelihood, X, weights):
        diagonal = ggn(module, likelihood, X, weights, "diag")
        return diagonal.mean().expand_as(diagonal).clone()

    @classmethod
    def from_data(cls, module, likelihood, X, weights, prior_precision):
        mean = flat_parameters(module).to(torch.float64)
        return cls(mean, prior_precision, cls.data_curvature(module, likelihood, X, weights))


@pytest.fixture
def isotropic():
    register_posterior("isotropic", IsotropicPosterior)
    yield
    POSTERIORS.pop("isotropic")
    POSTERIOR_OPTIONS.discard("isotropic")


def test_an_unknown_structure_fails_by_name():
    with pytest.raises(ValueError, match="Unknown posterior structure 'nope'.*'diag'"):
        posterior_structure("nope")
    with pytest.raises(ValueError, match="posterior"):
        DNN2GPRegressor(posterior="nope").fit(np.zeros((4, 1)), np.arange(4.0))
    with pytest.raises(ValueError, match="'auto'"):
        register_posterior("auto", IsotropicPosterior)


def test_a_registered_structure_runs_fit_predict_evidence_and_the_gp_view(isotropic):
    # A network without hidden layers is Bayesian linear regression: with J = [x, 1]
    # and the isotropic posterior Sigma = I / (g + delta), g = mean_j sum_i J_ij^2 /
    # sigma^2, every output below has a closed form.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -0.5, 2.0]) + 0.1 * rng.normal(size=40)
    delta, sigma = 2.0, 0.5
    reg = DNN2GPRegressor(hidden_layer_sizes=(), prior_precision=delta, noise_std=sigma,
                          normalize_y=False, posterior="isotropic", dtype="float64",
                          random_state=0).fit(X, y)
    assert type(reg.posterior_) is IsotropicPosterior
    J = np.column_stack([X, np.ones(len(X))])
    g = (J**2).sum(0).mean() / sigma**2
    X_test = rng.normal(size=(5, 3))
    J_test = np.column_stack([X_test, np.ones(5)])
    _, std = reg.predict(X_test, return_std=True)
    np.testing.assert_allclose(std**2, (J_test**2).sum(1) / (g + delta) + sigma**2,
                               rtol=1e-10)
    # Module order, (weight, bias), is J's column order (x, 1).
    w = np.concatenate([p.detach().numpy().ravel() for p in reg.module_.parameters()])
    residual = y - J @ w
    log_likelihood = (-0.5 * (residual**2).sum() / sigma**2 - len(y) * np.log(sigma)
                      - 0.5 * len(y) * np.log(2 * np.pi))
    evidence = (log_likelihood - 0.5 * delta * w @ w
                - 0.5 * J.shape[1] * np.log((g + delta) / delta))
    assert reg.log_marginal_likelihood_ == pytest.approx(evidence, rel=1e-10)
    # At other hyperparameters without refitting: s = 1 / c^2 scales g.
    c = 2.0
    moved = (log_likelihood + 0.5 * (1 - 1 / c**2) * (residual**2).sum() / sigma**2
             - len(y) * np.log(c) - 0.5 * 3.0 * w @ w
             - 0.5 * J.shape[1] * np.log((g / c**2 + 3.0) / 3.0))
    assert reg.log_marginal_likelihood(3.0, c * sigma) == pytest.approx(moved, rel=1e-10)
    # The GP view: the kernel and features do not depend on the structure.
    np.testing.assert_allclose(reg.kernel(X_test), J_test @ J_test.T, rtol=1e-10)
    np.testing.assert_allclose(reg.features(X_test)[:, 0], J_test, rtol=1e-12)


def test_a_registered_structure_serves_the_evidence_search_and_vi(isotropic):
    rng = np.random.RandomState(1)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int)
    clf = DNN2GPClassifier(hidden_layer_sizes=(5,), posterior="isotropic",
                           random_state=0).fit(X, y)
    assert type(clf.posterior_) is IsotropicPosterior
    assert len(clf.evidence_trace_) > 2 and np.isfinite(clf.log_marginal_likelihood_)
    proba = clf.predict_proba(X[:7])
    np.testing.assert_allclose(proba.sum(1), 1.0)
    # VI keeps q in the structure's form: one common variance.
    vi = DNN2GPClassifier(hidden_layer_sizes=(5,), posterior="isotropic", inference="vi",
                          prior_precision=1.0, max_iter=20, random_state=0)
    with pytest.warns(ConvergenceWarning):  # 20 epochs: enough to hold q's form
        vi.fit(X, y)
    assert type(vi.posterior_) is IsotropicPosterior
    variances = vi.posterior_.variances()
    np.testing.assert_allclose(variances, variances[0], rtol=1e-12)


# ----------------------------------------------------------- FullPosterior
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("hidden, n", [((3,), 40), ((30,), 12)])
def test_weight_and_function_space_agree(hidden, n):
    # (3,) with n=40 has P=10 < n: weight space; (30,) with n=12 has P=91 > n: function space.
    X, y = gap_data(n)
    est = FixedRegressor(
        hidden_layer_sizes=hidden, prior_precision=0.7, noise_std=0.2, max_iter=300, random_state=0
    ).fit(X, y)
    expected_space = "weight" if est.posterior_.n_parameters < n else "function"
    assert est.posterior_.space == expected_space
    M, u = _whitened(est, X, y)
    from sklearn_dnn2gp.posteriors import FullPosterior

    mean = est.posterior_.mean
    weight = FullPosterior.from_ggn(mean, M.T @ M, 0.7)
    function = FullPosterior.from_whitened_jacobian(mean, M, 0.7)
    X_test = np.linspace(-6, 6, 9)[:, None]
    J = torch.tensor(est.features(X_test))
    np.testing.assert_allclose(
        weight.functional_variance(J), function.functional_variance(J), rtol=1e-8
    )
    np.testing.assert_allclose(weight.covariance(), function.covariance(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(weight.log_det_ratio(), function.log_det_ratio(), rtol=1e-8)
    b = M.T @ u
    np.testing.assert_allclose(
        (weight.spectral_coordinates(b) ** 2).sum(),
        (function.spectral_coordinates(b) ** 2).sum(),
        rtol=1e-8,
    )
    # Direct Cholesky path in function space equals the estimator's evidence and variance.
    const = -len(X) * np.log(0.2)
    np.testing.assert_allclose(
        est.log_marginal_likelihood_, float(whitened_log_evidence(M, u, 0.7)) + const, rtol=1e-8
    )
    epistemic, _ = est.predict_uncertainty(X_test)
    direct = torch.diagonal(whitened_latent_variance(M, J, 0.7), dim1=1, dim2=2)[:, 0]
    np.testing.assert_allclose(epistemic, direct.numpy(), rtol=1e-8)


def whitened_latent_variance(M, J_test, prior_precision):
    """``k** - k*^T (K + I)^-1 k*`` per test point by a direct Cholesky in function
    space (b, K, K): the independent truth for the estimator's latent variance.
    ``M`` holds the whitened training Jacobians (n, P), ``J_test`` the test
    points' Jacobians (b, K, P)."""
    M, J_test = M.to(torch.float64), J_test.to(torch.float64)
    n = M.shape[0]
    K = M @ M.T / prior_precision + torch.eye(n, dtype=M.dtype)
    chol = torch.linalg.cholesky(K)
    k_cross = J_test @ M.T / prior_precision  # (b, K, n)
    v = torch.linalg.solve_triangular(chol, k_cross.reshape(-1, n).T, upper=False)
    v = v.T.reshape(k_cross.shape)
    return J_test @ J_test.transpose(1, 2) / prior_precision - v @ v.transpose(1, 2)


def test_weight_space_samples_match_covariance():
    X, y = gap_data(12)
    est = FixedRegressor(hidden_layer_sizes=(4,), noise_std=0.3, random_state=0).fit(X, y)
    from sklearn_dnn2gp.posteriors import FullPosterior

    M, _ = _whitened(est, X, y)
    for post in (est.posterior_, FullPosterior.from_ggn(est.posterior_.mean, M.T @ M, 1.0)):
        g = torch.Generator().manual_seed(0)
        samples = post.sample(40000, g)
        emp = torch.cov(samples.T)
        np.testing.assert_allclose(
            emp, post.covariance(), atol=0.05 * post.covariance().diag().max()
        )


@pytest.mark.parametrize("likelihood, n_out, hidden", [(Bernoulli(), 1, (6,)),
                                                      (Categorical(), 4, (12,))])
def test_weight_and_function_space_epistemic_variances_agree(likelihood, n_out, hidden):
    X, y = make_blobs(15, centers=max(n_out, 2), random_state=1)
    clf = FixedClassifier(hidden_layer_sizes=hidden, random_state=0, max_iter=300).fit(X, y)
    Xt = torch.tensor(X)
    M = torch.cat([M.reshape(-1, M.shape[-1]) for *_, M in
                   whitened_jacobians(clf.module_, likelihood, Xt)])
    mean = clf.posterior_.mean
    weight = FullPosterior.from_ggn(mean, M.T @ M, 1.0)
    function = FullPosterior.from_whitened_jacobian(mean, M, 1.0)
    J = torch.tensor(clf.features(X + 3.0))
    np.testing.assert_allclose(weight.functional_variance(J), function.functional_variance(J),
                               rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(weight.log_det_ratio(), function.log_det_ratio(), rtol=1e-10)
    # The estimator picked the function space (N K < P) and matches both.
    assert clf.posterior_.space == "function"
    _, var = clf.predict_latent(X + 3.0)
    np.testing.assert_allclose(var, weight.functional_variance(J), rtol=1e-8, atol=1e-12)


def test_cholesky_and_spectral_paths_agree():
    # The fitted posterior answers through a Cholesky factor and computes the
    # eigendecomposition only when the evidence is asked at other hyperparameters;
    # both are exact, so they must agree to round-off.
    rng = np.random.RandomState(0)
    M = torch.tensor(rng.randn(60, 25))
    mean = torch.tensor(rng.randn(25))
    J = torch.tensor(rng.randn(7, 2, 25))
    v = torch.tensor(rng.randn(25))
    from sklearn_dnn2gp.posteriors import FullPosterior

    cholesky = FullPosterior.from_ggn(mean, M.T @ M, 0.3).with_hyperparameters(None, 0.5)
    spectral = FullPosterior.from_ggn(mean, M.T @ M, 0.3).with_hyperparameters(None, 0.5)
    assert spectral.eigvals is not None and spectral.cholesky() is None
    assert cholesky.cholesky() is not None
    for method in ["log_det_ratio", "covariance", "precision"]:
        np.testing.assert_allclose(getattr(cholesky, method)(), getattr(spectral, method)(),
                                   rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cholesky.functional_variance(J), spectral.functional_variance(J),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cholesky.covariance_product(v), spectral.covariance_product(v),
                               rtol=1e-10, atol=1e-12)
    g = torch.Generator().manual_seed(0)
    samples = cholesky.sample(20000, g) - mean
    np.testing.assert_allclose(torch.cov(samples.T), spectral.covariance(),
                               atol=0.05 * float(spectral.covariance().diag().max()))


def test_covariance_product_in_both_spaces():
    rng = np.random.RandomState(0)
    M = torch.tensor(rng.randn(5, 9))
    v = torch.tensor(rng.randn(9))
    mean = torch.zeros(9, dtype=torch.float64)
    for post in (FullPosterior.from_ggn(mean, M.T @ M, 0.3),
                 FullPosterior.from_whitened_jacobian(mean, M, 0.3)):
        np.testing.assert_allclose(post.covariance_product(v), post.covariance() @ v,
                                   rtol=1e-10)
        expected = M.T @ M + 0.3 * torch.eye(9, dtype=torch.float64)
        np.testing.assert_allclose(post.precision(), expected, rtol=1e-10, atol=1e-12)


# ----------------------------------------- KronPosterior and KronCurvature
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
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


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
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


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
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


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_factor_averages_and_rescaling():
    net = _mlp((4,), 3, 2)
    P = flat_parameters(net).numel()
    S, T = _random_curvature(net, 10.0, seed=0), _random_curvature(net, 10.0, seed=1)
    mixed = S.mix(T, 0.25)
    for (G, A, _), (G1, A1, _), (G2, A2, _) in zip(mixed.factors, S.factors, T.factors):
        np.testing.assert_allclose(G, 0.75 * G1 + 0.25 * G2, rtol=1e-14)
        np.testing.assert_allclose(A, 0.75 * A1 + 0.25 * A2, rtol=1e-14)
    # Scaling by c over another N is the same matrix, c S.
    np.testing.assert_allclose(S.scaled(3.0, 40.0).dense(P), 3.0 * S.dense(P), rtol=1e-12)
    # S = value I to start from a constant initial precision.
    np.testing.assert_allclose(KronCurvature.identity(net, 10.0, 2.5).dense(P),
                               2.5 * np.eye(P), atol=1e-15)


# --------------------------------------------------------- ScaledPosterior
def _dense_checks(post, precision, mean, delta):
    """``post`` against ``N(mean, precision^-1)`` with per-parameter ``delta``."""
    cov = torch.linalg.inv(precision)
    gen = torch.Generator().manual_seed(0)
    J = torch.randn(3, 2, len(mean), dtype=torch.float64, generator=gen)
    torch.testing.assert_close(post.functional_variance(J), J @ cov @ J.transpose(1, 2),
                               rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(post.covariance(), cov, rtol=1e-10, atol=1e-12)
    v = torch.randn(len(mean), dtype=torch.float64, generator=gen)
    torch.testing.assert_close(post.covariance_product(v), cov @ v, rtol=1e-10, atol=1e-12)
    log_det = torch.logdet(precision) - torch.log(delta).sum()
    assert float(post.log_det_ratio()) == pytest.approx(float(log_det), rel=1e-10)
    assert float(post.prior_quadratic(mean)) == pytest.approx(float(delta @ mean**2),
                                                              rel=1e-12)
    torch.testing.assert_close(post.mean, mean, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("rows", [4, 12])  # function space (n < P) and weight space
def test_scaled_full_posterior_is_the_dense_one(rows):
    gen = torch.Generator().manual_seed(1)
    P = 7
    M = torch.randn(rows, P, dtype=torch.float64, generator=gen)
    mean = torch.randn(P, dtype=torch.float64, generator=gen)
    delta = torch.tensor([0.3, 0.3, 0.3, 5.0, 5.0, 2.0, 2.0], dtype=torch.float64)
    for base in (FullPosterior.from_whitened_jacobian(mean, M, 1.0),
                 FullPosterior.from_ggn(mean, M.T @ M, 1.0)):
        post = ScaledPosterior.wrap(base, delta)
        _dense_checks(post, M.T @ M + torch.diag(delta), mean, delta)
        # Same proportions: only the common factor changes, the factorisation is kept.
        scaled = post.with_hyperparameters(3 * delta, curvature_scale=0.5)
        assert scaled.shares_factorisation(post)
        _dense_checks(scaled, 0.5 * M.T @ M + torch.diag(3 * delta), mean, 3 * delta)
        # Other proportions: a new factorisation, still exact.
        other = delta.flip(0)
        moved = post.with_hyperparameters(other, curvature_scale=2.0)
        assert not moved.shares_factorisation(post)
        _dense_checks(moved, 2 * M.T @ M + torch.diag(other), mean, other)


def test_scaled_diag_posterior_is_the_dense_one():
    gen = torch.Generator().manual_seed(2)
    g = torch.rand(5, dtype=torch.float64, generator=gen)
    mean = torch.randn(5, dtype=torch.float64, generator=gen)
    delta = torch.tensor([1.0, 1.0, 4.0, 4.0, 0.5], dtype=torch.float64)
    post = ScaledPosterior.wrap(DiagPosterior(mean, 1.0, g), delta)
    torch.testing.assert_close(post.precision(), g + delta, rtol=1e-13, atol=0)
    torch.testing.assert_close(post.variances(), 1 / (g + delta), rtol=1e-13, atol=0)
    _dense_checks(post, torch.diag(g + delta), mean, delta)


def test_scaled_kron_posterior_is_the_dense_one():
    gen = torch.Generator().manual_seed(3)
    factors, offset = [], 0
    for d_out, d_in in ((3, 3), (2, 4)):
        G = torch.randn(d_out, d_out, dtype=torch.float64, generator=gen)
        A = torch.randn(d_in, d_in, dtype=torch.float64, generator=gen)
        order = torch.arange(offset, offset + d_out * d_in)
        factors.append((G @ G.T, A @ A.T, order))
        offset += d_out * d_in
    mean = torch.randn(offset, dtype=torch.float64, generator=gen)
    delta = torch.cat([torch.full((9,), 0.2), torch.full((8,), 3.0)]).to(torch.float64)
    post = ScaledPosterior.wrap(KronPosterior.from_factors(mean, factors, 4.0, 1.0), delta)
    blocks = [torch.kron(G, A) / 4.0 for G, A, _ in factors]
    _dense_checks(post, torch.block_diag(*blocks) + torch.diag(delta), mean, delta)
    with pytest.raises(ValueError, match="one prior precision per layer"):
        ScaledPosterior.wrap(KronPosterior.from_factors(mean, factors, 4.0, 1.0),
                             torch.linspace(1, 2, offset, dtype=torch.float64))


def test_function_space_posterior_factorises_only_what_is_asked():
    # The evidence at a few hyperparameters needs log|s M M^T + delta I_n| only: a
    # Cholesky factor of the n x n Gram matrix, not the SVD. Sylvester's identity
    # makes the two routes equal; both are sums of n well-conditioned logarithms
    # (delta > 0), so they agree to round-off relative to their size.
    from sklearn_dnn2gp.posteriors import FullPosterior

    gen = torch.Generator().manual_seed(0)
    M = torch.randn(20, 50, generator=gen, dtype=torch.float64)
    mean = torch.randn(50, generator=gen, dtype=torch.float64)
    v = torch.randn(50, generator=gen, dtype=torch.float64)
    lazy = FullPosterior.from_whitened_jacobian(mean, M, 0.7).with_hyperparameters(0.7, 1.3)
    J = torch.randn(6, 3, 50, generator=gen, dtype=torch.float64)
    log_det, product = lazy.log_det_ratio(), lazy.covariance_product(v)
    variance = lazy.functional_variance(J)
    assert not lazy.has_spectrum
    precision = 1.3 * M.T @ M + 0.7 * torch.eye(50, dtype=torch.float64)
    # Woodbury's difference of J J^T / delta and a term as large as the data make it:
    # with |M| ~ sqrt(50) the two are within ~10x of each other here, so round-off
    # stays ~1e-14 relative.
    dense = J @ torch.linalg.solve(precision, J.reshape(-1, 50).T).T.reshape(6, 3, 50).mT
    np.testing.assert_allclose(variance.numpy(), dense.numpy(), rtol=1e-10)
    expected = torch.linalg.slogdet(precision)[1] - 50 * math.log(0.7)
    assert float(log_det) == pytest.approx(float(expected), rel=1e-12)
    np.testing.assert_allclose(product.numpy(), torch.linalg.solve(precision, v).numpy(),
                               rtol=1e-10)
    # The spectrum, once asked for, serves other points; the factor keeps answering
    # at its own.
    other = lazy.with_hyperparameters(0.2, 1.0)
    assert lazy.eigvals.numel() == 20 and lazy.has_spectrum
    dense = torch.linalg.slogdet(M.T @ M + 0.2 * torch.eye(50, dtype=torch.float64))[1]
    assert float(other.log_det_ratio()) == pytest.approx(float(dense) - 50 * math.log(0.2),
                                                         rel=1e-12)
    assert float(lazy.log_det_ratio()) == float(log_det)
