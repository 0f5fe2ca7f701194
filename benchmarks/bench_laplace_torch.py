"""Our Laplace-GGN posteriors against laplace-torch's, on the same trained networks.

Two networks are trained once with the estimators (one torch thread):

* regression: scikit-learn's diabetes data (442 x 10, X and y standardised, 70 %
  for training), a 10-20-20-1 tanh ``DNN2GPRegressor``;
* classification: standardised digits (70 % for training), a 64-50-10 tanh
  ``DNN2GPClassifier`` (``--hidden`` changes the width).

``est.module_`` is then handed to laplace-torch's ``Laplace(model, likelihood,
subset_of_weights=..., hessian_structure=..., prior_precision=delta,
sigma_noise=sigma)``, fitted on the same training data in one full batch. Its
conventions are ours: a summed loss (its Gaussian log-likelihood is
``-|y - f|^2 / (2 sigma^2) - N K log(sigma sqrt(2 pi))``), the prior precision
``delta`` on every parameter (of the last layer only for ``last_layer``),
temperature 1, and the GGN (its default backend, curvlinops' GGN; for
``kron``, its exact type-2 K-FAC without damping). For each of ``full`` (all
weights), ``kron`` (all weights) and the last layer (``full``) it prints

* the log marginal likelihood: ours is our Laplace form ``log p(y|w*) -
  delta/2 |w*|^2 - 1/2 log det ratio``, which is what laplace-torch computes.
  (A regressor with a full posterior reports the GP evidence of the transformed
  targets instead, equal to the Laplace form at a stationary point; the column
  ``GP - Laplace`` shows the gap for the trained network);
* relative Frobenius differences of the dense posterior precision and
  covariance, and the largest relative difference of the functional variance
  ``J Sigma J^T`` (K x K per point) over the test points;
* the time of the posterior + evidence step, best of ``--repeats``: ours is
  ``sklearn_dnn2gp._laplace.laplace(...)`` and the evidence call; theirs is
  ``Laplace(...)``, ``la.fit(loader)`` and ``la.log_marginal_likelihood()``;
  their ratio is measured in the same run (absolute times on a shared machine
  are noise).

``kron`` differs by convention, not by a bug: laplace-torch (curvlinops,
``separate_weight_and_bias=True``) approximates each layer's weight block by
``(sum_i C_i^T C_i) (x) (sum_i h_i h_i^T) / N`` and its bias block by
``sum_i C_i^T C_i`` separately, dropping the weight-bias cross terms; we keep
one factor per layer with the augmented input ``a = [h, 1]``, so ours has
those cross terms (``A_l``'s last row, the mean input). Both use the same
``1/N`` and add ``delta I`` exactly (eigenvalues ``s g a / N + delta``). The row
``kron, matched`` rebuilds ours from our own factors with ``A_l``'s
input-bias entries zeroed, which is laplace-torch's structure, and must agree
to round-off.

laplace-torch builds its full GGN as ``linop @ torch.eye(P)``, with torch's
default dtype: in float32 that identity rounds its float64 GGN to about 1e-8
relative (1e-5 in the covariance). This script therefore sets the default dtype
to float64 while laplace-torch runs, and prints the float32-default figure as
a footnote.

Install (benchmark only; keep torch at the project's 2.13.0)::

    pip install -e .[bench] -c <(echo torch==2.13.0)

If ``import torchvision`` then fails (a torchvision wheel built for another
torch: "operator torchvision::nms does not exist"), ``pip uninstall
torchvision``: laplace-torch does not need it, torchmetrics then skips it.

Run: ``python benchmarks/bench_laplace_torch.py [--repeats 3] [--hidden 50]``,
with the common flags (``benchmarks/README.rst``): ``--quick`` (small subsets,
seconds), ``--threads N`` (default 1), ``--json PATH``.
"""

import contextlib
import copy
import time

import numpy as np
import torch
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor
from sklearn_dnn2gp._curvature import kfac_factors, output_and_jacobian
from sklearn_dnn2gp._evidence import laplace_log_evidence
from sklearn_dnn2gp._laplace import laplace
from sklearn_dnn2gp.posteriors import KronPosterior

from _harness import parser, setup, threads_text, write_json

CASES = [("full", "all", "full"), ("kron", "all", "kron"), ("last layer", "last_layer", "full")]


@contextlib.contextmanager
def default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def best_time(fn, repeats):
    """``(result of the last call, best time)`` over ``repeats`` calls."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def rel(a, b):
    """Relative Frobenius difference of ``a`` from the reference ``b``."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).norm() / b.norm())


def rel_per_point(a, b):
    """Largest relative Frobenius difference of (n, K, K) blocks."""
    a, b = a.to(torch.float64), b.to(torch.float64)
    return float(((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).max())


def data(quick):
    X, y = load_diabetes(return_X_y=True)
    Xr, Xr_test, yr, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(Xr)
    Xr, Xr_test = scaler.transform(Xr), scaler.transform(Xr_test)
    yr = (yr - yr.mean()) / yr.std()
    X, y = load_digits(return_X_y=True)
    Xc, Xc_test, yc, _ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    scaler = StandardScaler().fit(Xc)
    Xc, Xc_test = scaler.transform(Xc), scaler.transform(Xc_test)
    if quick:
        Xr, yr, Xc, yc = Xr[:150], yr[:150], Xc[:300], yc[:300]
    return (Xr, yr, Xr_test[:100]), (Xc, yc, Xc_test[:100])


def ours(est, X, y, structure, subset, delta):
    """Our posterior and its Laplace-form evidence, as ``laplace()`` and the fit build them."""
    lik = est.likelihood_
    if subset == "last_layer":
        head = est.module_[-1:]
        with torch.no_grad():
            inputs = est.module_[:-1](X)
    else:
        head, inputs = est.module_, X
    posterior, evidence = laplace(head, lik, inputs, y, None, structure=structure,
                                  prior_precision=delta)
    reported = float(evidence())  # what the estimator reports (GP form for a regressor)
    return posterior, reported, head, inputs


def laplace_form(est, head, inputs, y, posterior):
    stats = est.likelihood_.statistics(head, inputs, y, None, posterior)
    return float(laplace_log_evidence(est.likelihood_.log_likelihood(stats), posterior.mean,
                                      posterior))


def theirs(Laplace, est, loader, likelihood, structure, subset, delta, sigma):
    model = copy.deepcopy(est.module_)
    for p in model.parameters():
        p.requires_grad_(True)
    kwargs = {"sigma_noise": sigma} if likelihood == "regression" else {}
    la = Laplace(model, likelihood, subset_of_weights=subset, hessian_structure=structure,
                 prior_precision=delta, **kwargs)
    la.fit(loader)
    return la, float(la.log_marginal_likelihood())


def dense(posterior):
    return posterior.precision(), posterior.covariance()


def their_dense(la, structure):
    if structure == "kron":
        P = la.posterior_precision
        return P.to_matrix(), P.to_matrix(exponent=-1)
    return la.posterior_precision, la.posterior_covariance


def compare(name, Laplace, est, X, y, X_test, likelihood, delta, sigma, repeats):
    from torch.utils.data import DataLoader, TensorDataset

    X_t = torch.as_tensor(X, dtype=torch.float64)
    if likelihood == "regression":
        y_t = torch.as_tensor(y, dtype=torch.float64)[:, None]
    else:
        y_t = torch.as_tensor(y, dtype=torch.long)
    X_test_t = torch.as_tensor(X_test, dtype=torch.float64)
    loader = DataLoader(TensorDataset(X_t, y_t), batch_size=len(X_t))
    rows = []
    for label, subset, structure in CASES:
        (posterior, reported, head, inputs), t_ours = best_time(
            lambda s=subset, st=structure: ours(est, X_t, y_t, st, s, delta), repeats)
        mine = laplace_form(est, head, inputs, y_t, posterior)
        with default_dtype(torch.float64):
            (la, lml), t_theirs = best_time(
                lambda s=subset, st=structure: theirs(Laplace, est, loader, likelihood, st, s,
                                                      delta, sigma), repeats)
            _, their_var = la._glm_predictive_distribution(X_test_t)
            their_prec, their_cov = their_dense(la, structure)
        with torch.no_grad():
            test_inputs = X_test_t if subset == "all" else est.module_[:-1](X_test_t)
        _, J = output_and_jacobian(head, test_inputs)
        precision, covariance = dense(posterior)
        row = dict(task=name, case=label, P=posterior.n_parameters, ours=mine, theirs=lml,
                   gap=reported - mine, prec=rel(precision, their_prec),
                   cov=rel(covariance, their_cov),
                   fvar=rel_per_point(posterior.functional_variance(J), their_var),
                   t_ours=t_ours, t_theirs=t_theirs)
        rows.append(row)
        if structure == "kron":
            factors, total = kfac_factors(head, est.likelihood_, inputs)
            matched = []
            for G, A, order in factors:
                A = A.clone()
                A[:-1, -1] = 0  # laplace-torch: no weight-bias cross terms
                A[-1, :-1] = 0
                matched.append((G, A, order))
            kron = KronPosterior.from_factors(posterior.mean, matched, total, delta)
            precision, covariance = dense(kron)
            rows.append(dict(task=name, case="kron, matched", P=kron.n_parameters,
                             ours=laplace_form(est, head, inputs, y_t, kron), theirs=lml,
                             gap=float("nan"), prec=rel(precision, their_prec),
                             cov=rel(covariance, their_cov),
                             fvar=rel_per_point(kron.functional_variance(J), their_var),
                             t_ours=float("nan"), t_theirs=float("nan")))
        if likelihood == "regression" and structure == "full" and subset == "all":
            # The same fit under torch's default float32 (laplace-torch's eye(P)).
            la32, lml32 = theirs(Laplace, est, loader, likelihood, structure, subset, delta,
                                 sigma)
            their_prec32, their_cov32 = their_dense(la32, structure)
            footnote = (f"{name} full with torch's default dtype float32: evidence rel. "
                        f"{abs(mine - lml32) / abs(lml32):.1e}, precision "
                        f"{rel(precision, their_prec32):.1e}, covariance "
                        f"{rel(covariance, their_cov32):.1e}")
            rows[-1]["footnote"] = footnote
    return rows


def print_table(rows):
    """Print the comparison; return its rows keyed by the printed columns."""
    header = (f"{'task':<15}{'case':<15}{'P':>6} {'ours':>13} {'theirs':>13} {'rel':>8} "
              f"{'GP-Lapl.':>9} {'prec':>8} {'cov':>8} {'fvar':>8} "
              f"{'ours s':>8} {'theirs s':>9} {'ratio':>7}")
    print(header)
    print("-" * len(header))
    table = []
    for r in rows:
        rel_lml = abs(r["ours"] - r["theirs"]) / abs(r["theirs"])
        ratio = r["t_theirs"] / r["t_ours"]
        table.append({"task": r["task"], "case": r["case"], "P": r["P"], "ours": r["ours"],
                      "theirs": r["theirs"], "rel": rel_lml, "GP-Lapl.": r["gap"],
                      "prec": r["prec"], "cov": r["cov"], "fvar": r["fvar"],
                      "ours s": r["t_ours"], "theirs s": r["t_theirs"], "ratio": ratio,
                      "note": r.get("footnote")})
        times = (f"{r['t_ours']:8.3f} {r['t_theirs']:9.3f} {ratio:6.1f}x"
                 if np.isfinite(ratio) else f"{'':8} {'':9} {'':7}")
        print(f"{r['task']:<15}{r['case']:<15}{r['P']:>6} {r['ours']:13.6f} {r['theirs']:13.6f} "
              f"{rel_lml:8.1e} {r['gap']:9.1e} {r['prec']:8.1e} {r['cov']:8.1e} "
              f"{r['fvar']:8.1e} {times}")
    for r in rows:
        if "footnote" in r:
            print("note:", r["footnote"])
    return table


def main(argv=None):
    options = parser(__doc__, quick_help="small subsets, narrow networks, one repeat (seconds)")
    options.add_argument("--repeats", type=int, default=3,
                         help="timing repeats; the best is kept (default 3)")
    options.add_argument("--hidden", type=int, default=50,
                         help="hidden width of the digits classifier (default 50)")
    args = setup(options.parse_args(argv), argv)
    try:
        from laplace import Laplace
    except ImportError as error:
        raise SystemExit(f"laplace-torch is needed: pip install -e .[bench] ({error})") from None
    if args.quick:
        args.repeats, args.hidden = 1, 10
    regression, classification = data(args.quick)
    delta_r, sigma, delta_c = 3.0, 0.7, 1.0

    start = time.perf_counter()
    reg = DNN2GPRegressor((10, 10) if args.quick else (20, 20), prior_precision=delta_r,
                          noise_std=sigma, posterior="full", n_threads=args.threads,
                          random_state=0).fit(regression[0], regression[1])
    clf = DNN2GPClassifier((args.hidden,), prior_precision=delta_c, posterior="full",
                           n_threads=args.threads, random_state=0)
    clf.fit(classification[0], classification[1])
    print(f"trained in {time.perf_counter() - start:.1f} s: regressor {reg.n_iter_} and "
          f"classifier {clf.n_iter_} L-BFGS iterations; "
          f"{threads_text(args.threads, 'torch thread')}; best of "
          f"{args.repeats}")
    print(f"regression: diabetes N={len(regression[0])}, delta={delta_r}, sigma={sigma}; "
          f"classification: digits N={len(classification[0])}, 64-{args.hidden}-10, "
          f"delta={delta_c}; {len(regression[2])} test points each")
    print("rel: |ours - theirs| / |theirs| of the evidence (ours in the Laplace form); "
          "prec, cov: relative Frobenius differences; fvar: largest relative difference of "
          "J Sigma J^T over the test points; ratio: their time / ours\n")
    rows = compare("regression", Laplace, reg, *regression, "regression", delta_r, sigma,
                   args.repeats)
    rows += compare("classification", Laplace, clf, *classification, "classification",
                    delta_c, None, args.repeats)
    write_json(args, print_table(rows))


if __name__ == "__main__":
    main()
