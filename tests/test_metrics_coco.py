"""COCO mAP known answers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from foresight_lib.metrics.boxes import FrameBoxes
from foresight_lib.metrics.coco import coco_map

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
        frames.append(FrameBoxes(
            image_id=f"f{i}", clip_id=f"c{i}", height=240, width=320, gt_boxes=gt, pred_boxes=pred,
            pred_scores=np.linspace(0.9, 0.5, len(pred)),
            gt_labels=np.ones(len(gt), dtype=int) if labels else None,
            pred_labels=np.full(len(pred), 2) if labels else None,
        ))
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
    frame = FrameBoxes(image_id="f", clip_id="c", height=10, width=10, gt_boxes=np.zeros((0, 4)),
                       pred_boxes=np.array([[0.0, 0.0, 5.0, 5.0]]), pred_scores=np.array([0.5]))
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
    frame = FrameBoxes(image_id="f", clip_id="c", height=100, width=100,
                       gt_boxes=np.array([[0.0, 0.0, 10.0, 10.0]]),
                       pred_boxes=np.array([[50.0, 50.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]]),
                       pred_scores=np.array([0.9, 0.8]))
    assert coco_map([frame], class_agnostic=True)["map50"] == pytest.approx(0.5)
