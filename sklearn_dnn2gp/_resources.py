"""Memory and time estimates of the expensive steps, checked before they run.

A step that cannot fit in memory raises a ``MemoryError`` that names the
parameter to change, instead of dying inside the allocator after minutes of
work; a step that will take long warns first. The estimates are deliberately
rough (a factor of two either way): their job is to catch the 500 GB request
and the two-hour eigendecomposition, not to budget precisely.
"""

import math
import os
import warnings

from ._curvature import is_mlp

# float64 everywhere the curvature and the posterior live.
_BYTES = 8
# Rates on one core of a 2-core x86 machine of the reference class
# (benchmarks/bench_curvature.py): a P x P eigendecomposition costs about
# 1.2e-10 P^3 seconds (P = 3,760: 6 s), and a matrix product about 5e-11 s per
# multiply-add.
_EIGH_SECONDS = 1.2e-10
_GEMM_SECONDS = 5e-11
# A Cholesky factorisation costs P^3 / 3 multiply-adds at near-GEMM speed.
_CHOLESKY_SECONDS = _GEMM_SECONDS / 3
# Warn when a step is expected to take longer than this.
_SLOW_SECONDS = 60.0
# Refuse when a step needs more than this fraction of the memory available now.
_MEMORY_FRACTION = 0.8


def available_memory(device):
    """Bytes that can be allocated on ``device`` now, or None when unknown.

    On the CPU, the smallest of what applies: the machine's available memory, the
    process's address-space limit (``RLIMIT_AS``, ``ulimit -v``) less what it maps
    already, and its control group's limit (a container's ``memory.max``) less what
    the group uses.
    """
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    limits = [_machine_available(), _address_space_left(), _cgroup_left()]
    limits = [limit for limit in limits if limit is not None]
    return max(min(limits), 0) if limits else None


def _read_text(path):
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return None


def _read_first(path):
    text = _read_text(path)
    return None if text is None else (text.splitlines() or [""])[0].strip()


def _proc_bytes(path, key):
    """A ``key:  N kB`` entry of a /proc status file in bytes, or None."""
    for line in (_read_text(path) or "").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return None


def _machine_available():
    available = _proc_bytes("/proc/meminfo", "MemAvailable")
    if available is not None:
        return available
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _address_space_left():
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    return soft - (_proc_bytes("/proc/self/status", "VmSize") or 0)


def _cgroup_left():
    """The memory the process's control group may still use: v2's ``memory.max``,
    else v1's ``memory.limit_in_bytes``, at the group's own path or the mount's root
    (inside a container the group is the root)."""
    v2, v1 = "/", "/"
    for line in (_read_text("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":
            v2 = parts[2]
        elif "memory" in parts[1].split(","):
            v1 = parts[2]
    files = [(f"/sys/fs/cgroup{root}", "memory.max", "memory.current")
             for root in (v2.rstrip("/"), "")]
    files += [(f"/sys/fs/cgroup/memory{root}", "memory.limit_in_bytes",
               "memory.usage_in_bytes") for root in (v1.rstrip("/"), "")]
    for folder, limit_name, used_name in files:
        limit = _read_first(f"{folder}/{limit_name}")
        used = _read_first(f"{folder}/{used_name}")
        if limit is None or used is None:
            continue
        # "max" (v2) and a page-rounded 2^63 (v1) mean no limit.
        if limit == "max" or int(limit) >= 2**62:
            return None
        return int(limit) - int(used)
    return None


def format_bytes(n_bytes):
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:.3g} {unit}" if unit != "bytes" else f"{int(n_bytes)} bytes"
        n_bytes /= 1000


def format_seconds(seconds):
    if seconds < 1:
        return f"{seconds:.2g} s"  # a step or an epoch: not "0 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def check_memory(n_bytes, what, advice, device):
    """Raise a ``MemoryError`` when ``what`` needs more memory than ``device`` has."""
    available = available_memory(device)
    if available is not None and n_bytes > _MEMORY_FRACTION * available:
        raise MemoryError(
            f"{what} needs about {format_bytes(n_bytes)} but {format_bytes(available)} "
            f"is available on {device.type}; {advice}."
        )


def warn_if_slow(seconds, what, advice):
    if seconds > _SLOW_SECONDS:
        warnings.warn(
            f"{what} will take roughly {format_seconds(seconds)} (estimated for one CPU "
            f"core); {advice}.",
            UserWarning,
            stacklevel=4,
        )


def full_posterior_cost(n_rows, n_params):
    """``(bytes, seconds)`` of a full Laplace posterior over ``n_params`` weights
    from ``n_rows = N K`` whitened Jacobian rows, in the space the posterior uses."""
    if n_rows < n_params:  # function space: M (n x P), its SVD, an n x n Gram
        n_bytes = _BYTES * (3 * n_rows * n_params + 2 * n_rows**2)
        seconds = _GEMM_SECONDS * 4 * n_rows**2 * n_params + _EIGH_SECONDS * n_rows**3
    else:  # weight space: the GGN, a batch term, the factor and a copy
        n_bytes = _BYTES * 4 * n_params**2
        seconds = _GEMM_SECONDS * n_rows * n_params**2 + _CHOLESKY_SECONDS * n_params**3
    return n_bytes, seconds


# posterior='auto' takes the full posterior while it needs at most this fraction
# of the memory available and is expected to take at most this many seconds.
_AUTO_MEMORY_FRACTION = 0.25
_AUTO_SECONDS = 30.0


def full_posterior_is_comfortable(n_rows, n_params, device):
    """Whether ``posterior='auto'`` should take the exact full posterior."""
    n_bytes, seconds = full_posterior_cost(n_rows, n_params)
    available = available_memory(device)
    fits = available is None or n_bytes <= _AUTO_MEMORY_FRACTION * available
    return fits and seconds <= _AUTO_SECONDS


def full_vi_step_cost(batch_rows, n_params):
    """``(bytes, seconds)`` of one full-covariance VOGN step: a batch GGN, and a
    Cholesky factorisation of the P x P precision with the solves that use it.

    Measured on the reference machine, one thread, batches of 128: 2 ms a step
    at P = 97 (Python and autograd), 17 ms at 681, 50 ms at 1,015, 146 ms at
    1,519 and 460 ms at 2,121, i.e. about ``_GEMM_SECONDS * P^3`` once P is in
    the hundreds (the factorisation, the solves and the update of ``S``)."""
    n_bytes = _BYTES * 5 * n_params**2
    seconds = _GEMM_SECONDS * (batch_rows * n_params**2 + n_params**3)
    return n_bytes, seconds


# posterior='auto' under VI takes a full q while the whole fit is expected to
# spend at most this many seconds on its P x P factorisations, and its P x P
# matrices fit in _AUTO_MEMORY_FRACTION of the memory. A full q costs one
# factorisation per step where a diagonal one costs O(P), and default VI takes
# about a thousand steps, so it is only comfortable for small networks: with
# the defaults (batches of about 128) the limit falls near P = 450.
_AUTO_VI_SECONDS = 10.0
# The default stopping rule cannot stop before the precision has forgotten its
# start ((1 - beta)^t <= 1e-3: 688 steps at the default beta = 0.01); the
# benchmarks stopped after 1.1-2.3 times that (Snelson, red wine, digits).
_AUTO_VI_STEPS_PER_BURN_IN = 2.0


def full_vi_cost(n_rows, batch_rows, n_params, burn_in_steps):
    """``(bytes, seconds)`` of a default full-covariance VI fit: about
    ``2 * burn_in_steps`` steps of :func:`full_vi_step_cost`, and the KL term once
    per epoch (one more ``P^3`` inverse from the Cholesky factor)."""
    n_bytes, step_seconds = full_vi_step_cost(batch_rows, n_params)
    steps_per_epoch = max(1, math.ceil(n_rows / max(batch_rows, 1)))
    steps = _AUTO_VI_STEPS_PER_BURN_IN * max(burn_in_steps, 1)
    epochs = math.ceil(steps / steps_per_epoch)
    seconds = epochs * (steps_per_epoch * step_seconds + _GEMM_SECONDS * n_params**3)
    return n_bytes, seconds


def full_vi_is_comfortable(n_rows, batch_rows, n_params, burn_in_steps, device):
    """Whether ``posterior='auto'`` under VI should take a full-covariance ``q``."""
    n_bytes, seconds = full_vi_cost(n_rows, batch_rows, n_params, burn_in_steps)
    available = available_memory(device)
    fits = available is None or n_bytes <= _AUTO_MEMORY_FRACTION * available
    return fits and seconds <= _AUTO_VI_SECONDS


_POSTERIOR_ADVICE = (
    "use posterior='kron' (K-FAC: per-layer factors) or 'diag' (linear in the number "
    "of parameters), a smaller network (hidden_layer_sizes) or fewer training points"
)


def check_full_posterior(n_rows, n_params, device):
    """Guard the full Laplace posterior: refuse what cannot fit, warn what is slow."""
    n_bytes, seconds = full_posterior_cost(n_rows, n_params)
    what = f"The full posterior over {n_params:,} parameters from {n_rows:,} outputs"
    check_memory(n_bytes, what, _POSTERIOR_ADVICE, device)
    warn_if_slow(seconds, what, _POSTERIOR_ADVICE)


def check_full_vi(n_rows, batch_rows, n_params, max_iter, device):
    """Guard full-covariance VI: one eigendecomposition of a P x P matrix per step."""
    n_bytes, step_seconds = full_vi_step_cost(batch_rows, n_params)
    steps = max(1, math.ceil(n_rows / max(batch_rows, 1)))
    what = f"Full-covariance VI over {n_params:,} parameters"
    check_memory(n_bytes, what, _POSTERIOR_ADVICE, device)
    epoch = step_seconds * steps
    if epoch * max_iter > _SLOW_SECONDS:
        warn_if_slow(
            epoch * max_iter,
            f"{what} ({format_seconds(epoch)} per epoch, up to max_iter={max_iter} epochs)",
            _POSTERIOR_ADVICE,
        )


def jacobian_bytes(n_points, n_outputs, n_params):
    """Bytes of the per-example Jacobians of ``n_points`` points, (n, K, P) in float64."""
    return _BYTES * n_points * n_outputs * n_params


def choose_structure(posterior, inference, module, n_rows, n_params, device, *,
                     batch_rows=None, burn_in):
    """``posterior``, with 'auto' resolved: for Laplace the exact full posterior
    while it is comfortable in memory and time, else K-FAC for an MLP and the
    diagonal for other networks; for VI a full ``q`` while its per-step P x P
    factorisations are comfortable (small networks: see ``full_vi_cost``; a
    diagonal ``q`` cannot show in-between uncertainty), else the diagonal.
    ``burn_in()`` gives VI's burn-in steps (called only when they matter)."""
    if inference == "vi" and posterior == "kron" and not is_mlp(module):
        # Before training: VI's K-FAC q needs the layers' factors at every step.
        raise ValueError(
            "posterior='kron' with inference='vi' needs a network of Linear layers "
            f"and elementwise activations; got {type(module).__name__}. Use "
            "posterior='diag' or 'full'.")
    if posterior != "auto":
        return posterior
    if inference == "vi":
        if full_vi_is_comfortable(n_rows, batch_rows or n_rows, n_params, burn_in(), device):
            return "full"
        return "diag"
    if full_posterior_is_comfortable(n_rows, n_params, device):
        return "full"
    return "kron" if is_mlp(module) else "diag"
