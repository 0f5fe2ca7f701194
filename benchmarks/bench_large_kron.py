"""A K-FAC fit at scale: 50,000 rows, 20 features, a (256, 256) network, two cores.

Data: scikit-learn's ``make_friedman1`` with 20 features (5 informative) and noise
std 1, 50,000 training and 10,000 test rows, X and y standardised on the
training rows (so the true noise std is ``1 / std(y)``, which is the
``noise_std`` used). The ``DNN2GPRegressor((256, 256), posterior='kron')`` (P =
71,425) is fitted with the default solver: ``'auto'`` is minibatch Adam (batch
256) beyond 4,096 rows; ``max_iter`` counts Adam's epochs and is set to
``--max-iter`` (default 30) instead of the estimator's 5,000, which would take
hours; Adam still stops earlier when the objective stalls.

Reported: the wall time of ``fit`` (training, then the K-FAC posterior and
evidence), the time of the posterior + evidence step alone (timed again
afterwards in the two parts ``laplace(..., structure='kron')`` runs: the K-FAC
factors with their eigendecompositions, and the likelihood's statistics of the
data with the evidence), the process's peak resident
memory (``VmHWM`` from ``/proc/self/status``, ``ru_maxrss`` elsewhere) after
the data were made, after the fit and at the end, and on the test rows the RMSE
and the mean Gaussian negative log predictive density (NLL) of

* ``kron``: the fitted estimator's ``predict(return_std=True)``;
* ``diag``: the diagonal Laplace-GGN posterior of the same trained network
  (``laplace(..., structure='diag')``), its predictive ``J Sigma J^T + sigma^2``;
* the MAP plug-in: the network's output with std ``noise_std`` only.

All three share the network's output as their mean, so their RMSEs are equal;
the NLL shows what each variance is worth. Both are in standardised units
(add ``log std(y)`` to an NLL for the original units).

Targets: under 10 minutes and under 4 GB peak resident memory.

Run: ``python benchmarks/bench_large_kron.py [--max-iter 30]``, with the common
flags (``benchmarks/README.rst``): ``--quick`` (5,000 rows, a (64, 64) network
and 3 epochs: seconds), ``--threads N`` (default 2, the two cores of the
target), ``--json PATH``.
"""

import math
import resource
import sys
import time

import numpy as np
import torch
from sklearn.datasets import make_friedman1

from sklearn_dnn2gp import DNN2GPRegressor
from sklearn_dnn2gp._curvature import output_and_jacobian
from sklearn_dnn2gp._laplace import laplace
from sklearn_dnn2gp.posteriors import KronPosterior

from _harness import parser, setup, write_json

GB = 1e9


def peak_rss():
    """The process's peak resident set size in bytes."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def gaussian_nll(y, mean, std):
    return float(np.mean(0.5 * math.log(2 * math.pi) + np.log(std)
                         + 0.5 * ((y - mean) / std) ** 2))


def posterior_std(module, posterior, X, noise_std, chunk=200):
    """``sqrt(J Sigma J^T + sigma^2)`` on ``X``, in chunks of ``chunk`` rows."""
    X_t = torch.as_tensor(X, dtype=torch.float64)
    var = []
    for start in range(0, len(X_t), chunk):
        _, J = output_and_jacobian(module, X_t[start:start + chunk])
        var.append(posterior.functional_variance(J)[:, 0, 0])
    return np.sqrt(torch.cat(var).numpy() + noise_std**2)


def main(argv=None):
    options = parser(__doc__, default_threads=2,
                     quick_help="5,000 rows, (64, 64), 3 epochs: seconds")
    options.add_argument("--max-iter", type=int, default=30, help="Adam epochs (default 30)")
    options.add_argument("--n", type=int, default=50_000, help="training rows")
    args = setup(options.parse_args(argv), argv)
    hidden = (256, 256)
    if args.quick:
        args.n, args.max_iter, hidden = 5_000, 3, (64, 64)
    n_test = 10_000 if not args.quick else 2_000

    X, y = make_friedman1(n_samples=args.n + n_test, n_features=20, noise=1.0,
                          random_state=0)
    X_train, X_test, y_train, y_test = X[:args.n], X[args.n:], y[:args.n], y[args.n:]
    x_mean, x_std = X_train.mean(0), X_train.std(0)
    y_mean, y_std = y_train.mean(), y_train.std()
    X_train, X_test = (X_train - x_mean) / x_std, (X_test - x_mean) / x_std
    y_train, y_test = (y_train - y_mean) / y_std, (y_test - y_mean) / y_std
    noise_std = 1.0 / y_std
    rss_data = peak_rss()

    est = DNN2GPRegressor(hidden, posterior="kron", noise_std=noise_std, prior_precision=1.0,
                          max_iter=args.max_iter, n_threads=args.threads, random_state=0)
    start = time.perf_counter()
    est.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start
    rss_fit = peak_rss()
    P = est.posterior_.n_parameters

    X_t = torch.as_tensor(X_train, dtype=torch.float64)
    y_t = torch.as_tensor(y_train, dtype=torch.float64)[:, None]
    # What laplace(..., structure='kron') does, in its two parts.
    start = time.perf_counter()
    kron = KronPosterior.from_data(est.module_, est.likelihood_, X_t, None,
                                   est.prior_precision_)
    factor_seconds = time.perf_counter() - start
    start = time.perf_counter()
    statistics = est.likelihood_.statistics(est.module_, X_t, y_t, None, kron)
    float(est.likelihood_.evidence(kron, statistics)())
    statistics_seconds = time.perf_counter() - start
    start = time.perf_counter()
    diag, diag_evidence = laplace(est.module_, est.likelihood_, X_t, y_t, None,
                                  structure="diag", prior_precision=est.prior_precision_)
    diag_lml = float(diag_evidence())
    diag_seconds = time.perf_counter() - start

    start = time.perf_counter()
    mean, std_kron = est.predict(X_test, return_std=True)
    predict_seconds = time.perf_counter() - start
    std_diag = posterior_std(est.module_, diag, X_test, noise_std)
    std_map = np.full_like(mean, noise_std)
    rss_end = peak_rss()

    rmse = float(np.sqrt(np.mean((y_test - mean) ** 2)))
    print(f"make_friedman1: {args.n:,} training and {n_test:,} test rows, 20 features; "
          f"network 20-{'-'.join(map(str, hidden))}-1 tanh, P = {P:,}; "
          f"{args.threads} torch threads")
    print(f"solver 'auto' -> Adam, batch 256, {est.n_iter_} epochs (max_iter={args.max_iter}); "
          f"noise_std = {noise_std:.4f} (the true one, standardised), prior_precision = 1\n")
    print(f"fit wall time (training + kron posterior + evidence): {fit_seconds:8.1f} s  "
          f"(target < 600 s: {'met' if fit_seconds < 600 else 'MISSED'})")
    print(f"  kron posterior + evidence, timed again in its parts:  "
          f"{factor_seconds + statistics_seconds:8.2f} s")
    print(f"    K-FAC factors and their eigendecompositions:        {factor_seconds:8.2f} s")
    print(f"    the likelihood's evidence statistics + evidence:    {statistics_seconds:8.2f} s")
    print(f"diag posterior + evidence on the same network:          {diag_seconds:8.2f} s")
    print(f"predict(return_std=True) on {n_test:,} rows (kron):         {predict_seconds:8.2f} s")
    print(f"peak RSS: after the data {rss_data / GB:.2f} GB, after fit {rss_fit / GB:.2f} GB, "
          f"at the end {rss_end / GB:.2f} GB (target < 4 GB: "
          f"{'met' if rss_end < 4 * GB else 'MISSED'})\n")
    print(f"{'predictive':<22}{'test RMSE':>10}{'test NLL':>10}{'mean std':>10}"
          f"{'log evidence':>15}")
    rows = [("kron (fitted)", std_kron, est.log_marginal_likelihood_),
            ("diag, same network", std_diag, diag_lml),
            ("MAP plug-in", std_map, float("nan"))]
    results = []
    for name, std, lml in rows:
        results.append({"predictive": name, "test RMSE": rmse,
                        "test NLL": gaussian_nll(y_test, mean, std),
                        "mean std": float(np.mean(std)), "log evidence": lml})
        print(f"{name:<22}{rmse:10.4f}{results[-1]['test NLL']:10.4f}"
              f"{results[-1]['mean std']:10.4f}{lml:15.1f}")
    print(f"\n(standardised units; RMSE x {y_std:.3f} and NLL + {math.log(y_std):.3f} for the "
          f"original ones; the noise floor is RMSE {noise_std:.4f})")
    write_json(args, results, n_train=args.n, n_test=n_test, P=P, epochs=est.n_iter_,
               noise_std=noise_std, y_std=y_std, fit_s=fit_seconds, factors_s=factor_seconds,
               statistics_s=statistics_seconds, diag_s=diag_seconds,
               predict_s=predict_seconds, peak_rss_gb={"data": rss_data / GB,
                                                       "fit": rss_fit / GB, "end": rss_end / GB})


if __name__ == "__main__":
    main()
