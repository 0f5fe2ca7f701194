"""The K-FAC predictive from the layer factors against the Jacobian path, in one run.

A ``DNN2GPRegressor((256, 256), posterior='kron')`` (tanh, P = 71,425 with 20
features) is fitted on ``--n-train`` rows of ``make_friedman1`` (20 features,
X and y standardised; ``max_iter`` L-BFGS iterations, enough for a network
whose posterior is then built: the predictive's cost does not depend on how
well it is trained). Then ``predict(X_test, return_std=True)`` on ``--n-test``
rows is timed twice, best of ``--repeats``:

* ``layers``: the estimator as it is; for an MLP the K-FAC posterior reads each
  ``Linear`` layer's back-propagated gradients and inputs and never forms the
  per-example Jacobians (``KronPosterior.functional_variance_from_layers``);
* ``jacobian``: the same fitted estimator with its posterior swapped for a
  ``KronPosterior`` without that method, so that ``predict`` takes the path it
  took before: ``(n, K, P)`` Jacobians in chunks, rotated block by block
  (``KronPosterior.functional_variance``).

With ``--classes C`` (> 0) the same is done for a ``DNN2GPClassifier`` with C
classes (K = C outputs) on ``--n-test-classifier`` rows of ``make_classification``,
timing ``predict_proba``.

Printed: both times, the ratio layers / jacobian (the speed-up is its
inverse) and the largest relative difference between the two paths' standard
deviations (or probabilities).

Run: ``python benchmarks/bench_kron_predict.py [--n-test 5000]`` (about 2 minutes
on one thread, most of it the Jacobian path), with the common flags
(``benchmarks/README.rst``): ``--quick`` (a (64, 64) network, seconds),
``--threads N`` (default 1), ``--json PATH``.
"""

import time

import numpy as np
from sklearn.datasets import make_classification, make_friedman1
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor
from sklearn_dnn2gp.posteriors import KronPosterior

from _harness import parser, setup, write_json


class JacobianPathKron(KronPosterior):
    """A KronPosterior that offers no layer-factor variance: the estimators then
    compute ``J Sigma J^T`` from the per-example Jacobians."""

    functional_variance_from_layers = None


def jacobian_path(est):
    """A shallow copy of ``est`` whose posterior takes the Jacobian path."""
    old = JacobianPathKron.__new__(JacobianPathKron)
    old.__dict__.update(est.posterior_.__dict__)
    clone = type(est).__new__(type(est))
    clone.__dict__.update(est.__dict__)
    clone.posterior_ = old
    return clone


def best_time(function, repeats):
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def compare(name, est, predict, X_test, repeats):
    t_new, new = best_time(lambda: predict(est, X_test), repeats)
    t_old, old = best_time(lambda: predict(jacobian_path(est), X_test), repeats)
    diff = float(np.max(np.abs(new - old)) / np.max(np.abs(old)))
    print(f"{name:<44}{t_new:9.2f} s{t_old:10.2f} s{t_new / t_old:10.4f}"
          f"{t_old / t_new:10.1f}x{diff:14.1e}")
    return {"predict call": name, "layers": t_new, "jacobian": t_old, "new/old": t_new / t_old,
            "speed-up": t_old / t_new, "max rel diff": diff}


def main(argv=None):
    options = parser(__doc__, quick_help="(64, 64), 1,000 test rows")
    options.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    options.add_argument("--n-train", type=int, default=1000)
    options.add_argument("--n-test", type=int, default=5000)
    options.add_argument("--classes", type=int, default=10)
    options.add_argument("--n-test-classifier", type=int, default=500)
    options.add_argument("--max-iter", type=int, default=20)
    options.add_argument("--repeats", type=int, default=1)
    args = setup(options.parse_args(argv), argv)
    if args.quick:
        args.hidden, args.n_test, args.n_test_classifier = [64, 64], 1000, 200
    hidden = tuple(args.hidden)

    X, y = make_friedman1(args.n_train + args.n_test, n_features=20, noise=1.0,
                          random_state=0)
    X = StandardScaler().fit(X[:args.n_train]).transform(X)
    y = (y - y[:args.n_train].mean()) / y[:args.n_train].std()
    reg = DNN2GPRegressor(hidden, posterior="kron", max_iter=args.max_iter,
                          n_threads=args.threads, random_state=0)
    reg.fit(X[:args.n_train], y[:args.n_train])
    P = reg.posterior_.n_parameters
    print(f"{args.threads} torch thread(s); tanh network 20-{'-'.join(map(str, hidden))}-K, "
          f"P = {P:,} for K = 1; kron posterior\n")
    print(f"{'predict call':<44}{'layers':>11}{'jacobian':>12}{'new/old':>10}"
          f"{'speed-up':>11}{'max rel diff':>14}")
    results = [compare(f"regressor predict(return_std), {args.n_test:,} rows", reg,
                       lambda est, X_: est.predict(X_, return_std=True)[1], X[args.n_train:],
                       args.repeats)]

    if args.classes > 0:
        n = args.n_train + args.n_test_classifier
        Xc, yc = make_classification(n, n_features=20, n_informative=10,
                                     n_classes=args.classes, random_state=0)
        Xc = StandardScaler().fit(Xc[:args.n_train]).transform(Xc)
        clf = DNN2GPClassifier(hidden, posterior="kron", max_iter=args.max_iter,
                               n_threads=args.threads, random_state=0)
        clf.fit(Xc[:args.n_train], yc[:args.n_train])
        results.append(compare(f"classifier predict_proba, K = {args.classes}, "
                               f"{args.n_test_classifier:,} rows", clf,
                               lambda est, X_: est.predict_proba(X_), Xc[args.n_train:],
                               args.repeats))
    write_json(args, results)


if __name__ == "__main__":
    main()
