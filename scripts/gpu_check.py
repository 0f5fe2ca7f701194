"""Prepared GPU check: fit and predict on CUDA, then unpickle on the CPU.

Run on a machine with a CUDA GPU (``python scripts/gpu_check.py``). It checks
that ``device='auto'`` trains on CUDA, that a CUDA-fitted model pickles, and
that the unpickled model predicts on the CPU what it predicted on the GPU; then
it times a 20,000-row problem with a (256, 256) network (K-FAC and last-layer
posteriors) on the GPU and the CPU and checks that the two agree.
Exit status 0 when every check passes.
"""

import pickle
import sys
import time

import numpy as np
import torch

from sklearn_dnn2gp import DNN2GPClassifier, DNN2GPRegressor
from sklearn_dnn2gp.datasets import make_gap_regression


def check(name, ok):
    print(f"[{'ok' if ok else 'FAIL'}] {name}")
    return ok


def _large_problem_cpu_vs_gpu():
    """A 20,000-row, 20-feature regression with a (256, 256) network trained on the
    GPU; its K-FAC and last-layer posteriors are then built from the same weights on
    the GPU and on the CPU, timed, and compared on 2,000 points (float64)."""
    import copy

    from sklearn_dnn2gp._laplace import laplace
    from sklearn_dnn2gp._likelihoods import Gaussian

    rng = np.random.RandomState(0)
    X = rng.randn(20_000, 20)
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 2] * X[:, 3] + 0.1 * rng.randn(20_000)
    y = (y - y.mean()) / y.std()
    start = time.perf_counter()
    est = DNN2GPRegressor(hidden_layer_sizes=(256, 256), noise_std=0.3, max_iter=20,
                          posterior="kron", device="cuda", random_state=0).fit(X, y)
    out = [check(f"(256, 256) network, 20,000 rows: fit on the GPU in "
                 f"{time.perf_counter() - start:.1f}s", True)]
    for structure, last_layer in (("kron", False), ("full", True)):
        variances, seconds = {}, {}
        for device in ("cuda", "cpu"):
            module = copy.deepcopy(est.module_).to(device)
            head = module[-1:] if last_layer else module
            X_t = torch.tensor(X, device=device)
            inputs = module[:-1](X_t) if last_layer else X_t
            likelihood = Gaussian(torch.tensor([0.3], dtype=torch.float64, device=device))
            y_t = torch.tensor(y[:, None], device=device)
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            posterior, evidence = laplace(head, likelihood, inputs, y_t, None,
                                          structure=structure, prior_precision=1.0)
            float(evidence())
            seconds[device] = time.perf_counter() - start
            with torch.no_grad():
                test = module[:-1](X_t[:2000]) if last_layer else X_t[:2000]
            from sklearn_dnn2gp._curvature import output_and_jacobian

            _, J = output_and_jacobian(head, test)
            variances[device] = posterior.functional_variance(J).cpu().numpy().ravel()
        diff = np.max(np.abs(variances["cuda"] - variances["cpu"]) / variances["cpu"])
        name = "last-layer full" if last_layer else structure
        out.append(check(
            f"{name} posterior + evidence: GPU {seconds['cuda']:.2f}s, CPU "
            f"{seconds['cpu']:.2f}s ({seconds['cpu'] / seconds['cuda']:.1f}x); latent "
            f"variances agree to {diff:.1e} relative", diff < 1e-8))
    return out


def main():
    if not torch.cuda.is_available():
        print("CUDA is not available: nothing to check.")
        return 1
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    results = []
    X, y = make_gap_regression(n_samples=200, random_state=0)
    grid = np.linspace(-5, 5, 50)[:, None]
    for dtype in ("float64", "float32"):
        t = time.perf_counter()
        reg = DNN2GPRegressor(hidden_layer_sizes=(50, 50), noise_std=0.1, dtype=dtype,
                              random_state=0).fit(X, y)
        elapsed = time.perf_counter() - t
        device = next(reg.module_.parameters()).device
        results.append(check(f"regressor ({dtype}) trained on {device} in {elapsed:.1f}s",
                             device.type == "cuda"))
        mean, std = reg.predict(grid, return_std=True)
        restored = pickle.loads(pickle.dumps(reg))
        on_cpu = next(restored.module_.parameters()).device.type == "cpu"
        mean_cpu, std_cpu = restored.predict(grid, return_std=True)
        results.append(check(f"unpickled regressor ({dtype}) lives on the CPU", on_cpu))
        tol = 1e-10 if dtype == "float64" else 1e-4
        results.append(check(
            f"CPU predictions equal the GPU ones ({dtype}, max diff "
            f"{max(np.abs(mean - mean_cpu).max(), np.abs(std - std_cpu).max()):.2e})",
            np.allclose(mean, mean_cpu, rtol=tol, atol=tol)
            and np.allclose(std, std_cpu, rtol=tol, atol=tol)))
        results.append(check(
            f"evidence survives the round trip ({dtype})",
            np.isclose(reg.log_marginal_likelihood(2.0), restored.log_marginal_likelihood(2.0),
                       rtol=tol)))

    from sklearn.datasets import load_digits

    Xd, yd = load_digits(return_X_y=True)
    Xd = (Xd - Xd.mean(0)) / (Xd.std(0) + 1e-8)
    t = time.perf_counter()
    clf = DNN2GPClassifier(hidden_layer_sizes=(50,), random_state=0).fit(Xd, yd)
    elapsed = time.perf_counter() - t
    proba = clf.predict_proba(Xd[:100])
    restored = pickle.loads(pickle.dumps(clf))
    results.append(check(f"digits classifier trained on CUDA in {elapsed:.1f}s, accuracy "
                         f"{clf.score(Xd, yd):.3f}",
                         next(clf.module_.parameters()).device.type == "cuda"))
    results.append(check("classifier probabilities equal after unpickling on the CPU",
                         np.allclose(proba, restored.predict_proba(Xd[:100]), atol=1e-10)))
    cpu = DNN2GPRegressor(hidden_layer_sizes=(50, 50), noise_std=0.1, device="cpu",
                          random_state=0).fit(X, y)
    gpu = DNN2GPRegressor(hidden_layer_sizes=(50, 50), noise_std=0.1, device="cuda",
                          random_state=0).fit(X, y)
    results.append(check(
        "same random_state gives the same initial weights on CPU and GPU "
        f"(prediction diff {np.abs(cpu.predict(grid) - gpu.predict(grid)).max():.2e})",
        np.allclose(cpu.predict(grid), gpu.predict(grid), atol=1e-4)))
    results.extend(_large_problem_cpu_vs_gpu())
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
