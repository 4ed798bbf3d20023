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


class CocoEvaluation:
    """COCOeval's per-image matching of ``frames``, run once; mAP of any multiset of those frames from it.

    :meth:`map` with frame indices (repeats allowed) equals a fresh COCOeval on those frames, because
    COCOeval's per-image results do not depend on the other images: only ``accumulate`` is redone, for the
    one area range ("all") and detection limit (100) that AP@0.5 and AP@[.5:.95] read. This makes a
    bootstrap over clips cheap.
    """

    def __init__(self, frames: Sequence[FrameBoxes], class_agnostic: bool = False) -> None:
        images, gt_anns, dt_anns = [], [], []
        for image_id, frame in enumerate(frames, start=1):
            images.append({"id": image_id, "height": frame.height, "width": frame.width})
            gt_cats = _labels(frame.gt_labels, len(frame.gt_boxes), class_agnostic, "gt_labels")
            for box, cat in zip(frame.gt_boxes.tolist(), gt_cats.tolist(), strict=True):
                gt_anns.append(
                    {
                        "id": len(gt_anns) + 1,
                        "image_id": image_id,
                        "category_id": cat,
                        "bbox": box,
                        "area": box[2] * box[3],
                        "iscrowd": 0,
                    }
                )
            dt_cats = _labels(frame.pred_labels, len(frame.pred_boxes), class_agnostic, "pred_labels")
            for box, cat, score in zip(
                frame.pred_boxes.tolist(), dt_cats.tolist(), frame.pred_scores.tolist(), strict=True
            ):
                dt_anns.append({"image_id": image_id, "category_id": cat, "bbox": box, "score": score})
        self.n_frames = len(images)
        self._has_gt = np.zeros(self.n_frames, dtype=bool)  # [F]
        for ann in gt_anns:
            self._has_gt[ann["image_id"] - 1] = True
        self._evaluator: COCOeval | None = None
        if not dt_anns or not gt_anns:
            return
        categories = sorted({ann["category_id"] for ann in gt_anns})
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = {"images": images, "annotations": gt_anns, "categories": [{"id": c} for c in categories]}
            gt.createIndex()
            self._evaluator = COCOeval(gt, gt.loadRes(dt_anns), iouType="bbox")
            # Only what stats[0] and stats[1] read: area range "all", at most 100 detections per image.
            self._evaluator.params.areaRng, self._evaluator.params.areaRngLbl = [[0, 1e10]], ["all"]
            self._evaluator.params.maxDets = [100]
            self._evaluator.evaluate()
        self._per_image = self._evaluator.evalImgs  # [K * A * F], image index fastest
        self._blocks = len(self._per_image) // self.n_frames  # K * A

    def map(self, indices: Sequence[int] | None = None) -> dict[str, float]:
        """``{"map50", "map"}`` of the frames at ``indices`` (0-based, repeats count again; all when None).

        Raises ValueError when the selected frames hold no ground-truth box (AP undefined).
        """
        idx = np.arange(self.n_frames) if indices is None else np.asarray(indices, dtype=np.int64)  # [S]
        if not self._has_gt[idx].any():
            raise ValueError("mAP is undefined: the frames hold no ground-truth box")
        if self._evaluator is None:  # no prediction at all
            return {"map50": 0.0, "map": 0.0}
        ev = self._evaluator
        ev.evalImgs = [self._per_image[b * self.n_frames + i] for b in range(self._blocks) for i in idx.tolist()]
        ids = list(range(1, len(idx) + 1))
        ev.params.imgIds = ids
        ev._paramsEval.imgIds = ids
        with contextlib.redirect_stdout(io.StringIO()):
            ev.accumulate()
        precision = ev.eval["precision"][:, :, :, 0, 0]  # [T, R, K]: area "all", 100 detections
        at50 = precision[ev.params.iouThrs == 0.5][0]  # [R, K]
        # COCOeval.summarize's averages: over IoU thresholds, recall points and categories, ignoring -1 (no GT)
        return {"map50": float(at50[at50 > -1].mean()), "map": float(precision[precision > -1].mean())}


def coco_map(frames: Sequence[FrameBoxes], class_agnostic: bool = False) -> dict[str, float]:
    """``{"map50": AP@0.5, "map": AP@[.5:.95]}`` of the frames' predictions against their ground truth.

    Class-aware mode uses ``gt_labels`` / ``pred_labels``; ``class_agnostic=True`` puts every box in
    category 1. No prediction at all gives AP 0. Raises ValueError when there is no ground-truth box
    at all (COCO's AP is undefined then).
    """
    return CocoEvaluation(frames, class_agnostic).map()
