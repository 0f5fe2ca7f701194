"""Demo: ``python -m sklearn_dnn2gp``.

Fits a DNN2GPRegressor to a 1-D problem with a gap in its inputs, prints the
predictive mean and std on the data and inside the gap and the log marginal
likelihood, and saves a plot (``dnn2gp_demo.png`` in the current folder unless
``--plot`` says otherwise) when matplotlib is installed. It ends by printing
how long it took.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from sklearn_dnn2gp import DNN2GPRegressor
from sklearn_dnn2gp.datasets import make_gap_regression


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", default="dnn2gp_demo.png",
                        help="where to save the figure (needs matplotlib); '' to skip")
    args = parser.parse_args(argv)
    # The estimators choose their own torch thread count (n_threads='auto').
    start = time.perf_counter()

    X, y = make_gap_regression(n_samples=100, noise=0.1, random_state=0)
    # The defaults: prior_precision and noise_std chosen by the training-set evidence.
    reg = DNN2GPRegressor(hidden_layer_sizes=(50,), activation="tanh", random_state=0).fit(X, y)

    probes = np.array([[-3.0], [-2.0], [-0.5], [0.0], [0.5], [2.0], [3.0]])
    mean, std = reg.predict(probes, return_std=True)
    epistemic, aleatoric = reg.predict_uncertainty(probes)
    print("DNN2GPRegressor, 1-50-1 tanh, trained on 100 points, no data in (-1, 1)")
    print(f"chosen by the evidence ({len(reg.evidence_trace_)} trainings): "
          f"prior_precision {reg.prior_precision_:.3g}, noise_std {reg.noise_std_[0]:.3g} "
          "(the data's noise std is 0.1)")
    print(f"{'x':>6} {'in gap':>7} {'mean':>9} {'sin(x)':>9} {'std':>8} {'epistemic sd':>13}")
    for x, m, s, e in zip(probes[:, 0], mean, std, epistemic):
        print(f"{x:6.2f} {str(-1 < x < 1):>7} {m:9.4f} {np.sin(x):9.4f} {s:8.4f} "
              f"{np.sqrt(e):13.4f}")
    gap = np.abs(probes[:, 0]) < 1
    print(f"mean predictive std on the data: {std[~gap].mean():.4f}; "
          f"inside the gap: {std[gap].mean():.4f}")
    print(f"log marginal likelihood (training set): {reg.log_marginal_likelihood_:.3f}")
    for factor in (0.1, 10.0):
        delta = factor * reg.prior_precision_
        print(f"  re-evaluated at prior_precision={delta:.3g} without retraining: "
              f"{reg.log_marginal_likelihood(prior_precision=delta):.3f}")

    if args.plot:
        _plot(reg, X, y, args.plot)
    print(f"time taken: {time.perf_counter() - start:.1f} s")


def _plot(reg, X, y, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'sklearn-dnn2gp[plot]').")
        return
    grid = np.linspace(-5, 5, 400)[:, None]
    m, s = reg.predict(grid, return_std=True)
    fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
    ax.axvspan(-1, 1, color="0.92", label="no training inputs")
    ax.fill_between(grid[:, 0], m - 2 * s, m + 2 * s, alpha=0.3, label="mean +- 2 predictive std")
    ax.plot(grid[:, 0], m, label="network mean")
    ax.plot(grid[:, 0], np.sin(grid[:, 0]), "k--", lw=1, label="sin(x)")
    ax.scatter(X[:, 0], y, s=8, c="k", label="training data")
    ax.set(xlabel="x", ylabel="y", title="DNN2GP predictive, 1-50-1 tanh network")
    # Outside the axes: inside, every corner holds data or the widening band.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot saved to {Path(path).resolve()}")


if __name__ == "__main__":
    main()
