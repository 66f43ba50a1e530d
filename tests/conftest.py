import os

import pytest
import torch

# Two cores: keep torch from oversubscribing them when pytest runs.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def torch_generator():
    return torch.Generator().manual_seed(0)
