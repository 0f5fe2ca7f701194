import pickle

import numpy as np
import pytest
import torch
from scipy.stats import loguniform
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor
from sklearn_dnn2gp._utils import worker_torch_threads
from sklearn_dnn2gp.model_selection import (
    EvidenceSearchCV,
    evidence_scorer,
    maximize_evidence,
)

from ._helpers import FixedRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

GRID = {"prior_precision": [0.01, 0.3, 10.0, 300.0], "noise_std": [0.1, 0.3]}


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.uniform(-3, 3, size=(40, 1))
    y = np.sin(X[:, 0]) + 0.1 * rng.randn(40)
    return X, y


def small_regressor(**params):
    return FixedRegressor(hidden_layer_sizes=(8,), max_iter=200, random_state=0, **params)


def manual_evidence(estimator, candidates, X, y):
    return np.array([clone(estimator).set_params(**p).fit(X, y).log_marginal_likelihood_
                     for p in candidates])


def test_ranking_and_best_match_manual_fits(data):
    X, y = data
    search = EvidenceSearchCV(small_regressor(), GRID).fit(X, y)
    params = search.results_["params"]
    expected = manual_evidence(small_regressor(), params, X, y)
    np.testing.assert_allclose(search.results_["log_marginal_likelihood"], expected,
                               rtol=1e-10)
    best = int(np.argmax(expected))
    assert search.best_index_ == best
    assert search.best_params_ == params[best]
    assert search.best_score_ == pytest.approx(expected[best], rel=1e-10)
    order = np.argsort(-expected, kind="stable")
    np.testing.assert_array_equal(search.results_["rank_log_marginal_likelihood"][order],
                                  np.arange(1, len(params) + 1))
    # The winner is the network that was trained, not a refit.
    assert search.n_networks_ == len(params)
    assert search.refit_time_ == 0.0
    assert search.best_estimator_.get_params()["prior_precision"] == \
        params[best]["prior_precision"]
    assert search.best_estimator_.log_marginal_likelihood_ == search.best_score_
    assert search.results_["trained"].all()


def test_results_load_into_pandas(data):
    pd = pytest.importorskip("pandas")
    X, y = data
    search = EvidenceSearchCV(small_regressor(), GRID).fit(X, y)
    frame = pd.DataFrame(search.results_)
    assert len(frame) == 8
    for column in ("params", "param_prior_precision", "param_noise_std",
                   "log_marginal_likelihood", "rank_log_marginal_likelihood", "fit_time",
                   "score_time", "trained"):
        assert column in frame
    assert frame.loc[frame["rank_log_marginal_likelihood"].idxmin(), "params"] == \
        search.best_params_
    assert (frame["fit_time"] > 0).all()


def test_randomized_candidates_are_deterministic(data):
    X, y = data
    dist = {"prior_precision": loguniform(1e-2, 1e2)}
    runs = [EvidenceSearchCV(small_regressor(), param_distributions=dist, n_iter=3,
                             random_state=seed).fit(X, y) for seed in (0, 0, 1)]
    np.testing.assert_array_equal(runs[0].results_["log_marginal_likelihood"],
                                  runs[1].results_["log_marginal_likelihood"])
    assert runs[0].results_["params"] == runs[1].results_["params"]
    assert runs[0].results_["params"] != runs[2].results_["params"]
    assert len(runs[0].results_["params"]) == 3


def test_reuse_closed_form_column_is_the_shared_networks_evidence(data):
    X, y = data
    search = EvidenceSearchCV(small_regressor(), GRID, reuse_network=True,
                              max_retrain=0).fit(X, y)
    params = search.results_["params"]
    # With no retraining, only the candidate nearest the median log values is trained.
    start = params.index({"noise_std": 0.1, "prior_precision": 0.3})
    np.testing.assert_array_equal(np.flatnonzero(search.results_["trained"]), [start])
    assert search.n_networks_ == 1
    assert search.best_index_ == start
    shared = small_regressor().set_params(**params[start]).fit(X, y)
    expected = [shared.log_marginal_likelihood(prior_precision=p["prior_precision"],
                                               noise_std=p["noise_std"]) for p in params]
    np.testing.assert_allclose(search.results_["closed_form_log_marginal_likelihood"],
                               expected, rtol=1e-10)
    scores = search.results_["log_marginal_likelihood"]
    assert scores[start] == pytest.approx(shared.log_marginal_likelihood_, rel=1e-10)
    assert np.isnan(np.delete(scores, start)).all()
    assert search.results_["rank_log_marginal_likelihood"][start] == 1


def test_reuse_climbs_to_the_exact_optimum_with_fewer_networks(data):
    X, y = data
    grid = {"prior_precision": list(np.logspace(-2, 3, 11))}
    full = EvidenceSearchCV(small_regressor(noise_std=0.1), grid).fit(X, y)
    reuse = EvidenceSearchCV(small_regressor(noise_std=0.1), grid,
                             reuse_network=True).fit(X, y)
    trained = reuse.results_["trained"]
    assert reuse.n_networks_ == trained.sum() < full.n_networks_
    # Retrainings are warm-started from the best network so far, so they may settle in
    # other local optima than cold fits.
    assert np.isfinite(reuse.results_["log_marginal_likelihood"][trained]).all()
    assert trained[reuse.best_index_]
    assert reuse.best_params_ == full.best_params_
    # The winner's grid neighbours were trained and are worse.
    for k in (reuse.best_index_ - 1, reuse.best_index_ + 1):
        if 0 <= k < len(trained):
            assert trained[k]
            assert reuse.results_["log_marginal_likelihood"][k] < reuse.best_score_
    assert reuse.best_estimator_.log_marginal_likelihood_ == reuse.best_score_


def test_reuse_on_a_two_dimensional_grid(data):
    X, y = data
    full = EvidenceSearchCV(small_regressor(), GRID).fit(X, y)
    reuse = EvidenceSearchCV(small_regressor(), GRID, reuse_network=True).fit(X, y)
    assert reuse.n_networks_ < full.n_networks_
    assert reuse.best_params_ == full.best_params_
    assert reuse.refit_time_ == 0.0


def test_reuse_groups_other_parameters_separately(data):
    X, y = data
    grid = {"prior_precision": [0.1, 10.0], "hidden_layer_sizes": [(4,), (8,)]}
    search = EvidenceSearchCV(small_regressor(), grid, reuse_network=True,
                              max_retrain=0).fit(X, y)
    assert search.n_networks_ == 2
    widths = [p["hidden_layer_sizes"] for p in search.results_["params"]]
    trained = search.results_["trained"]
    for width in [(4,), (8,)]:
        assert any(t for w, t in zip(widths, trained) if w == width)


def test_maximize_evidence_beats_neighbouring_grid_points(data):
    X, y = data
    reg = small_regressor(prior_precision=1.0, noise_std=0.3)
    best, path = maximize_evidence(reg, X, y, return_path=True)
    delta = best.prior_precision_
    sigma = float(best.noise_std_[0])
    assert len(path) >= 2
    # The fit kept, the path's last entry, is the best trial trained on to tol.
    assert best.log_marginal_likelihood_ == pytest.approx(path[-1]["log_marginal_likelihood"],
                                                          rel=1e-9)
    for d in (delta / 3, delta, delta * 3):
        for s in (sigma / 1.5, sigma, sigma * 1.5):
            if (d, s) == (delta, sigma):
                continue
            other = clone(reg).set_params(prior_precision=d, noise_std=s).fit(X, y)
            assert best.log_marginal_likelihood_ > other.log_marginal_likelihood_
    # The caller's estimator is not fitted in place.
    assert not hasattr(reg, "module_")


def test_maximize_evidence_one_hyperparameter(data):
    X, y = data
    reg = small_regressor(prior_precision=1.0, noise_std=0.1)
    best = maximize_evidence(reg, X, y, hyperparameters=["prior_precision"])
    assert best.get_params()["noise_std"] == 0.1
    assert best.noise_std_[0] == pytest.approx(0.1, rel=1e-12)
    # prior_precision was searched (the start and both its neighbours at least), and
    # the fit kept is the best of the trials.
    *trials, kept = best.evidence_trace_
    assert len(trials) >= 3 and best.prior_precision_ == kept["prior_precision"]
    values = [t["log_marginal_likelihood"] for t in trials]
    assert kept["prior_precision"] == trials[int(np.argmax(values))]["prior_precision"]
    with pytest.raises(ValueError, match="hyperparameters"):
        maximize_evidence(reg, X, y, hyperparameters=["width"])


def test_scorer_with_gridsearchcv_selects_as_the_search(data):
    X, y = data
    idx = np.arange(len(X))
    grid_search = GridSearchCV(small_regressor(), GRID, scoring=evidence_scorer,
                               cv=[(idx, idx)]).fit(X, y)
    search = EvidenceSearchCV(small_regressor(), GRID).fit(X, y)
    assert grid_search.best_params_ == search.best_params_
    np.testing.assert_allclose(grid_search.cv_results_["mean_test_score"],
                               search.results_["log_marginal_likelihood"], rtol=1e-10)
    # cv_results_ has every key of GridSearchCV's for this one split, in the same meaning,
    # so code written for scikit-learn's searches reads the evidence search unchanged.
    assert set(grid_search.cv_results_) <= set(search.cv_results_)
    for key in ("mean_test_score", "split0_test_score", "rank_test_score", "std_test_score"):
        np.testing.assert_allclose(search.cv_results_[key], grid_search.cv_results_[key],
                                   rtol=1e-10)
    assert search.cv_results_["params"] == grid_search.cv_results_["params"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"param_grid": {"width": [1, 2]}}, ValueError, "Invalid parameter"),
        ({"param_grid": {"prior_precision": []}}, ValueError, "non-empty"),
        ({"param_grid": []}, ValueError, "empty"),
        ({"param_distributions": {"bogus": [1.0]}, "n_iter": 1}, ValueError,
         "Invalid parameter"),
        ({}, ValueError, "exactly one"),
        ({"param_grid": {"prior_precision": [1.0]},
          "param_distributions": {"prior_precision": [1.0]}}, ValueError, "exactly one"),
        ({"param_grid": {"prior_precision": [1.0]}, "n_iter": 0}, ValueError, "n_iter"),
    ],
)
def test_bad_grids_raise(data, kwargs, error, match):
    X, y = data
    with pytest.raises(error, match=match):
        EvidenceSearchCV(small_regressor(), **kwargs).fit(X, y)


def test_estimator_without_evidence_raises(data):
    X, y = data
    with pytest.raises(TypeError, match="log_marginal_likelihood_"):
        EvidenceSearchCV(Ridge(), {"alpha": [1.0]}).fit(X, y)


def test_failed_fits_rank_last_or_raise(data):
    X, y = data
    grid = {"hidden_layer_sizes": [(0,), (4,)]}
    with pytest.warns(FitFailedWarning, match="1 of 2 fits failed"):
        search = EvidenceSearchCV(small_regressor(), grid).fit(X, y)
    assert np.isnan(search.results_["log_marginal_likelihood"][0])
    np.testing.assert_array_equal(search.results_["rank_log_marginal_likelihood"], [2, 1])
    assert search.best_params_ == {"hidden_layer_sizes": (4,)}
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        EvidenceSearchCV(small_regressor(), grid, error_score="raise").fit(X, y)
    with pytest.raises(ValueError, match="All 1 fits failed"):
        EvidenceSearchCV(small_regressor(), {"hidden_layer_sizes": [(0,)]}).fit(X, y)


def test_parallel_equals_sequential(data):
    X, y = data
    threads = torch.get_num_threads()
    grid = {"prior_precision": [0.1, 10.0]}
    one = EvidenceSearchCV(small_regressor(), grid, n_jobs=1).fit(X, y)
    two = EvidenceSearchCV(small_regressor(), grid, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(two.results_["log_marginal_likelihood"],
                               one.results_["log_marginal_likelihood"], rtol=1e-10)
    assert two.best_params_ == one.best_params_
    np.testing.assert_allclose(two.predict(X), one.predict(X), rtol=1e-10)
    assert torch.get_num_threads() == threads


def test_worker_threads_are_scoped_to_worker_processes():
    before = torch.get_num_threads()
    import os

    with worker_torch_threads(before + 1, caller_pid=os.getpid()):
        assert torch.get_num_threads() == before
    with worker_torch_threads(before + 1, caller_pid=-1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


def test_delegation_and_pickle(data):
    X, y = data
    search = EvidenceSearchCV(small_regressor(), {"prior_precision": [0.1, 10.0]})
    assert not hasattr(search, "predict_proba")
    pickle.loads(pickle.dumps(search))
    search.fit(X, y)
    assert search.n_features_in_ == 1
    mean, std = search.predict(X[:5], return_std=True)
    assert std.shape == (5,)
    assert search.score(X, y) == pytest.approx(search.best_estimator_.score(X, y))
    clone_ = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(clone_.predict(X), search.predict(X))
    assert clone_.best_params_ == search.best_params_


def test_pipeline_with_reuse(data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), small_regressor(noise_std=0.1))
    grid = {"dnn2gpregressor__prior_precision": [0.1, 1.0, 10.0]}
    search = EvidenceSearchCV(pipe, grid, reuse_network=True).fit(X, y)
    assert search.best_estimator_[-1].log_marginal_likelihood_ == search.best_score_
    assert search.n_networks_ < 3 or search.results_["trained"].all()


class _EvidenceClassifier(ClassifierMixin, BaseEstimator):
    """A stand-in for a DNN2GP classifier: exact evidence peaked at delta = 2, the
    closed form of a 'network' trained at t peaked a quarter of the way (in log
    delta) from 2 to t."""

    def __init__(self, prior_precision=1.0, depth=1):
        self.prior_precision = prior_precision
        self.depth = depth

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        self.log_marginal_likelihood_ = self.log_marginal_likelihood()
        return self

    def log_marginal_likelihood(self, prior_precision=None):
        d = self.prior_precision if prior_precision is None else prior_precision
        centre = 0.25 * np.log(self.prior_precision) + 0.75 * np.log(2.0)
        return -(np.log(d) - centre) ** 2 - (np.log(self.prior_precision) - np.log(2.0)) ** 2 \
            - self.depth

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def predict_proba(self, X):
        return np.full((len(X), len(self.classes_)), 1 / len(self.classes_))


def test_classifier_api_reuse_and_optimise():
    X, y = np.zeros((6, 2)), np.array([0, 1] * 3)
    grid = {"prior_precision": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0], "depth": [1, 2]}
    search = EvidenceSearchCV(_EvidenceClassifier(), grid, reuse_network=True).fit(X, y)
    # Each depth's first network is at the median, 2.0, already the optimum; its two
    # neighbours are tried and are worse.
    assert search.best_params_ == {"depth": 1, "prior_precision": 2.0}
    assert search.n_networks_ == 6
    np.testing.assert_array_equal(search.classes_, [0, 1])
    assert search.predict_proba(X).shape == (6, 2)
    start_far = EvidenceSearchCV(_EvidenceClassifier(), {"prior_precision": [16.0, 32.0,
                                                                              64.0, 2.0]},
                                 reuse_network=True, max_retrain=5).fit(X, y)
    assert start_far.best_params_ == {"prior_precision": 2.0}
    # Started at 16 (nearest the median log); its more regularising neighbour 32 is
    # tried first and is worse, then 2, whose only neighbour, 16, is worse.
    np.testing.assert_array_equal(start_far.results_["trained"], [True, True, False, True])


@pytest.mark.parametrize("reuse_network", [False, True])
@pytest.mark.parametrize(
    "grid, bad",
    [
        ({"noise_std": [-1.0, 0.1, 0.3]}, 0),
        ({"noise_std": [0.1, 0.0, 0.3]}, 1),
        ({"prior_precision": [1.0, 3.0, np.nan]}, 2),
        ({"prior_precision": [-1.0, 1.0, 3.0], "noise_std": [0.1]}, 0),
    ],
)
def test_invalid_closed_form_candidates_score_error_score(data, grid, bad, reuse_network):
    # With reuse_network=True an invalid value was taken as the group's start (its
    # log is NaN) and its failure left the whole group untrained, or its closed form
    # raised out of fit; it must fail alone, as without sharing.
    X, y = data
    search = EvidenceSearchCV(small_regressor(), grid, reuse_network=reuse_network,
                              error_score=-1e9)
    with pytest.warns(FitFailedWarning, match="1 of .* fits failed"):
        search.fit(X, y)
    scores = search.results_["log_marginal_likelihood"]
    assert scores[bad] == -1e9
    assert not search.results_["trained"][bad]
    assert search.best_index_ != bad
    assert np.isfinite(search.best_score_)
    assert search.results_["rank_log_marginal_likelihood"][bad] == len(scores)
    if reuse_network:
        assert np.isnan(search.results_["closed_form_log_marginal_likelihood"][bad])
        assert np.isfinite(np.delete(
            search.results_["closed_form_log_marginal_likelihood"], bad)).all()


def test_invalid_candidate_with_reuse_raises_when_asked(data):
    X, y = data
    search = EvidenceSearchCV(small_regressor(), {"noise_std": [-1.0, 0.1, 0.3]},
                              reuse_network=True, error_score="raise")
    with pytest.raises(ValueError, match="noise_std"):
        search.fit(X, y)


class _PickyClosedForm(_EvidenceClassifier):
    """The stand-in whose closed form rejects a prior precision above 3."""

    def log_marginal_likelihood(self, prior_precision=None):
        if prior_precision is not None and prior_precision > 3:
            raise ValueError("prior_precision out of the closed form's range")
        return super().log_marginal_likelihood(prior_precision)


def test_closed_form_value_error_scores_nan_and_the_search_goes_on():
    X, y = np.zeros((6, 2)), np.array([0, 1] * 3)
    grid = {"prior_precision": [0.5, 1.0, 2.0, 4.0, 8.0]}
    search = EvidenceSearchCV(_PickyClosedForm(), grid, reuse_network=True).fit(X, y)
    closed_form = search.results_["closed_form_log_marginal_likelihood"]
    np.testing.assert_array_equal(np.isnan(closed_form), [False, False, False, True, True])
    # The exact evidence is unaffected: the optimum at 2 is found and its neighbour 4,
    # whose closed form failed, is still trained and compared.
    assert search.best_params_ == {"prior_precision": 2.0}
    assert search.results_["trained"][3]


def test_maximize_evidence_accepts_a_single_name(data):
    X, y = data
    reg = small_regressor(prior_precision=1.0, noise_std=0.1)
    one = maximize_evidence(reg, X, y, hyperparameters="prior_precision")
    listed = maximize_evidence(reg, X, y, hyperparameters=["prior_precision"])
    assert one.get_params()["noise_std"] == 0.1
    assert one.prior_precision_ == listed.prior_precision_
    assert one.log_marginal_likelihood_ == listed.log_marginal_likelihood_


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hyperparameters": "width"}, "hyperparameters"),
        ({"hyperparameters": 3}, "hyperparameters"),
        ({"return_path": "yes"}, "return_path"),
    ],
)
def test_maximize_evidence_validates_its_arguments(data, kwargs, match):
    X, y = data
    reg = small_regressor()
    with pytest.raises(InvalidParameterError, match=match):
        maximize_evidence(reg, X, y, **kwargs)
    # Nothing was fitted before the arguments were checked.
    assert not hasattr(reg, "module_")


def test_evidence_scorer_validates_the_estimator(data):
    X, y = data
    with pytest.raises(InvalidParameterError, match="estimator"):
        evidence_scorer("not an estimator", X, y)
    # An estimator without evidence is a TypeError, never a score.
    with pytest.raises(TypeError, match="log_marginal_likelihood_"):
        evidence_scorer(Ridge().fit(X, y), X, y)


@pytest.mark.slow
def test_search_through_dask(data):
    distributed = pytest.importorskip("distributed")
    joblib = pytest.importorskip("joblib")
    X, y = data
    threads = torch.get_num_threads()
    grid = {"prior_precision": [0.1, 10.0], "noise_std": [0.1, 0.3]}
    reference = EvidenceSearchCV(small_regressor(), grid).fit(X, y)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        with joblib.parallel_backend("dask"):
            search = EvidenceSearchCV(small_regressor(), grid, n_jobs=-1).fit(X, y)
            reuse = EvidenceSearchCV(small_regressor(), grid, n_jobs=-1,
                                     reuse_network=True).fit(X, y)
    np.testing.assert_allclose(search.results_["log_marginal_likelihood"],
                               reference.results_["log_marginal_likelihood"], rtol=1e-10)
    assert search.best_params_ == reference.best_params_
    assert reuse.best_params_ == reference.best_params_
    assert torch.get_num_threads() == threads


# Every documented search and scorer on estimators left at their defaults ('auto'
# prior and noise, normalize_y) and on per-layer priors: an 'auto' value is chosen
# inside each fit, never passed to the closed form.
DEFAULT_ESTIMATORS = {
    "regressor": lambda: DNN2GPRegressor(hidden_layer_sizes=(5,), random_state=0),
    "regressor, raw y": lambda: DNN2GPRegressor(hidden_layer_sizes=(5,), normalize_y=False,
                                                random_state=0),
    "regressor, layerwise": lambda: DNN2GPRegressor(hidden_layer_sizes=(5,),
                                                    prior_structure="layerwise",
                                                    random_state=0),
    "classifier": lambda: DNN2GPClassifier(hidden_layer_sizes=(5,), random_state=0),
    "classifier, layerwise": lambda: DNN2GPClassifier(hidden_layer_sizes=(5,),
                                                      prior_structure="layerwise",
                                                      random_state=0),
}


def _default_data(name, data):
    X, y = data
    if name.startswith("classifier"):
        return X, (y > 0).astype(int)
    return X, 100.0 * y + 50.0  # raw units: 'auto' and normalize_y must cope


def _grids(estimator, every):
    if "noise_std" not in estimator.get_params():
        return [{"prior_precision": ["auto", 1.0, 10.0]},
                {"hidden_layer_sizes": [(3,), (5,)]}][:1 + every]
    # 'auto' next to numbers in one grid: each candidate's own values decide what its
    # group shares.
    grids = [{"prior_precision": ["auto", 1.0, 10.0], "noise_std": [10.0, "auto"]}]
    if every:
        grids += [{"prior_precision": [1.0, 10.0]}, {"noise_std": [5.0, 20.0]},
                  {"hidden_layer_sizes": [(3,), (5,)]}]
    return grids


@pytest.mark.parametrize("reuse_network", [
    True, pytest.param(False, marks=pytest.mark.slow)])
@pytest.mark.parametrize("every", [False, pytest.param(True, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", DEFAULT_ESTIMATORS)
def test_search_on_default_estimators(data, name, reuse_network, every):
    X, y = _default_data(name, data)
    estimator = DEFAULT_ESTIMATORS[name]()
    for grid in _grids(estimator, every):
        search = EvidenceSearchCV(estimator, grid, reuse_network=reuse_network,
                                  error_score="raise").fit(X, y)
        scores = search.results_["log_marginal_likelihood"]
        trained = search.results_["trained"]
        assert np.isfinite(scores[trained]).all(), (grid, scores)
        assert search.best_score_ == search.best_estimator_.log_marginal_likelihood_
        # The winner is a fit at its candidate: an 'auto' left to its fit, the rest as
        # asked.
        fitted = search.best_estimator_
        for key, value in search.best_params_.items():
            if key in ("prior_precision", "noise_std") and value != "auto":
                np.testing.assert_allclose(getattr(fitted, key + "_"), value)
        if reuse_network:
            closed = search.results_["closed_form_log_marginal_likelihood"]
            # The closed form at a trained candidate's own setting is its exact evidence.
            best = search.best_index_
            np.testing.assert_allclose(closed[best], scores[best], rtol=1e-8)


@pytest.mark.parametrize("name", DEFAULT_ESTIMATORS)
def test_scorer_and_maximize_on_default_estimators(data, name):
    X, y = _default_data(name, data)
    estimator = DEFAULT_ESTIMATORS[name]()
    idx = np.arange(len(X))
    search = GridSearchCV(estimator, {"prior_precision": [1.0, "auto"]},
                          scoring=evidence_scorer, cv=[(idx, idx)], error_score="raise")
    search.fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    fitted = maximize_evidence(make_pipeline(StandardScaler(), estimator), X, y)
    assert np.isfinite(fitted[-1].log_marginal_likelihood_)
