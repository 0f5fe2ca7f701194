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


# Modules that DNN2GP cannot train, differentiate or place a posterior over: each is
# refused once, at the start of fit, with what is wrong and what is allowed.
class _Returns(nn.Module):
    def __init__(self, n_outputs, kind):
        super().__init__()
        self.lin = nn.Linear(3, n_outputs)
        self.kind = kind

    def forward(self, x):
        out = self.lin(x)
        return {"tuple": (out,), "dict": {"out": out}, "none": None, "flat": out[:, 0],
                "3d": out[:, :, None], "int": out.long()}[self.kind]


class _Frozen(nn.Module):
    def __init__(self, which):
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 3)
        if which in ("first", "all"):
            self.a.requires_grad_(False)
        if which == "all":
            self.b.requires_grad_(False)
        if which == "int":
            self.c = nn.Parameter(torch.ones(2, dtype=torch.long), requires_grad=False)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


class _Layers(nn.Module):
    """Two hidden layers; ``kind`` breaks the module in one way."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.a, self.c = nn.Linear(3, 3), nn.Linear(3, 3)
        if kind == "tied module":
            self.b = self.a
        if kind == "tied weight":
            self.d = nn.Linear(3, 3)
            self.d.weight = self.c.weight
        if kind in ("unused", "empty"):
            self.u = nn.Linear(3, 0 if kind == "empty" else 3)
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x):
        h = torch.tanh(self.a(x))
        if self.kind in ("tied module", "reused"):
            h = torch.tanh(self.a(h))  # "reused" is allowed: one registration, two calls
        if self.kind == "buffer":
            self.count += 1
        if self.kind == "random":
            h = h + 0.01 * torch.randn_like(h)
        if self.kind == "empty":
            h = h + self.u(x).sum()
        out = self.c(h)
        return out + self.d(h) if self.kind == "tied weight" else out


class _NoParameters(nn.Module):
    def forward(self, x):
        return x


def _meta(n_features, n_outputs):
    with torch.device("meta"):
        return nn.Linear(n_features, n_outputs)


class _Reshape(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.lin = nn.Conv2d(1, 1, 2), nn.Linear(4, 3)

    def forward(self, x):
        return self.lin(self.conv(x.reshape(-1, 1, 3, 3)).flatten(1))


REFUSED = [
    ("4 outputs for 3 classes", lambda i, o: nn.Linear(i, 4), ValueError,
     r"shape \(2, 4\).*\(n_samples, 3\).*n_outputs=3"),
    ("tuple", lambda i, o: _Returns(o, "tuple"), TypeError, "returned tuple"),
    ("dict", lambda i, o: _Returns(o, "dict"), TypeError, "returned dict"),
    ("None", lambda i, o: _Returns(o, "none"), TypeError, "returned NoneType"),
    ("1-d", lambda i, o: _Returns(o, "flat"), ValueError, r"shape \(2,\)"),
    ("3-d", lambda i, o: _Returns(o, "3d"), ValueError, r"shape \(2, 3, 1\)"),
    ("integer output", lambda i, o: _Returns(o, "int"), ValueError, "torch.int64"),
    ("frozen first layer", lambda i, o: _Frozen("first"), ValueError,
     "not trained \\('a.weight', 'a.bias'.*register_buffer"),
    ("all frozen", lambda i, o: _Frozen("all"), ValueError, "not trained"),
    ("frozen integer", lambda i, o: _Frozen("int"), ValueError, "'c'.*not floating point"),
    ("tied module", lambda i, o: _Layers("tied module"), ValueError,
     "a.weight = b.weight.*register it once"),
    ("tied weight", lambda i, o: _Layers("tied weight"), ValueError, "c.weight = d.weight"),
    ("no parameters", lambda i, o: _NoParameters(), ValueError, "no parameters"),
    ("0 units", lambda i, o: _Layers("empty"), ValueError, "no elements.*'u.weight'"),
    ("unused", lambda i, o: _Layers("unused"), ValueError, "does not use.*'u.weight'"),
    ("buffer update", lambda i, o: _Layers("buffer"), ValueError, "buffers in place.*'count'"),
    ("random", lambda i, o: _Layers("random"), ValueError, "not a deterministic"),
    ("instance", nn.Linear(3, 3), TypeError, "factory of networks, not a network.*Linear"),
    ("signature", lambda: nn.Linear(3, 3), TypeError,
     r"module\(n_features=3, n_outputs=3\) raised TypeError"),
    ("meta device", _meta, ValueError, "meta device"),
    ("reshape", lambda i, o: _Reshape(), ValueError,
     r"forward failed on 2 training rows of shape \(2, 3\).*invalid"),
]


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("inference", ["laplace", "vi"])
@pytest.mark.parametrize("name, factory, error, match", REFUSED, ids=[r[0] for r in REFUSED])
def test_user_module_mistakes_are_refused_clearly(name, factory, error, match, inference):
    rng = np.random.RandomState(0)
    X = rng.randn(12, 3)
    y = np.arange(12) % 3
    before = torch.get_rng_state()
    clf = FixedClassifier(module=factory, inference=inference, max_iter=2)
    with pytest.raises(error, match=match):
        clf.fit(X, y)
    assert torch.equal(before, torch.get_rng_state())
    assert not hasattr(clf, "module_")


def test_user_module_outputs_follow_the_targets():
    # The factory's n_outputs: one per target for a regressor, one logit per class, one
    # logit for two classes; a module of that shape fits, the same one for another
    # target is refused.
    rng = np.random.RandomState(0)
    X = rng.randn(12, 3)
    for est, y, n_outputs in [(FixedRegressor, X[:, :2], 2),
                              (FixedClassifier, np.arange(12) % 2, 1),
                              (FixedClassifier, np.arange(12) % 4, 4)]:
        est(module=lambda i, o, k=n_outputs: nn.Linear(i, k), max_iter=2).fit(X, y)
        with pytest.raises(ValueError, match=rf"\(n_samples, {n_outputs}\)"):
            est(module=lambda i, o, k=n_outputs: nn.Linear(i, k + 1), max_iter=2).fit(X, y)


def test_a_layer_called_twice_is_allowed():
    rng = np.random.RandomState(0)
    X = rng.randn(20, 3)
    y = np.arange(20) % 3
    for inference in ("laplace", "vi"):
        clf = FixedClassifier(module=lambda i, o: _Layers("reused"), inference=inference,
                              max_iter=5, random_state=0).fit(X, y)
        assert clf.predict_proba(X).shape == (20, 3)
