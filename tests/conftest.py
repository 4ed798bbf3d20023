"""Shared fixtures. Tests build their own tiny models and data with the real code."""

from __future__ import annotations

import pytest
import torch
from helpers import small_params

from foresight_lib.params import Params

torch.set_num_threads(2)


@pytest.fixture
def params() -> Params:
    return small_params()
