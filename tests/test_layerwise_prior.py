"""Per-layer prior precisions (``prior_structure='layerwise'`` or an array
``prior_precision``) in the estimators: the layers as parameter groups, the trained
objective, equal precisions as one, the K-FAC layer-factor path, the 'auto' search,
pickling and refusals. ``ScaledPosterior`` is checked against dense closed forms in
tests/test_posterior.py, the per-layer evidence in tests/test_evidence.py."""

import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_regression
from torch.func import functional_call

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor
from sklearn_dnn2gp._network import flat_parameters, parameter_groups
from sklearn_dnn2gp._training import full_objective
from sklearn_dnn2gp.posteriors import ScaledPosterior

from ._helpers import _regression


def test_parameter_groups_are_the_layers():
    reg = DNN2GPRegressor(hidden_layer_sizes=(4, 3), prior_precision=[1, 2, 3],
                          noise_std=1.0, max_iter=500, random_state=0)
    X, y = make_regression(20, 2, random_state=0)
    reg.fit(X, y / y.std())
    groups, n = parameter_groups(reg.module_)
    assert n == 3
    assert groups.tolist() == [0] * 12 + [1] * 15 + [2] * 4
    last, _ = parameter_groups(reg.module_, reg.module_[-1])
    assert last.tolist() == [2] * 4


def _layerwise_objective(est, X, y):
    module, likelihood = est.module_, est.likelihood_
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float64))
    y_t = est._known_targets(y, X_t.device)
    groups, _ = parameter_groups(module)
    delta = torch.as_tensor(np.asarray(est.prior_precision_))[groups]
    shapes = [(name, p.shape) for name, p in module.named_parameters()]

    def objective(w):
        params, offset = {}, 0
        for name, shape in shapes:
            size = math.prod(shape)
            params[name] = w[offset:offset + size].reshape(shape)
            offset += size
        return likelihood.loss(functional_call(module, params, (X_t,)), y_t) + 0.5 * (
            delta * w) @ w

    return objective, flat_parameters(module).to(torch.float64).clone().requires_grad_(True)


def test_training_minimises_the_layerwise_objective():
    X, y = make_classification(80, 4, random_state=0)
    clf = DNN2GPClassifier(hidden_layer_sizes=(5,), prior_precision=[0.1, 10.0],
                           random_state=0).fit(X, y)
    objective, w = _layerwise_objective(clf, X, y)
    # The objective training minimises is this one, at any weights (an identity).
    X_t = torch.as_tensor(X, dtype=torch.float64)
    trained = full_objective(clf.module_, clf.likelihood_, X_t, clf._known_targets(y, "cpu"),
                             None, clf._expand_prior(clf.prior_precision_, clf._prior_groups))
    assert trained == pytest.approx(float(objective(w).detach()), rel=1e-12)
    (grad,) = torch.autograd.grad(objective(w), w)
    # And the fit is near its stationary point, not the swapped precisions': the two
    # gradients differ by (10 - 0.1) w on each layer, of order one, while training
    # stops at a gradient of order tol * N = 8e-4 (a margin of 100 for any machine).
    groups, _ = parameter_groups(clf.module_)
    swapped = grad + (torch.tensor([9.9, -9.9], dtype=torch.float64)[groups] * w).detach()
    assert float(grad.abs().max()) < 0.01 * float(swapped.abs().max())


def test_equal_layer_precisions_are_one_precision():
    X, y = _regression()
    kwargs = dict(hidden_layer_sizes=(6,), noise_std=0.5, normalize_y=False, random_state=0)
    one = DNN2GPRegressor(prior_precision=2.0, **kwargs).fit(X, y)
    per_layer = DNN2GPRegressor(prior_precision=[2.0, 2.0], **kwargs).fit(X, y)
    # The same objective by both code paths, at any weights.
    X_t = torch.as_tensor(X, dtype=torch.float64)
    args = (one.module_, one.likelihood_, X_t, one._known_targets(y, "cpu"), None)
    assert full_objective(*args, per_layer._expand_prior(
        per_layer.prior_precision_, per_layer._prior_groups)) == pytest.approx(
        full_objective(*args, 2.0), rel=1e-14)
    # At the same weights the two posteriors are the same Gaussian.
    post = ScaledPosterior.wrap(one.posterior_, torch.full(
        (one.posterior_.n_parameters,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(post.covariance(), one.posterior_.covariance(),
                               rtol=1e-10, atol=1e-14)


def test_kron_layer_factor_path_under_layerwise_prior():
    X, y = make_classification(60, 5, n_classes=3, n_informative=3, n_redundant=1, random_state=1)
    clf = DNN2GPClassifier(hidden_layer_sizes=(6, 5), prior_precision=[0.5, 2.0, 8.0],
                           posterior="kron", random_state=0).fit(X, y)
    J = torch.as_tensor(clf.features(X[:7]))
    direct = clf.posterior_.functional_variance(J)
    _, cov = clf.predict_latent(X[:7])  # through the layer factors
    np.testing.assert_allclose(cov, direct.numpy(), rtol=1e-10, atol=1e-13)


def test_layerwise_auto_searches_each_layer():
    X, y = _regression(60)
    reg = DNN2GPRegressor(hidden_layer_sizes=(6,), prior_structure="layerwise",
                          random_state=0).fit(X, y)
    assert reg.prior_precision_.shape == (2,)
    trace = reg.evidence_trace_
    np.testing.assert_array_equal(reg.prior_precision_, trace[-1]["prior_precision"])
    assert reg.log_marginal_likelihood_ == pytest.approx(
        trace[-1]["log_marginal_likelihood"], rel=1e-12)
    # The sweep tried unequal precisions on both layers.
    ratios = [t["prior_precision"][0] / t["prior_precision"][1] for t in trace]
    assert min(ratios) < 0.99 < 1.01 < max(ratios)
    assert len(reg._theta_names()) == 3


def test_layerwise_fit_pickles():
    X, y = _regression()
    reg = DNN2GPRegressor(hidden_layer_sizes=(6,), prior_precision=[1.0, 3.0],
                          random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X, return_std=True)[1],
                                  reg.predict(X, return_std=True)[1])
    assert again.log_marginal_likelihood() == reg.log_marginal_likelihood_


@pytest.mark.parametrize("bad, match", [
    ([1.0], "one positive, finite precision per layer: 2"),
    ([1.0, -2.0], "one positive"),
    ([1.0, np.inf], "one positive"),
])
def test_bad_layer_precisions(bad, match):
    X, y = _regression()
    with pytest.raises(ValueError, match=match):
        DNN2GPRegressor(hidden_layer_sizes=(6,), prior_precision=bad).fit(X, y)


def test_layerwise_vi_is_refused():
    X, y = _regression()
    with pytest.raises(ValueError, match="inference='laplace'"):
        DNN2GPRegressor(prior_precision=[1.0, 1.0], inference="vi", noise_std=1.0).fit(X, y)
