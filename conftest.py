"""pytest settings for every test: tests/, the package's doctests, README.rst and the
user guide's pages."""

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread():
    # On two busy cores, two intra-op threads made small trainings many times slower;
    # the suite's timings should not depend on the neighbours. CI runs the suite a
    # second time with DNN2GP_TEST_THREADS=2, so that a tolerance which holds only for
    # one summation order (one thread's) is caught.
    previous = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("DNN2GP_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(previous)
