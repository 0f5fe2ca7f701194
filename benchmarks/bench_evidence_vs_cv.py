"""Evidence search against 5-fold cross-validation: wall time and test error.

On the red-wine splits of Khan et al. (2019), choose the prior precision delta
of an 11-20-20-1 tanh DNN2GPRegressor (sigma = 0.64) over one grid with

* ``GridSearchCV(cv=5)`` scored by the validation MSE (5 fits per candidate,
  plus the refit),
* ``EvidenceSearchCV`` retraining every candidate (1 fit per candidate),
* ``EvidenceSearchCV(reuse_network=True)`` (a few fits in all, the rest
  closed-form evidence evaluations),

all in the same process, one after the other, with one torch thread and
``n_jobs=1``. Prints per split and in total the wall-time ratios
``CV time / evidence time`` and the test MSE (original units, mean +-
standard error over splits) of each selected model, with the paired
difference to cross-validation's choice.

Run ``python benchmarks/bench_evidence_vs_cv.py --help`` for options; the common
flags (``benchmarks/README.rst``): ``--quick`` (one split, 3 values of delta),
``--threads N`` (default 1), ``--json PATH``.
"""

import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from sklearn_dnn2gp import DNN2GPRegressor
from sklearn_dnn2gp.datasets import load_wine_split
from sklearn_dnn2gp.model_selection import EvidenceSearchCV

from _harness import parser, setup, write_json


def timed(search, X, y):
    start = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - start


def mean_se(values):
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return values.mean(), float("nan")
    return values.mean(), values.std(ddof=1) / np.sqrt(len(values))


def main(argv=None):
    options = parser(__doc__, quick_help="one split, 3 values of delta")
    options.add_argument("--data-dir", type=Path, default=None,
                         help="folder of the reference data (default: "
                              "sklearn_dnn2gp.datasets.default_data_dir())")
    options.add_argument("--n-splits", type=int, default=None,
                         help="wine splits to use (1-20; default 5, --quick 1)")
    options.add_argument("--grid", type=float, nargs="+", default=None,
                         help="values of delta (default logspace(-1, 3, 13), --quick 3 values)")
    options.add_argument("--max-iter", type=int, default=5000,
                         help="L-BFGS iterations (the estimator default lets fits converge)")
    # A benchmark script may fix its own process's threads; the library never does.
    args = setup(options.parse_args(argv), argv)
    args.n_splits = args.n_splits or (1 if args.quick else 5)
    args.grid = args.grid or list(np.logspace(-1, 3, 3 if args.quick else 13))
    warnings.simplefilter("ignore", ConvergenceWarning)

    reg = DNN2GPRegressor(hidden_layer_sizes=(20, 20), activation="tanh", noise_std=0.64,
                          max_iter=args.max_iter, random_state=0)
    grid = {"prior_precision": args.grid}
    methods = {
        "5-fold CV": lambda: GridSearchCV(reg, grid, cv=5, scoring="neg_mean_squared_error"),
        "evidence": lambda: EvidenceSearchCV(reg, grid),
        "evidence+reuse": lambda: EvidenceSearchCV(reg, grid, reuse_network=True),
    }
    times = {name: [] for name in methods}
    mse = {name: [] for name in methods}
    print(f"{len(args.grid)} values of delta, {args.n_splits} splits, "
          f"max_iter={args.max_iter}, {args.threads} thread{'s' * (args.threads > 1)}, n_jobs=1")
    results = []
    print(f"{'split':>5} " + " ".join(f"{name + ' (s, delta, MSE)':>34}" for name in methods)
          + f" {'ratio':>7} {'ratio reuse':>11}")
    for split in range(args.n_splits):
        X_train, y_train, X_test, y_test, y_std = load_wine_split(split, args.data_dir)
        row, record = [], {"split": split}
        for name, make in methods.items():
            search = make()
            seconds = timed(search, X_train, y_train)
            error = y_std**2 * np.mean((search.predict(X_test) - y_test) ** 2)
            times[name].append(seconds)
            mse[name].append(error)
            delta = search.best_params_["prior_precision"]
            networks = getattr(search, "n_networks_", None)
            extra = f"[{networks} nets]" if networks is not None else ""
            row.append(f"{seconds:8.1f} {delta:8.3g} {error:7.4f} {extra:>8}")
            record.update({f"{name} s": seconds, f"{name} delta": delta, f"{name} MSE": error,
                           f"{name} nets": networks})
        ratio = times["5-fold CV"][-1] / times["evidence"][-1]
        ratio_reuse = times["5-fold CV"][-1] / times["evidence+reuse"][-1]
        results.append({**record, "ratio": ratio, "ratio reuse": ratio_reuse})
        print(f"{split:>5} " + " ".join(f"{r:>34}" for r in row)
              + f" {ratio:7.1f} {ratio_reuse:11.1f}", flush=True)

    total = {name: sum(t) for name, t in times.items()}
    summary = {name: {"total s": total[name]} for name in methods}
    print("\nwall-time ratio CV / evidence (total over splits):")
    for name in ("evidence", "evidence+reuse"):
        per_split = np.array(times["5-fold CV"]) / np.array(times[name])
        m, s = mean_se(per_split)
        summary[name].update({"ratio": total["5-fold CV"] / total[name],
                              "ratio per split": m, "ratio per split se": s})
        print(f"  {name:<15} {total['5-fold CV'] / total[name]:6.1f}x  "
              f"(per split {m:.1f} +- {s:.1f}; {total[name]:.0f} s vs "
              f"{total['5-fold CV']:.0f} s)")
    print("test MSE of the selected model (original units), mean +- standard error:")
    for name in methods:
        m, s = mean_se(mse[name])
        summary[name].update({"test MSE": m, "test MSE se": s})
        line = f"  {name:<15} {m:.4f} +- {s:.4f}"
        if name != "5-fold CV":
            diff = np.array(mse[name]) - np.array(mse["5-fold CV"])
            dm, ds = mean_se(diff)
            cv_se = mean_se(mse["5-fold CV"])[1]
            within = m - mean_se(mse["5-fold CV"])[0] <= cv_se
            summary[name].update({"minus CV": dm, "minus CV se": ds,
                                  "within one se of CV": within})
            line += (f"   minus CV: {dm:+.4f} +- {ds:.4f} (paired); "
                     f"{'within' if within else 'NOT within'} one standard error of CV")
        print(line)
    write_json(args, results, summary=summary)


if __name__ == "__main__":
    main()
