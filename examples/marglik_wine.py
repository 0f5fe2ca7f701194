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

Run ``python examples/marglik_wine.py --help`` for options; ``--quick`` runs
a small version in about a minute.
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

DEFAULT_DATA = default_data_dir()

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


def mean_se(values, axis=0):
    values = np.asarray(values)
    return values.mean(axis), values.std(axis, ddof=1) / np.sqrt(values.shape[axis])


def summarise(name, grid, results):
    """Print the table of one sweep; ``results`` has shape (n_values, n_splits, 3)."""
    lml, train_mse, test_mse = (results[..., k] for k in range(3))
    lml_m, lml_s = mean_se(lml, axis=1)
    tr_m, tr_s = mean_se(train_mse, axis=1)
    te_m, te_s = mean_se(test_mse, axis=1)
    by_evidence, by_test = int(np.argmax(lml_m)), int(np.argmin(te_m))
    print(f"\n{name} sweep ({results.shape[1]} splits): mean +- standard error")
    print(f"{'value':>10} {'train log marglik':>22} {'train MSE':>17} {'test MSE':>17}")
    for i, value in enumerate(grid):
        marks = []
        if i == by_evidence:
            marks.append("<- evidence")
        if i == by_test:
            marks.append("<- test")
        print(f"{value:>10.4g} {lml_m[i]:>12.2f} +- {lml_s[i]:<6.2f} "
              f"{tr_m[i]:>8.4f} +- {tr_s[i]:.4f} {te_m[i]:>8.4f} +- {te_s[i]:.4f}  "
              + " ".join(marks))
    # Selecting per split, as EvidenceSearchCV on that split's training set does.
    per_split = test_mse[np.argmax(lml, axis=0), np.arange(lml.shape[1])]
    ps_m, ps_s = mean_se(per_split)
    gap = te_m[by_evidence] - te_m[by_test]
    within = gap <= te_s[by_test]
    print(f"evidence choice {grid[by_evidence]:.4g}: test MSE {te_m[by_evidence]:.4f}; "
          f"best grid value {grid[by_test]:.4g}: {te_m[by_test]:.4f} +- {te_s[by_test]:.4f} "
          f"-> gap {gap:.4f} {'within' if within else 'NOT within'} one standard error")
    print(f"per-split evidence selection: test MSE {ps_m:.4f} +- {ps_s:.4f}")
    return {"lml": (lml_m, lml_s), "train": (tr_m, tr_s), "test": (te_m, te_s),
            "by_evidence": by_evidence, "by_test": by_test}


def plot(summaries, grids, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed; no figure.")
        return
    fig, axes = plt.subplots(1, len(summaries), figsize=(4.5 * len(summaries), 3.6),
                             squeeze=False)
    for ax, (name, summary) in zip(axes[0], summaries.items()):
        grid = np.asarray(grids[name], dtype=float)
        for key, label, color in (("train", "train MSE", "C0"), ("test", "test MSE", "C1")):
            m, s = summary[key]
            ax.errorbar(grid, m, s, color=color, label=label, marker="o", ms=3)
        if name != "sigma":
            ax.set_xscale("log")
        ax.set_xlabel({"delta": "prior precision $\\delta$", "sigma": "noise $\\sigma$",
                       "width": "width"}[name])
        ax.set_ylabel("MSE")
        twin = ax.twinx()
        m, s = summary["lml"]
        twin.errorbar(grid, m, s, color="C2", label="train log marglik", marker="s", ms=3)
        twin.set_ylabel("train log marginal likelihood")
        ax.axvline(grid[summary["by_evidence"]], color="C2", ls="--", lw=1)
        ax.axvline(grid[summary["by_test"]], color="C1", ls=":", lw=1)
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    print(f"figure saved to {path}")


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
    summaries = {}
    for name in args.sweeps:
        results = np.array([out for (n, _, _), out in zip(tasks, outputs) if n == name])
        results = results.reshape(len(grids[name]), n_splits, 3)
        summaries[name] = summarise(name, grids[name], results)
    plot(summaries, grids, args.output)


if __name__ == "__main__":
    main()
