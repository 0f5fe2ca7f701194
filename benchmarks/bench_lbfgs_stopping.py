"""The default L-BFGS stopping rule before and after it became scale-free, in one run.

Before: torch's L-BFGS stopped when the largest entry of the *summed*
objective's gradient fell below ``tol`` (1e-5) or when the objective changed
by less than ``1e-6 tol`` in absolute terms; a gradient threshold that does not
grow with the data (or with ``1 / noise_std^2``) ran many ordinary fits to
``max_iter`` = 5,000 and warned. After: the rule in
``sklearn_dnn2gp._training`` (see ``tol`` in the estimators' docstrings).

Each problem is fitted with a default estimator (``random_state=0``) under both
rules, alternately in the same process; for the "before" fits the threshold
of ``_train_lbfgs`` (``lbfgs_gradient_tolerance``) is patched back to ``tol``,
the old rule (its change tolerance, ``1e-6`` of the threshold, follows).
Printed per fit: ``n_iter_``, how many ConvergenceWarnings were raised, the
wall time of ``fit``, the test score (R^2, or accuracy), the final summed
objective and the largest entry of its gradient (autograd, float64) and the fitted log evidence.

Problems: friedman1 (``make_friedman1(500, noise=1, random_state=s)``,
s = 0, 1, 2; test rows from ``random_state=100 + s``; X standardised, y raw, so
``noise_std=1`` is the true noise), red wine split 0
(``sklearn_dnn2gp.datasets.load_wine_split``), diabetes (X and y standardised
on a 75 % training split, ``random_state=0``), digits (classifier, X
standardised on a 70 % stratified split, ``random_state=0``).

Run: ``python benchmarks/bench_lbfgs_stopping.py [--only friedman1-0 ...]`` (a few
minutes), with the common flags (``benchmarks/README.rst``): ``--quick`` (diabetes
only), ``--threads N`` (default 1), ``--json PATH``.
"""

import math
import time
import warnings

import torch
from sklearn.datasets import load_diabetes, load_digits, make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor, _training
from sklearn_dnn2gp._network import flat_parameters
from sklearn_dnn2gp.datasets import load_wine_split

from _harness import parser, setup, write_json

QUICK = ["diabetes"]


def legacy_gradient_tolerance(X, weights, tol):
    """The rule before: ``tolerance_grad=tol`` on the summed objective, whatever N."""
    return tol


def problems():
    out = {}
    for s in range(3):
        X, y = make_friedman1(500, noise=1.0, random_state=s)
        X_test, y_test = make_friedman1(1000, noise=1.0, random_state=100 + s)
        scaler = StandardScaler().fit(X)
        out[f"friedman1-{s}"] = (DNN2GPRegressor, scaler.transform(X), y,
                                 scaler.transform(X_test), y_test)
    X, y, X_test, y_test, _ = load_wine_split(0)
    out["wine-0"] = (DNN2GPRegressor, X, y, X_test, y_test)
    X, y = load_diabetes(return_X_y=True)
    X, X_test, y, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    x_scaler = StandardScaler().fit(X)
    y_mean, y_std = y.mean(), y.std()
    out["diabetes"] = (DNN2GPRegressor, x_scaler.transform(X), (y - y_mean) / y_std,
                       x_scaler.transform(X_test), (y_test - y_mean) / y_std)
    X, y = load_digits(return_X_y=True)
    X, X_test, y, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X)
    out["digits"] = (DNN2GPClassifier, scaler.transform(X), y, scaler.transform(X_test),
                     y_test)
    return out


def final_state(est, X, y):
    """The summed objective at the fitted weights and its gradient's max-norm."""
    module = est.module_
    X_t = torch.as_tensor(X, dtype=torch.float64)
    y_t = est._known_targets(y, X_t.device)
    names = [name for name, _ in module.named_parameters()]
    shapes = [p.shape for _, p in module.named_parameters()]
    w = flat_parameters(module).to(torch.float64).clone().requires_grad_(True)
    with torch.enable_grad():
        params, offset = {}, 0
        for name, shape in zip(names, shapes):
            size = math.prod(shape)
            params[name] = w[offset:offset + size].reshape(shape)
            offset += size
        f = torch.func.functional_call(module, params, (X_t,))
        loss = est.likelihood_.loss(f, y_t, None) + 0.5 * est.prior_precision_ * (w @ w)
        (grad,) = torch.autograd.grad(loss, w)
    return float(loss.detach()), float(grad.abs().max())


def fit_once(cls, X, y, X_test, y_test, rule, threads):
    original = _training.lbfgs_gradient_tolerance
    if rule == "before":
        _training.lbfgs_gradient_tolerance = legacy_gradient_tolerance
    try:
        est = cls(random_state=0, n_threads=threads)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            est.fit(X, y)
            seconds = time.perf_counter() - start
    finally:
        _training.lbfgs_gradient_tolerance = original
    n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    objective, grad = final_state(est, X, y)
    return dict(n_iter=est.n_iter_, warnings=n_warn, seconds=seconds,
                score=est.score(X_test, y_test), objective=objective, grad=grad,
                lml=est.log_marginal_likelihood_, n=len(X))


def main(argv=None):
    options = parser(__doc__, quick_help="diabetes only")
    options.add_argument("--only", nargs="*", default=None)
    args = setup(options.parse_args(argv), argv)
    only = args.only or (QUICK if args.quick else None)
    results = []
    print(f"{'problem':<12}{'N':>6}{'rule':>8}{'n_iter_':>9}{'warn':>6}{'fit s':>8}"
          f"{'test':>8}{'objective':>14}{'max|grad|':>11}{'log evidence':>14}")
    for name, (cls, X, y, X_test, y_test) in problems().items():
        if only and name not in only:
            continue
        for rule in ("before", "after"):
            r = fit_once(cls, X, y, X_test, y_test, rule, args.threads)
            print(f"{name:<12}{r['n']:6d}{rule:>8}{r['n_iter']:9d}{r['warnings']:6d}"
                  f"{r['seconds']:8.1f}{r['score']:8.4f}{r['objective']:14.6f}"
                  f"{r['grad']:11.2e}{r['lml']:14.4f}", flush=True)
            results.append({"problem": name, "N": r["n"], "rule": rule, "n_iter_": r["n_iter"],
                            "warn": r["warnings"], "fit s": r["seconds"], "test": r["score"],
                            "objective": r["objective"], "max|grad|": r["grad"],
                            "log evidence": r["lml"]})
    write_json(args, results)


if __name__ == "__main__":
    main()
