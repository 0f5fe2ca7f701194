"""Choosing the prior precision of a network by its training-set evidence (synthetic data).

Reproduces Fig. 5 of Khan et al. (2019). Each of the paper's 10 datasets has
100 training points from three clusters (weights .45/.1/.45, x in [-3.5, -1.5],
[-1, 1], [1.5, 3.5]) with y = sin(x) + noise of std .1 / 1 / .1, and 2000 test
points from the same distribution. A 2-20-1 tanh network on the input
``[x, 1]`` with noise std sigma = 1 is trained for every prior precision delta
in ``logspace(-2, 2, 21)``.

Per delta, the table gives the mean +- standard error over datasets of the
training log marginal likelihood, the training MSE and the test MSE. The
training MSE falls as delta shrinks (the network overfits), while the delta of
highest evidence (``<- evidence``) has a test MSE close to the best one
(``<- test``).

Run ``python examples/marglik_synthetic.py --help`` for options; ``--quick``
runs a small version in a few seconds.
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
from sklearn_dnn2gp.datasets import default_data_dir

DEFAULT_DATA = default_data_dir()


def with_bias_input(x):
    # The paper feeds the network [x, 1] rather than x.
    return np.stack([x, np.ones_like(x)], axis=1)


def fit_one(data, dataset, delta, max_iter, x_grid=None):
    torch.set_num_threads(1)  # one thread per worker process; parallel across fits
    X_train = with_bias_input(data["x_train"][dataset])
    X_test = with_bias_input(data["x_test"][dataset])
    y_train, y_test = data["y_train"][dataset], data["y_test"][dataset]
    reg = DNN2GPRegressor(hidden_layer_sizes=(20,), activation="tanh", noise_std=1.0,
                          prior_precision=delta, max_iter=max_iter, random_state=dataset)
    with warnings.catch_warnings():
        # max_iter is the protocol's training budget; the warning would repeat per fit.
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X_train, y_train)
    train_mse = np.mean((reg.predict(X_train) - y_train) ** 2)
    test_mse = np.mean((reg.predict(X_test) - y_test) ** 2)
    curve = None if x_grid is None else reg.predict(with_bias_input(x_grid), return_std=True)
    return reg.log_marginal_likelihood_, train_mse, test_mse, curve


def mean_se(values, axis=0):
    values = np.asarray(values)
    return values.mean(axis), values.std(axis, ddof=1) / np.sqrt(values.shape[axis])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                        help="folder with toy_marglik_delta_datasets.npz "
                             f"(default: {DEFAULT_DATA})")
    parser.add_argument("--n-datasets", type=int, default=10, help="datasets to use (1-10)")
    parser.add_argument("--quick", action="store_true",
                        help="9 values of delta and 3 datasets")
    parser.add_argument("--max-iter", type=int, default=1000, help="L-BFGS iterations")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("marglik_synthetic.png"),
                        help="figure file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = dict(np.load(args.data_dir / "toy_marglik_delta_datasets.npz"))
    grid = np.logspace(-2, 2, 9) if args.quick else np.asarray(data["params"], dtype=float)
    n_datasets = 3 if args.quick else args.n_datasets

    tasks = [(i, d) for i in range(len(grid)) for d in range(n_datasets)]
    start = time.perf_counter()
    outputs = Parallel(n_jobs=args.n_jobs)(
        delayed(fit_one)(data, d, grid[i], args.max_iter,
                         data["x_grid"] if d == 0 else None)
        for i, d in tasks)
    print(f"{len(tasks)} fits in {time.perf_counter() - start:.0f} s ({args.n_jobs} jobs)")
    results = np.array([out[:3] for out in outputs]).reshape(len(grid), n_datasets, 3)
    curves = {i: out[3] for (i, d), out in zip(tasks, outputs) if d == 0}

    lml, train_mse, test_mse = (results[..., k] for k in range(3))
    lml_m, lml_s = mean_se(lml, axis=1)
    tr_m, tr_s = mean_se(train_mse, axis=1)
    te_m, te_s = mean_se(test_mse, axis=1)
    by_evidence, by_test = int(np.argmax(lml_m)), int(np.argmin(te_m))
    print(f"\ndelta sweep ({n_datasets} datasets): mean +- standard error")
    print(f"{'delta':>10} {'train log marglik':>21} {'train MSE':>17} {'test MSE':>17}")
    for i, delta in enumerate(grid):
        marks = [m for m, hit in (("<- evidence", i == by_evidence), ("<- test", i == by_test))
                 if hit]
        print(f"{delta:>10.4g} {lml_m[i]:>11.2f} +- {lml_s[i]:<6.2f} "
              f"{tr_m[i]:>8.4f} +- {tr_s[i]:.4f} {te_m[i]:>8.4f} +- {te_s[i]:.4f}  "
              + " ".join(marks))
    per_dataset = test_mse[np.argmax(lml, axis=0), np.arange(n_datasets)]
    pd_m, pd_s = mean_se(per_dataset)
    gap = te_m[by_evidence] - te_m[by_test]
    print(f"evidence choice {grid[by_evidence]:.4g}: test MSE {te_m[by_evidence]:.4f}; best "
          f"{grid[by_test]:.4g}: {te_m[by_test]:.4f} +- {te_s[by_test]:.4f} -> gap {gap:.4f} "
          f"{'within' if gap <= te_s[by_test] else 'NOT within'} one standard error")
    print(f"per-dataset evidence selection: test MSE {pd_m:.4f} +- {pd_s:.4f}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed; no figure.")
        return
    fig, (ax, ax_fit) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax.errorbar(grid, tr_m, tr_s, marker="o", ms=3, label="train MSE")
    ax.errorbar(grid, te_m, te_s, marker="o", ms=3, label="test MSE")
    ax.set_xscale("log")
    ax.set_xlabel("prior precision $\\delta$")
    ax.set_ylabel("MSE")
    twin = ax.twinx()
    twin.errorbar(grid, lml_m, lml_s, color="C2", marker="s", ms=3, label="train log marglik")
    twin.set_ylabel("train log marginal likelihood")
    ax.axvline(grid[by_evidence], color="C2", ls="--", lw=1)
    handles = [h + g for h, g in zip(ax.get_legend_handles_labels(),
                                     twin.get_legend_handles_labels())]
    ax.legend(*handles, fontsize=7)

    ax_fit.scatter(data["x_train"][0], data["y_train"][0], s=6, color="k", label="train")
    ax_fit.plot(data["x_grid"], data["f_grid"], "k--", lw=1, label="sin x")
    for i, color in ((0, "C3"), (by_evidence, "C2"), (len(grid) - 1, "C0")):
        mean, std = curves[i]
        ax_fit.plot(data["x_grid"], mean, color=color, label=f"$\\delta$={grid[i]:.3g}")
        ax_fit.fill_between(data["x_grid"], mean - 2 * std, mean + 2 * std, color=color,
                            alpha=0.15)
    ax_fit.set_ylim(-4, 4)
    ax_fit.legend(fontsize=7)
    ax_fit.set_title("dataset 0 (band: 2 predictive std)")
    fig.tight_layout()
    fig.savefig(args.output, dpi=150)
    print(f"figure saved to {args.output}")


if __name__ == "__main__":
    main()
