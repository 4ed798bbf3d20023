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
    """Frames with what COCOeval's rules turn on: score ties (within and across frames, from a few values), frames
    without ground truth or without detections, 120 detections of one category in a frame (past maxDets 100),
    zero-area and duplicated boxes, boxes above area 1e10 (ignored ground truth, detections ignored when unmatched)
    overlapping regular ones, category 4 only predicted, 5 never."""
    frames = []
    for i in range(n):
        n_gt = int(rng.choice([0, 1, 2, 3, 5]))
        gt = np.concatenate([rng.uniform(0, 200, (n_gt, 2)), rng.uniform(5, 60, (n_gt, 2))], axis=1)  # [N, 4]
        n_dt = int(rng.choice([0, 1, 2, 4, 8, 120], p=[0.15, 0.2, 0.2, 0.2, 0.17, 0.08]))
        near = gt[rng.integers(0, n_gt, n_dt)] if n_gt else rng.uniform(0, 200, (n_dt, 4))
        pred = near + rng.normal(0, rng.choice([1.0, 5.0, 15.0]), (n_dt, 4))
        pred[:, 2:] = np.abs(pred[:, 2:])
        if rng.random() < 0.3:  # integer boxes: exact IoU ties and IoUs equal to a threshold
            gt, pred = np.round(gt), np.round(pred)
        gt[rng.random(n_gt) < 0.1, 2] = 0.0
        pred[rng.random(n_dt) < 0.05, 3] = 0.0
        if n_gt and n_dt and rng.random() < 0.3:
            pred[0] = gt[0]
        gt_labels = rng.choice([1, 2, 3, 5], n_gt)
        pred_labels = np.full(n_dt, 2) if n_dt == 120 else rng.integers(1, 5, n_dt)
        if rng.random() < 0.15:  # area around 1e10, the end of the range "all": the first ground-truth box is ignored
            big = np.array(
                [[0.0, 0.0, 1e5, 1.01e5], [0.0, 0.0, 1e5, 0.99e5], [0.0, 0.0, 1e5, 1e5], [0.0, 0.0, 2e5, 2e5]]
            )
            gt, gt_labels = np.concatenate([big[:2], gt]), np.concatenate([[1, 1], gt_labels])
            pred, pred_labels = np.concatenate([big[2:], big[rng.integers(0, 4, 3)], pred]), np.r_[[1] * 5, pred_labels]
        scores = rng.choice([0.2, 0.5, 0.9], len(pred)) if rng.random() < 0.5 else rng.uniform(0, 1, len(pred))
        frames.append(
            FrameBoxes(
                image_id=f"f{i}",
                clip_id=f"c{i}",
                height=240,
                width=320,
                gt_boxes=gt,
                pred_boxes=pred,
                pred_scores=scores,
                gt_labels=gt_labels,
                pred_labels=pred_labels,
            )
        )
    return frames


def _stock_cocoeval(frames: list[FrameBoxes], agnostic: bool) -> dict[str, float]:
    """The independent reference: pycocotools' COCOeval with its default parameters and summarize(), on the frames
    as images 1..F (ground-truth area w * h, no crowd; class-agnostic: every box in category 1)."""
    images, gts, dts = [], [], []
    for i, f in enumerate(frames, start=1):
        images.append({"id": i, "height": f.height, "width": f.width})
        for box, cat in zip(f.gt_boxes.tolist(), f.gt_labels.tolist() if not agnostic else [1] * len(f.gt_boxes)):
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
        pred_labels = f.pred_labels.tolist() if not agnostic else [1] * len(f.pred_boxes)
        for box, cat, score in zip(f.pred_boxes.tolist(), pred_labels, f.pred_scores.tolist()):
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


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("agnostic", [True, False])
def test_equals_stock_cocoeval(seed: int, agnostic: bool) -> None:
    """Every frame set, and any multiset of its frames through map(indices), gives stock COCOeval's stats[1] and
    stats[0] to the bit."""
    rng = np.random.default_rng(seed)
    frames = _random_frames(rng, int(rng.integers(8, 16)))
    evaluation = CocoEvaluation(frames, class_agnostic=agnostic)
    assert evaluation.n_frames == len(frames)
    assert evaluation.map() == _stock_cocoeval(frames, agnostic)
    assert coco_map(frames, class_agnostic=agnostic) == evaluation.map()
    checked = 0
    for _ in range(6):
        pick = rng.integers(0, len(frames), int(rng.integers(1, 2 * len(frames))))  # repeats, as the bootstrap draws
        if not any(len(frames[i].gt_boxes) for i in pick) or not any(len(frames[i].pred_boxes) for i in pick):
            continue
        assert evaluation.map(pick) == _stock_cocoeval([frames[i] for i in pick], agnostic)
        checked += 1
    assert checked >= 3


def test_ties_across_frames_follow_the_frame_order() -> None:
    """Equal scores in different frames rank frame after frame, so swapping two frames can change AP."""
    hit = FrameBoxes("a", "a", 100, 100, np.array([[0.0, 0.0, 10.0, 10.0]]), np.array([[0.0, 0.0, 10.0, 10.0]]), [0.5])
    miss = FrameBoxes("b", "b", 100, 100, np.array([[0.0, 0.0, 10.0, 10.0]]), np.array([[50.0, 50, 10, 10]]), [0.5])
    evaluation = CocoEvaluation([hit, miss], class_agnostic=True)
    # TP then FP: precision 1 up to recall 1/2 (51 of 101 points); FP then TP: precision 1/2 there.
    assert evaluation.map([0, 1])["map50"] == pytest.approx(51 / 101)
    assert evaluation.map([1, 0])["map50"] == pytest.approx(0.5 * 51 / 101)
    for order in ([0, 1], [1, 0], [0, 0, 1], [1, 0, 1]):
        assert evaluation.map(order) == _stock_cocoeval([[hit, miss][i] for i in order], True)


def test_empty_and_ignored_cases() -> None:
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    empty = FrameBoxes("e", "e", 10, 10, np.zeros((0, 4)), np.zeros((0, 4)), np.zeros(0))
    only_gt = FrameBoxes("g", "g", 10, 10, box, np.zeros((0, 4)), np.zeros(0))
    only_pred = FrameBoxes("p", "p", 10, 10, np.zeros((0, 4)), box, [0.5])
    huge = FrameBoxes("h", "h", 10, 10, np.array([[0.0, 0.0, 2e5, 2e5]]), box, [0.5])  # gt area 4e10: ignored
    assert CocoEvaluation([], class_agnostic=True).n_frames == 0
    with pytest.raises(ValueError, match="no ground-truth box"):
        CocoEvaluation([], class_agnostic=True).map()
    with pytest.raises(ValueError, match="no ground-truth box"):
        coco_map([empty, only_pred], class_agnostic=True)
    evaluation = CocoEvaluation([empty, only_gt, only_pred, huge], class_agnostic=True)
    assert evaluation.map([0, 1]) == {"map50": 0.0, "map": 0.0}  # no detection in the selection
    assert evaluation.map([1, 2, 2]) == {"map50": 0.0, "map": 0.0}
    with pytest.raises(ValueError, match="no ground-truth box"):
        evaluation.map([0, 2, 2])
    # only ignored ground truth: COCOeval averages over no category (summarize reports -1); here NaN
    assert all(np.isnan(v) for v in evaluation.map([3]).values())
    assert coco_map([empty, only_gt], class_agnostic=True) == {"map50": 0.0, "map": 0.0}  # no detection at all


def test_matching_rules() -> None:
    """IoU exactly at a threshold matches; of two ground-truth boxes at the same IoU, the later one is taken."""

    def one(gt: list, pred: list) -> list[FrameBoxes]:
        scores = np.linspace(0.9, 0.8, len(pred))
        return [FrameBoxes("f", "c", 100, 100, np.array(gt, dtype=float), np.array(pred, dtype=float), scores)]

    at_half = one([[0, 0, 10, 10]], [[0, 0, 10, 5]])  # IoU 50 / 100: only the 0.5 threshold
    assert coco_map(at_half, class_agnostic=True) == {"map50": pytest.approx(1.0), "map": pytest.approx(0.1)}
    # The first detection has IoU 90/110 with both boxes and takes the second; the next one (IoU 90/110 with the
    # second box, 70/130 with the first) then matches the first box at 0.5 only: AP 1 at 0.5, 51/101 (recall 1/2
    # at precision 1) at 0.55..0.80, 0 above.
    tie = one([[0, 0, 10, 10], [2, 0, 10, 10]], [[1, 0, 10, 10], [3, 0, 10, 10]])
    assert coco_map(tie, class_agnostic=True) == pytest.approx({"map50": 1.0, "map": (1 + 6 * 51 / 101) / 10})
    for frames in (at_half, tie):
        assert coco_map(frames, class_agnostic=True) == _stock_cocoeval(frames, True)
