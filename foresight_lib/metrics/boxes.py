"""Box utilities, the bbox IoU metric and its chance level.

Boxes are COCO ``[x, y, w, h]`` in pixels, float arrays ``[N, 4]``. IoU (:func:`box_iou`) is pycocotools'
box IoU (``bbIou``, no crowd) computed in numpy with the same float operations, so the same values: intersection
``w = min(x0 + w0, x1 + w1) - max(x0, x1)`` (likewise ``h``), 0 unless both are positive, else
``w * h / (area0 + area1 - w * h)``; a zero-area box has IoU 0 with everything. mAP (:mod:`.coco`) uses it too.

bbox IoU (the one definition) = per frame, match the N ground-truth boxes one-to-one to the M predictions
(Hungarian, maximising the total IoU) and sum the matched IoUs; divide the sum over all frames by the sum
over all frames of ``max(N, M)``. With M <= N this is the mean over objects of the matched IoU (an unmatched
object counts 0); every prediction beyond the frame's object count adds an empty slot, so a frame's share
can never exceed N / M: asserting extra boxes cannot raise the score (a prediction on a frame without
objects counts as a slot scoring 0).

chance bbox IoU (:func:`chance_iou`) = the same bbox IoU of random boxes at the asserted count: each
frame's M predictions replaced by M boxes whose sizes are drawn from the ground-truth boxes of all
frames and whose positions are uniform inside the frame (seeded).

best-box IoU = on frames with exactly one ground-truth object, the IoU of the single
highest-scoring prediction with it (0 if there is no prediction; on a score tie, the first);
mean over those frames.

Both use the predictions the caller passes: the probe has already thresholded / top-k'd them,
so the metric does not filter by score itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linear_sum_assignment


def _as_array(values: object, shape_tail: tuple[int, ...], name: str, dtype: type) -> np.ndarray:
    """``values`` as a ``dtype`` array of shape ``[K, *shape_tail]``; an empty input becomes ``[0, *shape_tail]``."""
    arr = np.asarray(values, dtype=dtype)
    if arr.size == 0:
        arr = arr.reshape((0, *shape_tail))
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        expected = ", ".join(["K", *map(str, shape_tail)])
        raise ValueError(f"{name} must have shape [{expected}] (got {list(arr.shape)})")
    return arr


def _as_boxes(boxes: object, name: str = "boxes") -> np.ndarray:
    arr = _as_array(boxes, (4,), name, np.float64)  # [N, 4]
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite")
    if (arr[:, 2:] < 0).any():
        raise ValueError(f"{name} must have non-negative width and height")
    return arr


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``[N, 4]`` ``[x, y, w, h]`` -> ``[N, 4]`` ``[x0, y0, x1, y1]``."""
    boxes = np.asarray(boxes, dtype=np.float64)  # [N, 4]
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """``[N, 4]`` ``[x0, y0, x1, y1]`` -> ``[N, 4]`` ``[x, y, w, h]``."""
    boxes = np.asarray(boxes, dtype=np.float64)  # [N, 4]
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def clip_boxes_xywh(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Clip ``[N, 4]`` xywh boxes to the image ``[0, width] x [0, height]``; a box outside gets zero size."""
    xyxy = xywh_to_xyxy(boxes)  # [N, 4]
    xyxy[:, 0::2] = np.clip(xyxy[:, 0::2], 0.0, width)
    xyxy[:, 1::2] = np.clip(xyxy[:, 1::2], 0.0, height)
    return xyxy_to_xywh(xyxy)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xywh boxes ``a`` ``[..., 4]`` and ``b`` ``[..., 4]`` (broadcast) -> ``[...]``: pycocotools' ``bbIou``."""
    w = np.minimum(a[..., 2] + a[..., 0], b[..., 2] + b[..., 0]) - np.maximum(a[..., 0], b[..., 0])  # [...]
    h = np.minimum(a[..., 3] + a[..., 1], b[..., 3] + b[..., 1]) - np.maximum(a[..., 1], b[..., 1])  # [...]
    overlap = (w > 0) & (h > 0)  # [...]
    inter = w * h  # [...]
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter  # [...]
    return np.divide(inter, union, out=np.zeros(overlap.shape), where=overlap)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` ``[N, 4]`` with every box of ``b`` ``[M, 4]`` (xywh) -> ``[N, M]``."""
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")  # [N, 4], [M, 4]
    return box_iou(a[:, None, :], b[None, :, :])


def match_boxes(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching of ``gt`` ``[N, 4]`` to ``pred`` ``[M, 4]`` that maximises the total IoU.

    Returns ``(gt_idx [P], pred_idx [P], ious [P])`` with ``P = min(N, M)`` pairs (Hungarian,
    scipy's ``linear_sum_assignment``); a pair may have IoU 0.
    """
    return match_ious(iou_matrix(gt, pred))


def match_ious(ious: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`match_boxes` from the IoU matrix ``[N, M]`` of ground truth and predictions: ``(gt_idx [P], pred_idx
    [P], ious [P])``, ``P = min(N, M)``."""
    gt_idx, pred_idx = linear_sum_assignment(ious, maximize=True)
    return gt_idx, pred_idx, ious[gt_idx, pred_idx]


def matched_iou_per_object(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``[N]``: per ground-truth box, the IoU of the prediction matched to it (:func:`match_boxes`); 0 if unmatched."""
    gt = _as_boxes(gt, "gt")  # [N, 4]
    out = np.zeros(len(gt), dtype=np.float64)  # [N]
    gt_idx, _, ious = match_boxes(gt, pred)
    out[gt_idx] = ious
    return out


@dataclass(frozen=True, eq=False)
class FrameBoxes:
    """Ground truth and predictions of one frame.

    Labels are optional integer category ids; they are needed only for class-aware mAP.
    """

    image_id: str
    clip_id: str
    height: int
    width: int
    gt_boxes: np.ndarray  # [N, 4] xywh
    pred_boxes: np.ndarray  # [M, 4] xywh
    pred_scores: np.ndarray  # [M]
    gt_labels: np.ndarray | None = None  # [N] int
    pred_labels: np.ndarray | None = None  # [M] int

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"frame {self.image_id}: height and width must be positive")
        gt = _as_boxes(self.gt_boxes, "gt_boxes")
        pred = _as_boxes(self.pred_boxes, "pred_boxes")
        scores = _as_array(self.pred_scores, (), "pred_scores", np.float64)
        if len(scores) != len(pred):
            raise ValueError(f"frame {self.image_id}: {len(pred)} pred_boxes but {len(scores)} pred_scores")
        object.__setattr__(self, "gt_boxes", gt)
        object.__setattr__(self, "pred_boxes", pred)
        object.__setattr__(self, "pred_scores", scores)
        for name, n in (("gt_labels", len(gt)), ("pred_labels", len(pred))):
            labels = getattr(self, name)
            if labels is None:
                continue
            labels = _as_array(labels, (), name, np.int64)
            if len(labels) != n:
                raise ValueError(f"frame {self.image_id}: {name} has {len(labels)} entries for {n} boxes")
            object.__setattr__(self, name, labels)


@dataclass(frozen=True, eq=False)
class BboxIouResult:
    """Dataset-level bbox IoU and best-box IoU, with per-item values and their clips for the bootstrap."""

    mean_iou: float  # bbox IoU: frame_matched.sum() / frame_slots.sum()
    frame_matched: np.ndarray  # [F] per frame, the sum of the matched IoUs
    frame_slots: np.ndarray  # [F] per frame, max(ground-truth count, prediction count)
    frame_clip_ids: np.ndarray  # [F] str
    object_ious: np.ndarray  # [K] matched IoU of every ground-truth object (0 if unmatched)
    object_clip_ids: np.ndarray  # [K] str
    best_box_iou: float  # mean of best_box_ious; NaN when no frame has exactly one object
    best_box_ious: np.ndarray  # [F1] one per single-object frame
    best_box_clip_ids: np.ndarray  # [F1] str


def bbox_iou(frames: Sequence[FrameBoxes]) -> BboxIouResult:
    """bbox IoU and best-box IoU over ``frames`` (definitions in the module docstring).

    Raises ValueError when the frames hold no ground-truth object.
    """
    object_ious, object_clips, best_ious, best_clips = [], [], [], []
    matched, slots = np.zeros(len(frames)), np.zeros(len(frames))  # [F], [F]
    for i, frame in enumerate(frames):
        object_ious.append(matched_iou_per_object(frame.gt_boxes, frame.pred_boxes))
        object_clips.extend([frame.clip_id] * len(frame.gt_boxes))
        matched[i] = object_ious[-1].sum()
        slots[i] = max(len(frame.gt_boxes), len(frame.pred_boxes))
        if len(frame.gt_boxes) == 1:
            best = 0.0
            if len(frame.pred_boxes):
                top = frame.pred_boxes[np.argmax(frame.pred_scores)][None]  # [1, 4]
                best = float(iou_matrix(frame.gt_boxes, top)[0, 0])
            best_ious.append(best)
            best_clips.append(frame.clip_id)
    ious = np.concatenate(object_ious) if object_ious else np.zeros(0)  # [K]
    if len(ious) == 0:
        raise ValueError("bbox IoU is undefined: the frames hold no ground-truth object")
    best_arr = np.asarray(best_ious, dtype=np.float64)  # [F1]
    return BboxIouResult(
        mean_iou=float(matched.sum() / slots.sum()),
        frame_matched=matched,
        frame_slots=slots,
        frame_clip_ids=np.asarray([f.clip_id for f in frames], dtype=str),
        object_ious=ious,
        object_clip_ids=np.asarray(object_clips, dtype=str),
        best_box_iou=float(best_arr.mean()) if len(best_arr) else float("nan"),
        best_box_ious=best_arr,
        best_box_clip_ids=np.asarray(best_clips, dtype=str),
    )


def random_boxes(frames: Sequence[FrameBoxes], seed: int) -> list[FrameBoxes]:
    """``frames`` with each frame's M predictions replaced by M random boxes (scores 1, no labels): sizes drawn
    from the ground-truth boxes of all frames, positions uniform inside the frame. Deterministic per ``seed``.

    Raises ValueError when the frames hold no ground-truth box (no size to draw).
    """
    sizes = np.concatenate([f.gt_boxes[:, 2:] for f in frames]) if frames else np.zeros((0, 2))  # [K, 2]
    if len(sizes) == 0:
        raise ValueError("random boxes need ground-truth boxes to draw their sizes from")
    rng = np.random.default_rng(seed)
    out = []
    for f in frames:
        m = len(f.pred_boxes)
        wh = np.minimum(sizes[rng.integers(0, len(sizes), size=m)], [f.width, f.height])  # [M, 2]
        xy = rng.uniform(size=(m, 2)) * ([f.width, f.height] - wh)  # [M, 2]
        out.append(replace(f, pred_boxes=np.concatenate([xy, wh], axis=1), pred_scores=np.ones(m), pred_labels=None))
    return out


def chance_iou(frames: Sequence[FrameBoxes], seed: int) -> float:
    """Chance bbox IoU of ``frames``: :func:`bbox_iou` of :func:`random_boxes` at each frame's prediction count."""
    return bbox_iou(random_boxes(frames, seed)).mean_iou
