"""Which detections count: a detector's operating point, and its choice on validation.

An :class:`OperatingPoint` ``(score_threshold, max_boxes)`` keeps, of a frame's detections, those scoring at least
``score_threshold``, the ``max_boxes`` highest-scoring of them (ties: the earlier one first). :func:`kept_counts` is
the one rule: every user of an operating point (validation selection, test metrics, chance level, selectivity, the
decoded-video detector) counts detections through it, via :func:`asserted`. bbox IoU keeps its definition
(:func:`.boxes.bbox_iou`: every asserted box beyond a frame's object count scores 0), so at the point chosen on
validation it measures where a head's boxes are, not how many it emits.

The grid (``probe.score_thresholds`` x ``probe.max_boxes``) is fixed before training; :func:`choose` scores every
point of it on one split and returns the best (ties: the higher threshold, then the fewer boxes). A frame's kept
detections are always a prefix of its detections in score order, so each frame's IoU matrix is computed once and
one Hungarian matching is run per distinct kept count, not per grid point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import product

import numpy as np

from .boxes import FrameBoxes, iou_matrix, match_ious


@dataclass(frozen=True, order=True)
class OperatingPoint:
    """Count the detections scoring at least ``score_threshold``, at most ``max_boxes`` of them per frame."""

    score_threshold: float
    max_boxes: int

    def as_dict(self) -> dict[str, float | int]:
        return {"score_threshold": self.score_threshold, "max_boxes": self.max_boxes}


def grid(score_thresholds: Sequence[float], max_boxes: Sequence[int]) -> list[OperatingPoint]:
    """Every ``(threshold, count)`` pair, in a fixed order (thresholds, then counts, as given)."""
    return [OperatingPoint(float(t), int(k)) for t, k in product(score_thresholds, max_boxes)]


def score_order(scores: np.ndarray) -> np.ndarray:
    """``[M]`` indices of ``scores`` ``[M]`` from the highest score down (ties: the earlier first)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def kept_counts(sorted_scores: np.ndarray, points: Sequence[OperatingPoint]) -> np.ndarray:
    """THE rule: how many of a frame's detections count at each of ``points`` ``[G]``, its scores ``[M]`` sorted from
    the highest down: ``min(max_boxes, #(score >= score_threshold))``; the counted ones are the first so many."""
    descending = -np.asarray(sorted_scores, dtype=np.float64)  # [M] ascending
    thresholds = np.array([p.score_threshold for p in points], dtype=np.float64)  # [G]
    above = np.searchsorted(descending, -thresholds, side="right")  # [G]: scores >= threshold
    return np.minimum(above, np.array([p.max_boxes for p in points], dtype=np.int64))  # [G]


def asserted(frames: Sequence[FrameBoxes], points: OperatingPoint | Sequence[OperatingPoint]) -> list[FrameBoxes]:
    """``frames`` with only the detections that count at ``points`` (one point for every frame, or one per frame)."""
    per_frame = [points] * len(frames) if isinstance(points, OperatingPoint) else list(points)
    if len(per_frame) != len(frames):
        raise ValueError(f"{len(per_frame)} operating points for {len(frames)} frames")
    out = []
    for f, point in zip(frames, per_frame):
        order = score_order(f.pred_scores)  # [M]
        keep = order[: int(kept_counts(f.pred_scores[order], [point])[0])]  # [K]
        out.append(
            replace(
                f,
                pred_boxes=f.pred_boxes[keep],
                pred_scores=f.pred_scores[keep],
                pred_labels=None if f.pred_labels is None else f.pred_labels[keep],
            )
        )
    return out


def grid_ious(frames: Sequence[FrameBoxes], points: Sequence[OperatingPoint]) -> np.ndarray:
    """bbox IoU of ``frames`` at every one of ``points`` -> ``[G]``: equal to ``bbox_iou(asserted(frames, p))`` for each
    ``p`` (one IoU matrix per frame, one matching per distinct kept count). Raises ValueError without ground truth."""
    matched, slots = np.zeros(len(points)), np.zeros(len(points))  # [G], [G]
    n_objects = 0
    for f in frames:
        order = score_order(f.pred_scores)  # [M]
        counts = kept_counts(f.pred_scores[order], points)  # [G]
        n = len(f.gt_boxes)
        n_objects += n
        slots += np.maximum(counts, n)
        if n == 0:
            continue
        ious = iou_matrix(f.gt_boxes, f.pred_boxes[order])  # [N, M] columns in score order
        by_count = {m: float(match_ious(ious[:, :m])[2].sum()) if m else 0.0 for m in np.unique(counts).tolist()}
        matched += np.array([by_count[m] for m in counts.tolist()])
    if n_objects == 0:
        raise ValueError("bbox IoU is undefined: the frames hold no ground-truth object")
    return matched / slots


def choose(frames: Sequence[FrameBoxes], points: Sequence[OperatingPoint]) -> tuple[OperatingPoint, float]:
    """The point of ``points`` with the highest bbox IoU on ``frames`` (ties: the higher threshold, then the fewer
    boxes) and that IoU."""
    ious = grid_ious(frames, points)  # [G]
    best = max(range(len(points)), key=lambda g: (ious[g], points[g].score_threshold, -points[g].max_boxes))
    return points[best], float(ious[best])
