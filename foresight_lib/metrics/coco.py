"""COCO box mAP via pycocotools' COCOeval, built in memory.

``map50`` = AP at IoU 0.5 (``stats[1]``); ``map`` = AP averaged over IoU 0.50:0.05:0.95
(``stats[0]``); area range "all", at most 100 predictions per frame (COCO's maxDets), AP averaged
over the categories that have ground truth. Frames are numbered 1..F by their position in the
sequence, so a frame passed twice (a clip drawn twice by the bootstrap) is two distinct images.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .boxes import FrameBoxes


def _labels(labels: np.ndarray | None, n: int, class_agnostic: bool, what: str) -> np.ndarray:
    """``[n]`` category ids: all 1 when class-agnostic, else the frame's labels (which must exist)."""
    if class_agnostic:
        return np.ones(n, dtype=np.int64)
    if labels is None:
        raise ValueError(f"class-aware mAP needs {what} on every frame (or pass class_agnostic=True)")
    return labels


def coco_map(frames: Sequence[FrameBoxes], class_agnostic: bool = False) -> dict[str, float]:
    """``{"map50": AP@0.5, "map": AP@[.5:.95]}`` of the frames' predictions against their ground truth.

    Class-aware mode uses ``gt_labels`` / ``pred_labels``; ``class_agnostic=True`` puts every box in
    category 1. No prediction at all gives AP 0. Raises ValueError when there is no ground-truth box
    at all (COCO's AP is undefined then).
    """
    images, gt_anns, dt_anns = [], [], []
    for image_id, frame in enumerate(frames, start=1):
        images.append({"id": image_id, "height": frame.height, "width": frame.width})
        gt_cats = _labels(frame.gt_labels, len(frame.gt_boxes), class_agnostic, "gt_labels")
        for box, cat in zip(frame.gt_boxes.tolist(), gt_cats.tolist(), strict=True):
            gt_anns.append({"id": len(gt_anns) + 1, "image_id": image_id, "category_id": cat, "bbox": box,
                            "area": box[2] * box[3], "iscrowd": 0})
        dt_cats = _labels(frame.pred_labels, len(frame.pred_boxes), class_agnostic, "pred_labels")
        for box, cat, score in zip(frame.pred_boxes.tolist(), dt_cats.tolist(), frame.pred_scores.tolist(),
                                   strict=True):
            dt_anns.append({"image_id": image_id, "category_id": cat, "bbox": box, "score": score})
    if not gt_anns:
        raise ValueError("mAP is undefined: the frames hold no ground-truth box")
    if not dt_anns:
        return {"map50": 0.0, "map": 0.0}
    categories = sorted({ann["category_id"] for ann in gt_anns})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": gt_anns, "categories": [{"id": c} for c in categories]}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(dt_anns), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"map50": float(evaluator.stats[1]), "map": float(evaluator.stats[0])}
