"""Fixtures of the fergen_train tests."""

import pytest
import torch

from .synthetic import SquaresDataset


@pytest.fixture(autouse=True, scope="session")
def single_torch_thread():
    """Run the tiny test models on one thread.

    Their convolutions are too small to gain from more, and on a busy machine
    extra OpenMP threads spin while they wait for cores (five times slower
    per step in one measurement with 2 threads on 2 shared cores).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def squares():
    return SquaresDataset()
