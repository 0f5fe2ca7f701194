import pytest
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor


def _expected_failed_checks(estimator):
    # solver='auto' is L-BFGS on the checks' small data sets. The classifier's VI with
    # temperature='auto' starts from the L-BFGS MAP that the temperature is chosen on.
    vi_from_map = (estimator.inference == "vi" and getattr(estimator, "temperature", 1) == "auto"
                   and estimator.link_approximation not in ("plugin", "bridge"))
    if estimator.solver in ("lbfgs", "auto") and (estimator.inference == "laplace"
                                                  or vi_from_map):
        # Not strict: whether the two end points happen to agree to 1e-7 depends on
        # the machine's rounding. Adam and VI take the same full-batch steps on the
        # same sums either way and are expected to pass.
        return {
            "check_sample_weight_equivalence_on_dense_data": (
                "The weighted and the repeated-rows objectives are the same function, and "
                "so are their GGNs (tests/test_curvature.py checks this to 1e-12), but "
                "L-BFGS on a non-convex network follows different float roundings and "
                "stops within ~1e-7 relative of the optimum along its flattest directions; "
                "the check demands 1e-7 on the predictions. tests/test_regressor.py checks "
                "the equivalence at an exact stationary point."
            ),
        }
    return {}


# Small networks: the checks exercise the API, not the quality of a big fit, and
# with the default (50,) network they took three quarters of the test run.
_SMALL = [
    DNN2GPRegressor(hidden_layer_sizes=(8,), max_iter=200, random_state=0),
    DNN2GPRegressor(hidden_layer_sizes=(8,), solver="adam", max_iter=50, random_state=0),
    DNN2GPClassifier(hidden_layer_sizes=(8,), max_iter=200, random_state=0),
    # A fixed prior here: at the evidence's delta the check's blobs have a logit
    # variance of ~40, so Monte-Carlo probabilities sit near 1/2 and a near-tie can
    # flip predict between row subsets through round-off alone.
    DNN2GPClassifier(hidden_layer_sizes=(8,), posterior="diag", link_approximation="mc",
                     prior_precision=1.0, max_iter=200, random_state=0),
    # One prior precision per layer (ScaledPosterior around the full posterior).
    DNN2GPClassifier(hidden_layer_sizes=(8,), prior_precision=[0.5, 2.0], max_iter=200,
                     random_state=0),
    # VI at fixed hyperparameters: with 'auto' the search trains L-BFGS MAPs first,
    # which the first two configurations already check.
    DNN2GPRegressor(hidden_layer_sizes=(8,), inference="vi", mc_samples=2,
                    prior_precision=1.0, noise_std=1.0, learning_rate_init=0.1, max_iter=30,
                    random_state=0),
    DNN2GPClassifier(hidden_layer_sizes=(8,), inference="vi", vi_method="ogn",
                     posterior="diag", prior_precision=1.0, learning_rate_init=0.1,
                     max_iter=30, random_state=0),
]


# The checks' data have raw targets far wider than noise_std=1 (a warned misuse).
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:The training residuals:UserWarning")
@parametrize_with_checks(_SMALL, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.slow
# The checks' data have raw targets far wider than noise_std=1 (a warned misuse).
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:The training residuals:UserWarning")
# VI at fixed hyperparameters: with 'auto' it runs the same evidence search of MAPs
# as the Laplace defaults above before its one VI fit, and the checks' ~40 fits of
# each then took 5 of the slow run's 14 minutes.
@parametrize_with_checks([DNN2GPRegressor(random_state=0), DNN2GPClassifier(random_state=0),
                          DNN2GPRegressor(inference="vi", prior_precision=1.0,
                                          noise_std=1.0, random_state=0),
                          DNN2GPClassifier(inference="vi", prior_precision=1.0,
                                           random_state=0)],
                         expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_defaults(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", [DNN2GPRegressor(hidden_layer_sizes=(3,), max_iter=5),
                                       DNN2GPClassifier(hidden_layer_sizes=(3,), max_iter=5)])
def test_param_validation(estimator):
    # Not part of parametrize_with_checks: every parameter's constraint is enforced.
    check_param_validation(type(estimator).__name__, estimator)
