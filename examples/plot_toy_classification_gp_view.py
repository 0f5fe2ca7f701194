"""
A two-class problem seen as a Gaussian process (Fig. 2)
=======================================================

Fig. 2 of Khan et al. (2019) draws a classifier on a toy problem as the
Gaussian process of its posterior. Here a 2-20-20-1 tanh network is trained on
200 points of scikit-learn's two moons (noise 0.2, prior precision
``delta = 1``) and drawn the same way: its predictive probability and the
Eq. 48 decomposition of the label's variance, the kernel ``J(x) J(x')^T /
delta`` on the training points, and the GP of Theorem 1 fitted with
scikit-learn's :class:`~sklearn.gaussian_process.GaussianProcessRegressor`.

The example takes a few seconds on two CPU cores.
"""

# %%
# The network and its posterior
# -----------------------------
# A fixed ``prior_precision`` and the probit link, which lowers the confidence
# where the logit is uncertain (``temperature=1``, ``residual_scale=0``: the
# untempered posterior, as in the paper).

import os
import time

import numpy as np
from scipy.special import expit
from sklearn.datasets import make_moons
from sklearn.gaussian_process import GaussianProcessRegressor

from sklearn_dnn2gp import (
    DNN2GPClassifier,
    KernelDisplay,
    NTKFeatures,
    NTKKernel,
    UncertaintyDisplay,
)

start = time.perf_counter()
X, y = make_moons(n_samples=200, noise=0.2, random_state=0)
clf = DNN2GPClassifier(hidden_layer_sizes=(20, 20), prior_precision=1.0,
                       link_approximation="probit", temperature=1.0, residual_scale=0.0,
                       random_state=0).fit(X, y)
print(f"two moons, {len(y)} points; 2-20-20-1 tanh, delta = 1: training accuracy "
      f"{clf.score(X, y):.3f}, log evidence {clf.log_marginal_likelihood_:.2f} "
      f"({clf.n_iter_} L-BFGS iterations)")

# %%
# Uncertainty of the label and of the logit
# -----------------------------------------
# Eq. 48 splits the label's variance into an epistemic part ``p^2 (1 - p)^2
# var f`` and an aleatoric part ``p (1 - p)``; both live near the decision
# boundary, since a confident ``p`` leaves the label no variance. The logit's
# own posterior std grows away from the data.

far = np.array([[-2.0, 2.0], [3.0, -1.5], [0.5, 2.5]])
epistemic, aleatoric = clf.predict_uncertainty(X)
print(f"label variance (Eq. 48) on the data: epistemic {epistemic[:, 1].mean():.4f}, "
      f"aleatoric {aleatoric[:, 1].mean():.4f}")
logit_std = [np.sqrt(clf.predict_latent(points)[1][:, 0, 0]).mean() for points in (X, far)]
print(f"posterior std of the logit: {logit_std[0]:.3f} on the data, {logit_std[1]:.3f} at "
      f"{len(far)} points far from it")

# %%
# The kernel
# ----------
# The trained network's neural tangent kernel, divided by ``delta``, is the
# prior covariance of the GP: positive within a class, smaller or negative
# across.

kernel = NTKKernel(clf)(X) / clf.prior_precision_
same = y[:, None] == y[None, :]
print(f"kernel J J^T / delta: mean {kernel[same].mean():.3f} within a class, "
      f"{kernel[~same].mean():.3f} across")

# %%
# The GP view, by scikit-learn
# ----------------------------
# Theorem 1: a GP with kernel ``NTKKernel(clf) / delta`` and per-point noise
# variance ``1 / (p (1 - p))``, fitted on the transformed targets, has the
# posterior of the network's logits. Its mean plus ``f(x) - J(x) w*`` is the
# network's logit wherever training reached a stationary point, and its std is
# the logit's posterior std.

grid = np.meshgrid(np.linspace(X[:, 0].min() - 0.5, X[:, 0].max() + 0.5, 80),
                   np.linspace(X[:, 1].min() - 0.5, X[:, 1].max() + 0.5, 80))
points = np.column_stack([g.ravel() for g in grid])
p = clf.predict_proba(X, link_approximation="plugin")[:, 1]
gp = GaussianProcessRegressor(NTKKernel(clf) / clf.prior_precision_,
                              alpha=1 / (p * (1 - p)), optimizer=None)
gp.fit(X, clf.transformed_targets(X, y))
gp_mean, gp_std = gp.predict(points, return_std=True)
logits, logit_cov = clf.predict_latent(points)
gp_mean += logits[:, 0] - NTKFeatures(clf).fit_transform(points) @ clf.posterior_.mean.numpy()
print(f"GP view on an 80x80 grid: largest |GP mean - network logit| "
      f"{np.abs(gp_mean - logits[:, 0]).max():.2e} (logits up to {np.abs(logits).max():.1f}); "
      f"largest relative difference of the GP std and the logit's posterior std "
      f"{np.max(np.abs(gp_std / np.sqrt(logit_cov[:, 0, 0]) - 1)):.1e}")

# %%
# The figure
# ----------

import matplotlib.pyplot as plt  # noqa: E402

fig = plt.figure(figsize=(11.5, 6.6), layout="constrained")
top, bottom = fig.subfigures(2, 1)
UncertaintyDisplay.from_estimator(clf, X, y, grid_resolution=80, ax=top.subplots(1, 3))
top.axes[0].set_title("predictive probability of class 1 (probit)", fontsize=10)
top.axes[1].set_title("epistemic variance (Eq. 48)", fontsize=10)
top.axes[2].set_title("aleatoric variance p(1 - p)", fontsize=10)
ax_kernel, ax_mean, ax_std = bottom.subplots(1, 3)
# Within a class, left to right: neighbours in x sit together in the heat map.
order = np.lexsort((X[:, 0], y))
KernelDisplay.from_estimator(clf, X[order], y[order], ax=ax_kernel)
ax_kernel.set_title("kernel, grouped by class (by $x_1$ within)", fontsize=10)
for ax, values, levels, cmap, title in (
        (ax_mean, expit(gp_mean), np.linspace(0, 1, 11), "RdBu_r",
         "GP view: sigmoid of the GP mean"),
        (ax_std, gp_std, 12, "Reds", "GP view: posterior std of the logit")):
    image = ax.contourf(*grid, values.reshape(grid[0].shape), levels=levels, cmap=cmap)
    ax.scatter(X[:, 0], X[:, 1], c=y, s=8, cmap="coolwarm", edgecolors="k", linewidths=0.4)
    ax.set(xlabel="$x_1$", ylabel="$x_2$")
    ax.set_title(title, fontsize=10)
    bottom.colorbar(image, ax=ax)
print(f"time taken: {time.perf_counter() - start:.0f} s")

# The user guide's figure: ``DNN2GP_FIGURE=docs/toy_classification_gp_view.png python
# examples/plot_toy_classification_gp_view.py``.
if os.environ.get("DNN2GP_FIGURE"):
    from _sweep import save_figure  # a PNG of 256 colours, a third of the size

    save_figure(fig, os.environ["DNN2GP_FIGURE"], dpi=64)

# %%
# What the paper shows and what we measured
# -----------------------------------------
# The paper's Fig. 2 shows the predictive, the epistemic and aleatoric
# variances concentrated at the boundary, a kernel with a block per class, and
# the GP view reproducing the network. Here (2 CPU cores, torch 2.13) the GP's
# std matches the logit's posterior std to 7e-13 relative (float64 round-off),
# and its mean the network's logit to 2e-3 where the logits reach 12 (the
# distance of L-BFGS's end point from a stationary point); the kernel's mean is
# 86 within the classes and 42 across them.
