"""In-between uncertainty on the Snelson data: DNN2GP against MC-sampled Laplace and an RBF GP.

Reproduces Fig. 3 of Khan et al. (2019). The Snelson 1-D data without the
points with 1.5 <= x <= 3 (148 left) are fitted by a 1-32-1 sigmoid network
with noise std sigma = 0.286, four ways:

* DNN2GP-Laplace: L-BFGS to the MAP at prior precision delta = 0.1, then the
  full Laplace-GGN posterior, whose predictive is that of the GP with the
  network's kernel;
* DNN2GP-VI: VOGN with a full covariance, also at delta = 0.1 (the paper used
  delta = 1 for VI; with this package's initialisation both VI and L-BFGS
  then settle on a smooth fit, R^2 0.69 against 0.88, that misses the data's
  wiggles), run for a fixed 1500 epochs: its stopping rule, on the noisy VOGN
  objective, ended it after about 150, before the fit was done;
* MC diagonal Laplace: the same network and delta as DNN2GP-Laplace with a
  diagonal GGN posterior, its predictive sampled by running the *nonlinear*
  network at 1000 weight draws (the paper's "DNN-Laplace");
* ``GaussianProcessRegressor(ConstantKernel() * RBF(), alpha=sigma**2)``.

The script prints, for each, the mean predictive std of y inside the gap and
at the training inputs, and the epistemic part alone, and draws the four
predictives (mean +- 1 std, as in the paper) with the RBF GP's band for
reference. DNN2GP's band widens in the gap, like the GP's; the sampled
diagonal Laplace's does not.

Run ``python examples/snelson_in_between.py --help`` for options. Measured on
a busy 2-core machine: about 60 s; ``--quick`` (shorter training, fewer
draws) about 5 s.
"""

import argparse
import copy
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel
from torch.nn.utils import vector_to_parameters

from sklearn_dnn2gp import DNN2GPRegressor, PredictiveDisplay
from sklearn_dnn2gp.datasets import default_data_dir, load_snelson

from _sweep import pyplot, save_figure

DEFAULT_DATA = default_data_dir()
SIGMA = 0.286
GAP = (1.5, 3.0)


def fit(estimator, X, y):
    """Fit, reporting rather than warning when L-BFGS stops at ``max_iter``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(X, y)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        print(f"  (training stopped at max_iter={estimator.max_iter} before tol)")
    return estimator


def sampled_predictive(estimator, x, n_samples, seed=0):
    """Mean and latent std of the network's outputs at ``n_samples`` weight draws."""
    draws = estimator.posterior_.sample(n_samples, torch.Generator().manual_seed(seed))
    module = copy.deepcopy(estimator.module_)
    inputs = torch.as_tensor(x, dtype=torch.float64)
    outputs = []
    with torch.no_grad():
        for weights in draws:
            vector_to_parameters(weights, module.parameters())
            outputs.append(module(inputs)[:, 0].numpy())
    outputs = np.array(outputs)
    return outputs.mean(0), outputs.std(0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                        help=f"folder with snelson_train_*.txt (default: {DEFAULT_DATA})")
    parser.add_argument("--quick", action="store_true",
                        help="300 L-BFGS iterations, 30 VI epochs, 100 draws")
    parser.add_argument("--output", type=Path, default=Path("snelson_in_between.png"),
                        help="figure file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    X, y = load_snelson(args.data_dir)
    max_iter = 300 if args.quick else 5000
    network = dict(hidden_layer_sizes=(32,), activation="sigmoid", noise_std=SIGMA,
                   random_state=0)

    print(f"Snelson data without {GAP[0]} <= x <= {GAP[1]}: {len(y)} points; 1-32-1 sigmoid, "
          f"sigma = {SIGMA}")
    print("DNN2GP-Laplace (delta = 0.1)")
    laplace = fit(DNN2GPRegressor(prior_precision=0.1, max_iter=max_iter, **network), X, y)
    print("MC diagonal Laplace (the same training, diagonal GGN)")
    diagonal = fit(clone(laplace).set_params(posterior="diag"), X, y)
    print("DNN2GP-VI (VOGN, full covariance, delta = 0.1)")
    epochs = 30 if args.quick else 1500
    vi = fit(DNN2GPRegressor(prior_precision=0.1, inference="vi", posterior="full",
                             mc_samples=4, learning_rate_init=0.1, max_iter=epochs,
                             n_iter_no_change=epochs, **network), X, y)
    print("GP with ConstantKernel() * RBF(), alpha = sigma^2")
    gp = GaussianProcessRegressor(ConstantKernel() * RBF(), alpha=SIGMA**2,
                                  n_restarts_optimizer=0 if args.quick else 5,
                                  random_state=0).fit(X, y)
    print(f"  fitted kernel: {gp.kernel_}")

    x = np.linspace(-4, 10, 200 if args.quick else 600)
    in_gap = np.linspace(*GAP, 31)
    n_draws = 100 if args.quick else 1000
    curves, table = {}, []
    for name, model in (("DNN2GP-Laplace", laplace), ("DNN2GP-VI", vi),
                        ("MC diagonal Laplace", diagonal), ("GP-RBF", gp)):
        where = {}
        for key, points in (("curve", x), ("gap", in_gap), ("data", X[:, 0])):
            points = points[:, None]
            if model is diagonal:
                mean, latent = sampled_predictive(model, points, n_draws)
            else:
                mean, latent = model.predict(points, return_std=True)
                if model is not gp:  # the GP's std is already the latent one
                    latent = np.sqrt(model.predict_uncertainty(points)[0])
            where[key] = mean, np.sqrt(latent**2 + SIGMA**2), latent
        curves[name] = where["curve"]
        table.append((name, where["gap"][1].mean(), where["data"][1].mean(),
                      where["gap"][2].mean(), where["data"][2].mean()))

    print(f"\n{'':20} {'predictive std of y':>25} {'epistemic std':>25}")
    print(f"{'':20} {'in the gap':>12} {'on the data':>12} {'in the gap':>12} {'on the data':>12}")
    for name, *values in table:
        print(f"{name:20} " + " ".join(f"{v:12.3f}" for v in values))
    print(f"(the gap: {len(in_gap)} points in [{GAP[0]}, {GAP[1]}]; the data: the "
          f"{len(y)} training inputs; sigma = {SIGMA} is the noise part)")
    plot(curves, x, X, y, args.output)
    print(f"time taken: {time.perf_counter() - start:.0f} s")


def plot(curves, x, X, y, path):
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True, sharey=True,
                             layout="constrained")
    gp_mean, gp_std, gp_latent = curves["GP-RBF"]
    for ax, (name, (mean, std, latent)) in zip(axes.ravel(), curves.items()):
        ax.axvspan(*GAP, color="0.93", zorder=0)
        reference = {} if name == "GP-RBF" else dict(
            reference_mean=gp_mean, reference_std=gp_std, reference_name="GP-RBF")
        PredictiveDisplay(x, mean, std, epistemic_std=latent, X_train=X[:, 0], y_train=y,
                          **reference).plot(ax=ax, n_std=1, name=name, legend=False)
        ax.set_title(name, fontsize=10)
        ax.set(xlim=(x[0], x[-1]), ylim=(-2.7, 2))
    # Under the panels: inside, the legend would cover data or bands.
    fig.legend(handles=axes[0, 0].get_legend_handles_labels()[0], loc="outside lower center",
               ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Snelson data without $1.5 \\leq x \\leq 3$ (grey): mean $\\pm$ 1 std",
                 fontsize=10)
    save_figure(fig, path, dpi=80)


if __name__ == "__main__":
    main()
