"""Per-token heads: each cell's outputs come from its own token only (no spatial context).

``linear``: one linear map per token (the classic linear probe). ``mlp``: a 2-layer MLP per token (hidden
width ``probe.width``, ReLU). Both predict the grid targets of :mod:`.grid` (objectness, edge distances,
class logits), so a box extent must be readable from the single token at the box.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import DecodeConfig
from .grid import GridProbe


class LinearProbe(GridProbe):
    """``linear``: ``[B, gh, gw, C]`` -> ``[B, gh, gw, 5 + K]`` by one ``C -> 5 + K`` linear map per token."""

    def __init__(self, channels: int, n_classes: int, decoding: DecodeConfig) -> None:
        super().__init__(channels, n_classes, decoding)
        self.head = nn.Linear(channels, self.n_outputs)
        self.init_objectness_bias(self.head.bias)

    def cell_outputs(self, grid: torch.Tensor) -> torch.Tensor:
        return self.head(grid)  # [B, gh, gw, 5 + K]


class MlpProbe(GridProbe):
    """``mlp``: ``C -> width -> 5 + K`` with a ReLU, per token."""

    def __init__(self, channels: int, n_classes: int, decoding: DecodeConfig, width: int) -> None:
        super().__init__(channels, n_classes, decoding)
        self.hidden = nn.Linear(channels, width)
        self.head = nn.Linear(width, self.n_outputs)
        self.init_objectness_bias(self.head.bias)

    def cell_outputs(self, grid: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.hidden(grid)))  # [B, gh, gw, 5 + K]
