"""What the benchmarks share: the common flags, the thread setting and the JSON record.

Not a benchmark itself; the scripts import it from this folder (a script's own
folder is on ``sys.path`` when it runs). Every script takes

* ``--quick``: a short smoke run (seconds to a couple of minutes);
* ``--threads N``: torch's intra-op threads for the timed work;
* ``--json PATH``: also write what the script prints as JSON (see :func:`write_json`).

A script builds its parser with :func:`parser`, calls :func:`setup` on the parsed
arguments, collects the rows it prints as dicts (one per printed row, keyed by
the printed column names) and hands them to :func:`write_json` at the end.
"""

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch


def parser(doc, default_threads=1, quick_help="a short smoke run"):
    """An argument parser with the common flags, described by the first line of ``doc``.

    Parameters
    ----------
    doc : str
        The script's docstring.
    default_threads : int, default=1
        Default of ``--threads``.
    quick_help : str, default="a short smoke run"
        What ``--quick`` does in this script, for ``--help``.

    Returns
    -------
    argparse.ArgumentParser
    """
    result = argparse.ArgumentParser(description=doc.splitlines()[0])
    common = result.add_argument_group("common benchmark flags")
    common.add_argument("--quick", action="store_true", help=quick_help)
    common.add_argument("--threads", type=int, default=default_threads,
                        help=f"torch intra-op threads (default {default_threads})")
    common.add_argument("--json", type=Path, metavar="PATH",
                        help="also write the printed results as JSON to PATH")
    return result


def setup(args, argv=None):
    """Set torch's intra-op threads to ``args.threads`` and note the run for :func:`write_json`.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by a :func:`parser`; gains the attributes ``argv`` and ``started``.
    argv : list of str, default=None
        What was parsed; defaults to ``sys.argv[1:]``.

    Returns
    -------
    args : argparse.Namespace
    """
    torch.set_num_threads(args.threads)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.started = time.perf_counter()
    return args


def threads_text(n, noun="thread"):
    """``'one thread'`` or ``'2 threads'``, for the scripts' header lines."""
    return f"one {noun}" if n == 1 else f"{n} {noun}s"


def plain(value):
    """``value`` with JSON's types: numbers as floats (NaN and infinities as None),
    arrays and tuples as lists, other objects as their ``str``."""
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (torch.Tensor, np.ndarray)):
        value = value.tolist()  # a 0-d array gives a scalar
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (int, float, np.number)):
        value = float(value)
        return value if math.isfinite(value) else None
    return str(value)


def write_json(args, results, **extra):
    """Write the run's record to ``args.json`` (nothing when it is None).

    The record holds ``script``, ``argv``, ``threads``, ``quick``, ``torch`` (its
    version), ``machine`` (``platform.platform()``, the architecture, the
    processor, the number of processors), ``seconds`` (since :func:`setup`) and
    ``results``, the printed rows as a list of dicts; ``extra`` adds further
    top-level keys.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by a :func:`parser` and passed through :func:`setup`.
    results : list of dict
        One dict per printed row, keyed by the printed column names.
    **extra
        Further top-level entries, such as a summary printed below a table.
    """
    if args.json is None:
        return
    record = {
        "script": Path(sys.argv[0]).name,
        "argv": args.argv,
        "threads": args.threads,
        "quick": args.quick,
        "torch": torch.__version__,
        "machine": {"platform": platform.platform(), "machine": platform.machine(),
                    "processor": platform.processor(), "cpu_count": os.cpu_count()},
        "seconds": time.perf_counter() - args.started,
        "results": plain(list(results)),
        **plain(extra),
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as file:
        json.dump(record, file, indent=1, allow_nan=False)
        file.write("\n")
    print(f"results written to {path}")
