import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Two cores: recurrent loops slow down badly when threads oversubscribe.
    torch.set_num_threads(1)


@pytest.fixture
def float64():
    """Run a test with float64 as the default dtype (exactness checks), restoring the previous default."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
