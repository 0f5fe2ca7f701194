"""The GP view's approximate leave-one-out, against weight-space linear algebra."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from sklearn_dnn2gp._loo import leave_one_out_latents

from ._helpers import FixedClassifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cavity_is_the_posterior_without_the_point(n_classes, weighted):
    # H_-i = H - w_i J_i^T Lambda_i J_i and the Newton step H_-i^-1 w_i J_i^T r_i, in
    # weight space (P x P) with numpy, against the K x K closed forms. Both hold at any
    # weights: the network is not trained to a stationary point.
    X, y = make_blobs(25, centers=n_classes, cluster_std=2.0, random_state=0)
    weights = np.random.RandomState(0).uniform(0.5, 2.0, len(y)) if weighted else None
    clf = FixedClassifier(hidden_layer_sizes=(4,), posterior="full", max_iter=15,
                          random_state=0).fit(X, y, sample_weight=weights)
    H = clf.posterior_.precision().numpy()
    J = clf.features(X)  # (n, K, P)
    f, var = clf.predict_latent(X)
    f_t = torch.as_tensor(f)
    y_t = clf._known_targets(y, f_t.device)
    residual = clf.likelihood_.residual(f_t, y_t)
    precision = clf.likelihood_.precision(f_t)
    w = np.ones(len(y)) if weights is None else weights
    f_loo, var_loo = leave_one_out_latents(
        f_t, torch.as_tensor(var), residual, precision,
        None if weights is None else torch.as_tensor(weights))
    np.testing.assert_allclose(var, J @ np.linalg.solve(H, J.transpose(0, 2, 1)),
                               rtol=1e-10)  # the posterior is H^-1, as the cavity assumes
    r, lam = residual.numpy(), precision.numpy()
    # Tolerance: a solve with H_-i loses about cond(H_-i) * eps of relative accuracy.
    for i in range(len(y)):
        H_i = H - w[i] * J[i].T @ lam[i] @ J[i]
        tol = 10 * np.linalg.cond(H_i) * np.finfo(np.float64).eps
        expected_var = J[i] @ np.linalg.solve(H_i, J[i].T)
        expected_f = f[i] + J[i] @ np.linalg.solve(H_i, w[i] * J[i].T @ r[i])
        scale = np.abs(expected_var).max()
        np.testing.assert_allclose(var_loo[i].numpy(), expected_var, rtol=tol,
                                   atol=tol * scale)
        np.testing.assert_allclose(f_loo[i].numpy(), expected_f, rtol=tol,
                                   atol=tol * np.abs(expected_f).max())
    # Leaving a point out never makes its latent more certain.
    assert np.all(np.diagonal(var_loo.numpy(), axis1=1, axis2=2)
                  >= np.diagonal(var, axis1=1, axis2=2) * (1 - 1e-12))
