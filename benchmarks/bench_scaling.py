"""How the posterior + evidence step grows with N and P, per posterior structure.

For each data size N and each MLP (10 inputs, tanh, one output; hidden widths
from ``--hidden``) it times, on one torch thread (``--threads``) and best of
``--repeats``, what a fit does after training: ``sklearn_dnn2gp._laplace.laplace(...)``
(the curvature and the posterior) and the evidence at the fitted hyperparameters,
for ``full``, ``kron``, ``diag`` and the last layer (``full`` on the output
layer, on the features of the layers before it). The network is a freshly
initialised one: the cost of this step does not depend on the weights.

Memory: ``tracemalloc`` does not see torch's allocations, so the peak is the
process's resident set: its high-water mark (``VmHWM``) is reset through
``/proc/self/clear_refs`` before each run and read after it, minus the
resident size before it, the largest over the repeats (Linux only). So that
freed buffers go back to the system instead of being reused unseen from the
heap, the script re-executes itself with glibc's ``MALLOC_MMAP_THRESHOLD_=65536``
(every allocation of 64 KiB or more is its own mapping, returned when freed);
the peak is then close to the step's own. Next to it is an
estimate of the step's main arrays from their sizes: full, in weight space
(``N K >= P``) the GGN, ``s G + delta I`` and its Cholesky factor ``3 x 8 P^2``
bytes, in function space (``N K < P``) the whitened Jacobian, its SVD and a
copy ``3 x 8 N P``; kron, the factors and their eigenvectors ``2 x 8 sum_l
(d_out^2 + (d_in + 1)^2)``; diag ``3 x 8 P``; the last layer, as full on its
parameters plus the features (and one intermediate) ``2 x 8 N d_hidden``.
Every structure also streams Jacobians in batches of at most 512 rows and
2^24 elements (a regression's evidence statistics need them, kron included): a
batch's per-layer blocks, ``J`` and ``M`` are ``3 x 8 x batch x K x P`` bytes,
which the estimate includes.

Run: ``python benchmarks/bench_scaling.py [--n 1000 4000 16000] [--hidden 20 50 100 50,50]
[--repeats 2]`` (a few minutes), with the common flags (``benchmarks/README.rst``):
``--quick`` (tiny sizes, one repeat: seconds), ``--threads N`` (default 1),
``--json PATH``.
"""

import gc
import os
import sys
import time
from functools import partial

import numpy as np
import torch

from sklearn_dnn2gp._curvature import jacobian_batch_size
from sklearn_dnn2gp._laplace import laplace
from sklearn_dnn2gp._likelihoods import Gaussian
from sklearn_dnn2gp._network import make_mlp, n_parameters

from _harness import parser, setup, threads_text, write_json

STRUCTURES = ["full", "kron", "diag", "last layer"]
MB = 2.0**20


def _status(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def measure(fn):
    """``(result, seconds, peak resident bytes above the start)``; the peak is None
    where /proc is missing. Only ``fn`` is timed."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current resident size
        before = _status("VmRSS")
    except OSError:
        before = None
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, None if before is None else _status("VmHWM") - before


def step(module, likelihood, X, y, structure, delta):
    """The posterior and the evidence, as a fit builds them after training."""
    if structure == "last layer":
        with torch.no_grad():
            features = module[:-1](X)
        posterior, evidence = laplace(module[-1:], likelihood, features, y, None,
                                      structure="full", prior_precision=delta)
    else:
        posterior, evidence = laplace(module, likelihood, X, y, None, structure=structure,
                                      prior_precision=delta)
    return float(evidence())


def estimate_bytes(module, n, structure):
    linears = [layer for layer in module if isinstance(layer, torch.nn.Linear)]
    P = n_parameters(module)
    features = 0
    if structure == "last layer":
        P = n_parameters(linears[-1])
        features = 2 * 8 * n * linears[-1].in_features  # the features and one intermediate
    jacobians = 3 * 8 * min(n, jacobian_batch_size(1, P)) * P
    if structure == "kron":
        return 2 * 8 * sum(lin.out_features**2 + (lin.in_features + 1) ** 2
                           for lin in linears) + jacobians
    if structure == "diag":
        return 3 * 8 * P + jacobians
    return (3 * 8 * P**2 if n >= P else 3 * 8 * n * P) + jacobians + features


def reexec_with_mmap_threshold():
    """Run this script again with freed buffers returned to the system (see above)."""
    if sys.platform.startswith("linux") and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main(argv=None):
    options = parser(__doc__, quick_help="tiny sizes, one repeat")
    options.add_argument("--n", type=int, nargs="+", default=[1000, 4000, 16000])
    options.add_argument("--hidden", nargs="+", default=["20", "50", "100", "50,50"],
                         help="hidden layer sizes, comma-separated per network")
    options.add_argument("--repeats", type=int, default=2)
    args = setup(options.parse_args(argv), argv)
    if args.quick:
        args.n, args.hidden, args.repeats = [200, 400], ["10", "10,10"], 1
    gen = torch.Generator().manual_seed(0)
    likelihood = Gaussian(torch.tensor([0.5], dtype=torch.float64))
    delta = 1.0
    results = []
    print(f"posterior + evidence step, {threads_text(args.threads, 'torch thread')}, "
          f"best of {args.repeats}; "
          "peak: resident-set high-water mark above the start of the step (measured), "
          "and the main arrays' size (estimated)\n")
    header = (f"{'N':>6} {'hidden':>8} {'P':>6} {'structure':>11} {'time s':>8} "
              f"{'peak MB':>8} {'est. MB':>8} {'evidence':>12}")
    print(header)
    print("-" * len(header))
    for n in args.n:
        X = torch.randn(n, 10, dtype=torch.float64, generator=gen)
        y = (torch.sin(X[:, :3].sum(1)) + 0.5 * torch.randn(n, dtype=torch.float64,
                                                             generator=gen))[:, None]
        for hidden in args.hidden:
            sizes = tuple(int(h) for h in hidden.split(","))
            module = make_mlp(10, sizes, 1, "tanh", dtype=torch.float64, device="cpu",
                              generator=gen)
            for p in module.parameters():
                p.requires_grad_(False)
            P = n_parameters(module)
            for structure in STRUCTURES:
                times, peaks = [], []
                for _ in range(args.repeats):
                    value, seconds, peak = measure(
                        partial(step, module, likelihood, X, y, structure, delta))
                    times.append(seconds)
                    peaks.append(np.nan if peak is None else max(peak, 0) / MB)
                estimate = estimate_bytes(module, n, structure) / MB
                print(f"{n:>6} {hidden:>8} {P:>6} {structure:>11} {min(times):8.3f} "
                      f"{max(peaks):8.1f} {estimate:8.1f} {value:12.4f}", flush=True)
                results.append({"N": n, "hidden": hidden, "P": P, "structure": structure,
                                "time s": min(times), "peak MB": max(peaks),
                                "est. MB": estimate, "evidence": value})
    write_json(args, results)


if __name__ == "__main__":
    reexec_with_mmap_threshold()
    main()
