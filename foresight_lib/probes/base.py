"""The one interface every spatial probe head implements, and what flows through it.

A head maps a standardised grid ``[B, gh, gw, C]`` to raw outputs, scores them against boxes in pixels, and
decodes them to per-frame detections. It never knows which model made the grid: box geometry comes only
from the stride (pixels per cell) passed in with the targets and to :meth:`SpatialProbe.decode`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torchvision.ops import box_convert


@dataclass(frozen=True)
class BoxTargets:
    """Ground truth of a batch: per frame, boxes in pixels and class indices (``category_id - 1``)."""

    boxes: list[torch.Tensor]  # B x [N_i, 4] xywh px
    labels: list[torch.Tensor]  # B x [N_i] long
    stride: int  # pixels per grid cell
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # per-batch targets a head derives, shared


@dataclass(frozen=True)
class DecodeConfig:
    """Which decoded boxes a head returns: score >= ``min_score``, at most ``max_detections`` per frame."""

    min_score: float
    max_detections: int
    nms_iou: float  # grid heads only: NMS IoU threshold


@dataclass(frozen=True)
class Detections:
    """Decoded boxes of one frame, highest score first."""

    boxes: np.ndarray  # [M, 4] xywh px
    scores: np.ndarray  # [M] in [0, 1]
    labels: np.ndarray  # [M] class index (category_id - 1)


class SpatialProbe(nn.Module, ABC):
    """A box-probe head over a grid of ``channels``-wide tokens with ``n_classes`` object classes."""

    def __init__(self, channels: int, n_classes: int, decoding: DecodeConfig) -> None:
        super().__init__()
        self.channels, self.n_classes, self.decoding = channels, n_classes, decoding

    @abstractmethod
    def forward(self, grid: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw outputs for a standardised grid ``[B, gh, gw, C]``."""

    @abstractmethod
    def loss(self, outputs: dict[str, torch.Tensor], targets: BoxTargets) -> torch.Tensor:
        """Scalar training loss of ``outputs`` against ``targets``."""

    @abstractmethod
    def decode(self, outputs: dict[str, torch.Tensor], stride: int, at_least: float = 0.0) -> list[Detections]:
        """Per-frame detections (pixels of a ``gh*stride`` x ``gw*stride`` frame), as :attr:`decoding` says; with
        ``at_least``, only those scoring at least that: exactly the full decode's, filtered (cheaper where a head
        can skip the rest, as selection on the asserted boxes' IoU needs every epoch)."""


def to_detections(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, height: int, width: int, max_detections: int
) -> Detections:
    """xyxy ``[M, 4]`` boxes clipped to the frame, the ``max_detections`` best by score, as :class:`Detections`."""
    order = torch.argsort(scores, descending=True, stable=True)[:max_detections]  # [M']
    xyxy = boxes[order].clone()  # [M', 4]
    xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, width)
    xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, height)
    xyxy[:, 2:] = torch.maximum(xyxy[:, 2:], xyxy[:, :2])
    return Detections(
        boxes=box_convert(xyxy, "xyxy", "xywh").double().numpy(),
        scores=scores[order].double().numpy(),
        labels=labels[order].long().numpy(),
    )
