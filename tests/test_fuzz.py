"""Property-based fuzzing of the public API on finite but extreme inputs.

The contract every call is held to: on finite inputs it either returns finite
arrays (non-negative variances and standard deviations, probabilities in
[0, 1] that sum to one, finite log-probabilities wherever the probability is
positive, a finite evidence), or raises one of scikit-learn's error types
(``ValueError``, ``TypeError``, ``MemoryError``). A torch ``RuntimeError``, a
linear-algebra error, an ``AttributeError`` or a silent NaN breaks it.

The cases are drawn by hypothesis with a fixed seed (``derandomize=True``), so
every machine runs the same inputs; the data are tiny so that the module runs
in seconds on one thread.
"""

import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from sklearn_dnn2gp import DNN2GPClassifier
from sklearn_dnn2gp.model_selection import EvidenceSearchCV, maximize_evidence

from ._helpers import FixedClassifier, FixedRegressor

# The error types scikit-learn raises for bad input; anything else breaks the contract.
ALLOWED_ERRORS = (ValueError, TypeError, MemoryError)

# How many calls were checked, and how many ended in an allowed error, per family;
# test_zz_summary reports them.
CHECKED = Counter()
RAISED = Counter()

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


def _fail(label, message, cause=None):
    raise AssertionError(f"{label}: {message}") from cause


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _check_array(label, name, value, kind, proba=None, classes=None):
    if kind == "labels":
        unknown = np.setdiff1d(np.asarray(value), classes)
        if unknown.size:
            _fail(label, f"{name} returned labels {unknown!r} not in classes_ {classes!r}")
        return
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        _fail(label, f"{name} returned a non-numeric {type(value).__name__}: {exc}")
        return
    if kind == "log_proba":
        if np.isnan(array).any():
            _fail(label, f"{name} has {int(np.isnan(array).sum())} NaN of {array.size}")
        # -inf is the log of a probability that is exactly 0, and only there.
        bad = (np.asarray(proba) > 0) & ~np.isfinite(array)
        if bad.any():
            _fail(label, f"{name} is {array[bad][:3]} where the probability is "
                         f"{np.asarray(proba)[bad][:3]} > 0")
        if (array > 1e-12).any():
            _fail(label, f"{name} has log-probabilities above 0: {array.max()!r}")
        return
    bad = ~np.isfinite(array)
    if bad.any():
        _fail(label, f"{name} has {int(bad.sum())} of {array.size} non-finite values "
                     f"(e.g. {array[bad][:3]})")
    if kind == "nonnegative" and (array < 0).any():
        _fail(label, f"{name} has negative values (min {array.min()!r})")
    if kind == "covariance":
        diagonal = np.diagonal(array, axis1=0, axis2=1)
        if (diagonal < 0).any():
            _fail(label, f"{name} has a negative variance on its diagonal "
                         f"(min {diagonal.min()!r})")
    if kind == "proba":
        if (array < 0).any() or (array > 1).any():
            _fail(label, f"{name} is outside [0, 1] (min {array.min()!r}, "
                         f"max {array.max()!r})")
        sums = array.sum(axis=1)
        if not np.allclose(sums, 1.0, rtol=0, atol=1e-6):
            _fail(label, f"{name} rows sum to {sums[np.argmax(np.abs(sums - 1))]!r}, not 1")


def _check_outputs(family, label, call, kinds=(), *, must_raise=False, proba=None,
                   classes=None):
    """Call ``call()`` under the contract and return its result.

    ``kinds`` names what each returned value must be ('finite', 'nonnegative',
    'covariance', 'proba', 'log_proba' (against ``proba``), 'labels' (among
    ``classes``) or 'fitted' (an estimator with a finite
    ``log_marginal_likelihood_``)); a single string applies to a single
    result. An allowed error returns None, or is required with ``must_raise``.
    Any other exception, or an output that breaks its kind, fails with
    ``label``, the call written out.
    """
    CHECKED[family] += 1
    try:
        result = call()
    except ALLOWED_ERRORS:
        RAISED[family] += 1
        return None
    except Exception as exc:  # noqa: BLE001 - every other type breaks the contract
        _fail(label, f"raised {type(exc).__name__} (not ValueError/TypeError/MemoryError): "
                     f"{_first_line(exc)}", cause=exc)
        return None
    if must_raise:
        _fail(label, f"returned {type(result).__name__} instead of raising ValueError/TypeError")
    if isinstance(kinds, str):
        kinds, results = (kinds,), (result,)
    else:
        results = result if len(kinds) > 1 else (result,)
    for index, (kind, value) in enumerate(zip(kinds, results)):
        name = f"output {index}" if len(kinds) > 1 else "the output"
        if kind == "fitted":
            value = getattr(value, "log_marginal_likelihood_", np.nan)
            name, kind = "log_marginal_likelihood_", "finite"
        _check_array(label, name, value, kind, proba=proba, classes=classes)
    return result


def _quiet_fit(estimator, X, y, **fit_params):
    """``fit`` with the warnings expected of tiny budgets and extreme scales silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*noise_std.*", category=UserWarning)
        return estimator.fit(X, y, **fit_params)


def _short(estimator):
    return " ".join(repr(estimator).split())


# -------------------------------------------------------------------- data
def classification_data(seed, n, n_classes, separable, n_features=2):
    rng = np.random.RandomState(seed)
    y = np.arange(n) % n_classes
    # Separable: clusters far apart against their spread, so the MAP logits grow
    # until the prior stops them and the GGN of the training points vanishes.
    centres = rng.randn(n_classes, n_features) * (6.0 if separable else 0.5)
    X = centres[y] + (0.1 if separable else 1.0) * rng.randn(n, n_features)
    return X, y


def regression_data(seed, n, n_features=2):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, size=(n, n_features))
    y = np.sin(X[:, 0]) + 0.5 * X[:, -1] + 0.1 * rng.randn(n)
    return X, y


def eval_points(seed, n_features=2, m=7):
    return np.random.RandomState(seed + 1000).randn(m, n_features) * 2


def _check_classifier(family, clf, fitted_on, X_eval, eval_name, scales):
    """Every prediction method of a fitted classifier, at ``X_eval * scale``.

    ``fitted_on`` and ``eval_name`` describe the data in the failure messages.
    """
    classes = clf.classes_
    # The link decides the scores, so the label names it even when it is the default.
    fixed = (f"{_short(clf)}.fit({fitted_on}) "
             f"[link_approximation={clf.link_approximation!r}]")
    for scale in scales:
        X_s = X_eval * scale
        where = f"{eval_name} * {scale:g}"
        for link in ("meanfield", "bridge", "probit", "mc", "plugin"):
            label = f"{fixed}.predict_proba({where}, link_approximation={link!r})"
            proba = _check_outputs(
                family, label, lambda link=link, X_s=X_s: clf.predict_proba(X_s, link),
                "proba")
            if proba is not None:
                _check_outputs(
                    family, label.replace("predict_proba", "predict_log_proba"),
                    lambda link=link, X_s=X_s: clf.predict_log_proba(X_s, link), "log_proba",
                    proba=proba)
        _check_outputs(family, f"{fixed}.decision_function({where})",
                       lambda X_s=X_s: clf.decision_function(X_s), "finite")
        _check_outputs(family, f"{fixed}.predict({where})", lambda X_s=X_s: clf.predict(X_s),
                       "labels", classes=classes)
        _check_outputs(family, f"{fixed}.predict_uncertainty({where})",
                       lambda X_s=X_s: clf.predict_uncertainty(X_s),
                       ("nonnegative", "nonnegative"))


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


# ------------------------------------------------------ divergent training
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


# -------------------------------------------------------------- bad inputs
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
