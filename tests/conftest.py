import os

import pytest
import torch

# CI has 2 cores; keep intra-op threads bounded so parallel helpers/tests don't thrash.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
