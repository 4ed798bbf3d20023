"""The data's prior as a control: the best constant prediction learnt from the train split.

Every target frame gets the same ``k`` boxes: the mean (x, y, w, h) of every ground-truth box in the train split's
target frames, repeated ``k`` times (score 1, the train split's most frequent class), ``k`` of ``probe.max_boxes``
chosen on the validation bbox IoU (:func:`foresight_lib.metrics.operating.choose`; ties: the fewer boxes). It is
scored like a head on the same test frames (:func:`.evaluate.spatial_metrics`: bbox IoU at its operating point with
chance level, mAP, intervals). It reads what knowing where objects usually are, and how many, earns without any
feature: near chance on the synthetic benchmark (objects placed uniformly), and a real share of IoU on real clips
whose objects are large and central.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..metrics.operating import OperatingPoint, choose, grid
from ..params import ProbeParams
from .base import Detections
from .data import ProbeData
from .evaluate import FramePrediction, frame_boxes, spatial_metrics


def mean_train_box(data: ProbeData) -> tuple[np.ndarray, int]:
    """The mean xywh box ``[4]`` over every ground-truth box of the train split's target frames, and their most
    frequent class index."""
    boxes, labels = [], []
    for clip in data.splits["train"]:
        for slot in range(data.n_slots):
            b, l = data.targets(int(clip), slot)
            boxes.append(b)
            labels.append(l)
    all_boxes, all_labels = np.concatenate(boxes), np.concatenate(labels)  # [K, 4], [K]
    return all_boxes.mean(axis=0), int(np.bincount(all_labels).argmax())


def constant_predictions(data: ProbeData, split: str, box: np.ndarray, label: int, k: int) -> list[FramePrediction]:
    """``k`` copies of ``box`` on every target frame of ``split`` (clip then slot order, as the heads are tested)."""
    detections = Detections(
        boxes=np.repeat(box[None], k, axis=0), scores=np.ones(k), labels=np.full(k, label, dtype=np.int64)
    )
    return [
        FramePrediction(int(clip), data.slot_frames[slot], detections)
        for clip in data.splits[split]
        for slot in range(data.n_slots)
    ]


def prior_metrics(data: ProbeData, params: ProbeParams) -> tuple[dict[str, Any], float, list[FramePrediction]]:
    """The prior's test metrics (``box``, ``operating_point``, ``val_bbox_iou`` beside them), its validation bbox IoU
    and its test predictions."""
    box, label = mean_train_box(data)
    counts: Sequence[OperatingPoint] = grid([1.0], params.max_boxes)  # score 1: only the count decides
    val = constant_predictions(data, "val", box, label, max(params.max_boxes))
    point, val_iou = choose(frame_boxes(data.truth, val), counts)
    test = constant_predictions(data, "test", box, label, point.max_boxes)
    metrics = spatial_metrics(data.truth, {0: test}, {0: point}, params.bootstrap, params.bootstrap_map, params.seed)
    for key in ("seeds", "n_seeds"):
        metrics.pop(key)
    return (
        {**metrics, "box": box.tolist(), "operating_point": point.as_dict(), "val_bbox_iou": val_iou},
        val_iou,
        test,
    )
