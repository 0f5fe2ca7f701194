"""The estimators' defaults against tuned hyperparameters and scikit-learn references.

Issue 11's "must show": with ``prior_precision='auto'``, ``noise_std='auto'``
and ``normalize_y=True`` as defaults, ``fit`` chooses delta (and sigma) by the
retrained evidence. This script measures, per data set, the test error, the
test NLL and the wall time of ``fit`` of

* ``fixed``: DNN2GP with the previous defaults (``prior_precision=1``,
  ``noise_std=1``, ``normalize_y=False``; classifier ``prior_precision=1``);
* ``auto``: DNN2GP with the new defaults (only ``random_state=0`` set);
* ``evidence-grid``: ``EvidenceSearchCV(reuse_network=True)`` over delta in
  ``logspace(-3, 3, 13)`` (regression: ``normalize_y=True`` and sigma in
  ``[0.1, 0.2, 0.35, 0.5, 0.7, 1.0]`` times the training y std);
* ``cv5``: ``GridSearchCV(cv=5)`` over delta in ``logspace(-3, 3, 7)``
  (regression: ``normalize_y=True``, sigma fixed at 0.5 y std, scored by the
  MSE; classification: by the log loss), refitted on the training set;
* references: MLP (50 hidden units), BayesianRidge / LogisticRegression and
  GaussianProcessRegressor (ARD RBF + white noise, ``normalize_y=True``) /
  GaussianProcessClassifier (RBF); a GP fit that runs past ``--gp-limit``
  seconds is stopped and reported as skipped.

Data: regression on ``load_diabetes`` (raw y), ``make_friedman1(500,
noise=1)``, red wine split 0 (the DNN2GP paper's split files, raw quality
scores) and data set 0 of the paper's Fig. 5 toy problem (its own 100 training
and 2000 test points, input x only); classification on ``load_breast_cancer``,
``load_digits``, ``load_iris`` and ``load_wine``. Except for wine and the toy
set, one 70/30 split (``random_state=0``, stratified for classification). X is
standardised by a ``StandardScaler`` fitted on the training set (in a
pipeline); y is left in its own units.

Errors: RMSE (regression) or error rate (classification), with the standard
error of the test error (delta method from the per-point squared errors for
the RMSE, ``sqrt(p(1-p)/n)`` for the error rate). NLL: the mean Gaussian
predictive NLL from ``predict(return_std=True)`` (blank for the MLP regressor)
or the log loss. For ``auto`` it also prints the chosen hyperparameters, the
number of evidence trials and the fit time in units of one fixed-hyperparameter
fit at the chosen point ("full trainings"); for ``evidence-grid`` the chosen
grid point and whether ``auto``'s delta (regression: ``delta * (sigma /
y_std)^2``, the ratio in normalised units that fixes the MAP) lies within one
grid step (a factor 10^0.5) of the grid's. At the end: one markdown table per
task and a summary (``auto`` within one standard error of ``cv5``; wall-time
ratio ``cv5 / auto``; the goal is at least 4x).

With ``--cost`` (issue 21) it measures instead what the defaults cost: on
breast_cancer, digits, diabetes (raw y) and ``make_friedman1(1000, noise=1,
random_state=0)``, over five 70/30 splits (``random_state`` 0-4, stratified for
classification), in ``make_pipeline(StandardScaler(), est)``, the default fit
with each ``evidence_search`` (``'retrain'``, ``'staged'``), one fit at the
hyperparameters ``'retrain'`` chose, and scikit-learn's MLP (defaults,
``max_iter=2000``, its BLAS on ``--threads`` threads too): mean fit time, the
ratios the issue sets (default / one fit <= 2.5, default / MLP <= 3), and the
test accuracy or R^2 with its standard error over the splits.

All in one process with one torch thread (``--threads``). Run::

    python benchmarks/bench_defaults.py [--quick] [--datasets diabetes iris ...]

with the common flags (``benchmarks/README.rst``): ``--quick`` (diabetes and
iris, short grids: a smoke test of a minute or two), ``--threads N`` (default
1), ``--json PATH``.
"""

import math
import multiprocessing
import time
import warnings

import numpy as np
import torch
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_wine,
    make_friedman1,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import BayesianRidge, LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor, EvidenceSearchCV
from sklearn_dnn2gp.datasets import default_data_dir

from _harness import parser, setup, write_json

REGRESSION = ["diabetes", "friedman1", "redwine", "toy"]
CLASSIFICATION = ["breast_cancer", "digits", "iris", "wine"]
QUICK = ["diabetes", "iris"]
NOISE_FACTORS = [0.1, 0.2, 0.35, 0.5, 0.7, 1.0]
ONE_STEP = 0.5  # a step of the 13-point log grid, in log10


# ------------------------------------------------------------------------- data
def red_wine_split0():
    """Red wine, split 0 of the paper's split files, raw X and y (the library's
    loader standardises both; here the pipeline standardises X)."""
    data_dir = default_data_dir()
    data = np.loadtxt(data_dir / "winequality-red.csv", delimiter=",", skiprows=1)
    data = data.astype(np.float32).astype(np.float64)
    X, y = data[:, :11], data[:, 11]
    train = np.loadtxt(data_dir / "wine_splits" / "index_train_0.txt", dtype=int)
    test = np.loadtxt(data_dir / "wine_splits" / "index_test_0.txt", dtype=int)
    return X[train], X[test], y[train], y[test]


def toy_fig5():
    """Data set 0 of Fig. 5 (examples/plot_marglik_synthetic.py): its own split."""
    data = np.load(default_data_dir() / "toy_marglik_delta_datasets.npz")
    return (data["x_train"][0][:, None], data["x_test"][0][:, None],
            data["y_train"][0], data["y_test"][0])


def load(name):
    """X_train, X_test, y_train, y_test of one data set."""
    if name == "redwine":
        return red_wine_split0()
    if name == "toy":
        return toy_fig5()
    if name == "friedman1":
        X, y = make_friedman1(n_samples=500, noise=1.0, random_state=0)
    else:
        loader = {"diabetes": load_diabetes, "breast_cancer": load_breast_cancer,
                  "digits": load_digits, "iris": load_iris, "wine": load_wine}[name]
        X, y = loader(return_X_y=True)
    stratify = y if name in CLASSIFICATION else None
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=stratify)


# ---------------------------------------------------------------------- methods
def regression_methods(y_std, d, quick):
    ev_grid = np.logspace(-3, 3, 7 if quick else 13)
    cv_grid = np.logspace(-3, 3, 3 if quick else 7)
    noise_grid = [f * y_std for f in (NOISE_FACTORS[::2] if quick else NOISE_FACTORS)]

    def pipe(est):
        return make_pipeline(StandardScaler(), est)

    return {
        "fixed": lambda: pipe(DNN2GPRegressor(prior_precision=1.0, noise_std=1.0,
                                              normalize_y=False, random_state=0)),
        "auto": lambda: pipe(DNN2GPRegressor(random_state=0)),
        "evidence-grid": lambda: pipe(EvidenceSearchCV(
            DNN2GPRegressor(normalize_y=True, random_state=0),
            {"prior_precision": list(ev_grid), "noise_std": noise_grid},
            reuse_network=True)),
        "cv5": lambda: GridSearchCV(
            pipe(DNN2GPRegressor(normalize_y=True, noise_std=0.5 * y_std, random_state=0)),
            {"dnn2gpregressor__prior_precision": list(cv_grid)}, cv=5,
            scoring="neg_mean_squared_error"),
        "MLP": lambda: pipe(TransformedTargetRegressor(
            MLPRegressor(hidden_layer_sizes=(50,), max_iter=2000, random_state=0),
            transformer=StandardScaler())),
        "BayesianRidge": lambda: pipe(BayesianRidge()),
        "GPR": lambda: pipe(GaussianProcessRegressor(
            kernel=ConstantKernel() * RBF(np.ones(d)) + WhiteKernel(), normalize_y=True)),
    }


def classification_methods(quick):
    ev_grid = np.logspace(-3, 3, 7 if quick else 13)
    cv_grid = np.logspace(-3, 3, 3 if quick else 7)

    def pipe(est):
        return make_pipeline(StandardScaler(), est)

    return {
        "fixed": lambda: pipe(DNN2GPClassifier(prior_precision=1.0, random_state=0)),
        "auto": lambda: pipe(DNN2GPClassifier(random_state=0)),
        "evidence-grid": lambda: pipe(EvidenceSearchCV(
            DNN2GPClassifier(random_state=0), {"prior_precision": list(ev_grid)},
            reuse_network=True)),
        "cv5": lambda: GridSearchCV(
            pipe(DNN2GPClassifier(random_state=0)),
            {"dnn2gpclassifier__prior_precision": list(cv_grid)}, cv=5,
            scoring="neg_log_loss"),
        "MLP": lambda: pipe(MLPClassifier(hidden_layer_sizes=(50,), max_iter=2000,
                                          random_state=0)),
        "LogisticRegression": lambda: pipe(LogisticRegression(max_iter=5000)),
        "GPC": lambda: pipe(GaussianProcessClassifier(kernel=ConstantKernel() * RBF(1.0),
                                                      random_state=0)),
    }


# -------------------------------------------------------------------- measuring
def final(model):
    """The fitted last step (through GridSearchCV and the pipeline)."""
    if isinstance(model, GridSearchCV):
        model = model.best_estimator_
    return model[-1]


def evaluate(model, X_test, y_test, task, probabilistic):
    """Test error, its standard error and the test NLL (NaN where not defined)."""
    if isinstance(model, GridSearchCV):
        model = model.best_estimator_  # its predict passes return_std on
    if task == "regression":
        if probabilistic:
            mean, std = model.predict(X_test, return_std=True)
            nll = np.mean(0.5 * np.log(2 * np.pi * std**2) + (y_test - mean) ** 2 / (2 * std**2))
        else:
            mean, nll = model.predict(X_test), float("nan")
        sq = (y_test - mean) ** 2
        rmse = math.sqrt(sq.mean())
        se = sq.std(ddof=1) / math.sqrt(len(sq)) / (2 * rmse)
        return rmse, se, float(nll)
    proba = model.predict_proba(X_test)
    classes = final(model).classes_
    p = np.mean(classes[proba.argmax(1)] != y_test)
    return p, math.sqrt(p * (1 - p) / len(y_test)), log_loss(y_test, proba, labels=classes)


def fit_and_score(make, data, task, probabilistic):
    X_train, X_test, y_train, y_test = data
    model = make()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - start
    error, se, nll = evaluate(model, X_test, y_test, task, probabilistic)
    messages = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:90]}"
                       for w in caught})
    return model, {"error": error, "se": se, "nll": nll, "time": seconds,
                   "warnings": messages}


def _child(make, data, task, threads, conn):
    torch.set_num_threads(threads)
    _, result = fit_and_score(make, data, task, True)
    conn.send(result)
    conn.close()


def fit_limited(make, data, task, limit, threads):
    """Fit in a forked process on ``threads`` torch threads, stopped after ``limit``
    seconds (None if it was)."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(make, data, task, threads, child))
    process.start()
    child.close()
    result = parent.recv() if parent.poll(limit) else None
    if result is None:
        process.kill()
    process.join()
    return result


# --------------------------------------------------------------------- printing
def fmt(value, spec):
    return "" if value is None or not np.isfinite(value) else format(value, spec)


def print_row(dataset, method, r):
    if r is None:
        print(f"  {dataset:<14} {method:<19} skipped", flush=True)
        return
    print(f"  {dataset:<14} {method:<19} error {r['error']:.4f} +- {r['se']:.4f}   "
          f"NLL {fmt(r['nll'], '.4f'):>8}   fit {r['time']:7.1f} s", flush=True)
    for message in r["warnings"]:
        print(f"      warning: {message}", flush=True)


def run_dataset(name, args):
    task = "regression" if name in REGRESSION else "classification"
    data = load(name)
    X_train, _, y_train, _ = data
    y_std = float(np.std(y_train))
    if task == "regression":
        methods = regression_methods(y_std, X_train.shape[1], args.quick)
    else:
        methods = classification_methods(args.quick)
    print(f"\n{name} ({task}): {len(X_train)} train, {len(data[1])} test, "
          f"{X_train.shape[1]} features" + (f", y std {y_std:.4g}" if task == "regression"
                                             else ""), flush=True)
    results, models = {}, {}
    for method, make in methods.items():
        probabilistic = method != "MLP" or task == "classification"
        if method in ("GPR", "GPC"):
            r = fit_limited(make, data, task, args.gp_limit, args.threads)
            if r is None:
                print(f"      {method} stopped after {args.gp_limit:.0f} s: skipped",
                      flush=True)
        else:
            models[method], r = fit_and_score(make, data, task, probabilistic)
        results[method] = r
        print_row(name, method, r)
        if method == "auto":
            report_auto(models["auto"], data, task, y_std, r)
        if method == "evidence-grid":
            report_grid(models, task, y_std)
    return task, results


def normalised_ratio(delta, sigma, y_std):
    """delta * (sigma / y_std)^2: what fixes the MAP with normalised y."""
    return delta * (sigma / y_std) ** 2


def report_auto(model, data, task, y_std, r):
    est = final(model)
    trials = len(getattr(est, "evidence_trace_", []))
    delta = float(est.prior_precision_)
    if task == "regression":
        sigma = float(np.ravel(est.noise_std_)[0])
        chosen = f"prior_precision_ {delta:.4g}, noise_std_ {sigma:.4g} " \
                 f"(ratio delta*(sigma/y_std)^2 {normalised_ratio(delta, sigma, y_std):.4g})"
        one = lambda: make_pipeline(StandardScaler(), DNN2GPRegressor(  # noqa: E731
            prior_precision=delta, noise_std=sigma, normalize_y=True, random_state=0))
    else:
        chosen = f"prior_precision_ {delta:.4g}"
        one = lambda: make_pipeline(StandardScaler(), DNN2GPClassifier(  # noqa: E731
            prior_precision=delta, random_state=0))
    _, single = fit_and_score(one, data, task, True)
    r["full_trainings"] = r["time"] / single["time"]
    r["lml"] = float(est.log_marginal_likelihood_)
    trace = ", ".join(f"{t['prior_precision']:.3g}/{t['n_iter']}"
                      for t in getattr(est, "evidence_trace_", []))
    print(f"      auto trials (prior_precision/L-BFGS iterations): {trace}", flush=True)
    print(f"      auto: {chosen}; {trials} trials; log evidence {r['lml']:.2f}; "
          f"one fit at the chosen point {single['time']:.1f} s -> "
          f"auto costs {r['full_trainings']:.1f} full trainings", flush=True)


def report_grid(models, task, y_std):
    search = final(models["evidence-grid"])
    best = search.best_params_
    lml = float(search.best_estimator_.log_marginal_likelihood_)
    auto = final(models["auto"])
    if task == "regression":
        grid = normalised_ratio(best["prior_precision"], best["noise_std"], y_std)
        mine = normalised_ratio(float(auto.prior_precision_),
                                float(np.ravel(auto.noise_std_)[0]), y_std)
        point = (f"prior_precision {best['prior_precision']:.4g}, noise_std "
                 f"{best['noise_std']:.4g} = {best['noise_std'] / y_std:.2f} y std "
                 f"(ratio {grid:.4g})")
    else:
        grid, mine = best["prior_precision"], float(auto.prior_precision_)
        point = f"prior_precision {grid:.4g}"
    gap = math.log10(mine / grid)
    within = abs(gap) <= ONE_STEP + 1e-9
    print(f"      evidence-grid: {point}; {search.n_networks_} networks; log evidence "
          f"{lml:.2f} (auto {float(auto.log_marginal_likelihood_):.2f}); auto's "
          f"{'ratio' if task == 'regression' else 'delta'} is 10^{gap:+.2f} times the grid's: "
          f"{'within' if within else 'NOT within'} one grid step", flush=True)


def print_tables(all_results):
    """Print one markdown table per task; return their rows as dicts."""
    table = []
    for task, label in (("regression", "RMSE"), ("classification", "error rate")):
        rows = [(d, res) for d, (t, res) in all_results.items() if t == task]
        if not rows:
            continue
        nll = "Gaussian NLL" if task == "regression" else "log loss"
        print(f"\n### {task}\n")
        print(f"| data set | method | test {label} (+- se) | test {nll} | fit time (s) |")
        print("|---|---|---|---|---|")
        for dataset, res in rows:
            for method, r in res.items():
                row = {"task": task, "data set": dataset, "method": method}
                table.append(row)
                if r is None:
                    row["skipped"] = True
                    print(f"| {dataset} | {method} | skipped | | |")
                    continue
                row.update({f"test {label}": r["error"], "se": r["se"], f"test {nll}": r["nll"],
                            "fit time (s)": r["time"], "warnings": r["warnings"]})
                if "full_trainings" in r:
                    row.update({"log evidence": r["lml"], "full trainings": r["full_trainings"]})
                print(f"| {dataset} | {method} | {r['error']:.4f} +- {r['se']:.4f} | "
                      f"{fmt(r['nll'], '.4f')} | {r['time']:.1f} |")
    return table


def print_summary(all_results):
    """Print the comparison of ``auto`` with ``cv5``; return its rows and totals."""
    print("\n### summary: auto against cv5\n")
    print("| data set | auto error | cv5 error | cv5 se | (auto - cv5) / se | auto <= cv5 + 1 se "
          "| cv5 time / auto time | auto full trainings |")
    print("|---|---|---|---|---|---|---|---|")
    holds, z, t_auto, t_cv, table = [], [], 0.0, 0.0, []
    for dataset, (_, res) in all_results.items():
        a, c = res["auto"], res["cv5"]
        diff = (a["error"] - c["error"]) / c["se"] if c["se"] > 0 else (
            0.0 if a["error"] == c["error"] else math.copysign(math.inf, a["error"] - c["error"]))
        ok = a["error"] <= c["error"] + c["se"]
        holds.append(ok)
        z.append(diff)
        t_auto += a["time"]
        t_cv += c["time"]
        table.append({"data set": dataset, "auto error": a["error"], "cv5 error": c["error"],
                      "cv5 se": c["se"], "(auto - cv5) / se": diff, "auto <= cv5 + 1 se": ok,
                      "cv5 time / auto time": c["time"] / a["time"],
                      "auto full trainings": a.get("full_trainings", float("nan"))})
        print(f"| {dataset} | {a['error']:.4f} | {c['error']:.4f} | {c['se']:.4f} | "
              f"{diff:+.2f} | {'yes' if ok else 'no'} | {c['time'] / a['time']:.1f} | "
              f"{a.get('full_trainings', float('nan')):.1f} |")
    finite = [v for v in z if np.isfinite(v)]
    print(f"\nauto within one standard error of cv5 (auto <= cv5 + 1 se): "
          f"{sum(holds)}/{len(holds)} data sets; mean (auto - cv5)/se "
          f"{np.mean(finite):+.2f} over {len(finite)}")
    print(f"wall time: cv5 {t_cv:.0f} s, auto {t_auto:.0f} s in all: cv5 / auto = "
          f"{t_cv / t_auto:.1f}x (goal >= 4x)")
    totals = {"auto within one se of cv5": sum(holds), "data sets": len(holds),
              "mean (auto - cv5) / se": np.mean(finite), "cv5 time (s)": t_cv,
              "auto time (s)": t_auto, "cv5 / auto": t_cv / t_auto}
    return table, totals


COST_DATASETS = ("breast_cancer", "digits", "diabetes", "friedman1")


def cost_data(name):
    if name == "friedman1":
        return make_friedman1(1000, noise=1.0, random_state=0), "regression"
    loader = {"breast_cancer": load_breast_cancer, "digits": load_digits,
              "diabetes": load_diabetes}[name]
    return loader(return_X_y=True), "regression" if name == "diabetes" else "classification"


def timed_fit(model, X, y, threads):
    # numpy's BLAS (scikit-learn's MLP) on as many threads as torch (``--threads``).
    with warnings.catch_warnings(), threadpool_limits(threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X, y)
        return time.perf_counter() - start


def run_cost(args):
    """The cost of the defaults against one fit and the MLP (``--cost``)."""
    names = args.datasets or (("breast_cancer", "diabetes") if args.quick else COST_DATASETS)
    splits = 2 if args.quick else 5
    rows = []
    print("| data set | method | fit time (s) | / one fit | / MLP | score +- se | trainings |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        (X, y), task = cost_data(name)
        Estimator, MLP = ((DNN2GPRegressor, MLPRegressor) if task == "regression"
                          else (DNN2GPClassifier, MLPClassifier))
        times, scores, trainings = {}, {}, {}
        for split in range(splits):
            X_tr, X_te, y_tr, y_te = train_test_split(
                X, y, test_size=0.3, random_state=split,
                stratify=y if task == "classification" else None)
            for method in ("retrain", "staged"):
                model = make_pipeline(StandardScaler(), Estimator(
                    evidence_search=method, random_state=0))
                times.setdefault(method, []).append(timed_fit(model, X_tr, y_tr, args.threads))
                scores.setdefault(method, []).append(model.score(X_te, y_te))
                trainings.setdefault(method, []).append(len(model[-1].evidence_trace_))
                if method == "retrain":
                    chosen = {"prior_precision": model[-1].prior_precision_}
                    if task == "regression":
                        chosen["noise_std"] = float(model[-1].noise_std_[0])
            one = make_pipeline(StandardScaler(), Estimator(random_state=0, **chosen))
            times.setdefault("one fit", []).append(timed_fit(one, X_tr, y_tr, args.threads))
            scores.setdefault("one fit", []).append(one.score(X_te, y_te))
            mlp = make_pipeline(StandardScaler(), MLP(max_iter=2000, random_state=0))
            times.setdefault("MLP", []).append(timed_fit(mlp, X_tr, y_tr, args.threads))
            scores.setdefault("MLP", []).append(mlp.score(X_te, y_te))
        one, mlp = np.mean(times["one fit"]), np.mean(times["MLP"])
        for method in ("retrain", "staged", "one fit", "MLP"):
            t, sc = np.mean(times[method]), np.asarray(scores[method])
            se = sc.std(ddof=1) / math.sqrt(len(sc)) if len(sc) > 1 else float("nan")
            n = np.mean(trainings[method]) if method in trainings else float("nan")
            row = {"data set": name, "method": method, "fit time (s)": t,
                   "/ one fit": t / one, "/ MLP": t / mlp, "score": sc.mean(), "se": se,
                   "trainings": n}
            rows.append(row)
            print(f"| {name} | {method} | {t:.2f} | {t / one:.2f} | {t / mlp:.2f} | "
                  f"{sc.mean():.4f} +- {se:.4f} | {fmt(n, '.1f')} |", flush=True)
    return rows


def main(argv=None):
    options = parser(__doc__, quick_help="diabetes and iris only, with short grids (smoke test)")
    options.add_argument("--datasets", nargs="+", choices=REGRESSION + CLASSIFICATION,
                         help="data sets to run (default: all, or those of --quick)")
    options.add_argument("--cost", action="store_true",
                         help="the cost of the defaults against one fit and the MLP (issue 21)")
    options.add_argument("--gp-limit", type=float, default=120.0,
                         help="seconds after which a GPR/GPC fit is stopped and skipped")
    # A benchmark script may fix its own process's threads; the library never does.
    args = setup(options.parse_args(argv), argv)
    if args.cost:
        start = time.perf_counter()
        rows = run_cost(args)
        print(f"\ntotal time: {time.perf_counter() - start:.0f} s")
        write_json(args, rows)
        return
    datasets = args.datasets or (QUICK if args.quick else REGRESSION + CLASSIFICATION)
    start = time.perf_counter()
    all_results = {}
    for name in datasets:
        all_results[name] = run_dataset(name, args)
    results = print_tables(all_results)
    summary, totals = print_summary(all_results)
    print(f"\ntotal time: {time.perf_counter() - start:.0f} s")
    write_json(args, results, summary=summary, totals=totals)


if __name__ == "__main__":
    main()
