import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread():
    # On two busy cores, two intra-op threads made small trainings many times slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
