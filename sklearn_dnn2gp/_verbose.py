"""Progress a user can read: the phases of a fit with their times, and at most a
few dozen lines for an iterative phase however many iterations it runs."""

import math
import time
from contextlib import contextmanager

# Lines per iterative phase at verbose=1 (more at verbose >= 2).
_LINES = {1: 20, 2: 100}
# And a line at least this often: 5,000 epochs of 3 s each made 12 silent minutes.
PROGRESS_SECONDS = 10.0


class Progress:
    """Print an iterative phase's objective at the first iteration, evenly spaced
    iterations after it, the last one (``update(..., final=True)``) and whenever
    ``interval`` seconds have passed since the last line."""

    def __init__(self, verbose, name, max_iter, unit, interval=None):
        self.verbose = int(verbose)
        self.name, self.max_iter, self.unit = name, max_iter, unit
        lines = _LINES[min(max(self.verbose, 1), 2)]
        self.every = max(1, math.ceil(max_iter / lines))
        self.start = self.printed = time.perf_counter()
        self.interval = PROGRESS_SECONDS if interval is None else interval
        self.last = None

    def update(self, iteration, value, final=False):
        if not self.verbose or iteration == self.last:
            return
        now = time.perf_counter()
        if (final or iteration == 1 or iteration % self.every == 0
                or now - self.printed >= self.interval):
            self.last, self.printed = iteration, now
            elapsed = now - self.start
            print(f"  {self.name} {self.unit} {iteration:>{len(str(self.max_iter))}}"
                  f"/{self.max_iter}: objective {value:.6g} ({elapsed:.1f} s)", flush=True)


@contextmanager
def phase(verbose, owner, description):
    """Announce a phase of a fit and report its time when it ends."""
    if not verbose:
        yield
        return
    print(f"[{owner}] {description}...", flush=True)
    start = time.perf_counter()
    yield
    print(f"[{owner}] {description}: done in {time.perf_counter() - start:.2f} s", flush=True)
