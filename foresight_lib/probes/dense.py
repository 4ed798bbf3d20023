"""``dense``: a small convolutional head over the whole grid (after probe3d's multiscale / DPT heads, kept small).

A 1x1 convolution projects each token to ``width`` channels (full resolution). Two stride-2 3x3 convolutions
take it to 1/2 and 1/4 resolution, where two residual dilated 3x3 convolutions (dilation 1 and 2) mix
context; the coarse maps are upsampled (bilinear) and added back level by level (a 3x3 convolution at 1/2),
then a 1x1 convolution gives the grid targets of :mod:`.grid` per cell. Every cell sees about +-23 cells
(322 px at stride 14, 644 px at stride 28): whole objects. GroupNorm + ReLU after every 3x3 convolution.
Almost all work is at 1/4 and 1/2 resolution, so the head costs little more than a linear probe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import DecodeConfig
from .grid import GridProbe


def _conv(width: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 convolution ``width -> width`` with GroupNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(width, width, 3, stride=stride, padding=dilation, dilation=dilation),
        nn.GroupNorm(min(8, width), width),
        nn.ReLU(),
    )


class DenseProbe(GridProbe):
    """``[B, gh, gw, C]`` -> ``[B, gh, gw, 5 + K]`` through a 3-level convolutional pyramid of ``width`` channels."""

    def __init__(self, channels: int, n_classes: int, decoding: DecodeConfig, width: int) -> None:
        super().__init__(channels, n_classes, decoding)
        self.project = nn.Conv2d(channels, width, kernel_size=1)
        self.down = nn.ModuleList([_conv(width, stride=2), _conv(width, stride=2)])
        self.context = nn.ModuleList([_conv(width, dilation=1), _conv(width, dilation=2)])
        self.fuse = _conv(width)
        self.head = nn.Conv2d(width, self.n_outputs, kernel_size=1)
        self.init_objectness_bias(self.head.bias)

    def cell_outputs(self, grid: torch.Tensor) -> torch.Tensor:
        full = self.project(grid.permute(0, 3, 1, 2))  # [B, width, gh, gw]
        half = self.down[0](full)  # [B, width, gh/2, gw/2]
        quarter = self.down[1](half)  # [B, width, gh/4, gw/4]
        for block in self.context:
            quarter = quarter + block(quarter)
        half = self.fuse(half + F.interpolate(quarter, size=half.shape[-2:], mode="bilinear"))  # [B, width, gh/2, gw/2]
        full = torch.relu(full + F.interpolate(half, size=full.shape[-2:], mode="bilinear"))  # [B, width, gh, gw]
        return self.head(full).permute(0, 2, 3, 1)  # [B, gh, gw, 5 + K]
