"""Spatial predictions and their metrics (every number from :mod:`foresight_lib.metrics`).

Which detections count:
- ``bbox_iou`` (also reported on the validation split as ``val_bbox_iou``) uses only the detections scoring at least
  ``probe.score_threshold``: the Hungarian matching of bbox IoU must see what the probe asserts, not hundreds
  of low-score boxes that would let it pick a lucky one.
- ``best_box_iou`` (frames with exactly one object) uses the single highest-scoring detection, whatever
  its score; ``map*`` use every decoded detection (score >= ``probe.min_score``, at most
  ``probe.max_detections`` per frame) with its score.

Names: ``map50_class_agnostic`` / ``map_class_agnostic`` score boxes alone (every box one category: where
things are), ``map50_class_aware`` / ``map_class_aware`` also need the right class (category ids of the
annotations). ``bbox_iou_chance`` is bbox IoU's chance level (random boxes at the asserted count,
:func:`..metrics.boxes.chance_iou`). ``<metric>_ci`` is the 95% bias-corrected bootstrap interval over clips
(:mod:`..metrics.bootstrap`, seeded by ``probe.seed``): ``probe.bootstrap`` resamples for IoUs, ``probe.bootstrap_map`` for mAPs (each one
COCOeval per flavour; 0 writes null intervals). IoU intervals resample the clips that hold the metric's items
(objects, single-object frames); mAP intervals resample every test clip, and are NaN (written null) if a resample
has no ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from ..metrics.boxes import FrameBoxes, bbox_iou
from ..metrics.detection import detection_metrics
from ..params import ProbeParams
from .base import Detections, SpatialProbe
from .data import ProbeData

PREDICTION_COLUMNS: tuple[str, ...] = ("clip", "frame", "head", "x", "y", "w", "h", "score", "label")


@dataclass(frozen=True)
class FramePrediction:
    """A head's detections on one sample's target frame."""

    clip: int
    frame: int
    detections: Detections


@torch.no_grad()
def predict(probe: SpatialProbe, data: ProbeData, split: str, shuffled: bool) -> list[FramePrediction]:
    """Decoded detections of every sample of ``split``, in clip then slot order."""
    probe.eval()
    out = []
    for batch in data.batches(split, shuffled):
        detections = probe.decode(probe(batch.grids), data.stride)
        out.extend(FramePrediction(int(c), data.slot_frames[int(t)], d)
                   for c, t, d in zip(batch.clips, batch.slots, detections))
    return out


@torch.no_grad()
def mean_loss(probe: SpatialProbe, data: ProbeData, split: str, shuffled: bool) -> float:
    """The probe's training loss averaged over the samples of ``split`` (the validation score of :func:`~.train.fit`)."""
    probe.eval()
    total, count = 0.0, 0
    for batch in data.batches(split, shuffled):
        total += probe.loss(probe(batch.grids), data.box_targets(batch)).item() * len(batch.clips)
        count += len(batch.clips)
    return total / count


def frame_boxes(data: ProbeData, predictions: Sequence[FramePrediction], min_score: float) -> list[FrameBoxes]:
    """Ground truth and the detections scoring at least ``min_score`` of every predicted frame; labels are category ids."""
    frames = []
    for p in predictions:
        gt_boxes, gt_classes = data.truth.frame(p.clip, p.frame)
        keep = p.detections.scores >= min_score  # [M]
        frames.append(FrameBoxes(
            image_id=f"{p.clip}:{p.frame}", clip_id=str(p.clip), height=data.truth.height, width=data.truth.width,
            gt_boxes=gt_boxes, pred_boxes=p.detections.boxes[keep], pred_scores=p.detections.scores[keep],
            gt_labels=gt_classes + 1, pred_labels=p.detections.labels[keep] + 1,
        ))
    return frames


def asserted_iou(data: ProbeData, predictions: Sequence[FramePrediction], params: ProbeParams) -> float:
    """bbox IoU of the detections scoring at least ``probe.score_threshold``."""
    return bbox_iou(frame_boxes(data, predictions, params.score_threshold)).mean_iou


def spatial_metrics(data: ProbeData, predictions: Sequence[FramePrediction], params: ProbeParams,
                    map_intervals: bool = True) -> dict[str, Any]:
    """bbox IoU, best-box IoU and class-agnostic / class-aware mAP@0.5 and mAP, with bootstrap intervals
    (:func:`foresight_lib.metrics.detection.detection_metrics`, the one definition).

    ``map_intervals=False`` leaves the mAP intervals NaN (the shuffled control: a point estimate is all it
    needs, and the mAP bootstrap is most of a probe stage's evaluation time)."""
    return detection_metrics(frame_boxes(data, predictions, 0.0), params.score_threshold, params.bootstrap,
                             params.bootstrap_map if map_intervals else 0, params.seed)


def prediction_rows(predictions: Sequence[FramePrediction], head: str) -> pd.DataFrame:
    """One row per decoded detection: ``clip, frame, head, x, y, w, h`` (px), ``score, label`` (category id)."""
    rows = [(p.clip, p.frame, head, *box, score, label + 1)
            for p in predictions
            for box, score, label in zip(p.detections.boxes.tolist(), p.detections.scores.tolist(),
                                         p.detections.labels.tolist())]
    return pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
