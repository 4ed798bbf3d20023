"""COCO mAP known answers."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from foresight_lib.metrics.boxes import FrameBoxes
from foresight_lib.metrics.coco import CocoEvaluation, coco_map

GT = [
    [[10.0, 10.0, 40.0, 30.0], [100.0, 50.0, 60.0, 60.0]],
    [[30.0, 120.0, 50.0, 20.0]],
    [[200.0, 20.0, 20.0, 80.0], [5.0, 5.0, 30.0, 30.0], [150.0, 150.0, 40.0, 40.0]],
]


def make_frames(pred_of: Callable[[np.ndarray], np.ndarray], labels: bool = False) -> list[FrameBoxes]:
    frames = []
    for i, gt in enumerate(GT):
        gt = np.array(gt)
        pred = pred_of(gt)
        frames.append(
            FrameBoxes(
                image_id=f"f{i}",
                clip_id=f"c{i}",
                height=240,
                width=320,
                gt_boxes=gt,
                pred_boxes=pred,
                pred_scores=np.linspace(0.9, 0.5, len(pred)),
                gt_labels=np.ones(len(gt), dtype=int) if labels else None,
                pred_labels=np.full(len(pred), 2) if labels else None,
            )
        )
    return frames


def shifted(gt: np.ndarray) -> np.ndarray:
    return gt + np.stack([0.2 * gt[:, 2], np.zeros(len(gt)), np.zeros(len(gt)), np.zeros(len(gt))], axis=1)


def test_perfect_predictions() -> None:
    result = coco_map(make_frames(lambda gt: gt.copy()), class_agnostic=True)
    assert result == {"map50": pytest.approx(1.0), "map": pytest.approx(1.0)}


def test_shift_by_a_fifth_of_the_width() -> None:
    # IoU = 0.8 / 1.2 = 0.667: passes thresholds 0.50, 0.55, 0.60, 0.65 -> 4 of 10.
    result = coco_map(make_frames(shifted), class_agnostic=True)
    assert result["map50"] == pytest.approx(1.0)
    assert result["map"] == pytest.approx(0.4)


def test_no_detections_give_zero() -> None:
    assert coco_map(make_frames(lambda gt: np.zeros((0, 4))), class_agnostic=True) == {"map50": 0.0, "map": 0.0}


def test_no_ground_truth_is_an_error() -> None:
    frame = FrameBoxes(
        image_id="f",
        clip_id="c",
        height=10,
        width=10,
        gt_boxes=np.zeros((0, 4)),
        pred_boxes=np.array([[0.0, 0.0, 5.0, 5.0]]),
        pred_scores=np.array([0.5]),
    )
    with pytest.raises(ValueError, match="no ground-truth"):
        coco_map([frame], class_agnostic=True)


def test_wrong_labels_matter_only_when_class_aware() -> None:
    frames = make_frames(lambda gt: gt.copy(), labels=True)  # right boxes, wrong category (2 instead of 1)
    assert coco_map(frames, class_agnostic=False) == {"map50": 0.0, "map": 0.0}
    assert coco_map(frames, class_agnostic=True) == {"map50": pytest.approx(1.0), "map": pytest.approx(1.0)}


def test_class_aware_needs_labels() -> None:
    with pytest.raises(ValueError, match="gt_labels"):
        coco_map(make_frames(lambda gt: gt.copy()), class_agnostic=False)


def test_score_ranking_counts() -> None:
    # One frame: a false positive scored above the true positive. Recall 1/1 reached at precision 1/2.
    frame = FrameBoxes(
        image_id="f",
        clip_id="c",
        height=100,
        width=100,
        gt_boxes=np.array([[0.0, 0.0, 10.0, 10.0]]),
        pred_boxes=np.array([[50.0, 50.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]]),
        pred_scores=np.array([0.9, 0.8]),
    )
    assert coco_map([frame], class_agnostic=True)["map50"] == pytest.approx(0.5)


def _random_frames(rng: np.random.Generator, n: int) -> list[FrameBoxes]:
    frames = []
    for i in range(n):
        gt = rng.uniform(0, 200, (int(rng.integers(0, 4)), 2))
        gt = np.concatenate([gt, rng.uniform(10, 60, gt.shape)], axis=1)  # [N, 4]
        pred = np.concatenate([gt + rng.normal(0, 6, gt.shape), rng.uniform(0, 200, (int(rng.integers(0, 3)), 4))])
        pred[:, 2:] = np.abs(pred[:, 2:]) + 1
        frames.append(
            FrameBoxes(
                image_id=f"f{i}",
                clip_id=f"c{i}",
                height=240,
                width=320,
                gt_boxes=gt,
                pred_boxes=pred,
                pred_scores=rng.uniform(0, 1, len(pred)),
                gt_labels=rng.integers(1, 4, len(gt)),
                pred_labels=rng.integers(1, 4, len(pred)),
            )
        )
    return frames


def _stock_cocoeval(frames: list[FrameBoxes], agnostic: bool) -> dict[str, float]:
    """The independent reference: pycocotools with its default parameters and summarize()."""
    images, gts, dts = [], [], []
    for i, f in enumerate(frames, start=1):
        images.append({"id": i, "height": f.height, "width": f.width})
        for box, cat in zip(f.gt_boxes.tolist(), f.gt_labels.tolist()):
            gts.append(
                {
                    "id": len(gts) + 1,
                    "image_id": i,
                    "category_id": 1 if agnostic else cat,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
        for box, cat, score in zip(f.pred_boxes.tolist(), f.pred_labels.tolist(), f.pred_scores.tolist()):
            dts.append({"image_id": i, "category_id": 1 if agnostic else cat, "bbox": box, "score": score})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": gts,
            "categories": [{"id": c} for c in sorted({a["category_id"] for a in gts})],
        }
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dts), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map50": float(ev.stats[1]), "map": float(ev.stats[0])}


@pytest.mark.parametrize("agnostic", [True, False])
def test_resampled_evaluation_equals_stock_cocoeval(agnostic: bool) -> None:
    """CocoEvaluation reuses COCOeval's per-image matching; any multiset of frames gives stock COCOeval's answer."""
    rng = np.random.default_rng(3)
    frames = _random_frames(rng, 12)
    evaluation = CocoEvaluation(frames, class_agnostic=agnostic)
    assert evaluation.map() == pytest.approx(_stock_cocoeval(frames, agnostic), abs=1e-12)
    assert coco_map(frames, class_agnostic=agnostic) == evaluation.map()
    checked = 0
    for _ in range(8):
        pick = rng.integers(0, len(frames), len(frames))  # with repeats, as the bootstrap draws
        if not any(len(frames[i].gt_boxes) for i in pick):
            continue
        fresh = _stock_cocoeval([frames[i] for i in pick], agnostic)
        assert evaluation.map(pick) == pytest.approx(fresh, abs=1e-12)
        checked += 1
    assert checked >= 5
    with pytest.raises(ValueError, match="no ground-truth box"):
        evaluation.map([i for i, f in enumerate(frames) if len(f.gt_boxes) == 0][:1])
