"""Which detections count (the operating point) and its choice on validation, against brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from foresight_lib.metrics.boxes import FrameBoxes, bbox_iou
from foresight_lib.metrics.operating import OperatingPoint, asserted, choose, grid, grid_ious, kept_counts


def _frame(gt: list, pred: list, scores: list, clip: str = "c0") -> FrameBoxes:
    return FrameBoxes(
        image_id=f"{clip}:{len(gt)}:{len(pred)}",
        clip_id=clip,
        height=100,
        width=100,
        gt_boxes=np.array(gt, dtype=float).reshape(-1, 4),
        pred_boxes=np.array(pred, dtype=float).reshape(-1, 4),
        pred_scores=np.array(scores, dtype=float),
    )


def _random_frames(seed: int, n: int = 30) -> list[FrameBoxes]:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        g, m = int(rng.integers(0, 4)), int(rng.integers(0, 9))
        gt = np.c_[rng.uniform(0, 70, (g, 2)), rng.uniform(5, 30, (g, 2))]
        pred = np.c_[rng.uniform(0, 70, (m, 2)), rng.uniform(5, 30, (m, 2))]
        scores = np.round(rng.uniform(0, 1, m), 1)  # ties happen
        frames.append(_frame(gt.tolist(), pred.tolist(), scores.tolist(), clip=f"c{i % 7}"))
    return frames


def _reference_kept(frame: FrameBoxes, point: OperatingPoint) -> set[int]:
    """Brute force: the indices scoring at least the threshold, the max_boxes best by score (ties: earlier first)."""
    above = [i for i, s in enumerate(frame.pred_scores) if s >= point.score_threshold]
    return set(sorted(above, key=lambda i: (-frame.pred_scores[i], i))[: point.max_boxes])


def test_a_point_keeps_the_highest_scores_above_its_threshold_at_most_k() -> None:
    f = _frame([[0, 0, 10, 10]], [[0, 0, 10, 10], [50, 50, 10, 10], [0, 0, 9, 9], [1, 1, 9, 9]], [0.6, 0.9, 0.6, 0.2])
    (kept,) = asserted([f], OperatingPoint(0.5, 2))
    np.testing.assert_array_equal(kept.pred_scores, [0.9, 0.6])  # score order; the earlier of the tied 0.6s
    np.testing.assert_array_equal(kept.pred_boxes, [[50, 50, 10, 10], [0, 0, 10, 10]])
    assert kept_counts(np.array([0.9, 0.6, 0.6, 0.2]), [OperatingPoint(0.6, 9), OperatingPoint(0.95, 9)]).tolist() == [
        3,
        0,
    ]
    for frame in _random_frames(1):
        for point in grid([0.05, 0.5, 0.9], [1, 2, 100]):
            (kept,) = asserted([frame], point)
            expected = _reference_kept(frame, point)
            assert len(kept.pred_boxes) == len(expected)
            assert sorted(map(tuple, kept.pred_boxes)) == sorted(tuple(frame.pred_boxes[i]) for i in expected)


def test_bbox_iou_on_the_grid_equals_bbox_iou_of_the_asserted_boxes_at_every_point() -> None:
    points = grid([0.1, 0.3, 0.5, 0.8, 1.0], [1, 2, 3, 5, 100])
    for seed in range(3):
        frames = _random_frames(seed)
        ious = grid_ious(frames, points)
        for point, iou in zip(points, ious):
            assert iou == pytest.approx(bbox_iou(asserted(frames, point)).mean_iou, abs=1e-12), point
        best, value = choose(frames, points)
        assert value == pytest.approx(max(ious)) and value == pytest.approx(bbox_iou(asserted(frames, best)).mean_iou)


def test_the_count_rule_removes_duplicates_that_no_threshold_separates() -> None:
    """Two objects, each found twice with the same confident score: every threshold keeps 4 boxes (IoU 0.5), at most
    2 per frame keeps one per object (IoU 1); on a tie the higher threshold, then the fewer boxes, wins."""
    gt = [[0, 0, 10, 10], [50, 50, 10, 10]]
    frames = [_frame(gt, [gt[0], gt[1], gt[0], gt[1]], [0.9, 0.9, 0.9, 0.9])]
    points = grid([0.5, 0.8], [2, 3, 100])
    assert grid_ious(frames, points).tolist() == pytest.approx([1.0, 2 / 3, 0.5, 1.0, 2 / 3, 0.5])
    assert choose(frames, points) == (OperatingPoint(0.8, 2), pytest.approx(1.0))
    with pytest.raises(ValueError, match="2 operating points for 1 frames"):
        asserted(frames, [OperatingPoint(0.5, 1)] * 2)
    assert list(itertools.islice(grid([0.5], [1, 2]), 2)) == [OperatingPoint(0.5, 1), OperatingPoint(0.5, 2)]
