"""Fixtures of the fergen_train tests."""

import pytest

from .synthetic import SquaresDataset


@pytest.fixture
def squares():
    return SquaresDataset()
