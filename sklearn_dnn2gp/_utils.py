"""Small helpers: random state, device and dtype resolution, tensor conversion,
scoped thread limits."""

import copy
import math
import os
import threading
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
LOG_2PI = math.log(2 * math.pi)


def format_values(values, precision=4):
    """``name=value, ...`` for messages, each value as numpy prints it (arrays
    whole, ``precision`` digits)."""
    return ", ".join(f"{name}={np.array2string(np.asarray(v), precision=precision)}"
                     for name, v in values.items())


def make_generator(random_state):
    """Return a CPU ``torch.Generator`` seeded from a scikit-learn ``random_state``.

    The generator is local: the process-wide torch seed is never touched, so
    fitting an estimator does not change anybody else's random stream.
    """
    seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    return generator


def resolve_device(device):
    """Map the ``device`` parameter ('auto', 'cpu', 'cuda', 'cuda:N', a torch.device)
    to a torch.device, or raise a ValueError that says what is accepted."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' (or a torch.device of those "
            f"types), got {device!r}."
        )
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available; "
                "use device='auto' or 'cpu'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only {torch.cuda.device_count()} "
                "CUDA device(s) are present."
            )
    return resolved


def resolve_dtype(dtype):
    return _DTYPES[dtype]


def to_tensor(array, dtype, device):
    """Copy a numpy array into a tensor (copying also handles read-only memmaps)."""
    return torch.tensor(np.asarray(array), dtype=dtype, device=device)


def to_numpy(tensor):
    return tensor.detach().cpu().numpy()


def batches(n, batch_size):
    """Yield slices covering ``range(n)`` in order, ``batch_size`` at a time."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def worker_torch_threads(n_threads, caller_pid):
    """Limit torch's intra-op threads inside a worker *process* and restore them.

    The thread count is process-wide: in the calling process (sequential
    backend, threading backend, Dask with ``processes=False``) it is left
    alone, so a search never changes its caller's setting.
    """
    return torch_threads(None if os.getpid() == caller_pid else n_threads)


# Below this many multiply-adds per pass over the data, one intra-op thread: on a
# busy 2-core machine torch's default of two made small fits 5-50x slower (each
# operation is too short to amortise waking the second thread); the digits fit
# (64-50-10, 1,257 rows: 4.7e7 per pass) took 3.2 s on one thread, 25.9 s on two.
_SMALL_WORK = 1e9
_THREADS_LOCK = threading.Lock()
_THREADS_DEPTH = 0
_THREADS_SAVED = None


def choose_threads(setting, work):
    """The intra-op thread count for a call: ``setting`` when it is an int or None
    (None: leave torch's setting), and for 'auto' one thread below ``_SMALL_WORK``
    multiply-adds per pass, torch's own setting above."""
    if setting == "auto":
        return 1 if work < _SMALL_WORK else None
    return setting


@contextmanager
def torch_threads(n_threads):
    """Run the block with ``n_threads`` intra-op threads, then restore the caller's.

    The setting is process-wide, so nested or concurrent blocks (fits in joblib's
    threading backend) share one saved value, restored when the last one exits.
    """
    global _THREADS_DEPTH, _THREADS_SAVED
    if n_threads is None:
        yield
        return
    with _THREADS_LOCK:
        if _THREADS_DEPTH == 0:
            _THREADS_SAVED = torch.get_num_threads()
        _THREADS_DEPTH += 1
        if torch.get_num_threads() != n_threads:
            torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_DEPTH -= 1
            if _THREADS_DEPTH == 0 and torch.get_num_threads() != _THREADS_SAVED:
                torch.set_num_threads(_THREADS_SAVED)


def to_cpu(value, memo):
    """``value`` with every tensor and module inside it on the CPU; shared objects stay
    shared (``memo`` maps ids to their copies). Only containers and this package's own
    objects are entered; a value already on the CPU is returned as it is."""
    key = id(value)
    if key in memo:
        return memo[key]
    if isinstance(value, torch.Tensor):
        memo[key] = value.cpu()
    elif isinstance(value, torch.nn.Module):
        on_cpu = all(not t.is_cuda for t in value.state_dict().values())
        memo[key] = value if on_cpu else copy.deepcopy(value).cpu()
    elif isinstance(value, dict):
        memo[key] = {k: to_cpu(v, memo) for k, v in value.items()}
    elif isinstance(value, list) or type(value) is tuple:
        memo[key] = type(value)(to_cpu(v, memo) for v in value)
    elif type(value).__module__.startswith(__name__.rpartition(".")[0] + ".") and hasattr(
            value, "__dict__") and not isinstance(value, BaseEstimator):
        copied = memo[key] = copy.copy(value)
        copied.__dict__.update({k: to_cpu(v, memo) for k, v in vars(value).items()})
    else:
        memo[key] = value
    return memo[key]
