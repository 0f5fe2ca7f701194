"""Which curvature's evidence chooses the prior precision: full GGN, K-FAC, EK-FAC, diagonal.

Issue 21 asks the default fit on digits to cost at most 3 times scikit-learn's
MLP. A full-posterior fit there (P = 3,760) costs more than that by itself, and
K-FAC costs a fraction of it. This script measures whether the cheaper
curvatures' *evidence* would choose the same ``delta`` as the full GGN's, which
is what the default's test scores rest on.

For each ``delta`` on a grid it fits ``DNN2GPClassifier(prior_precision=delta,
random_state=0)`` (the network and the default predictive at that ``delta``) and
evaluates, at the same trained weights, the Laplace evidence with four
log-determinants of ``G + delta I``:

* ``full``: the exact GGN (the estimator's own ``log_marginal_likelihood_``);
* ``kfac``: per layer the Kronecker product of its two factors, as
  ``posterior='kron'`` (its eigenvalues are products of the factors');
* ``ekfac``: the same eigenbases with the GGN's exact diagonal in them
  (George et al., 2018: the K-FAC eigenvalues corrected);
* ``diag``: the diagonal of the GGN.

The data-fit and prior terms are the same for all four, so only the
log-determinants differ. It prints the evidences, the test NLL and accuracy
per ``delta``, then each evidence's maximiser on the grid with the test NLL
there, and the default fit with ``posterior='full'``, ``'kron'`` and
``'diag'`` and with ``subset_of_weights='last_layer'``: time, chosen ``delta``,
test NLL and accuracy; and, for reference, scikit-learn's ``MLPClassifier``
(defaults, ``max_iter=2000``, as ``bench_defaults.py --cost``; its ``alpha`` in
the ``delta`` column). Data: ``load_digits``, stratified 70/30 splits, X standardised on
the training set.

Run ``python benchmarks/bench_evidence_structures.py [--splits 3]`` with the
common flags (``benchmarks/README.rst``): ``--quick`` (one split, five grid
points), ``--threads N`` (default 1), ``--json PATH``.
"""

import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier
from sklearn_dnn2gp._curvature import _mlp_factors, ggn, kfac_factors, mlp_structure_for_kron

from _harness import parser, setup, write_json

STRUCTURES = ("full", "kfac", "ekfac", "diag")
# The default fit ('auto' delta) with each posterior: the full one is 'auto''s
# choice on digits.
DEFAULT_FITS = {"full": {"posterior": "full"}, "kron": {"posterior": "kron"},
                "diag": {"posterior": "diag"}, "last layer": {"subset_of_weights": "last_layer"}}


def kron_eigenvalues(module, likelihood, X):
    """The K-FAC eigenvalues and the eigenvalue-corrected ones, layer by layer.

    In the factors' eigenbases ``Q_G (x) Q_A`` the exact GGN block of a layer has
    the diagonal ``sum_i |C_i Q_G|^2_o (a_i Q_A)_j^2`` (``C_i`` the whitened
    back-propagated gradients, ``a_i`` the layer input with a 1): one
    ``(d_out x N) (N x d_in+1)`` product per layer."""
    factors, total = kfac_factors(module, likelihood, X)
    C, inputs = _mlp_factors(*mlp_structure_for_kron(module), likelihood, X, None)
    kfac, corrected = [], []
    for (G, A, _), c, a in zip(factors, C, inputs):
        g_vals, g_vecs = torch.linalg.eigh(G)
        a_vals, a_vecs = torch.linalg.eigh(A)
        kfac.append((g_vals.clamp_min(0)[:, None] * a_vals.clamp_min(0)[None, :]
                     / total).reshape(-1))
        u = ((c.to(torch.float64) @ g_vecs) ** 2).sum(1)
        v = (a.to(torch.float64) @ a_vecs) ** 2
        corrected.append((u.T @ v).reshape(-1))
    return torch.cat(kfac), torch.cat(corrected)


def evidences(estimator, X):
    """The four evidences of a fitted classifier (see the module docstring)."""
    module, likelihood = estimator.module_, estimator.likelihood_
    X = torch.as_tensor(X, dtype=next(module.parameters()).dtype)
    delta = float(estimator.prior_precision_)
    with torch.no_grad():
        G = ggn(module, likelihood, X)
    kfac, ekfac = kron_eigenvalues(module, likelihood, X)
    eigenvalues = {"full": torch.linalg.eigvalsh(G).clamp_min(0), "kfac": kfac,
                   "ekfac": ekfac, "diag": torch.diagonal(G)}
    # log|G + delta I| - P log delta, per structure.
    ratio = {k: float(torch.log1p(e / delta).sum()) for k, e in eigenvalues.items()}
    rest = estimator.log_marginal_likelihood_ + 0.5 * ratio["full"]
    return {k: rest - 0.5 * ratio[k] for k in STRUCTURES}


def timed_fit(X, y, estimator=None, **params):
    estimator = DNN2GPClassifier(random_state=0, **params) if estimator is None else estimator
    started = time.perf_counter()
    estimator.fit(X, y)
    return estimator, time.perf_counter() - started


def run_split(split, grid):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=split)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    rows = []
    for delta in grid:
        estimator, _ = timed_fit(X_train, y_train, prior_precision=delta, posterior="full")
        row = {"split": split, "delta": delta, **evidences(estimator, X_train),
               "test NLL": log_loss(y_test, estimator.predict_proba(X_test)),
               "accuracy": estimator.score(X_test, y_test)}
        rows.append(row)
        print(f"{split:5d} {delta:8.3g} " + " ".join(f"{row[k]:9.1f}" for k in STRUCTURES)
              + f" {row['test NLL']:8.4f} {row['accuracy']:8.4f}", flush=True)
    chosen = {}
    for k in STRUCTURES:
        best = max(rows, key=lambda r: r[k])
        chosen[k] = {"delta": best["delta"], "test NLL": best["test NLL"],
                     "accuracy": best["accuracy"]}
    times = {}
    for name, params in DEFAULT_FITS.items():
        estimator, seconds = timed_fit(X_train, y_train, **params)
        times[name] = {"seconds": seconds, "delta": float(estimator.prior_precision_),
                       "test NLL": log_loss(y_test, estimator.predict_proba(X_test)),
                       "accuracy": estimator.score(X_test, y_test)}
    # The reference of issue 21's ratio, on the same split in this process.
    mlp, seconds = timed_fit(X_train, y_train, MLPClassifier(max_iter=2000, random_state=0))
    times["MLP"] = {"seconds": seconds, "delta": float(mlp.alpha),
                    "test NLL": log_loss(y_test, mlp.predict_proba(X_test)),
                    "accuracy": mlp.score(X_test, y_test)}
    return rows, chosen, times


def main(argv=None):
    p = parser(__doc__, quick_help="one split, five grid points")
    p.add_argument("--splits", type=int, default=3, help="stratified 70/30 splits (default 3)")
    args = setup(p.parse_args(argv), argv)
    grid = np.logspace(-0.5, 1.5, 5) if args.quick else np.logspace(-1, 1.5, 11)
    splits = 1 if args.quick else args.splits
    print("Laplace evidence of the same trained network with four log-determinants; "
          "digits, default predictive")
    print("split    delta " + " ".join(f"{k:>9}" for k in STRUCTURES)
          + " test NLL accuracy")
    results, summary = [], []
    for split in range(splits):
        rows, chosen, times = run_split(split, grid)
        results += rows
        summary.append({"split": split, "chosen": chosen, "default fits": times})
    print("\nEach evidence's maximiser on the grid, and the test NLL and accuracy there:")
    for entry in summary:
        for k in STRUCTURES:
            c = entry["chosen"][k]
            print(f"split {entry['split']} {k:>6}: delta {c['delta']:7.3g}  "
                  f"test NLL {c['test NLL']:.4f}  accuracy {c['accuracy']:.4f}")
    print("\nDefault fits ('auto' delta), by posterior (time / the full one's):")
    for entry in summary:
        fits = entry["default fits"]
        for name, fit in fits.items():
            print(f"split {entry['split']} {name:>10}: {fit['seconds']:5.2f} s "
                  f"({fit['seconds'] / fits['full']['seconds']:.2f})  delta "
                  f"{fit['delta']:7.3g}  test NLL {fit['test NLL']:.4f}  "
                  f"accuracy {fit['accuracy']:.4f}")
    write_json(args, results, summary=summary)


if __name__ == "__main__":
    main()
