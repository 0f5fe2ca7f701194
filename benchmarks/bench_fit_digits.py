"""What the lazy spectrum saves on a full-posterior fit (digits, 64-50-10, P = 3,760).

A fit used to eigendecompose the P x P GGN every time; it now factorises
``G + delta I`` by Cholesky for the fitted evidence and the predictive, and
eigendecomposes only when the evidence is asked at other hyperparameters. This
script times, in one run and on one thread, the fit as it is now and the
eigendecomposition the old fit added, and prints their ratio; it also checks that
the fitted evidence equals the spectral formula's value at the same point.

Run: ``python benchmarks/bench_fit_digits.py`` (under a minute), with the common
flags (``benchmarks/README.rst``): ``--quick`` (a 64-20-10 network, P = 1,510,
and 5 later evidences), ``--threads N`` (default 1), ``--json PATH``.
"""

import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier

from _harness import parser, setup, threads_text, write_json


def main(argv=None):
    args = setup(parser(__doc__, quick_help="a 64-20-10 network and 5 later evidences")
                 .parse_args(argv), argv)
    hidden, n_later = (20, 5) if args.quick else (50, 20)
    X, y = load_digits(return_X_y=True)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    X_train = StandardScaler().fit_transform(X_train)
    clf = DNN2GPClassifier(hidden_layer_sizes=(hidden,), n_threads=args.threads,
                           random_state=0)
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    fit = time.perf_counter() - start
    P = clf.posterior_.n_parameters

    G = clf.posterior_.precision() - clf.prior_precision_ * torch.eye(P, dtype=torch.float64)
    start = time.perf_counter()
    torch.linalg.eigh(G)
    eigh = time.perf_counter() - start

    fitted = clf.log_marginal_likelihood_
    start = time.perf_counter()
    spectral = clf.log_marginal_likelihood(clf.prior_precision_ * (1 + 1e-12))
    first_reevaluation = time.perf_counter() - start
    start = time.perf_counter()
    for delta in np.logspace(-1, 2, n_later):
        clf.log_marginal_likelihood(delta)
    later = (time.perf_counter() - start) / n_later

    print(f"digits 64-{hidden}-10, P = {P:,}, N = {len(X_train):,}, {threads_text(args.threads)}")
    print(f"fit now (training + Cholesky posterior + evidence): {fit:.2f} s "
          f"({clf.n_iter_} L-BFGS iterations)")
    print(f"eigendecomposition the old fit added:                 {eigh:.2f} s")
    print(f"speed-up of the fit: {(fit + eigh) / fit:.2f}x")
    print(f"first evidence at another delta (computes the spectrum): {first_reevaluation:.2f} s; "
          f"each later one: {1e3 * later:.2f} ms")
    print(f"fitted evidence {fitted:.6f} (Cholesky) vs {spectral:.6f} (spectral), "
          f"relative difference {abs(fitted - spectral) / abs(fitted):.1e}")
    write_json(args, [{
        "network": f"64-{hidden}-10", "P": P, "N": len(X_train), "fit s": fit,
        "L-BFGS iterations": clf.n_iter_, "eigendecomposition s": eigh,
        "speed-up": (fit + eigh) / fit, "first evidence at another delta s": first_reevaluation,
        "later evidence ms": 1e3 * later, "fitted evidence": fitted,
        "spectral evidence": spectral,
        "relative difference": abs(fitted - spectral) / abs(fitted)}])


if __name__ == "__main__":
    main()
