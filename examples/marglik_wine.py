"""Choosing delta, sigma and width of a network by its training-set evidence (red wine).

Reproduces Fig. 6 of Khan et al. (2019): on the UCI red-wine data, with the
paper's 20 train/test splits, sweep

* the prior precision delta at sigma = 0.64 (11-20-20-1 tanh network),
* the noise std sigma at delta = 30 (same network),
* the width h of an 11-h-1 tanh network at sigma = 0.64, delta = 3,

and print, per grid value, the mean +- standard error over splits of the
training log marginal likelihood, the training MSE and the test MSE. The value
of highest mean evidence (``<- evidence``) should have a test MSE close to the
best on the grid (``<- test``), while the training MSE keeps falling.

X and y are standardised with the training split's mean and population std;
MSEs are reported in the original units (``y_std**2 * MSE``) and the evidence
is that of the standardised targets.

Run ``python examples/marglik_wine.py --help`` for options. ``--quick`` (3
splits, 3 or 4 values per sweep, 300 L-BFGS iterations: 30 networks) took
16-20 s with ``--n-jobs 1`` on a 2-core machine; the full protocol trains
580 networks of up to 1000 iterations each.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning

from sklearn_dnn2gp import DNN2GPRegressor
from sklearn_dnn2gp.datasets import default_data_dir, load_wine_split
from sklearn_dnn2gp.plotting import EvidenceDisplay

from _sweep import pyplot, save_figure, summarise

DEFAULT_DATA = default_data_dir()
# The fits see standardised targets; the tables convert their MSEs back.
UNITS = "original quality units (quality points squared: y_std**2 * standardised MSE)"

SWEEPS = {
    # name: (parameter, full grid, quick grid, fixed settings)
    "delta": ("prior_precision", list(np.logspace(-1, 3, 13)), [0.1, 3.0, 30.0, 300.0],
              {"hidden_layer_sizes": (20, 20), "noise_std": 0.64}),
    "sigma": ("noise_std", [0.3, 0.4, 0.5, 0.64, 0.8, 1.0, 1.2, 1.5], [0.3, 0.64, 1.0],
              {"hidden_layer_sizes": (20, 20), "prior_precision": 30.0}),
    "width": ("hidden_layer_sizes", [1, 2, 4, 8, 16, 32, 64, 128], [2, 8, 32],
              {"noise_std": 0.64, "prior_precision": 3.0}),
}


def fit_one(data_dir, split, parameter, value, fixed, max_iter):
    # One intra-op thread per worker process: the parallelism is across fits.
    torch.set_num_threads(1)
    X_train, y_train, X_test, y_test, y_std = load_wine_split(split, data_dir)
    if parameter == "hidden_layer_sizes":
        value = (int(value),)
    reg = DNN2GPRegressor(activation="tanh", max_iter=max_iter, random_state=split,
                          **{parameter: value}, **fixed)
    with warnings.catch_warnings():
        # max_iter is the training budget of the protocol; small delta rarely
        # reaches tol within it, and the warning would repeat for every fit.
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X_train, y_train)
    train_mse = y_std**2 * np.mean((reg.predict(X_train) - y_train) ** 2)
    test_mse = y_std**2 * np.mean((reg.predict(X_test) - y_test) ** 2)
    return reg.log_marginal_likelihood_, train_mse, test_mse


def plot(results, grids, path):
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.8),
                             squeeze=False, layout="constrained")
    xlabels = {"delta": "prior precision $\\delta$", "sigma": "noise std $\\sigma$",
               "width": "hidden units $h$"}
    titles = {"delta": "11-20-20-1, $\\sigma$ = 0.64", "sigma": "11-20-20-1, $\\delta$ = 30",
              "width": "11-$h$-1, $\\sigma$ = 0.64, $\\delta$ = 3"}
    scales = {"delta": "log", "sigma": "linear", "width": "log2"}
    for ax, (name, values) in zip(axes[0], results.items()):
        display = EvidenceDisplay(grids[name], values[..., 0], train_error=values[..., 1],
                                  test_error=values[..., 2], param_name=xlabels[name],
                                  error_name="MSE (quality points$^2$)")
        display.plot(ax=ax, xscale=scales[name], legend=False)
        ax.set_title(titles[name], fontsize=10)
    # One legend for all panels, under them: inside, it would cover points.
    fig.legend(handles=display.handles_, loc="outside lower center", ncol=len(display.handles_),
               fontsize=8, frameon=False)
    save_figure(fig, path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                        help="folder with winequality-red.csv and wine_splits/ "
                             f"(default: {DEFAULT_DATA})")
    parser.add_argument("--n-splits", type=int, default=20, help="splits to use (1-20)")
    parser.add_argument("--sweeps", nargs="+", choices=list(SWEEPS), default=list(SWEEPS))
    parser.add_argument("--quick", action="store_true",
                        help="small grids, 3 splits and 300 iterations")
    parser.add_argument("--max-iter", type=int, default=1000, help="L-BFGS iterations")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("marglik_wine.png"),
                        help="figure file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    n_splits = 3 if args.quick else args.n_splits
    max_iter = 300 if args.quick else args.max_iter
    grids = {name: SWEEPS[name][2 if args.quick else 1] for name in args.sweeps}

    tasks = [(name, i, split) for name in args.sweeps
             for i in range(len(grids[name])) for split in range(n_splits)]
    start = time.perf_counter()
    outputs = Parallel(n_jobs=args.n_jobs, verbose=0)(
        delayed(fit_one)(args.data_dir, split, SWEEPS[name][0], grids[name][i],
                         SWEEPS[name][3], max_iter)
        for name, i, split in tasks)
    print(f"{len(tasks)} fits in {time.perf_counter() - start:.0f} s "
          f"({args.n_jobs} jobs, max_iter={max_iter})")
    results = {}
    for name in args.sweeps:
        values = np.array([out for (n, _, _), out in zip(tasks, outputs) if n == name])
        results[name] = values.reshape(len(grids[name]), n_splits, 3)
        summarise(name, grids[name], results[name], "splits", UNITS)
    plot(results, grids, args.output)
    print(f"time taken: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
