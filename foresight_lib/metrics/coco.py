"""COCO box mAP, the project's one definition: pycocotools' COCOeval (bbox) re-implemented in numpy.

``map50`` = AP at IoU 0.5 (COCOeval ``stats[1]``); ``map`` = AP averaged over the IoU thresholds
0.50:0.05:0.95 (``stats[0]``); area range "all", at most 100 detections per frame and category (maxDets), no
crowd boxes. Frames are the images, numbered by their position in the sequence, so a frame passed twice (a clip
drawn twice by the bootstrap) is two distinct images. Every value comes from the same float operations as in
pycocotools 2.0.11, so the numbers are its numbers (``tests/test_metrics_coco.py`` checks them to the bit):

- Categories: those with ground truth in the frames (class-agnostic: every box in category 1); detections of
  any other category are dropped. Area = ``w * h``; a ground-truth box with area above 1e10 (outside "all") is
  *ignored*, as is an unmatched detection with such an area.
- Per frame and category: detections sorted by score, highest first (stable: ties keep the frame's order), the
  first 100 kept; ground truth in the frame's order. IoU is :func:`.boxes.box_iou`.
- Matching, per IoU threshold ``t``, detections in that order: a detection takes, among the still unmatched
  ground-truth boxes with IoU >= ``t`` (not-ignored ones if there are any), the one with the highest IoU (on a
  tie, the last); a detection matched to an ignored box is ignored.
- Per category, over the frames: every kept detection, frame after frame, stably sorted by score, highest first;
  cumulative TP and FP counts (ignored detections are neither); recall = TP / (not-ignored ground-truth boxes),
  precision = TP / (TP + FP + eps) (eps = 2.2e-16) made non-increasing from the right; at each of the 101 recall
  points 0:0.01:1 the precision of the first detection whose recall reaches it (0 past the last recall).
- AP: the mean of those precisions over the recall points and the categories with not-ignored ground truth in
  the frames (and over the thresholds for ``map``). No detection at all gives 0; the mean over no category
  (all ground truth ignored) is NaN; no ground-truth box at all raises ValueError.

A frame's matching does not depend on the other frames, so :class:`CocoEvaluation` matches once and
:meth:`CocoEvaluation.map` redoes only the per-category accumulation for any multiset of frames (the bootstrap).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .boxes import FrameBoxes, box_iou

# COCOeval's Params, built the same way (np.arange would drift).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)  # [T]
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)  # [R]
MAX_DETECTIONS = 100
MAX_AREA = 1e5**2  # area range "all" = [0, 1e10]


def _labels(labels: np.ndarray | None, n: int, class_agnostic: bool, what: str) -> np.ndarray:
    """``[n]`` category ids: all 1 when class-agnostic, else the frame's labels (which must exist)."""
    if class_agnostic:
        return np.ones(n, dtype=np.int64)
    if labels is None:
        raise ValueError(f"class-aware mAP needs {what} on every frame (or pass class_agnostic=True)")
    return labels


def _match(
    dt_boxes: np.ndarray,
    dt_start: np.ndarray,
    dt_count: np.ndarray,
    gt_boxes: np.ndarray,
    gt_valid: np.ndarray,
    gt_ignored: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's greedy matching of U (frame, category) units at once, one detection rank at a time.

    Unit ``u`` holds the detections ``dt_boxes[dt_start[u]:dt_start[u] + dt_count[u]]`` (score order) and the
    ground truth ``gt_boxes[u]`` ``[U, G, 4]`` where ``gt_valid[u]`` (padding elsewhere). Returns
    ``(matched, ignored)``, each ``[T, D]`` over the detections: matched to a ground-truth box at each threshold;
    ignored (matched to an ignored box, or unmatched with area above 1e10).
    """
    n_t, n_units, width = len(IOU_THRESHOLDS), len(dt_count), gt_boxes.shape[1]
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[None, :, None]  # [1, T, 1]
    matched = np.zeros((n_t, len(dt_boxes)), dtype=bool)  # [T, D]
    ignored = np.zeros((n_t, len(dt_boxes)), dtype=bool)  # [T, D]
    taken = np.zeros((n_units, n_t, width), dtype=bool)  # [U, T, G]
    by_count = np.argsort(-dt_count, kind="stable")  # units with a detection at rank r come first
    gt_boxes, gt_valid, gt_ignored = gt_boxes[by_count], gt_valid[by_count], gt_ignored[by_count]  # [U, G, 4], [U, G]
    starts = dt_start[by_count]  # [U]
    active = np.cumsum(np.bincount(dt_count, minlength=MAX_DETECTIONS + 1)[::-1])[::-1]  # [101]: units with >= r
    for rank in range(int(dt_count.max(initial=0)) if width else 0):
        n = int(active[rank + 1])  # units with a detection at this rank: a prefix
        dets = starts[:n] + rank  # [n]
        ious = box_iou(dt_boxes[dets][:, None, :], gt_boxes[:n])[:, None, :]  # [n, 1, G]
        free = (ious >= thresholds) & gt_valid[:n, None, :] & ~taken[:n]  # [n, T, G]
        regular = free & ~gt_ignored[:n, None, :]  # [n, T, G]
        pool = np.where(regular.any(axis=2, keepdims=True), regular, free)  # [n, T, G]
        best = np.where(pool, ious, -np.inf).max(axis=2, initial=-np.inf)  # [n, T]
        last = width - 1 - np.argmax((pool & (ious == best[..., None]))[..., ::-1], axis=2)  # [n, T]
        unit, t = np.nonzero(pool.any(axis=2))  # [P], [P]
        taken[unit, t, last[unit, t]] = True
        matched[t, dets[unit]] = True
        ignored[t, dets[unit]] = gt_ignored[unit, last[unit, t]]
    area = dt_boxes[:, 2] * dt_boxes[:, 3]  # [D]
    ignored |= ~matched & ((area < 0) | (area > MAX_AREA))[None, :]
    return matched, ignored


def _sampled_precision(status: np.ndarray, n_gt: int) -> np.ndarray:
    """COCOeval.accumulate's precision ``[T, R]`` at the 101 recall points, per threshold, of detections ranked by
    score with ``status`` ``[T, N]`` (1 TP, 0 FP, -1 ignored) against ``n_gt`` ground-truth boxes, from the TPs.

    Recall and precision change only at a TP: the first detection reaching a recall point (> 0) is a TP, and the
    envelope (the highest precision from a detection on) is attained at a TP, as precision falls between two TPs;
    at recall point 0 it is the highest precision of all (0 without TP). The values are COCOeval's float
    operations on the TPs: ``tp / n_gt`` and ``tp / (fp + tp + eps)``.
    """
    n_t, n = status.shape
    hit_t, hit_rank = np.nonzero(status == 1)  # [M] TPs, by threshold then rank
    ignored = np.flatnonzero(status.ravel() < 0)  # [I] flat positions of ignored detections
    per_t = np.bincount(hit_t, minlength=n_t)  # [T] TPs per threshold
    tp = np.arange(len(hit_t)) - np.repeat(np.cumsum(per_t) - per_t, per_t) + 1  # [M] TPs up to each TP
    ignored_before = np.searchsorted(ignored, hit_t * n + hit_rank) - np.searchsorted(ignored, hit_t * n)  # [M]
    counted = hit_rank + 1 - ignored_before  # [M] TP + FP up to each TP
    envelope = np.zeros((n_t, int(per_t.max(initial=0)) + 1))  # [T, m + 1]; 0 past the last TP
    envelope[hit_t, tp - 1] = tp / (counted + np.spacing(1))
    envelope = np.maximum.accumulate(envelope[:, ::-1], axis=1)[:, ::-1]  # [T, m + 1]
    # the j-th TP's recall is j / n_gt at every threshold (past a threshold's last TP its envelope is 0)
    return envelope[:, np.searchsorted(np.arange(1, envelope.shape[1]) / n_gt, RECALL_POINTS, side="left")]


class CocoEvaluation:
    """The per-image matching of ``frames``, done once; mAP (module docstring) of any multiset of those frames.

    :meth:`map` with frame indices (repeats allowed) equals the mAP of those frames passed afresh: only the
    per-category accumulation is redone, in a few vectorised operations per category.
    """

    def __init__(self, frames: Sequence[FrameBoxes], class_agnostic: bool = False) -> None:
        self.n_frames = n_frames = len(frames)
        gt_cats = [_labels(f.gt_labels, len(f.gt_boxes), class_agnostic, "gt_labels") for f in frames]
        dt_cats = [_labels(f.pred_labels, len(f.pred_boxes), class_agnostic, "pred_labels") for f in frames]
        gt_frame = np.repeat(np.arange(n_frames), [len(f.gt_boxes) for f in frames])  # [G]
        dt_frame = np.repeat(np.arange(n_frames), [len(f.pred_boxes) for f in frames])  # [D]
        gt_boxes = np.concatenate([f.gt_boxes for f in frames] or [np.zeros((0, 4))])  # [G, 4]
        dt_boxes = np.concatenate([f.pred_boxes for f in frames] or [np.zeros((0, 4))])  # [D, 4]
        dt_scores = np.concatenate([f.pred_scores for f in frames] or [np.zeros(0)])  # [D]
        gt_cat = np.concatenate(gt_cats or [np.zeros(0, np.int64)]).astype(np.int64)  # [G]
        dt_cat = np.concatenate(dt_cats or [np.zeros(0, np.int64)]).astype(np.int64)  # [D]
        self._has_gt = np.bincount(gt_frame, minlength=n_frames) > 0  # [F]
        self._any_detection = len(dt_boxes) > 0

        categories = np.unique(gt_cat)  # [K]
        gt_k = np.searchsorted(categories, gt_cat)  # [G]
        area = gt_boxes[:, 2] * gt_boxes[:, 3]  # [G]
        gt_ignored = (area < 0) | (area > MAX_AREA)  # [G]
        # not-ignored ground-truth boxes per category and frame
        self._n_gt = np.zeros((len(categories), n_frames), dtype=np.int64)  # [K, F]
        np.add.at(self._n_gt, (gt_k[~gt_ignored], gt_frame[~gt_ignored]), 1)

        kept = np.isin(dt_cat, categories)  # [D]: other categories are dropped
        dt_frame, dt_boxes, dt_scores = dt_frame[kept], dt_boxes[kept], dt_scores[kept]
        dt_k = np.searchsorted(categories, dt_cat[kept])  # [D]
        order = np.argsort(-dt_scores, kind="mergesort")  # [D]: score order, ties in the frames' order
        order = order[np.argsort((dt_k * n_frames + dt_frame)[order], kind="mergesort")]  # by (category, frame)
        dt_frame, dt_boxes, dt_scores, dt_k = dt_frame[order], dt_boxes[order], dt_scores[order], dt_k[order]
        units, first, counts = np.unique(dt_k * n_frames + dt_frame, return_index=True, return_counts=True)  # [U]
        rank = np.arange(len(dt_k)) - np.repeat(first, counts)  # [D]
        keep = rank < MAX_DETECTIONS
        dt_frame, dt_boxes, dt_scores, dt_k = dt_frame[keep], dt_boxes[keep], dt_scores[keep], dt_k[keep]
        dt_count = np.minimum(counts, MAX_DETECTIONS)  # [U]
        dt_start = np.cumsum(dt_count) - dt_count  # [U]

        # each unit's ground truth in the frame's order, padded
        gt_order = np.argsort(gt_k * n_frames + gt_frame, kind="mergesort")  # [G]
        gt_keys = (gt_k * n_frames + gt_frame)[gt_order]  # [G] sorted
        gt_start = np.searchsorted(gt_keys, units, side="left")  # [U]
        gt_count = np.searchsorted(gt_keys, units, side="right") - gt_start  # [U]
        slot = np.arange(int(gt_count.max(initial=0)))  # [Gmax]
        valid = slot[None, :] < gt_count[:, None]  # [U, Gmax]
        pick = gt_order[np.where(valid, gt_start[:, None] + slot[None, :], 0)]  # [U, Gmax]
        matched, ignored = _match(dt_boxes, dt_start, dt_count, gt_boxes[pick], valid, gt_ignored[pick])  # [T, D]

        self._status = np.where(ignored, -1, matched).astype(np.int8)  # [T, D]: 1 TP, 0 FP, -1 ignored
        self._score_rank = np.unique(-dt_scores, return_inverse=True)[1]  # [D]: 0 = highest score, ties share
        # detections of category k in frame f: [start[k, f], start[k, f] + count[k, f])
        key = dt_k * n_frames + dt_frame  # [D] sorted
        cells = np.arange(len(categories) * n_frames).reshape(len(categories), n_frames)  # [K, F]
        self._start = np.searchsorted(key, cells, side="left")  # [K, F]
        self._count = np.searchsorted(key, cells, side="right") - self._start  # [K, F]

    def map(self, indices: Sequence[int] | None = None) -> dict[str, float]:
        """``{"map50", "map"}`` of the frames at ``indices`` (0-based, repeats count again; all when None).

        Raises ValueError when the selected frames hold no ground-truth box (AP undefined).
        """
        idx = np.arange(self.n_frames) if indices is None else np.asarray(indices, dtype=np.int64)  # [S]
        if not self._has_gt[idx].any():
            raise ValueError("mAP is undefined: the frames hold no ground-truth box")
        if not self._any_detection:
            return {"map50": 0.0, "map": 0.0}
        n_gt = self._n_gt[:, idx].sum(axis=1)  # [K]
        counts = self._count[:, idx]  # [K, S]
        if not n_gt.any():  # all the selected ground truth is ignored: a mean over no category
            return {"map50": float("nan"), "map": float("nan")}
        precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_POINTS), len(n_gt)))  # [T, R, K]; -1: no gt
        for k in np.flatnonzero(n_gt):
            n = int(counts[k].sum())
            # the selected frames' detections, frame after frame, then stably by score (a unique integer key)
            offsets = self._start[k, idx] - (np.cumsum(counts[k]) - counts[k])  # [S]
            dets = np.repeat(offsets, counts[k]) + np.arange(n)  # [N]
            dets = dets[np.argsort(self._score_rank[dets] * n + np.arange(n))]
            precision[:, :, k] = _sampled_precision(self._status[:, dets], int(n_gt[k]))
        at50 = precision[IOU_THRESHOLDS == 0.5][0]  # [R, K]
        # COCOeval.summarize's averages, over the categories with ground truth
        return {"map50": float(at50[at50 > -1].mean()), "map": float(precision[precision > -1].mean())}


def coco_map(frames: Sequence[FrameBoxes], class_agnostic: bool = False) -> dict[str, float]:
    """``{"map50": AP@0.5, "map": AP@[.5:.95]}`` of the frames' predictions against their ground truth.

    Class-aware mode uses ``gt_labels`` / ``pred_labels``; ``class_agnostic=True`` puts every box in
    category 1. No prediction at all gives AP 0. Raises ValueError when there is no ground-truth box
    at all (COCO's AP is undefined then).
    """
    return CocoEvaluation(frames, class_agnostic).map()
