"""Networks supplied by the user through ``module``: a CNN and a residual MLP."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from torch import nn

from ._helpers import FixedClassifier, FixedRegressor, gap_data

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


class TinyCNN(nn.Module):
    """A convolution on 8x8 images given as 64 features."""

    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.body = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 2, 3, stride=2),
                                  nn.Tanh(), nn.Flatten())
        self.head = nn.Linear(2 * 3 * 3, n_outputs)

    def forward(self, x):
        return self.head(self.body(x))


class Residual(nn.Module):
    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.inp = nn.Linear(n_features, 6)
        self.block = nn.Sequential(nn.Tanh(), nn.Linear(6, 6))
        self.out = nn.Linear(6, n_outputs)

    def forward(self, x):
        h = self.inp(x)
        return self.out(torch.tanh(h + self.block(h)))


def _autograd_jacobians(module, X):
    params = dict(module.named_parameters())
    names = list(params)
    rows = []
    for x in torch.tensor(X):
        jac = torch.autograd.functional.jacobian(
            lambda *p, x=x: torch.func.functional_call(module, dict(zip(names, p)), (x[None],))[0],
            tuple(p.detach() for p in params.values()))
        rows.append(torch.cat([j.reshape(j.shape[0], -1) for j in jac], dim=1))
    return torch.stack(rows).numpy()


def test_cnn_classifier_jacobians_match_autograd():
    X, y = load_digits(n_class=3, return_X_y=True)
    X = X[:45] / 16
    clf = FixedClassifier(module=TinyCNN, max_iter=30, random_state=0).fit(X, y[:45])
    np.testing.assert_allclose(clf.features(X[:4]), _autograd_jacobians(clf.module_, X[:4]),
                               rtol=1e-10, atol=1e-12)
    proba = clf.predict_proba(X[:5], "probit")
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-12)
    assert np.isfinite(clf.log_marginal_likelihood_)


def test_residual_regressor_is_deterministic_picklable_and_clonable():
    X, y = gap_data(30)
    before = torch.get_rng_state()
    reg = FixedRegressor(module=Residual, noise_std=0.2, max_iter=50, random_state=3)
    a = reg.fit(X, y).predict(X, return_std=True)
    assert torch.equal(before, torch.get_rng_state())  # the global stream is untouched
    b = clone(reg).fit(X, y).predict(X, return_std=True)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_allclose(reg.features(X[:3]), _autograd_jacobians(reg.module_, X[:3]),
                               rtol=1e-10, atol=1e-12)
    restored = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(restored.predict(X, return_std=True)[1], a[1])
    assert reg._structure() == "full"  # small: the exact posterior


def test_user_module_refusals():
    X, y = gap_data(20)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        FixedRegressor(module=lambda n_in, n_out: "not a module").fit(X, y)
    with pytest.raises(ValueError, match="kron"):
        FixedRegressor(module=Residual, posterior="kron", max_iter=5).fit(X, y)
    with pytest.raises(ValueError, match="last_layer"):
        FixedRegressor(module=Residual, subset_of_weights="last_layer", max_iter=5).fit(X, y)
