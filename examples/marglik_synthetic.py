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

With ``--inference vi`` the networks are trained by VI instead (VOGN with
the estimator's defaults and a diagonal ``q``, or a full one with
``--vi-posterior full``, which ``posterior='auto'`` would pick for this
81-parameter network), and with ``--inference both`` the two sweeps run one
after the other: the VI evidence curve of Fig. 5 next to the Laplace one. Under
VI the evidence is that of the DNN2GP GP linearised at VI's mean (with the
diagonal GGN there for a diagonal ``q``), and the MSEs are those of the network
at that mean.

MSEs are in the units of y (squared): the targets are used as stored.

Run ``python examples/marglik_synthetic.py --help`` for options. Measured on a
busy 2-core machine: ``--quick`` (delta in ``logspace(-2, 2, 5)``, 3 datasets,
300 L-BFGS iterations: 15 networks) took about 7 s with ``--n-jobs 1``, Python's
start-up included; the full protocol (210 networks of up to 1000 iterations)
about 100 s with the default 2 jobs. ``--inference both --quick`` took about
25 s with ``--n-jobs 1``.
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
from sklearn_dnn2gp.plotting import EvidenceDisplay, PredictiveDisplay

from _sweep import pyplot, save_figure, summarise

DEFAULT_DATA = default_data_dir()
# y is used as stored, so the MSEs are in its own units.
UNITS = "the units of y, squared (y is not rescaled)"
# --quick: every fifth value of the paper's grid, few datasets, a short L-BFGS budget.
QUICK_GRID = np.logspace(-2, 2, 5)


def with_bias_input(x):
    # The paper feeds the network [x, 1] rather than x.
    return np.stack([x, np.ones_like(x)], axis=1)


def fit_one(data, dataset, delta, max_iter, x_grid=None, inference="laplace",
            posterior="auto"):
    torch.set_num_threads(1)  # one thread per worker process; parallel across fits
    X_train = with_bias_input(data["x_train"][dataset])
    X_test = with_bias_input(data["x_test"][dataset])
    y_train, y_test = data["y_train"][dataset], data["y_test"][dataset]
    # max_iter is L-BFGS's budget; VI keeps its own default and stopping rule.
    budget = {"max_iter": max_iter} if inference == "laplace" else {}
    reg = DNN2GPRegressor(hidden_layer_sizes=(20,), activation="tanh", noise_std=1.0,
                          prior_precision=delta, inference=inference, posterior=posterior,
                          random_state=dataset, **budget)
    with warnings.catch_warnings():
        # max_iter is the protocol's training budget; the warning would repeat per fit.
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X_train, y_train)
    train_mse = np.mean((reg.predict(X_train) - y_train) ** 2)
    test_mse = np.mean((reg.predict(X_test) - y_test) ** 2)
    curve = None if x_grid is None else reg.predict(with_bias_input(x_grid), return_std=True)
    return reg.log_marginal_likelihood_, train_mse, test_mse, curve


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                        help="folder with toy_marglik_delta_datasets.npz "
                             f"(default: {DEFAULT_DATA})")
    parser.add_argument("--n-datasets", type=int, default=10, help="datasets to use (1-10)")
    parser.add_argument("--quick", action="store_true",
                        help="5 values of delta, 3 datasets and 300 iterations")
    parser.add_argument("--max-iter", type=int, default=1000,
                        help="L-BFGS iterations (300 with --quick)")
    parser.add_argument("--inference", choices=["laplace", "vi", "both"], default="laplace",
                        help="train by Laplace (L-BFGS), by VI, or sweep both")
    parser.add_argument("--vi-posterior", choices=["diag", "full"], default="diag",
                        help="VI's q: the default diagonal one, or a full covariance")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("marglik_synthetic.png"),
                        help="figure file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = dict(np.load(args.data_dir / "toy_marglik_delta_datasets.npz"))
    grid = QUICK_GRID if args.quick else np.asarray(data["params"], dtype=float)
    n_datasets = 3 if args.quick else args.n_datasets
    max_iter = 300 if args.quick else args.max_iter

    methods = ["laplace", "vi"] if args.inference == "both" else [args.inference]
    start = time.perf_counter()
    choices = {}
    for method in methods:
        posterior = args.vi_posterior if method == "vi" else "auto"
        summary, curves, results = sweep(data, grid, n_datasets, max_iter, method,
                                         posterior, args.n_jobs)
        output = args.output
        if len(methods) > 1:
            output = output.with_name(f"{output.stem}_{method}{output.suffix}")
        plot(results, summary, grid, curves, data, output, describe(method, posterior))
        choices[method] = summary
    if len(methods) > 1:
        print("\nthe evidence's choice of delta and its test MSE:")
        for method, summary in choices.items():
            i = summary["by_evidence"]
            print(f"  {method:<8} delta {grid[i]:.4g}: test MSE {summary['test'][0][i]:.4f}; "
                  f"best on the grid {grid[summary['by_test']]:.4g}: "
                  f"{summary['test'][0][summary['by_test']]:.4f}")
    print(f"time taken: {time.perf_counter() - start:.0f} s")


def describe(method, posterior):
    return "Laplace (L-BFGS)" if method == "laplace" else f"VI (VOGN, {posterior} q)"


def sweep(data, grid, n_datasets, max_iter, method, posterior, n_jobs):
    """Fit every (delta, dataset) pair with ``method``; print and return the summary."""
    tasks = [(i, d) for i in range(len(grid)) for d in range(n_datasets)]
    start = time.perf_counter()
    outputs = Parallel(n_jobs=n_jobs)(
        delayed(fit_one)(data, d, grid[i], max_iter,
                         data["x_grid"] if d == 0 else None, method, posterior)
        for i, d in tasks)
    budget = f"max_iter={max_iter}" if method == "laplace" else "default stopping"
    seconds = time.perf_counter() - start
    print(f"\n{describe(method, posterior)}: {len(tasks)} fits in {seconds:.0f} s "
          f"({n_jobs} jobs, {budget})")
    results = np.array([out[:3] for out in outputs]).reshape(len(grid), n_datasets, 3)
    curves = {i: out[3] for (i, d), out in zip(tasks, outputs) if d == 0}
    return summarise("delta", grid, results, "datasets", UNITS), curves, results


def plot(results, summary, grid, curves, data, path, title):
    plt = pyplot()
    if plt is None:
        return
    fig, (ax, ax_fit) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    display = EvidenceDisplay(grid, results[..., 0], train_error=results[..., 1],
                              test_error=results[..., 2], param_name="prior precision $\\delta$",
                              error_name="MSE").plot(ax=ax)
    display.error_ax_.set_ylabel("MSE (units of y, squared)")
    ax.set_title(f"{title}: 2-20-1 tanh, $\\sigma$ = 1", fontsize=10)

    # The smallest delta, the evidence's choice and the largest: over-, well and under-fit.
    handles = []
    for i, color in ((0, "C3"), (summary["by_evidence"], "C2"), (len(grid) - 1, "C0")):
        mean, std = curves[i]
        display = PredictiveDisplay(data["x_grid"], mean, std).plot(
            ax=ax_fit, name=f"$\\delta$ = {grid[i]:.3g}", color=color, legend=False)
        display.band_.set_alpha(0.12)
        handles.append(display.line_)
    handles.append(ax_fit.scatter(data["x_train"][0], data["y_train"][0], s=6, color="k",
                                  label="train"))
    handles += ax_fit.plot(data["x_grid"], data["f_grid"], "k--", lw=1, label="sin x")
    ax_fit.set(ylim=(-4, 4))
    ax_fit.set_title("dataset 0: mean +- 2 predictive std", fontsize=10)
    ax_fit.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3,
                  fontsize=7, frameon=False)
    save_figure(fig, path, dpi=110)


if __name__ == "__main__":
    main()
