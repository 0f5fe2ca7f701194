"""In-between uncertainty on the Snelson data: the VI curve of Fig. 3 (right).

Reproduces the setting of Fig. 3 of Khan et al. (2019): the 148 Snelson points
left after removing 1.5 <= x <= 3, a 1-32-1 sigmoid network and noise std
0.286. Three fits, all with the estimators' defaults otherwise:

* Laplace (the left panel's setting, ``prior_precision=0.1``);
* VI with a diagonal ``q`` (the right panel's ``prior_precision=1``);
* VI with a full-covariance ``q`` (VOGGN), same setting: what
  ``posterior='auto'`` picks for this 97-parameter network.

For each the script prints the training RMSE, the predictive std (noise
included) on the data and inside the gap, and the predictive mean and std
along a grid from -1 to 7, and draws mean +- 2 std when matplotlib is there.
What to look for: the full posteriors widen between the clusters; the
diagonal one hardly does (a mean-field Gaussian cannot represent that
uncertainty; its std is nearly flat along x).

Run ``python examples/in_between_vi.py --help`` for options. About 8 s on one thread.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_dnn2gp import DNN2GPRegressor
from sklearn_dnn2gp.datasets import default_data_dir, load_snelson

from _sweep import pyplot, save_figure

GRID = np.linspace(-1, 7, 17)[:, None]
FINE = np.linspace(-1, 7, 200)[:, None]
GAP = np.linspace(1.75, 2.75, 9)[:, None]


def fits(seed):
    base = dict(hidden_layer_sizes=(32,), activation="sigmoid", noise_std=0.286,
                random_state=seed)
    return {
        "Laplace (delta 0.1)": DNN2GPRegressor(prior_precision=0.1, **base),
        "VI diag (delta 1)": DNN2GPRegressor(prior_precision=1.0, inference="vi",
                                             posterior="diag", **base),
        "VI full (delta 1)": DNN2GPRegressor(prior_precision=1.0, inference="vi",
                                             posterior="full", **base),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("in_between_vi.png"),
                        help="figure file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    X, y = load_snelson(args.data_dir)
    estimators = fits(args.random_state)
    curves, fine = {}, {}
    print(f"{'fit':<20} {'train RMSE':>10} {'std on data':>18} {'std in gap':>18} "
          f"{'gap min / data max':>19}")
    print(f"{'':<20} {'':>10} {'median':>8} {'max':>9} {'median':>8} {'min':>9}")
    for name, est in estimators.items():
        with warnings.catch_warnings():
            # At delta = 0.1 L-BFGS uses up its 5000 iterations with a gradient of ~1e-2;
            # the fit is the paper's all the same.
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        rmse = np.sqrt(np.mean((est.predict(X) - y) ** 2))
        _, on_data = est.predict(X, return_std=True)
        _, in_gap = est.predict(GAP, return_std=True)
        curves[name] = est.predict(GRID, return_std=True)
        fine[name] = est.predict(FINE, return_std=True)
        print(f"{name:<20} {rmse:>10.4f} {np.median(on_data):>8.4f} {on_data.max():>9.4f} "
              f"{np.median(in_gap):>8.4f} {in_gap.min():>9.4f} "
              f"{in_gap.min() / on_data.max():>19.3f}")
    print("\npredictive mean / std along x (the gap is 1.5 < x < 3)")
    print(f"{'x':>6} " + " ".join(f"{name:>21}" for name in curves))
    for i, x in enumerate(GRID[:, 0]):
        print(f"{x:>6.2f} " + " ".join(f"{curves[n][0][i]:>+10.3f} {curves[n][1][i]:>10.3f}"
                                       for n in curves))
    plot(X, y, fine, args.output)
    print(f"time taken: {time.perf_counter() - start:.1f} s")


def plot(X, y, curves, path):
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, len(curves), figsize=(12, 3.8), sharey=True,
                             layout="constrained")
    for ax, (name, (mean, std)), color in zip(axes, curves.items(), ("C0", "C3", "C2")):
        ax.scatter(X[:, 0], y, s=4, color="k", label="train")
        ax.plot(FINE[:, 0], mean, color=color, label="mean")
        ax.fill_between(FINE[:, 0], mean - 2 * std, mean + 2 * std, color=color, alpha=0.2,
                        label="+- 2 std")
        ax.axvspan(1.5, 3, color="0.9", zorder=0)
        ax.set(title=name, xlabel="x", ylim=(-3, 2.5))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=7,
                  frameon=False)
    axes[0].set_ylabel("y")
    save_figure(fig, path, dpi=110)


if __name__ == "__main__":
    main()
