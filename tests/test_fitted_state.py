"""After fit, set_params changes nothing until the next fit: every method reads the
state the estimator was fitted with."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from sklearn_dnn2gp import DNN2GPRegressor

from ._helpers import FixedClassifier, FixedRegressor, gap_data

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

def _other_network(n_features, n_outputs):
    return torch.nn.Sequential(torch.nn.Linear(n_features, n_outputs))


# A valid value other than the fitted one, for every parameter.
_OTHER = {
    "hidden_layer_sizes": (7, 2),
    "activation": "relu",
    "prior_precision": 100.0,
    "noise_std": 3.0,
    "posterior": "diag",
    "inference": "laplace",
    "vi_method": "ogn",
    "mc_samples": 5,
    "precision_rate": 0.5,
    "initial_precision": 3.0,
    "link_approximation": "plugin",
    "link_samples": 7,
    "solver": "adam",
    "max_iter": 1,
    "learning_rate_init": 0.5,
    "batch_size": 3,
    "tol": 0.5,
    "n_iter_no_change": 2,
    "random_state": 123,
    "device": "cpu",
    "dtype": "float32",
    "verbose": 0,
    "callback": None,
    "warm_start": True,
    "n_threads": None,
    "subset_of_weights": "last_layer",
    "module": _other_network,
}


def _outputs(est, X, y, vi):
    out = {
        "evidence": est.log_marginal_likelihood(),
        "evidence_at": est.log_marginal_likelihood(prior_precision=2.0),
        "kernel": est.kernel(X[:5]),
        "features": est.features(X[:3]),
    }
    if isinstance(est, DNN2GPRegressor):
        out["predict"] = est.predict(X, return_std=True)
        out["predict_gp"] = est.predict(X, mean="gp")
        out["uncertainty"] = est.predict_uncertainty(X)
    else:
        out["proba"] = est.predict_proba(X)
        out["log_proba"] = est.predict_log_proba(X)
        out["decision"] = est.decision_function(X)
        out["predict"] = est.predict(X)
        out["latent"] = est.predict_latent(X)
        out["uncertainty"] = est.predict_uncertainty(X)
    if vi:
        out["iterate_gp"] = est.iterate_gp(X, y)
    return out


def _assert_same(a, b, where):
    if isinstance(a, dict):
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key}]")
    elif isinstance(a, tuple):
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_same(u, v, f"{where}[{i}]")
    else:
        np.testing.assert_array_equal(a, b, err_msg=where)


_CASES = [
    (FixedRegressor(hidden_layer_sizes=(4,), max_iter=30, random_state=0), "regression"),
    (FixedRegressor(hidden_layer_sizes=(4,), inference="vi", posterior="full",
                     learning_rate_init=0.2, max_iter=5, random_state=0), "regression"),
    (FixedClassifier(hidden_layer_sizes=(4,), link_approximation="mc", max_iter=30,
                      random_state=0), "classification"),
    (FixedClassifier(hidden_layer_sizes=(4,), inference="vi", learning_rate_init=0.2,
                      max_iter=5, random_state=0), "classification"),
]


@pytest.mark.parametrize("est, task", _CASES, ids=lambda c: str(c)[:60])
def test_set_params_after_fit_changes_nothing_until_refit(est, task):
    if task == "regression":
        X, y = gap_data(20)
    else:
        X, y = make_blobs(24, centers=3, random_state=0)
    threads = torch.get_num_threads()
    est.fit(X, y)
    vi = est.inference == "vi"
    before = _outputs(est, X, y, vi)
    params = est.get_params()
    for name, value in _OTHER.items():
        if name not in params:
            continue
        original = params[name]
        est.set_params(**{name: value})
        _assert_same(before, _outputs(est, X, y, vi), f"after set_params({name}={value!r})")
        est.set_params(**{name: original})
    # n_threads=None above ran in the caller's setting, which no call changed.
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("make, expected", [
    (lambda X, y: FixedRegressor(hidden_layer_sizes=(3,)).fit(X, y), 1),
    (lambda X, y: FixedRegressor(hidden_layer_sizes=(3,)).fit(X, np.c_[y, y, y]), 3),
    (lambda X, y: FixedClassifier(hidden_layer_sizes=(3,)).fit(X, y > 0), 1),
    (lambda X, y: FixedClassifier(hidden_layer_sizes=(3,)).fit(
        X, np.digitize(y, [-0.5, 0.5])), 3),
])
def test_n_outputs_is_the_networks(make, expected):
    X, y = gap_data(30)
    est = make(X, y)
    assert est.n_outputs_ == expected == est.features(X[:2]).shape[1]
