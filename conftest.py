"""pytest settings for every test: tests/, the package's doctests and README.rst."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread():
    # On two busy cores, two intra-op threads made small trainings many times slower;
    # the suite's timings should not depend on the neighbours.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
