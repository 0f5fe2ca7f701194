"""Benchmark of the curvature hot path: Jacobians and GGN.

Prints each method's time and its ratio to a baseline measured in the same run
(absolute times on shared machines are noise):

* per-example Jacobians: the analytic layer-by-layer MLP Jacobian against
  ``torch.func.vmap(jacrev)``;
* the GGN with several outputs (digits, 64-50-10 softmax): the Kronecker GEMM
  per layer pair against forming whitened Jacobians and ``M^T M``;
* the GGN with one output (wine-sized 11-20-20-1 regression): ``M^T M``.

Run: ``python benchmarks/bench_curvature.py [--repeats 3]`` (under a minute),
with the common flags (``benchmarks/README.rst``): ``--quick`` (one repeat, the
GGN on 400 digits), ``--threads N`` (default 1), ``--json PATH``.
"""

import time

import numpy as np
import torch
from sklearn.datasets import load_digits

from sklearn_dnn2gp._curvature import (
    _functional_jacobian,
    ggn,
    output_and_jacobian,
    whitened_jacobians,
)
from sklearn_dnn2gp._likelihoods import Categorical, Gaussian
from sklearn_dnn2gp._network import make_mlp

from _harness import parser, setup, write_json


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def jacobian_ggn(module, likelihood, X):
    G = None
    for *_, M in whitened_jacobians(module, likelihood, X):
        M = M.reshape(-1, M.shape[-1])
        G = M.T @ M if G is None else G + M.T @ M
    return G


def main(argv=None):
    options = parser(__doc__, quick_help="one repeat, the GGN on 400 digits")
    options.add_argument("--repeats", type=int, default=3)
    args = setup(options.parse_args(argv), argv)
    if args.quick:
        args.repeats = 1
    gen = torch.Generator().manual_seed(0)

    X, _ = load_digits(return_X_y=True)
    X = torch.tensor((X - X.mean(0)) / (X.std(0) + 1e-8))[:400 if args.quick else 1257]
    net = make_mlp(64, (50,), 10, "tanh", dtype=torch.float64, device="cpu", generator=gen)
    print(f"threads={args.threads}; best of {args.repeats}")

    t_analytic = best_time(lambda: output_and_jacobian(net, X[:512]), args.repeats)
    with torch.enable_grad():
        t_vmap = best_time(lambda: _functional_jacobian(net, X[:512]), args.repeats)
    print(f"Jacobians, 512 digits, 64-50-10: analytic {t_analytic:.3f}s, vmap(jacrev) "
          f"{t_vmap:.3f}s -> analytic is {t_vmap / t_analytic:.1f}x faster")
    results = [dict(case="Jacobians, 512 digits, 64-50-10", method="analytic",
                    seconds=t_analytic, baseline="vmap(jacrev)", baseline_seconds=t_vmap,
                    speedup=t_vmap / t_analytic)]

    lik = Categorical()
    G_fast = ggn(net, lik, X)
    G_ref = jacobian_ggn(net, lik, X)
    err = float((G_fast - G_ref).abs().max() / G_ref.abs().max())
    t_kron = best_time(lambda: ggn(net, lik, X), args.repeats)
    t_jac = best_time(lambda: jacobian_ggn(net, lik, X), args.repeats)
    case = f"GGN, {len(X)} digits, K=10, P={G_fast.shape[0]}"
    print(f"{case}: Kronecker {t_kron:.2f}s, Jacobian M^T M {t_jac:.2f}s -> "
          f"{t_jac / t_kron:.1f}x faster (max rel. difference {err:.1e})")
    results.append(dict(case=case, method="Kronecker", seconds=t_kron,
                        baseline="Jacobian M^T M", baseline_seconds=t_jac,
                        speedup=t_jac / t_kron, max_rel_difference=err))

    Xw = torch.randn(1439, 11, dtype=torch.float64, generator=gen)
    reg = make_mlp(11, (20, 20), 1, "tanh", dtype=torch.float64, device="cpu", generator=gen)
    gauss = Gaussian(torch.tensor([0.64], dtype=torch.float64))
    t_torch = best_time(lambda: ggn(reg, gauss, Xw), args.repeats)
    M = torch.cat([m.reshape(-1, m.shape[-1]) for *_, m in whitened_jacobians(reg, gauss, Xw)])
    M_np = M.numpy()
    t_numpy = best_time(lambda: M_np.T @ M_np, args.repeats)
    t_mm = best_time(lambda: M.T @ M, args.repeats)
    case = f"GGN, 1439 x 11-20-20-1 (P={M.shape[1]})"
    print(f"{case}: full pass {t_torch:.3f}s; the product "
          f"alone: torch {t_mm:.4f}s, numpy {t_numpy:.4f}s -> numpy/torch {t_numpy / t_mm:.2f}")
    results.append(dict(case=case, method="product M^T M, torch", seconds=t_mm,
                        baseline="product M^T M, numpy", baseline_seconds=t_numpy,
                        speedup=t_numpy / t_mm, full_pass_seconds=t_torch))
    np.testing.assert_allclose(G_fast.numpy(), G_ref.numpy(), rtol=1e-9, atol=1e-9)
    write_json(args, results)


if __name__ == "__main__":
    main()
