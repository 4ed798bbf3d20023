"""The spatial probe heads by name (``probe.heads``)."""

from __future__ import annotations

from ..params import ProbeParams
from .base import DecodeConfig, SpatialProbe
from .dense import DenseProbe
from .detr import DetrProbe
from .linear import LinearProbe, MlpProbe


def decode_config(params: ProbeParams) -> DecodeConfig:
    """The detections every head returns, from ``probe.min_score``, ``max_detections`` and ``nms_iou``."""
    return DecodeConfig(min_score=params.min_score, max_detections=params.max_detections, nms_iou=params.nms_iou)


def make_probe(head: str, channels: int, n_classes: int, params: ProbeParams) -> SpatialProbe:
    """A freshly initialised ``head`` (``linear``, ``mlp``, ``dense`` or ``detr``); seed the torch RNG first."""
    decoding = decode_config(params)
    if head == "linear":
        return LinearProbe(channels, n_classes, decoding)
    if head == "mlp":
        return MlpProbe(channels, n_classes, decoding, params.width)
    if head == "dense":
        return DenseProbe(channels, n_classes, decoding, params.width)
    if head == "detr":
        return DetrProbe(channels, n_classes, decoding, params.width, params.detr_queries, params.detr_layers)
    raise ValueError(f"unknown probe head {head!r}")
