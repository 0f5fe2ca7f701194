"""Deterministic checks of outputs that must never happen, each case once observed
or a fixed case of the contract of tests/test_fuzz.py: numerical trouble (overflow
far from the data, negative variances, divergent training, a noise scale far from
the residuals), torch errors where scikit-learn's belong, and resources (memory
refused before the work, threads, slow factorisations)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from sklearn_dnn2gp import DNN2GPClassifier, _resources
from sklearn_dnn2gp.model_selection import maximize_evidence

from ._helpers import (
    FixedClassifier,
    FixedRegressor,
    _check_classifier,
    _check_outputs,
    _fail,
    _quiet_fit,
    _short,
    classification_data,
    gap_data,
    regression_data,
)

# Warnings these extreme settings are expected to raise are tested on their own below.
# The contract's cases (those that call _check_outputs) run without these filters.
extreme_settings = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning", "ignore:The training residuals:UserWarning")


# ------------------------------------------------------- numerical trouble
@extreme_settings
@pytest.mark.parametrize("scale", [1e3, 1e300])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("posterior", ["full", "diag", "kron"])
def test_probabilities_stay_finite_far_from_the_data(n_classes, posterior, scale):
    # ReLU logits grow linearly away from the data: at X * 1000 they are in the
    # thousands and the bridge once returned inf / inf; at X * 1e300 the latent
    # variances overflow float64 (K-FAC's first), and the links take their limit.
    X, y = make_blobs(30, centers=n_classes, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(8,), activation="relu", posterior=posterior,
                           max_iter=100, random_state=0).fit(X, y)
    far = X * scale
    epistemic, aleatoric = clf.predict_uncertainty(far)
    assert np.all((epistemic >= 0) & (epistemic <= 0.25)) and np.all(aleatoric >= 0)
    for link in ["meanfield", "bridge", "probit", "mc", "plugin"]:
        proba = clf.predict_proba(far, link)
        log_proba = clf.predict_log_proba(far, link)
        assert np.all(np.isfinite(proba)) and np.all(proba >= 0)
        np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-12)
        assert np.all(np.isfinite(log_proba))
        np.testing.assert_allclose(np.exp(log_proba), proba, rtol=1e-12, atol=1e-300)
        clf.set_params(link_approximation=link)
        assert np.all(np.isfinite(clf.decision_function(far)))


@extreme_settings
@pytest.mark.parametrize("params", [
    {"prior_precision": 1e-30, "dtype": "float32"},
    {"prior_precision": 1e-30},
    {"noise_std": 1e-10},
])
def test_variances_are_never_negative(params):
    # 40 points and 151 parameters: the function-space posterior, whose old
    # difference-of-squares variance cancelled to negative values.
    X, y = gap_data(40)
    reg = FixedRegressor(max_iter=300, random_state=0, **params).fit(X, y)
    X_test = np.linspace(-8, 8, 50)[:, None]
    _, std = reg.predict(X_test, return_std=True)
    epistemic, _ = reg.predict_uncertainty(X_test)
    _, cov = reg.predict(X_test[:10], return_cov=True)
    assert reg.posterior_.space == "function"
    assert np.all(np.isfinite(std)) and np.all(std > 0)
    assert np.all(epistemic >= 0)
    assert np.all(np.diag(cov) > 0)


@extreme_settings
def test_huge_targets_give_non_negative_variances():
    X, y = gap_data(40)
    reg = FixedRegressor(max_iter=300, random_state=0).fit(X, y * 1e8)
    epistemic, _ = reg.predict_uncertainty(np.linspace(-8, 8, 50)[:, None])
    assert np.all(epistemic >= 0)


@extreme_settings
def test_extreme_per_layer_precisions_are_refused_in_sklearn_words():
    X, y = gap_data(20)
    reg = FixedRegressor(hidden_layer_sizes=(4,), prior_structure="layerwise",
                         random_state=0).fit(X, y)
    for theta, match in [([800, 0, 0], r"prior_precision\[0\].*inf"),
                         ([0, -800, 0], r"prior_precision\[1\].*0\.0"),
                         ([700, -700, 0], "too extreme")]:
        for gradient in (False, True):
            with pytest.raises(ValueError, match=match):
                reg.log_marginal_likelihood(theta=theta, eval_gradient=gradient)


@extreme_settings
def test_diverging_adam_warns():
    X, y = gap_data(40)
    with pytest.warns(ConvergenceWarning, match="learning_rate_init"):
        FixedRegressor(solver="adam", learning_rate_init=1e6, random_state=0).fit(X, y)


@pytest.mark.parametrize("make", [
    lambda: (FixedRegressor, regression_data(0, 30)),
    lambda: (FixedClassifier, classification_data(0, 30, 2, separable=False)),
    lambda: (FixedClassifier, classification_data(0, 30, 3, separable=True)),
], ids=["regressor", "binary", "multiclass"])
def test_divergent_adam_is_not_silent(make):
    Estimator, (X, y) = make()
    est = Estimator(hidden_layer_sizes=(8,), solver="adam", learning_rate_init=1e6,
                    max_iter=50, random_state=0)
    label = f"{_short(est)}.fit(X, y)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = _check_outputs("divergent-adam", label, lambda: est.fit(X, y), "fitted")
    if fitted is None:
        # It raised an allowed error: it must say which setting caused it.
        with pytest.raises(ValueError, match="learning_rate_init"):
            est.fit(X, y)
        return
    if not any(issubclass(w.category, ConvergenceWarning) for w in caught):
        _fail(label, "returned without a ConvergenceWarning or a ValueError naming "
                     "learning_rate_init")
    if Estimator is DNN2GPClassifier:
        _check_classifier("divergent-adam", fitted, "X, y", X, "X", [1.0])
    else:
        _check_outputs("divergent-adam", f"{label}.predict(X, return_std=True)",
                       lambda: fitted.predict(X, return_std=True), ("finite", "nonnegative"))


@extreme_settings
def test_noise_std_far_below_the_residuals_warns():
    X, y = gap_data(40)
    with pytest.warns(UserWarning, match="Standardise y"):
        FixedRegressor(hidden_layer_sizes=(5,), max_iter=100, random_state=0).fit(X, 1e3 * y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        FixedRegressor(hidden_layer_sizes=(5,), noise_std=0.1, random_state=0).fit(X, y)


@pytest.mark.parametrize("shift", [1e6, -1e6, 1e8])
def test_noise_std_far_from_the_residual_scale_is_not_silent(shift):
    # With the default noise_std=1.0 and targets around 1e6, an unscaled fit either
    # says that noise_std does not match the residuals or still covers its targets.
    X, y = regression_data(0, 30)
    y = shift + 1e3 * y
    reg = FixedRegressor(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    label = f"{_short(reg)}.fit(X, {shift:g} + 1e3 * y)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = _check_outputs("noise-scale", label, lambda: reg.fit(X, y), "fitted")
    if fitted is None:
        return
    warned = [w for w in caught if issubclass(w.category, (UserWarning, ConvergenceWarning))
              and "noise_std" in str(w.message)]
    predicted = _check_outputs("noise-scale", f"{label}.predict(X, return_std=True)",
                               lambda: fitted.predict(X, return_std=True),
                               ("finite", "nonnegative"))
    if predicted is None:
        _fail(label, "predict raised on the training inputs")
        return
    mean, std = predicted
    covered = np.mean(np.abs(y - mean) <= 2 * std)
    if not warned and covered < 0.5:
        _fail(label, f"no warning that noise_std=1.0 is far from the residual scale, and "
                     f"the 2-std bands cover only {covered:.0%} of the training targets")


# --------------------------------------------------- scikit-learn's errors
@extreme_settings
@pytest.mark.parametrize("device", ["bogus", "gpu", "meta", "cuda:abc"])
def test_unknown_device_is_a_value_error(device):
    X, y = gap_data(10)
    with pytest.raises(ValueError, match="device"):
        FixedRegressor(hidden_layer_sizes=(2,), device=device).fit(X, y)


@extreme_settings
def test_string_features_and_targets_are_refused_in_sklearn_words():
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": pd.Categorical(["x", "y", "x", "y"])})
    with pytest.raises(ValueError, match="could not convert string to float"):
        FixedRegressor(hidden_layer_sizes=(2,)).fit(X, [0.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="numeric targets"):
        FixedRegressor(hidden_layer_sizes=(2,)).fit(np.ones((4, 1)), ["a", "b", "c", "d"])


@extreme_settings
def test_evidence_reevaluation_refuses_bad_hyperparameters():
    X, y = gap_data(20)
    reg = FixedRegressor(hidden_layer_sizes=(3,), max_iter=50, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="prior_precision"):
        reg.log_marginal_likelihood(prior_precision="abc")
    # A 1-D array is theta (GaussianProcessRegressor's convention): here it needs 2.
    with pytest.raises(ValueError, match="theta must hold 2"):
        reg.log_marginal_likelihood(prior_precision=[1, 2, 3])
    with pytest.raises(TypeError, match="prior_precision"):
        reg.log_marginal_likelihood(prior_precision=[[1, 2]])
    with pytest.raises(ValueError, match="prior_precision"):
        reg.log_marginal_likelihood(prior_precision=np.nan)
    with pytest.raises(ValueError, match="noise_std"):
        reg.log_marginal_likelihood(noise_std=1e-300)
    with pytest.raises(TypeError, match="noise_std"):
        reg.log_marginal_likelihood(noise_std="abc")
    assert np.isfinite(reg.log_marginal_likelihood(prior_precision=1e-300, noise_std=1e-100))
    assert np.isfinite(reg.log_marginal_likelihood(np.float64(2.0), np.float32(0.5)))


@extreme_settings
def test_iterate_gp_checks_the_length_of_y():
    X, y = gap_data(20)
    reg = FixedRegressor(hidden_layer_sizes=(3,), inference="vi", max_iter=5,
                          random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        reg.iterate_gp(X, y[:-1])


@extreme_settings
def test_views_refuse_what_they_cannot_draw_or_read():
    pytest.importorskip("matplotlib")
    from sklearn.linear_model import Ridge

    from sklearn_dnn2gp.kernels import NTKFeatures, NTKKernel
    from sklearn_dnn2gp.plotting import PredictiveDisplay

    X, y = gap_data(20)
    reg = FixedRegressor(hidden_layer_sizes=(4,), max_iter=20, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes.*str"):
        PredictiveDisplay.from_estimator(reg, X, y, ax="ax")
    ridge = Ridge().fit(X, y)
    with pytest.raises(TypeError, match="NTKKernel needs a DNN2GP.*Ridge"):
        NTKKernel(ridge)(X)
    with pytest.raises(TypeError, match="NTKFeatures needs a DNN2GP.*Ridge"):
        NTKFeatures(ridge).fit(X, y)


@pytest.fixture(scope="module")
def bad_input_cases():
    """Calls that must raise ValueError or TypeError, by name; each builds what it
    needs from fresh clones so that none sees another's settings."""
    pd = pytest.importorskip("pandas")
    X, y = regression_data(0, 20)
    Xc, yc = classification_data(0, 20, 2, separable=False)
    frame = pd.DataFrame({"a": X[:, 0], "b": ["u", "v"] * 10})
    reg = FixedRegressor(hidden_layer_sizes=(4,), max_iter=20, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0)
    fitted = _quiet_fit(clone(reg), X, y)
    vi = _quiet_fit(clone(reg).set_params(inference="vi", max_iter=5), X, y)
    return {
        "DataFrame with a string column": lambda: clone(reg).fit(frame, y),
        "string targets for the regressor":
            lambda: clone(reg).fit(X, np.array(["a", "b"] * 10)),
        "device='bogus'": lambda: clone(reg).set_params(device="bogus").fit(X, y),
        "device='gpu'": lambda: clone(reg).set_params(device="gpu").fit(X, y),
        "device='meta'": lambda: clone(reg).set_params(device="meta").fit(X, y),
        "classifier device='meta'": lambda: clone(clf).set_params(device="meta").fit(Xc, yc),
        "iterate_gp with y of the wrong length": lambda: vi.iterate_gp(X, y[:-1]),
        "iterate_gp with X of the wrong width": lambda: vi.iterate_gp(X[:, :1], y),
        "log_marginal_likelihood(prior_precision='abc')":
            lambda: fitted.log_marginal_likelihood(prior_precision="abc"),
        "log_marginal_likelihood(prior_precision=[1, 2, 3])":
            lambda: fitted.log_marginal_likelihood(prior_precision=[1, 2, 3]),
        "log_marginal_likelihood(noise_std='abc')":
            lambda: fitted.log_marginal_likelihood(noise_std="abc"),
        "log_marginal_likelihood(prior_precision=nan)":
            lambda: fitted.log_marginal_likelihood(prior_precision=np.nan),
        "log_marginal_likelihood(noise_std=-1)":
            lambda: fitted.log_marginal_likelihood(noise_std=-1.0),
        "maximize_evidence(hyperparameters='width')":
            lambda: maximize_evidence(clone(reg), X, y, hyperparameters="width"),
    }


_BAD_INPUTS = [
    "DataFrame with a string column",
    "string targets for the regressor",
    "device='bogus'",
    "device='gpu'",
    "device='meta'",
    "classifier device='meta'",
    "iterate_gp with y of the wrong length",
    "iterate_gp with X of the wrong width",
    "log_marginal_likelihood(prior_precision='abc')",
    "log_marginal_likelihood(prior_precision=[1, 2, 3])",
    "log_marginal_likelihood(noise_std='abc')",
    "log_marginal_likelihood(prior_precision=nan)",
    "log_marginal_likelihood(noise_std=-1)",
    "maximize_evidence(hyperparameters='width')",
]


@pytest.mark.parametrize("case", _BAD_INPUTS)
def test_bad_inputs_raise_sklearn_errors(bad_input_cases, case):
    _check_outputs("bad-input", case, bad_input_cases[case], must_raise=True)


@pytest.mark.parametrize("codes", [["u", "v"], [1, 2]], ids=["strings", "integers"])
def test_categorical_column_is_rejected_or_handled(codes):
    # A categorical column may be rejected or encoded, but never crash or give NaN.
    pd = pytest.importorskip("pandas")
    X, y = classification_data(0, 20, 2, separable=False)
    frame = pd.DataFrame({"a": X[:, 0], "b": pd.Categorical(codes * 10)})
    clf = FixedClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0)
    label = f"{_short(clf)}.fit(DataFrame with a categorical column of {codes}, y)"
    fitted = _check_outputs("bad-input", label, lambda: _quiet_fit(clf, frame, y), "fitted")
    if fitted is not None:
        _check_outputs("bad-input", f"{label}.predict_proba(frame)",
                       lambda: fitted.predict_proba(frame), "proba")


# --------------------------------------------------------------- resources
@pytest.fixture
def one_megabyte(monkeypatch):
    # The guards compare with the memory available now; pin it so that the tests do
    # not depend on the machine.
    monkeypatch.setattr(_resources, "available_memory", lambda device: 10**6)


@extreme_settings
def test_full_posteriors_that_cannot_fit_are_refused_before_training(one_megabyte):
    # VI's P x P precision, and the weight-space GGN (N > P: 300 rows, 286 weights).
    for n, params in [(20, dict(inference="vi")), (300, dict())]:
        X, y = gap_data(n)
        reg = FixedRegressor(hidden_layer_sizes=(15, 15), posterior="full", **params)
        with pytest.raises(MemoryError, match="posterior='kron'"):
            reg.fit(X, y)
        assert not hasattr(reg, "module_")


@extreme_settings
def test_the_memory_of_the_views_is_checked_first(one_megabyte):
    X, y = gap_data(20)
    reg = FixedRegressor(hidden_layer_sizes=(3,), max_iter=20, random_state=0).fit(X, y)
    many = np.zeros((20_000, 1))
    with pytest.raises(MemoryError, match="fewer points"):
        reg.kernel(many)
    with pytest.raises(MemoryError, match="fewer points"):
        reg.predict(many, return_cov=True)
    with pytest.raises(MemoryError, match="fewer points"):
        reg.features(np.zeros((10**5, 1)))


@extreme_settings
def test_monte_carlo_link_memory_is_checked_first(one_megabyte):
    X, y = make_blobs(20, centers=2, random_state=0)
    clf = FixedClassifier(hidden_layer_sizes=(3,), link_samples=10**9, max_iter=20,
                          random_state=0).fit(X, y)
    with pytest.raises(MemoryError, match="link_samples=1000000000"):
        clf.predict_proba(X[:1], "mc")


@extreme_settings
def test_available_memory_is_the_smallest_limit_that_applies(monkeypatch):
    # A process limit (ulimit -v) or a container's control group can be far below the
    # machine's free memory; a fit under such a limit was killed instead of refused.
    cpu = torch.device("cpu")
    cgroup_left = _resources._cgroup_left
    monkeypatch.setattr(_resources, "_machine_available", lambda: 20 * 10**9)
    monkeypatch.setattr(_resources, "_address_space_left", lambda: None)
    monkeypatch.setattr(_resources, "_cgroup_left", lambda: None)
    assert _resources.available_memory(cpu) == 20 * 10**9
    monkeypatch.setattr(_resources, "_address_space_left", lambda: 6 * 10**9)
    assert _resources.available_memory(cpu) == 6 * 10**9
    monkeypatch.setattr(_resources, "_cgroup_left", lambda: 2 * 10**9)
    assert _resources.available_memory(cpu) == 2 * 10**9
    # The control-group files, v2 at the group's path and v1 under the memory mount.
    for files, expected in [
        ({"/proc/self/cgroup": "0::/box\n", "/sys/fs/cgroup/box/memory.max": "3000",
          "/sys/fs/cgroup/box/memory.current": "1000"}, 2000),
        ({"/proc/self/cgroup": "4:memory:/box\n",
          "/sys/fs/cgroup/memory/box/memory.limit_in_bytes": "5000",
          "/sys/fs/cgroup/memory/box/memory.usage_in_bytes": "1000"}, 4000),
        ({"/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "max",
          "/sys/fs/cgroup/memory.current": "1000"}, None),
    ]:
        monkeypatch.setattr(_resources, "_read_text", lambda path, files=files: files.get(path))
        assert cgroup_left() == expected, files


@extreme_settings
def test_slow_factorisations_warn_with_an_estimate():
    device = torch.device("cpu")
    with pytest.warns(UserWarning, match=r"posterior='kron'"):
        _resources.check_full_posterior(20_000, 12_000, device)  # ~2.5 min of GGN alone
    with pytest.warns(UserWarning, match="per epoch"):
        _resources.check_full_vi(1797, 256, 3_881, 1000, device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _resources.check_full_posterior(1257 * 10, 3_760, device)  # digits: seconds


@extreme_settings
@pytest.mark.parametrize("n_threads", ["auto", 1, None])
def test_thread_count_is_scoped_to_the_call(n_threads):
    # The suite runs at one thread (conftest); the caller's setting here is 2.
    X, y = gap_data(30)
    seen = []
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        reg = FixedRegressor(hidden_layer_sizes=(3,), inference="vi", max_iter=3,
                              n_threads=n_threads, random_state=0,
                              callback=lambda state: seen.append(torch.get_num_threads()))
        reg.fit(X, y)
        assert torch.get_num_threads() == 2
        reg.predict(X, return_std=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert set(seen) == {2 if n_threads is None else 1}
