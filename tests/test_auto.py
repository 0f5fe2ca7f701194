"""Hyperparameters set by the evidence in fit ('auto'), normalize_y and theta."""

import math

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor
from sklearn_dnn2gp._auto import XTOL, EvidenceSearch, _vertex, search_log_ratio
from sklearn_dnn2gp._trials import GAIN_TOL

from ._helpers import bayesian_ridge_reference, gap_data


def test_auto_on_a_linear_model_is_the_bayesian_ridge_solution():
    # A network without hidden layers is Bayesian linear regression: its evidence does
    # not depend on the trained weights, so the retrained evidence the search climbs is
    # the closed form, whose maximiser BayesianRidge finds by MacKay's fixed point
    # (with vanishing hyperpriors, and the bias as a column of ones under the prior).
    X, y, optimum = bayesian_ridge_reference()
    reg = DNN2GPRegressor(hidden_layer_sizes=(), normalize_y=False, random_state=0).fit(X, y)
    # sigma is maximised in closed form on the ray, and the refinement stops once its
    # parabola promises less than GAIN_TOL nats: the evidence is within GAIN_TOL of
    # BayesianRidge's optimum (the closed form is a parabola in t near it).
    best = reg.log_marginal_likelihood(optimum)
    assert best - GAIN_TOL <= reg.log_marginal_likelihood_ <= best + 1e-9 * abs(best)
    # On its ray sigma is the evidence's maximiser: d/d log sigma at constant
    # delta sigma^2 vanishes.
    theta = np.log([reg.prior_precision_, reg.noise_std_[0]])
    _, grad = reg.log_marginal_likelihood(theta, eval_gradient=True)
    along_ray = grad[1] - 2 * grad[0]
    assert abs(along_ray) <= 1e-3 * np.abs(grad).max() + 1e-4


def test_auto_classifier_lands_on_its_evidence_peak():
    X, y = make_blobs(n_samples=60, centers=3, cluster_std=2.0, random_state=0)
    clf = DNN2GPClassifier(hidden_layer_sizes=(6,), random_state=0).fit(X, y)
    # The last entry is the fit kept: the best trial, trained on to tol.
    *trials, kept = clf.evidence_trace_
    values = [t["log_marginal_likelihood"] for t in trials]
    assert clf.log_marginal_likelihood_ == pytest.approx(kept["log_marginal_likelihood"],
                                                         rel=1e-12)
    assert clf.prior_precision_ == kept["prior_precision"]
    assert clf.prior_precision_ == trials[int(np.argmax(values))]["prior_precision"]
    # Both grid neighbours of the kept point were trained and are worse.
    deltas = np.log([t["prior_precision"] for t in trials])
    best = np.log(clf.prior_precision_)
    assert (deltas < best).any() and (deltas > best).any()


def test_fixed_hyperparameters_are_kept_and_have_no_trace():
    X, y = gap_data(30)
    reg = DNN2GPRegressor(hidden_layer_sizes=(4,), prior_precision=2.0, noise_std=0.3,
                          random_state=0).fit(X, y)
    assert reg.prior_precision_ == 2.0
    np.testing.assert_allclose(reg.noise_std_, [0.3], rtol=1e-15)
    assert not hasattr(reg, "evidence_trace_")


def test_one_auto_hyperparameter_keeps_the_other():
    X, y = gap_data(30)
    reg = DNN2GPRegressor(hidden_layer_sizes=(4,), noise_std=0.3, random_state=0).fit(X, y)
    np.testing.assert_allclose(reg.noise_std_, [0.3], rtol=1e-12)
    assert all(t["noise_std"] == pytest.approx(0.3, rel=1e-12) for t in reg.evidence_trace_)
    reg = DNN2GPRegressor(hidden_layer_sizes=(4,), prior_precision=2.0,
                          random_state=0).fit(X, y)
    assert reg.prior_precision_ == 2.0


@pytest.mark.parametrize("scale", [8.0, 0.25])
def test_normalize_y_round_trips_the_units_of_y(scale):
    # A power of two scales y, its mean and its std exactly, so the normalised targets
    # and the trained network are bit-identical; every output carries the units of y.
    X, y = gap_data(40)
    y = y + 3.0
    params = dict(hidden_layer_sizes=(5,), random_state=0)
    a = DNN2GPRegressor(**params).fit(X, y)
    b = DNN2GPRegressor(**params).fit(X, scale * y)
    X_new = np.linspace(-4, 4, 7)[:, None]
    mean_a, std_a = a.predict(X_new, return_std=True)
    mean_b, std_b = b.predict(X_new, return_std=True)
    np.testing.assert_allclose(mean_b, scale * mean_a, rtol=1e-12)
    np.testing.assert_allclose(std_b, scale * std_a, rtol=1e-12)
    np.testing.assert_allclose(b.noise_std_, scale * a.noise_std_, rtol=1e-12)
    assert b.prior_precision_ == a.prior_precision_
    # The evidence of y includes the Jacobian of the change of units.
    assert b.log_marginal_likelihood_ == pytest.approx(
        a.log_marginal_likelihood_ - len(y) * np.log(scale), rel=1e-10)
    np.testing.assert_allclose(b.kernel(X_new), scale**2 * a.kernel(X_new), rtol=1e-12)
    np.testing.assert_allclose(b.features(X_new), scale * a.features(X_new), rtol=1e-12)
    np.testing.assert_allclose(b.transformed_targets(X, scale * y),
                               scale * a.transformed_targets(X, y), rtol=1e-10)
    _, cov_a = a.predict(X_new, return_cov=True)
    _, cov_b = b.predict(X_new, return_cov=True)
    np.testing.assert_allclose(cov_b, scale**2 * cov_a, rtol=1e-10, atol=1e-14)
    epi_a, ale_a = a.predict_uncertainty(X_new)
    epi_b, ale_b = b.predict_uncertainty(X_new)
    np.testing.assert_allclose(epi_b, scale**2 * epi_a, rtol=1e-12)
    np.testing.assert_allclose(ale_b, scale**2 * ale_a, rtol=1e-12)


def test_normalize_y_false_is_the_raw_model():
    X, y = gap_data(30)
    params = dict(hidden_layer_sizes=(4,), prior_precision=1.0, noise_std=0.2, random_state=0)
    raw = DNN2GPRegressor(normalize_y=False, **params).fit(X, y)
    norm = DNN2GPRegressor(normalize_y=True, **params).fit(X, y)
    # Same noise in the units of y, different networks (delta acts on other weights).
    np.testing.assert_allclose(raw.noise_std_, norm.noise_std_, rtol=1e-12)
    assert raw._targets.std[0] == 1.0 and norm._targets.std[0] != 1.0


def test_theta_is_the_log_hyperparameters():
    X, y = gap_data(30)
    reg = DNN2GPRegressor(hidden_layer_sizes=(4,), prior_precision=2.0, noise_std=0.3,
                          random_state=0).fit(X, y)
    theta = np.log([1.5, 0.4])
    expected = reg.log_marginal_likelihood(prior_precision=1.5, noise_std=0.4)
    assert reg.log_marginal_likelihood(theta) == expected
    assert reg.log_marginal_likelihood(theta=theta) == expected
    value, grad = reg.log_marginal_likelihood(theta, eval_gradient=True)
    h = 1e-6
    for i in range(2):
        e = np.eye(2)[i] * h
        fd = (reg.log_marginal_likelihood(theta + e) - reg.log_marginal_likelihood(theta - e))
        # Two central differences of different steps agree to O(h^2) + round-off.
        assert grad[i] == pytest.approx(fd / (2 * h), rel=1e-4, abs=1e-6)
    with pytest.raises(ValueError, match="theta"):
        reg.log_marginal_likelihood([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="either theta"):
        reg.log_marginal_likelihood(theta=theta, noise_std=0.3)
    with pytest.raises(ValueError, match="eval_gradient"):
        reg.log_marginal_likelihood(eval_gradient=True)
    clf = DNN2GPClassifier(hidden_layer_sizes=(4,), prior_precision=2.0,
                           random_state=0).fit(X, y > 0)
    assert clf.log_marginal_likelihood(np.log([3.0])) == clf.log_marginal_likelihood(3.0)


def test_noise_auto_needs_two_samples():
    with pytest.raises(ValueError, match="n_samples=1"):
        DNN2GPRegressor(hidden_layer_sizes=(2,)).fit([[0.0]], [1.0])


def test_multiclass_default_link_moderates_where_the_latent_variance_is_large():
    X, y = make_blobs(n_samples=90, centers=3, random_state=0)
    clf = DNN2GPClassifier(hidden_layer_sizes=(6,), random_state=0).fit(X, y)
    far = np.array([[30.0, -30.0]])
    _, var = clf.predict_latent(far)
    assert np.diagonal(var[0]).min() > 5
    default = clf.predict_proba(far)
    plugin = clf.predict_proba(far, link_approximation="plugin")
    assert default.max() < plugin.max()
    assert not np.allclose(default, plugin, rtol=1e-3, atol=0)


def test_search_on_a_known_curve():
    # The climb and the parabolic refinement on a smooth concave curve with its peak
    # between grid points: the result is within XTOL of the peak.
    peak = 1.234

    class T:
        def __init__(self, t):
            self.log_ratio, self.log_evidence = t, -(t - peak) ** 2
            self.hyperparameters, self.state = {}, None

    best, trials = search_log_ratio(lambda t, warm: T(t), 0.0, gain_tol=0.0)
    assert abs(best.log_ratio - peak) < XTOL
    assert len(trials) <= 7
    assert _vertex([(0.0, 0.0), (1.0, 1.0), (2.0, 0.0)]) == 1.0
    # By default the refinement stops once its parabola promises less than GAIN_TOL:
    # on a parabola that promise is exact, so the best trial is within GAIN_TOL of
    # the peak's value, with fewer trials.
    best, fewer = search_log_ratio(lambda t, warm: T(t), 0.0)
    assert best.log_evidence >= -GAIN_TOL and len(fewer) < len(trials)


@pytest.mark.filterwarnings("ignore:L-BFGS reached max_iter")
def test_noise_free_targets_stop_at_the_noise_floor():
    # y an exact function of X: the evidence grows without bound as sigma -> 0; the
    # search stops at the floor (a noise variance of 1e-5 of y's, as WhiteKernel's
    # default bound) and says why.
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, (40, 2))
    y = 3 * X[:, 0] + 1
    # A linear model fits y exactly, whatever machine: the residuals are round-off.
    reg = DNN2GPRegressor(hidden_layer_sizes=(), max_iter=200, random_state=0)
    with pytest.warns(ConvergenceWarning, match="look noise-free"):
        reg.fit(X, y)
    assert reg.noise_std_[0] == pytest.approx(10**-2.5 * y.std(), rel=1e-3)
    assert min(t["noise_std"] for t in reg.evidence_trace_) >= 10**-2.5 * y.std() * (1 - 1e-9)


class _ToyFit:
    """A stand-in for a trained network: the search sees only these attributes."""

    def __init__(self, ratio, warm):
        self.ratio, self.warm, self.n_iter = ratio, warm, 1

    def emit_warnings(self):
        pass


def test_evidence_search_runs_without_an_estimator():
    # The search is a separate object: a toy "network" whose MAP depends only on
    # delta c^2 (as a Gaussian regression's does) and an evidence that is a known
    # function of (log delta, log c) with its maximum at delta = 3, c = 0.5, i.e.
    # at delta c^2 = 0.75. The ray's profile is exact; the climb's parabolic
    # refinement meets the grid at XTOL.
    calls = []

    def train(warm, prior_precision, scale, trial):
        calls.append((warm, trial))
        return _ToyFit(prior_precision * scale**2, warm)

    def evidence(fit, prior_precision, scale=None):
        scale = math.sqrt(fit.ratio / prior_precision) if scale is None else scale
        return -(math.log(prior_precision / 3)) ** 2 - (math.log(scale / 0.5)) ** 2

    search = EvidenceSearch(train, evidence, fixed_prior=None, search_scale=True,
                            scale_floor=1e-3, layerwise=False, n_groups=1, start=0.0,
                            gain_tol=0.0)
    result = search.run()
    assert math.log(result.hyperparameters["prior_precision"] / 3) == pytest.approx(0, abs=XTOL)
    assert math.log(result.hyperparameters["scale"] / 0.5) == pytest.approx(0, abs=XTOL)
    # Trials warm-start from earlier trials' fits, and only the kept fit is trained
    # to the full tolerance, from the best trial's.
    assert [trial for _, trial in calls].count(False) == 1
    assert calls[0][0] is None and all(warm is not None for warm, _ in calls[1:])
    assert result.fit.warm is max(result.trials, key=lambda t: t.log_evidence).state
    assert result.finals[-1][2] is result.fit


def test_evidence_search_with_a_fixed_prior_searches_the_scale_only():
    def train(warm, prior_precision, scale, trial):
        return _ToyFit(prior_precision * scale**2, warm)

    def evidence(fit, prior_precision, scale=None):
        scale = math.sqrt(fit.ratio / prior_precision) if scale is None else scale
        return -(math.log(scale / 2)) ** 2

    result = EvidenceSearch(train, evidence, fixed_prior=5.0, search_scale=True,
                            scale_floor=1e-3, layerwise=False, n_groups=1, start=0.0,
                            gain_tol=0.0).run()
    assert result.hyperparameters["prior_precision"] == 5.0
    assert math.log(result.hyperparameters["scale"] / 2) == pytest.approx(0, abs=XTOL)


@pytest.mark.parametrize("slope, expected", [(1.0, "upper"), (-1.0, "lower"), (0.0, None)])
def test_evidence_search_reports_a_bound_it_runs_into(slope, expected):
    # An evidence still rising at a bound of the searched log delta: the climb stops
    # there, and the result says so; a peaked one (slope 0: maximum at delta = 3) is
    # found inside.
    def train(warm, prior_precision, scale, trial):
        return _ToyFit(prior_precision, warm)

    def evidence(fit, prior_precision, scale=None):
        t = math.log(prior_precision)
        return slope * t if slope else -(t - math.log(3)) ** 2

    result = EvidenceSearch(train, evidence, fixed_prior=None, search_scale=False,
                            scale_floor=None, layerwise=False, n_groups=1, start=0.0).run()
    assert result.at_bound == expected


def test_evidence_at_the_bound_of_its_search_warns():
    # Linnerud (20 rows, 3 targets barely related to the exercises): the evidence
    # prefers a constant prediction to every network, and says so.
    from sklearn.datasets import load_linnerud
    from sklearn.preprocessing import StandardScaler

    X, y = load_linnerud(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match="upper bound of its search of prior_prec"):
        reg = DNN2GPRegressor(hidden_layer_sizes=(10,), random_state=0).fit(
            StandardScaler().fit_transform(X), y)
    assert reg.prior_precision_ > 1e7
