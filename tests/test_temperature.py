"""The predictive's temperature: its criteria, its choice and what it changes."""

import warnings

import numpy as np
import pytest
import torch
from scipy.special import log_softmax
from sklearn.datasets import make_blobs, make_moons
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier
from sklearn_dnn2gp._links import log_class_probabilities
from sklearn_dnn2gp._loo import leave_one_out_latents
from sklearn_dnn2gp._temperature import (
    FALLBACK_TEMPERATURE,
    TEMPERATURES,
    select_temperature,
    temperature_criteria,
)

from ._helpers import FixedClassifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

GRID = np.array([0.0, 1e-3, 1e-2, 1e-1, 1.0])


def test_select_takes_the_smaller_of_the_two_largest_passing_temperatures():
    loo = np.array([1.00, 0.99, 0.995, 1.001, 2.0])  # min 0.99, x1.01 = 0.9999: up to 1e-2
    fit = np.array([0.50, 0.50, 0.51, 0.52, 0.60])  # plug-in 0.50, x1.05 = 0.525: up to 1e-1
    assert select_temperature(GRID, loo, fit) == 1e-2
    fit[2] = 0.53  # the fit now allows up to 1e-3 only: the first failure ends it
    assert select_temperature(GRID, loo, fit) == 1e-3
    # No temperature passes both tests (LOO: 1e-2 only; fit: up to 1e-3): the smaller
    # of the two picks, not the floor.
    loo = np.array([1.2, 1.1, 1.0, 1.5, 2.0])
    assert select_temperature(GRID, loo, fit) == 1e-3
    # Tolerances are the caller's.
    assert select_temperature(GRID, loo, fit, loo_tolerance=0.6, fit_tolerance=0.1) == 1e-1
    # The LOO range starts at its minimum: a later dip within the tolerance past a
    # failure does not count.
    loo = np.array([1.0, 1.0, 1.5, 1.005, 1.0])
    assert select_temperature(GRID, loo, np.full(5, 0.5)) == 1e-3


def test_select_floors_at_the_smallest_positive_temperature():
    # A plug-in that fits its labels exactly: every tempering costs, relatively.
    loo = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    fit = np.array([0.0, 1e-9, 1e-8, 1e-7, 1e-6])
    assert select_temperature(GRID, loo, fit) == 1e-3


def test_select_without_finite_criteria_returns_none():
    nan = np.full(5, np.nan)
    assert select_temperature(GRID, nan, np.ones(5)) is None
    assert select_temperature(GRID, np.ones(5), nan) is None
    # Non-finite entries elsewhere are skipped, not chosen.
    loo = np.array([np.nan, 1.0, 1.0, 1.0, 1.0])
    assert select_temperature(GRID, loo, np.ones(5)) == 1.0
    loo[-1] = np.nan  # a non-finite value ends the range
    assert select_temperature(GRID, loo, np.ones(5)) == 1e-1


@pytest.mark.parametrize("n_classes", [2, 3])
def test_criteria_are_the_probit_nll_of_the_cavities_and_of_the_fit(n_classes):
    # Independent recomputation in numpy of both criteria from the latents.
    X, y = make_blobs(40, centers=n_classes, cluster_std=2.5, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(5,), random_state=0, temperature=0.0).fit(X, y)
    f, var = clf.predict_latent(X)
    f_t, var_t = torch.as_tensor(f), torch.as_tensor(var)
    y_t = clf._known_targets(y, f_t.device)
    lik = clf.likelihood_
    loo, fit = temperature_criteria(
        f_t, var_t, y_t, lik, lambda a, b: lik.log_class_probabilities(a, b, "probit"), GRID)
    f_loo, var_loo = (t.numpy() for t in leave_one_out_latents(
        f_t, var_t, lik.residual(f_t, y_t), lik.precision(f_t)))

    def probit_nll(mean, cov, t):
        if n_classes == 2:  # the Bernoulli as the softmax of (0, f)
            mean = np.hstack([np.zeros_like(mean), mean])
            v = np.hstack([np.zeros((len(cov), 1)), cov[:, 0]])
        else:
            v = np.diagonal(cov, axis1=1, axis2=2)
        log_p = log_softmax(mean / np.sqrt(1 + np.pi / 8 * t * np.clip(v, 0, None)), axis=1)
        return -log_p[np.arange(len(y)), y].mean()

    np.testing.assert_allclose(loo, [probit_nll(f_loo, var_loo, t) for t in GRID], rtol=1e-12)
    np.testing.assert_allclose(fit, [probit_nll(f, var, t) for t in GRID], rtol=1e-12)
    # At T = 0 the fit criterion is the plug-in's training NLL.
    plugin = -clf.predict_log_proba(X, "plugin")[np.arange(len(y)), y].mean()
    np.testing.assert_allclose(fit[0], plugin, rtol=1e-12)


def test_integer_weights_are_repeated_rows_and_zero_weights_no_rows():
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    A = torch.randn(12, 3, 3, generator=gen, dtype=torch.float64)
    var = A @ A.transpose(1, 2) / 10
    y = torch.randint(3, (12,), generator=gen)
    from sklearn_dnn2gp._likelihoods import Categorical

    lik = Categorical()

    def log_proba(a, b):
        return log_class_probabilities(a, b, "probit")

    weights = torch.tensor([1, 2, 3, 1, 0, 1, 2, 1, 0, 0, 3, 1], dtype=torch.float64)
    repeat = weights.long()
    weighted = temperature_criteria(f, var, y, lik, log_proba, GRID, weights)
    repeated = temperature_criteria(f.repeat_interleave(repeat, 0),
                                    var.repeat_interleave(repeat, 0),
                                    y.repeat_interleave(repeat, 0), lik, log_proba, GRID)
    for a, b in zip(weighted, repeated):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.fixture(scope="module")
def moons():
    X, y = make_moons(120, noise=0.25, random_state=0)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def fitted(moons):
    X, y = moons
    # The temperature alone: the residual GP's variance has its own tests.
    return DNN2GPClassifier(hidden_layer_sizes=(10,), residual_scale=0.0,
                            random_state=0).fit(X, y)


def test_auto_temperature_is_on_the_grid_with_its_curve(fitted):
    assert fitted.temperature_ in TEMPERATURES[1:]
    curve = fitted.temperature_curve_
    assert set(curve) == {"temperature", "loo_nll", "fit_nll"}
    np.testing.assert_array_equal(curve["temperature"], TEMPERATURES)
    assert np.isfinite(curve["loo_nll"]).all() and np.isfinite(curve["fit_nll"]).all()
    assert fitted.temperature_ == select_temperature(TEMPERATURES, curve["loo_nll"],
                                                     curve["fit_nll"])


def test_temperature_scales_the_predictive_not_the_gp_view(moons, fitted):
    X, y = moons
    far = X * 10
    plugin = DNN2GPClassifier(hidden_layer_sizes=(10,), random_state=0,
                              temperature=0.0, residual_scale=0.0).fit(X, y)
    untempered = DNN2GPClassifier(hidden_layer_sizes=(10,), random_state=0,
                                  temperature=1.0, residual_scale=0.0).fit(X, y)
    # The same training: the GP view and the evidence do not see the temperature.
    for other in (plugin, untempered):
        for a, b in zip(other.predict_latent(far), fitted.predict_latent(far)):
            np.testing.assert_array_equal(a, b)
        assert other.log_marginal_likelihood_ == fitted.log_marginal_likelihood_
    np.testing.assert_allclose(plugin.predict_proba(far), plugin.predict_proba(far, "plugin"),
                               rtol=1e-12)
    f, var = fitted.predict_latent(far)
    for clf in (untempered, fitted):
        z = f[:, 0] / np.sqrt(1 + np.pi / 8 * clf.temperature_ * var[:, 0, 0])
        np.testing.assert_allclose(clf.predict_proba(far)[:, 1], 1 / (1 + np.exp(-z)),
                                   rtol=1e-10)
        np.testing.assert_allclose(clf.decision_function(far), z, rtol=1e-10)
    # Binary problems get the uncertainty by default (the bridge gave the plug-in).
    confidence = fitted.predict_proba(far).max(1)
    assert (confidence <= plugin.predict_proba(far).max(1) + 1e-12).all()
    assert confidence.mean() < plugin.predict_proba(far).max(1).mean()


def test_score_samples_is_the_confidence_and_passes_through_a_pipeline(moons):
    X, y = moons
    pipe = make_pipeline(StandardScaler(), DNN2GPClassifier(hidden_layer_sizes=(10,),
                                                            random_state=0)).fit(X, y)
    scores = pipe.score_samples(X[:7])
    np.testing.assert_allclose(scores, pipe.predict_proba(X[:7]).max(1), rtol=1e-12)
    assert ((scores >= 0.5) & (scores <= 1)).all()


@pytest.mark.parametrize("link", ["plugin", "bridge"])
def test_links_that_ignore_the_temperature_keep_one(moons, link):
    X, y = moons
    clf = DNN2GPClassifier(hidden_layer_sizes=(5,), link_approximation=link,
                           random_state=0).fit(X, y)
    assert clf.temperature_ == 1.0 and clf.temperature_curve_ is None


def test_mc_link_chooses_with_its_own_draws(moons):
    X, y = moons
    a = DNN2GPClassifier(hidden_layer_sizes=(5,), link_approximation="mc", link_samples=50,
                         random_state=0).fit(X, y)
    b = DNN2GPClassifier(hidden_layer_sizes=(5,), link_approximation="mc", link_samples=50,
                         random_state=0).fit(X, y)
    assert a.temperature_ == b.temperature_ and a.temperature_ in TEMPERATURES
    np.testing.assert_array_equal(a.temperature_curve_["loo_nll"],
                                  b.temperature_curve_["loo_nll"])


def test_too_few_rows_fall_back_with_a_warning():
    X, y = make_blobs(10, centers=2, random_state=0)
    with pytest.warns(UserWarning, match="at least 20 training rows"):
        clf = DNN2GPClassifier(hidden_layer_sizes=(3,), random_state=0).fit(X, y)
    assert clf.temperature_ == FALLBACK_TEMPERATURE
    assert np.isfinite(clf.predict_proba(X)).all()
    # A number needs no rows and gives no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        DNN2GPClassifier(hidden_layer_sizes=(3,), temperature=0.01, random_state=0).fit(X, y)


def test_rows_of_zero_weight_do_not_count_towards_the_minimum(moons):
    X, y = moons
    weights = np.zeros(len(y))
    weights[:15] = 1
    with pytest.warns(UserWarning, match="got 15"):
        DNN2GPClassifier(hidden_layer_sizes=(3,), random_state=0).fit(X, y,
                                                                     sample_weight=weights)


def test_subset_of_rows_is_deterministic_under_random_state(moons, monkeypatch):
    import sklearn_dnn2gp._temperature as temperature_module

    X, y = moons

    def curve():
        clf = DNN2GPClassifier(hidden_layer_sizes=(5,), random_state=0).fit(X, y)
        return clf.temperature_curve_["loo_nll"]

    everything = curve()
    monkeypatch.setattr(temperature_module, "MAX_ROWS", 30)
    subset = curve()
    np.testing.assert_array_equal(subset, curve())
    # 30 of the 120 rows: not the criterion of all of them.
    assert not np.array_equal(subset, everything)


@pytest.mark.parametrize("value", [-0.1, 1.5, "hot", None])
def test_bad_temperature_is_refused(moons, value):
    X, y = moons
    with pytest.raises(ValueError, match="temperature"):
        DNN2GPClassifier(temperature=value).fit(X, y)
