import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Two cores: recurrent loops slow down badly when threads oversubscribe.
    torch.set_num_threads(1)
