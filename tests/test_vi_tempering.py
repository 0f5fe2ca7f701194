"""VI at a temperature: VOGN's draws from the tempered q, and the estimators'
``temperature`` as the temperature VI trains at (and the regressor's predictive)."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning

from sklearn_dnn2gp import DNN2GPRegressor
from sklearn_dnn2gp._network import flat_parameters
from sklearn_dnn2gp._vi import antithetic_sample
from sklearn_dnn2gp.datasets import make_gap_regression
from sklearn_dnn2gp.posteriors import FullPosterior

from ._helpers import FixedClassifier


def _posterior(P=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(P, P, generator=g, dtype=torch.float64)
    mean = torch.randn(P, generator=g, dtype=torch.float64)
    return FullPosterior.from_curvature(mean, A @ A.T, 0.5)


@pytest.mark.parametrize("temperature", [0.0, 0.01, 0.5])
def test_tempered_draws_are_the_untempered_ones_pulled_towards_the_mean(temperature):
    # q_T = N(mu, T Sigma): the same standard normals, their offset from mu times sqrt(T).
    q = _posterior()
    plain = antithetic_sample(q, 5, torch.Generator().manual_seed(1))
    tempered = antithetic_sample(q, 5, torch.Generator().manual_seed(1), temperature)
    expected = q.mean + np.sqrt(temperature) * (plain - q.mean)
    torch.testing.assert_close(tempered, expected, rtol=0, atol=1e-12)
    # Antithetic pairs stay mirrored about the mean.
    torch.testing.assert_close(tempered[:2] + tempered[3:5], 2 * q.mean.expand(2, -1),
                               rtol=0, atol=1e-12)


def test_temperature_one_draws_exactly_as_before():
    q = _posterior(seed=3)
    plain = antithetic_sample(q, 4, torch.Generator().manual_seed(2))
    half = q.sample(2, torch.Generator().manual_seed(2))
    assert torch.equal(plain, torch.cat([half, 2 * q.mean - half]))
    assert torch.equal(plain, antithetic_sample(q, 4, torch.Generator().manual_seed(2), 1.0))


@pytest.fixture(scope="module")
def moons():
    return make_moons(120, noise=0.3, random_state=0)


@pytest.mark.filterwarnings("ignore:.*reached max_iter:sklearn.exceptions.ConvergenceWarning")
def test_vogn_at_temperature_zero_is_ogn(moons):
    # At T = 0 every draw is the mean, so with full batches (no shuffling that the
    # draws could change) VOGN takes OGN's steps exactly.
    X, y = moons
    fits = {method: FixedClassifier(hidden_layer_sizes=(4,), inference="vi",
                                    vi_method=method, temperature=0.0, max_iter=40,
                                    batch_size=len(y), random_state=0).fit(X, y)
            for method in ("vogn", "ogn")}
    torch.testing.assert_close(fits["vogn"].posterior_.mean, fits["ogn"].posterior_.mean,
                               rtol=0, atol=0)
    torch.testing.assert_close(fits["vogn"].posterior_.covariance(),
                               fits["ogn"].posterior_.covariance(), rtol=0, atol=0)
    assert fits["vogn"].temperature_ == 0.0


def test_auto_temperature_under_vi_is_chosen_on_the_map_and_vi_starts_there(moons):
    X, y = moons
    laplace = FixedClassifier(hidden_layer_sizes=(4,), random_state=0).fit(X, y)
    vi = FixedClassifier(hidden_layer_sizes=(4,), inference="vi", random_state=0).fit(X, y)
    # The same initial weights and L-BFGS: the same MAP, the same Laplace posterior
    # and so the same choice on it.
    assert vi.temperature_ == laplace.temperature_
    np.testing.assert_array_equal(vi.temperature_curve_["loo_nll"],
                                  laplace.temperature_curve_["loo_nll"])
    # VI's mean stays near the MAP it started from: within the spread of q_T
    # itself, sqrt(T) times q's standard deviations.
    offset = vi.posterior_.mean - torch.cat([p.reshape(-1)
                                             for p in laplace.module_.parameters()])
    spread = (vi.temperature_ * vi.posterior_.covariance().diagonal()).sqrt()
    assert float((offset.abs() / spread).max()) < 3


@pytest.mark.filterwarnings("ignore:.*reached max_iter:sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("temperature", [0.1, "auto"])
def test_vi_starts_from_the_map_at_its_hyperparameters(moons, monkeypatch, temperature):
    import sklearn_dnn2gp._base as base

    X, y = moons
    starts = []
    train_vi = base.train_vi
    monkeypatch.setattr(base, "train_vi", lambda module, *a, **k: starts.append(
        flat_parameters(module).clone()) or train_vi(module, *a, **k))
    # max_iter bounds the MAP's L-BFGS iterations and VI's epochs alike.
    params = dict(hidden_layer_sizes=(4,), temperature=temperature, max_iter=30,
                  random_state=0)
    vi = FixedClassifier(inference="vi", **params).fit(X, y)
    laplace = FixedClassifier(**params).fit(X, y)
    assert len(starts) == 1
    assert torch.equal(starts[0], flat_parameters(laplace.module_))
    if temperature != "auto":
        assert vi.temperature_ == temperature and vi.temperature_curve_ is None


@pytest.mark.filterwarnings("ignore:.*reached max_iter:sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("posterior, temperature", [("full", 1.0), ("diag", 0.3),
                                                    ("kron", 1.0)])
def test_the_stopping_rule_watches_the_linearised_objective(moons, monkeypatch, posterior,
                                                           temperature):
    # What VI's rule watches: sum_i l_i(mu) + delta/2 |mu|^2 + T/2 log|(S + delta I)/delta|,
    # checked after the last epoch against dense algebra on the final q.
    import sklearn_dnn2gp._vi as vi_module

    X, y = moons
    seen = []
    run_epochs = vi_module._run_epochs

    def recording(run_epoch, **kwargs):
        return run_epochs(lambda epoch: seen.append(run_epoch(epoch)) or seen[-1], **kwargs)

    monkeypatch.setattr(vi_module, "_run_epochs", recording)
    est = FixedClassifier(hidden_layer_sizes=(3,), inference="vi", posterior=posterior,
                          temperature=temperature, max_iter=5, random_state=0).fit(X, y)
    q, delta = est.posterior_, est.prior_precision_
    logits = est.module_(torch.as_tensor(X))[:, 0]
    data = float(torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.as_tensor(y, dtype=torch.float64), reduction="sum"))
    precision = torch.linalg.inv(q.covariance())
    log_det_ratio = float(torch.linalg.slogdet(precision / delta)[1])
    expected = data + delta / 2 * float(q.mean @ q.mean) + temperature / 2 * log_det_ratio
    sampled, watched = seen[-1]
    assert watched == pytest.approx(expected, rel=1e-9)
    assert len(seen) == est.n_iter_ and [s for s, _ in seen] == est.loss_curve_


def test_warnings_of_the_map_start_say_so(moons):
    # A VI fit that trains a MAP first reports that training's warnings as the MAP's.
    X, y = moons
    with pytest.warns(ConvergenceWarning) as record:
        FixedClassifier(hidden_layer_sizes=(4,), inference="vi", max_iter=3,
                        random_state=0).fit(X, y)
    messages = [str(w.message) for w in record]
    assert any(m.startswith("The MAP that VI starts from: L-BFGS reached max_iter=3")
               for m in messages)
    assert any(m.startswith("VOGN reached max_iter=3") for m in messages)


# ----------------------------------------------------------------- the regressor
@pytest.fixture(scope="module")
def gap():
    return make_gap_regression(n_samples=60, noise=0.1, random_state=0)


def _regressor(**params):
    return DNN2GPRegressor(hidden_layer_sizes=(5,), prior_precision=1.0, noise_std=0.1,
                           random_state=0, **params)


@pytest.mark.parametrize("temperature", [0.0, 0.25])
def test_regressor_temperature_scales_the_epistemic_part_only(gap, temperature):
    # Laplace trains the same MAP at any T; the predictive's latent covariance is
    # T J Sigma J^T, the noise and the evidence stay.
    X, y = gap
    plain, tempered = _regressor().fit(X, y), _regressor(temperature=temperature).fit(X, y)
    assert plain.temperature_ == 1.0 and tempered.temperature_ == temperature
    X_new = np.array([[-2.0], [0.0], [2.5]])
    epistemic, aleatoric = plain.predict_uncertainty(X_new)
    tempered_epistemic, tempered_aleatoric = tempered.predict_uncertainty(X_new)
    np.testing.assert_allclose(tempered_epistemic, temperature * epistemic, rtol=1e-12)
    np.testing.assert_array_equal(tempered_aleatoric, aleatoric)
    _, std = tempered.predict(X_new, return_std=True)
    np.testing.assert_allclose(std**2, temperature * epistemic + aleatoric, rtol=1e-12)
    _, cov = plain.predict(X_new, return_cov=True)
    _, tempered_cov = tempered.predict(X_new, return_cov=True)
    noise = 0.1**2 * np.eye(3)
    np.testing.assert_allclose(tempered_cov - noise, temperature * (cov - noise),
                               rtol=1e-12, atol=1e-15)
    assert tempered.log_marginal_likelihood_ == plain.log_marginal_likelihood_
    np.testing.assert_array_equal(tempered.kernel(X_new), plain.kernel(X_new))


@pytest.mark.filterwarnings("ignore:.*reached max_iter:sklearn.exceptions.ConvergenceWarning")
def test_regressor_vi_trains_at_its_temperature(gap):
    # As for the classifier: at T = 0 every draw is the mean, so with full batches
    # VOGN takes OGN's steps exactly, which it does not at T = 1.
    X, y = gap
    fits = {(method, T): _regressor(inference="vi", vi_method=method, temperature=T,
                                    max_iter=30, batch_size=len(y)).fit(X, y)
            for method, T in [("vogn", 0.0), ("ogn", 0.0), ("vogn", 1.0)]}
    means = {key: fit.posterior_.mean for key, fit in fits.items()}
    torch.testing.assert_close(means["vogn", 0.0], means["ogn", 0.0], rtol=0, atol=0)
    assert not torch.equal(means["vogn", 1.0], means["ogn", 0.0])
