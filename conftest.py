"""pytest settings for the doctests of README.rst (tests/ has its own conftest)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _readme_runs_on_one_torch_thread(request):
    # The README's networks are tiny: on a busy two-core machine torch's default
    # two intra-op threads made them about ten times slower than one.
    if request.node.path.name != "README.rst":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
