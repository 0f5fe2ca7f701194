"""Property-based fuzzing of the public API on finite but extreme inputs.

The contract every call is held to: on finite inputs it either returns finite
arrays (non-negative variances and standard deviations, probabilities in
[0, 1] that sum to one, finite log-probabilities wherever the probability is
positive, a finite evidence), or raises one of scikit-learn's error types
(``ValueError``, ``TypeError``, ``MemoryError``). A torch ``RuntimeError``, a
linear-algebra error, an ``AttributeError`` or a silent NaN breaks it.

The cases are drawn by hypothesis with a fixed seed (``derandomize=True``), so
every machine runs the same inputs; the data are tiny so that the module runs
in seconds on one thread. The checker of the contract is in tests/_helpers.py;
fixed cases of the same contract (bad inputs, divergent training, a noise scale
far from the residuals) are in tests/test_robustness.py.
"""

import warnings

import numpy as np
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from sklearn_dnn2gp.model_selection import EvidenceSearchCV, maximize_evidence

from ._helpers import (
    CHECKED,
    RAISED,
    FixedClassifier,
    FixedRegressor,
    _check_array,
    _check_classifier,
    _check_outputs,
    _fail,
    _quiet_fit,
    _short,
    classification_data,
    regression_data,
)

FUZZ = settings(
    # The same cases on every machine, and no example database left behind.
    derandomize=True,
    database=None,
    # One example fits a network; run time varies with the machine, not with the input.
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
    # No shrinking: each failing example is already a handful of named choices, and
    # shrinking refits hundreds of networks when many cases fail.
    phases=[Phase.explicit, Phase.generate],
)


def log_uniform(low, high):
    """Floats spread evenly in log10 between 10**low and 10**high."""
    return st.floats(low, high, allow_nan=False).map(lambda e: float(10.0 ** e))


# -------------------------------------------------------------------- data


def eval_points(seed, n_features=2, m=7):
    return np.random.RandomState(seed + 1000).randn(m, n_features) * 2


# -------------------------------------------------------------- classifier
@settings(FUZZ, max_examples=80)
@example(seed=0, n_classes=2, activation="tanh", inference="laplace", posterior="full",
         link="bridge", prior_precision=1.0, separable=False, width=8)
@example(seed=0, n_classes=3, activation="relu", inference="laplace", posterior="full",
         link="bridge", prior_precision=1e-12, separable=True, width=8)
@given(seed=st.integers(0, 2**16), n_classes=st.sampled_from([2, 3]),
       activation=st.sampled_from(["relu", "tanh"]),
       inference=st.sampled_from(["laplace", "vi"]),
       posterior=st.sampled_from(["full", "diag"]),
       link=st.sampled_from(["meanfield", "bridge", "probit", "mc", "plugin"]),
       prior_precision=log_uniform(-12, 6), separable=st.booleans(),
       width=st.sampled_from([4, 8]))
def test_classifier_predictions_at_scaled_inputs(seed, n_classes, activation, inference,
                                                 posterior, link, prior_precision,
                                                 separable, width):
    X, y = classification_data(seed, 30, n_classes, separable)
    clf = FixedClassifier(
        hidden_layer_sizes=(width,), activation=activation, inference=inference,
        posterior=posterior, link_approximation=link, prior_precision=prior_precision,
        max_iter=30, link_samples=20, random_state=seed)
    fitted_on = (f"X, y [seed={seed}, {n_classes} classes"
                 f"{', separable' if separable else ''}]")
    fitted = _check_outputs("classifier", f"{_short(clf)}.fit({fitted_on})",
                            lambda: _quiet_fit(clf, X, y), "fitted")
    if fitted is None:
        return
    _check_classifier("classifier", fitted, fitted_on, eval_points(seed), "X_test",
                      [1.0, 1e3, 1e6, 1e10])
    _check_classifier("classifier", fitted, fitted_on, X, "X", [1.0])
    for other in (prior_precision * 10, 1e-30, 1e30):
        _check_outputs("classifier",
                       f"{_short(clf)}.fit({fitted_on})"
                       f".log_marginal_likelihood(prior_precision={other!r})",
                       lambda other=other: fitted.log_marginal_likelihood(other), "finite")


@settings(FUZZ, max_examples=60)
@example(seed=0, n_classes=2, solver="adam", learning_rate=1e6, weight_scale=1.0,
         x_scale=1.0, link="bridge", posterior="full")
@example(seed=0, n_classes=3, solver="lbfgs", learning_rate=1e-2, weight_scale=1e10,
         x_scale=1.0, link="probit", posterior="full")
@example(seed=0, n_classes=2, solver="lbfgs", learning_rate=1e-2, weight_scale=1.0,
         x_scale=1e8, link="mc", posterior="diag")
@given(seed=st.integers(0, 2**16), n_classes=st.sampled_from([2, 3]),
       solver=st.sampled_from(["adam", "lbfgs"]), learning_rate=log_uniform(-3, 6),
       weight_scale=log_uniform(-2, 10), x_scale=log_uniform(0, 8),
       link=st.sampled_from(["meanfield", "bridge", "probit", "mc", "plugin"]),
       posterior=st.sampled_from(["full", "diag"]))
def test_classifier_after_extreme_fits(seed, n_classes, solver, learning_rate, weight_scale,
                                       x_scale, link, posterior):
    X, y = classification_data(seed, 24, n_classes, separable=False)
    X = X * x_scale
    weights = np.random.RandomState(seed).uniform(0.5, 1.0, len(y)) * weight_scale
    clf = FixedClassifier(hidden_layer_sizes=(4,), solver=solver,
                           learning_rate_init=learning_rate, posterior=posterior,
                           link_approximation=link, max_iter=30, link_samples=20,
                           random_state=seed)
    fitted_on = (f"X * {x_scale:g}, y, sample_weight=w * {weight_scale:g} "
                 f"[seed={seed}, {n_classes} classes]")
    fitted = _check_outputs("classifier-extreme-fit", f"{_short(clf)}.fit({fitted_on})",
                            lambda: _quiet_fit(clf, X, y, sample_weight=weights), "fitted")
    if fitted is None:
        return
    _check_classifier("classifier-extreme-fit", fitted, fitted_on, X, "X", [1.0, 1e3])


# --------------------------------------------------------------- regressor
@settings(FUZZ, max_examples=80)
@example(seed=0, dtype="float32", posterior="full", inference="laplace",
         prior_precision=1e-30, noise_std=1.0, y_scale=1.0, y_shift=0.0,
         other_precision=1e-30, other_noise=1e-10)
@example(seed=0, dtype="float64", posterior="full", inference="laplace",
         prior_precision=1.0, noise_std=1e-10, y_scale=1e8, y_shift=0.0,
         other_precision=1.0, other_noise=1e6)
@example(seed=0, dtype="float64", posterior="diag", inference="laplace",
         prior_precision=1.0, noise_std=1.0, y_scale=1.0, y_shift=1e6,
         other_precision=1.0, other_noise=1.0)
@given(seed=st.integers(0, 2**16), dtype=st.sampled_from(["float32", "float64"]),
       posterior=st.sampled_from(["full", "diag"]),
       inference=st.sampled_from(["laplace", "vi"]),
       prior_precision=log_uniform(-30, 6), noise_std=log_uniform(-10, 6),
       y_scale=log_uniform(0, 8), y_shift=st.sampled_from([0.0, 1e6, -1e6]),
       other_precision=log_uniform(-30, 6), other_noise=log_uniform(-10, 6))
def test_regressor_outputs(seed, dtype, posterior, inference, prior_precision, noise_std,
                           y_scale, y_shift, other_precision, other_noise):
    X, y = regression_data(seed, 30)
    y = y * y_scale + y_shift
    reg = FixedRegressor(hidden_layer_sizes=(8,), dtype=dtype, posterior=posterior,
                          inference=inference, prior_precision=prior_precision,
                          noise_std=noise_std, max_iter=30, random_state=seed)
    fam = "regressor"
    name = f"{_short(reg)}.fit(X, y * {y_scale:g} + {y_shift:g}) [seed={seed}]"
    fitted = _check_outputs(fam, name, lambda: _quiet_fit(reg, X, y), "fitted")
    if fitted is None:
        return
    X_test = np.vstack([eval_points(seed), 100 * eval_points(seed)])
    _check_outputs(fam, f"{name}.predict(X_test, return_std=True)",
                   lambda: fitted.predict(X_test, return_std=True), ("finite", "nonnegative"))
    _check_outputs(fam, f"{name}.predict(X_test, return_cov=True)",
                   lambda: fitted.predict(X_test, return_cov=True), ("finite", "covariance"))
    _check_outputs(fam, f"{name}.predict(X_test, mean='gp')",
                   lambda: fitted.predict(X_test, mean="gp"), "finite")
    _check_outputs(fam, f"{name}.predict_uncertainty(X_test)",
                   lambda: fitted.predict_uncertainty(X_test), ("nonnegative", "nonnegative"))
    _check_outputs(fam, f"{name}.kernel(X, X_test)", lambda: fitted.kernel(X, X_test),
                   "finite")
    _check_outputs(fam, f"{name}.kernel(X_test)", lambda: fitted.kernel(X_test), "covariance")
    _check_outputs(fam, f"{name}.features(X_test)", lambda: fitted.features(X_test), "finite")
    _check_outputs(
        fam, f"{name}.log_marginal_likelihood(prior_precision={other_precision!r}, "
             f"noise_std={other_noise!r})",
        lambda: fitted.log_marginal_likelihood(prior_precision=other_precision,
                                               noise_std=other_noise), "finite")
    for tiny in (1e-300, 1e-150):
        _check_outputs(fam, f"{name}.log_marginal_likelihood(noise_std={tiny!r})",
                       lambda tiny=tiny: fitted.log_marginal_likelihood(noise_std=tiny),
                       "finite")
    _check_outputs(fam, f"{name}.log_marginal_likelihood(prior_precision=1e-300)",
                   lambda: fitted.log_marginal_likelihood(prior_precision=1e-300), "finite")


# -------------------------------------------------------------- bad inputs


@settings(FUZZ, max_examples=30)
@given(seed=st.integers(0, 2**16), classifier=st.booleans(),
       where=st.sampled_from(["fit X", "fit y", "predict X", "sample_weight"]),
       value=st.sampled_from([np.nan, np.inf, -np.inf]), row=st.integers(0, 19))
def test_non_finite_inputs_raise_value_error(seed, classifier, where, value, row):
    if classifier:
        X, y = classification_data(seed, 20, 2, separable=False)
        est = FixedClassifier(hidden_layer_sizes=(4,), max_iter=10, random_state=0)
    else:
        X, y = regression_data(seed, 20)
        est = FixedRegressor(hidden_layer_sizes=(4,), max_iter=10, random_state=0)
    X, y = X.copy(), y.astype(np.float64)
    weights = np.ones(len(y))
    if where == "fit X":
        X[row, row % X.shape[1]] = value
    elif where == "fit y":
        y[row] = value
    elif where == "sample_weight":
        weights[row] = value
    label = f"{_short(est)} with {value} in {where} (row {row})"
    if where == "predict X":
        fitted = _check_outputs("non-finite", f"{_short(est)}.fit(X, y)",
                                lambda: _quiet_fit(est, X, y), "fitted")
        if fitted is None:
            return
        X_bad = X.copy()
        X_bad[row, 0] = value
        call = (lambda: fitted.predict_proba(X_bad)) if classifier else (
            lambda: fitted.predict(X_bad, return_std=True))
    else:
        def call():
            return _quiet_fit(est, X, y, sample_weight=weights)
    _check_outputs("non-finite", label, call, must_raise=True)


# --------------------------------------------------------- model selection
_CANDIDATE_VALUES = [0.1, 1.0, 10.0, -1.0, 0.0, np.nan, np.inf]


@settings(FUZZ, max_examples=16)
@example(precisions=[np.nan, 1.0, 10.0], noises=[0.3], reuse=True)
@example(precisions=[1.0], noises=[-1.0, 0.3, 0.0], reuse=True)
@given(precisions=st.lists(st.sampled_from(_CANDIDATE_VALUES), min_size=1, max_size=3,
                           unique_by=str),
       noises=st.lists(st.sampled_from([0.3, 1.0, -1.0, 0.0, np.nan]), min_size=1,
                       max_size=2, unique_by=str),
       reuse=st.booleans())
def test_evidence_search_scores_invalid_candidates(precisions, noises, reuse):
    X, y = regression_data(0, 24)
    valid = [p for p in precisions if np.isfinite(p) and p > 0]
    valid_noise = [s for s in noises if np.isfinite(s) and s > 0]
    search = EvidenceSearchCV(
        FixedRegressor(hidden_layer_sizes=(4,), max_iter=20, random_state=0),
        {"prior_precision": precisions, "noise_std": noises}, reuse_network=reuse,
        max_retrain=2, error_score=-1e9)
    label = (f"EvidenceSearchCV(prior_precision={precisions}, noise_std={noises}, "
             f"reuse_network={reuse}, error_score=-1e9).fit(X, y)")

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FitFailedWarning is expected here
            return _quiet_fit(search, X, y)

    if not (valid and valid_noise):
        # Every candidate fails: scikit-learn's searches raise ValueError then.
        _check_outputs("model-selection", label, fit, must_raise=True)
        return
    fitted = _check_outputs("model-selection", label, fit)
    if fitted is None:
        _fail(label, "raised although some candidates are valid")
        return
    scores = fitted.results_["log_marginal_likelihood"]
    for params, score in zip(fitted.results_["params"], scores):
        bad = not all(np.isfinite(v) and v > 0 for v in params.values())
        if bad and score != -1e9:
            _fail(label, f"invalid candidate {params} scored {score!r}, not error_score")
        if not bad and not (np.isnan(score) or np.isfinite(score)):
            _fail(label, f"valid candidate {params} scored {score!r}")
    _check_array(label, "best_score_", fitted.best_score_, "finite")


@settings(FUZZ, max_examples=6)
@given(hyperparameters=st.sampled_from(["prior_precision", "noise_std", "auto",
                                        ["prior_precision"], ("noise_std",)]))
def test_maximize_evidence_hyperparameter_names(hyperparameters):
    X, y = regression_data(0, 24)
    reg = FixedRegressor(hidden_layer_sizes=(4,), max_iter=20, noise_std=0.3,
                          prior_precision=1.0, random_state=0)
    label = f"maximize_evidence({_short(reg)}, X, y, hyperparameters={hyperparameters!r})"

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return maximize_evidence(reg, X, y, hyperparameters=hyperparameters)

    best = _check_outputs("model-selection", label, run, "fitted")
    if best is None:
        _fail(label, "raised for a valid hyperparameter name")
        return
    both = {"prior_precision", "noise_std"}
    if hyperparameters == "auto":
        optimised = both
    else:
        optimised = {hyperparameters} if isinstance(hyperparameters, str) else set(
            hyperparameters)
    for fixed in both - optimised:
        if best.get_params()[fixed] != reg.get_params()[fixed]:
            _fail(label, f"changed {fixed}, which was not to be optimised")


# ------------------------------------------------------ per-layer precisions
@settings(FUZZ, max_examples=30)
@example(seed=0, posterior="full", task="regression", first=1e-12, second=1e8,
         other_first=1e8, other_second=1e-12)
@example(seed=0, posterior="kron", task="classification", first=1e8, second=1e-12,
         other_first=1e-12, other_second=1e8)
@given(seed=st.integers(0, 2**16), posterior=st.sampled_from(["full", "diag", "kron"]),
       task=st.sampled_from(["regression", "classification"]),
       first=log_uniform(-12, 8), second=log_uniform(-12, 8),
       other_first=log_uniform(-12, 8), other_second=log_uniform(-12, 8))
def test_layerwise_outputs(seed, posterior, task, first, second, other_first, other_second):
    # Per-layer precisions far apart: the rescaled coordinates of ScaledPosterior
    # span the ratio's square root.
    if task == "regression":
        X, y = regression_data(seed, 30)
        est = FixedRegressor(hidden_layer_sizes=(8,), posterior=posterior,
                             prior_precision=[first, second], max_iter=30, random_state=seed)
    else:
        X, y = classification_data(seed, 30, 3, False)
        est = FixedClassifier(hidden_layer_sizes=(8,), posterior=posterior,
                              prior_precision=[first, second], max_iter=30, random_state=seed)
    fam = "layerwise"
    name = f"{_short(est)}.fit(X, y) [seed={seed}]"
    fitted = _check_outputs(fam, name, lambda: _quiet_fit(est, X, y), "fitted")
    if fitted is None:
        return
    X_test = np.vstack([eval_points(seed), 100 * eval_points(seed)])
    if task == "regression":
        _check_outputs(fam, f"{name}.predict(X_test, return_std=True)",
                       lambda: fitted.predict(X_test, return_std=True),
                       ("finite", "nonnegative"))
        theta = np.log([other_first, other_second, 1.0])
    else:
        _check_outputs(fam, f"{name}.predict_proba(X_test, 'probit')",
                       lambda: fitted.predict_proba(X_test, link_approximation="probit"),
                       "proba")
        _check_outputs(fam, f"{name}.predict_uncertainty(X_test)",
                       lambda: fitted.predict_uncertainty(X_test),
                       ("nonnegative", "nonnegative"))
        theta = np.log([other_first, other_second])
    _check_outputs(fam, f"{name}.log_marginal_likelihood(theta={theta!r})",
                   lambda: fitted.log_marginal_likelihood(theta), "finite")


# ---------------------------------------------------------------- summary
def test_zz_summary(capsys):
    # Named to run last: reports how many cases this module checked.
    with capsys.disabled():
        families = ", ".join(f"{family} {count} ({RAISED[family]} raised)"
                             for family, count in sorted(CHECKED.items()))
        print(f"\n[test_fuzz] {sum(CHECKED.values())} checked calls: {families}")
    assert sum(CHECKED.values()) > 0
