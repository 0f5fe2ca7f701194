"""A two-class toy problem seen as a Gaussian process: predictive, uncertainty, kernel, GP mean.

An analogue of Fig. 2 of Khan et al. (2019). A 2-20-20-1 tanh network is
trained on 200 points of scikit-learn's two moons (noise 0.2, prior precision
delta = 1) and then drawn as the GP of its Laplace-GGN posterior:

* the predictive probability of class 1 (probit link, which lowers the
  confidence where the logit is uncertain), and the Eq. 48 decomposition of
  the label's variance into its epistemic part ``p^2 (1 - p)^2 var f`` and
  its aleatoric part ``p (1 - p)``: both live near the decision boundary
  and its extensions, since a confident ``p`` leaves the label no variance;
* the kernel ``J(x) J(x')^T / delta`` on the training points, grouped by
  class: positive within a class, smaller or negative across;
* the GP view's mean: a ``GaussianProcessRegressor`` with kernel
  ``NTKKernel(clf) / delta`` and per-point noise variance ``1 / (p (1 - p))``
  fitted on the transformed targets. Its mean plus ``f(x) - J(x) w*`` is the
  network's logit wherever the training reached a stationary point, and its
  std is the logit's posterior std (Theorem 1), which grows away from the
  data: the epistemic uncertainty in function space.

The script prints the training accuracy and evidence, the epistemic
variance on the data and far from it, the kernel's mean within and across
the classes, and how far the GP view is from the network. Measured on a busy
2-core machine: about 10 s; ``--quick`` (60 points, a smaller network and
grid) about 3 s.
"""

import argparse
import time
from pathlib import Path

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

from _sweep import pyplot, save_figure


def gp_view(clf, X, y, points):
    """The GP of the logits fitted on the transformed targets: its mean mapped back
    to the network's space, and its std, at ``points``."""
    p = clf.predict_proba(X, link_approximation="plugin")[:, 1]
    gp = GaussianProcessRegressor(NTKKernel(clf) / clf.prior_precision_,
                                  alpha=1 / (p * (1 - p)), optimizer=None)
    gp.fit(X, clf.transformed_targets(X, y))
    mean, std = gp.predict(points, return_std=True)
    logits = clf.predict_latent(points)[0][:, 0]
    offset = logits - NTKFeatures(clf).fit_transform(points) @ clf.posterior_.mean.numpy()
    return mean + offset, std


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="60 points, a 2-8-1 network, a coarse grid")
    parser.add_argument("--output", type=Path, default=Path("toy_classification_gp_view.png"),
                        help="figure file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    X, y = make_moons(n_samples=60 if args.quick else 200, noise=0.2, random_state=0)
    hidden = (8,) if args.quick else (20, 20)
    clf = DNN2GPClassifier(hidden_layer_sizes=hidden, prior_precision=1.0,
                           link_approximation="probit", random_state=0).fit(X, y)
    print(f"two moons, {len(y)} points; 2-{'-'.join(map(str, hidden))}-1 tanh, delta = 1: "
          f"training accuracy {clf.score(X, y):.3f}, "
          f"log evidence {clf.log_marginal_likelihood_:.2f} ({clf.n_iter_} L-BFGS iterations)")

    far = np.array([[-2.0, 2.0], [3.0, -1.5], [0.5, 2.5]])
    epistemic, aleatoric = clf.predict_uncertainty(X)
    print(f"label variance (Eq. 48) on the data: epistemic {epistemic[:, 1].mean():.4f}, "
          f"aleatoric {aleatoric[:, 1].mean():.4f}")
    logit_std = [np.sqrt(clf.predict_latent(points)[1][:, 0, 0]).mean() for points in (X, far)]
    print(f"posterior std of the logit: {logit_std[0]:.3f} on the data, {logit_std[1]:.3f} at "
          f"{len(far)} points far from it")

    kernel = NTKKernel(clf)(X) / clf.prior_precision_
    same = y[:, None] == y[None, :]
    print(f"kernel J J^T / delta: mean {kernel[same].mean():.3f} within a class, "
          f"{kernel[~same].mean():.3f} across")

    resolution = 25 if args.quick else 80
    grid = np.meshgrid(np.linspace(X[:, 0].min() - 0.5, X[:, 0].max() + 0.5, resolution),
                       np.linspace(X[:, 1].min() - 0.5, X[:, 1].max() + 0.5, resolution))
    points = np.column_stack([g.ravel() for g in grid])
    gp_mean, gp_std = gp_view(clf, X, y, points)
    logits, logit_cov = clf.predict_latent(points)
    print(f"GP view on a {resolution}x{resolution} grid: largest |GP mean - network logit| "
          f"{np.abs(gp_mean - logits[:, 0]).max():.2e} (logits up to "
          f"{np.abs(logits).max():.1f}); largest relative difference of the GP std and the "
          f"logit's posterior std {np.max(np.abs(gp_std / np.sqrt(logit_cov[:, 0, 0]) - 1)):.1e}")

    plot(clf, X, y, grid, expit(gp_mean).reshape(grid[0].shape),
             gp_std.reshape(grid[0].shape), args.output)
    print(f"time taken: {time.perf_counter() - start:.0f} s")


def plot(clf, X, y, grid, gp_probability, gp_std, path):
    plt = pyplot()
    if plt is None:
        return
    fig = plt.figure(figsize=(11.5, 6.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    UncertaintyDisplay.from_estimator(clf, X, y, grid_resolution=grid[0].shape[0],
                                      ax=top.subplots(1, 3))
    top.axes[0].set_title("predictive probability of class 1 (probit)", fontsize=10)
    top.axes[1].set_title("epistemic variance (Eq. 48)", fontsize=10)
    top.axes[2].set_title("aleatoric variance p(1 - p)", fontsize=10)
    ax_kernel, ax_mean, ax_std = bottom.subplots(1, 3)
    # Within a class, left to right: neighbours in x sit together in the heat map.
    order = np.lexsort((X[:, 0], y))
    KernelDisplay.from_estimator(clf, X[order], y[order], ax=ax_kernel)
    ax_kernel.set_title("kernel, grouped by class (by $x_1$ within)", fontsize=10)
    for ax, values, levels, cmap, title in (
            (ax_mean, gp_probability, np.linspace(0, 1, 11), "RdBu_r",
             "GP view: sigmoid of the GP mean"),
            (ax_std, gp_std, 12, "Reds", "GP view: posterior std of the logit")):
        image = ax.contourf(*grid, values, levels=levels, cmap=cmap)
        ax.scatter(X[:, 0], X[:, 1], c=y, s=8, cmap="coolwarm", edgecolors="k",
                   linewidths=0.4)
        ax.set(xlabel="$x_1$", ylabel="$x_2$")
        ax.set_title(title, fontsize=10)
        bottom.colorbar(image, ax=ax)
    save_figure(fig, path, dpi=64)


if __name__ == "__main__":
    main()
