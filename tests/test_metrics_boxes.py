"""Box utilities, one-to-one matching and bbox / best-box IoU on hand-computed cases."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from foresight_lib.metrics.boxes import (
    FrameBoxes,
    bbox_iou,
    chance_iou,
    clip_boxes_xywh,
    iou_matrix,
    match_boxes,
    matched_iou_per_object,
    random_boxes,
    xywh_to_xyxy,
    xyxy_to_xywh,
)

UNIT = [0.0, 0.0, 10.0, 10.0]


def frame(gt: list, pred: list, scores: list | None = None, clip: str = "c0", image: str = "f0") -> FrameBoxes:
    scores = [1.0] * len(pred) if scores is None else scores
    return FrameBoxes(
        image_id=image,
        clip_id=clip,
        height=100,
        width=100,
        gt_boxes=np.array(gt, dtype=float),
        pred_boxes=np.array(pred, dtype=float),
        pred_scores=np.array(scores, dtype=float),
    )


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        ([20.0, 20.0, 5.0, 5.0], 0.0),  # disjoint
        ([10.0, 0.0, 10.0, 10.0], 0.0),  # touching edges
        ([2.0, 2.0, 5.0, 5.0], 25.0 / 100.0),  # nested: area ratio
        (UNIT, 1.0),  # identical
        ([5.0, 5.0, 10.0, 10.0], 25.0 / 175.0),  # partial: 5x5 overlap, union 100 + 100 - 25
    ],
)
def test_iou_hand_cases(other: list, expected: float) -> None:
    ious = iou_matrix(np.array([UNIT]), np.array([other]))
    assert ious.shape == (1, 1)
    assert ious[0, 0] == pytest.approx(expected)


def test_iou_matrix_shapes_and_orientation() -> None:
    a = np.array([UNIT, [5.0, 5.0, 10.0, 10.0]])
    b = np.array([UNIT, [2.0, 2.0, 5.0, 5.0], [50.0, 50.0, 1.0, 1.0]])
    ious = iou_matrix(a, b)
    assert ious.shape == (2, 3)
    np.testing.assert_allclose(ious[:, 0], [1.0, 25.0 / 175.0])
    np.testing.assert_allclose(ious[0], [1.0, 0.25, 0.0])
    # Non-contiguous views (reversed rows, Fortran order, strided columns) give the same answer.
    np.testing.assert_allclose(iou_matrix(a[::-1], b), ious[::-1])
    strided = np.zeros((3, 8))
    strided[:, ::2] = b
    np.testing.assert_allclose(iou_matrix(np.asfortranarray(a), strided[:, ::2]), ious)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)


def test_iou_matrix_equals_pycocotools() -> None:
    """The numpy IoU is pycocotools' bbIou (iscrowd 0) to the bit: random, integer, zero-area, duplicated, touching,
    tiny and huge boxes; empty inputs give empty matrices where pycocotools gives []."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        a, b = (
            np.concatenate([rng.uniform(0, 50, (int(n), 2)), rng.uniform(0, 30, (int(n), 2))], axis=1)
            for n in rng.integers(0, 7, 2)
        )
        if rng.random() < 0.4:
            a, b = np.round(a), np.round(b)
        a[rng.random(len(a)) < 0.15, 2] = 0.0
        b[rng.random(len(b)) < 0.15, 3] = 0.0
        if len(a) and len(b) and rng.random() < 0.3:
            b[0] = a[0]
        if len(a) and len(b) and rng.random() < 0.3:
            b[-1] = a[-1] + [a[-1, 2], 0, 0, 0]  # touching along x
        scale = 10.0 ** rng.uniform(-3, 6)
        a, b = a * scale, b * scale
        expected = np.asarray(mask_utils.iou(a, b, np.zeros(len(b), dtype=np.uint8)), dtype=np.float64)
        ious = iou_matrix(a, b)
        assert ious.shape == (len(a), len(b))
        np.testing.assert_array_equal(ious, expected.reshape(len(a), len(b)))


def test_box_conversions_round_trip_and_clip() -> None:
    xywh = np.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(xywh_to_xyxy(xywh), [[1.0, 2.0, 4.0, 6.0]])
    np.testing.assert_array_equal(xyxy_to_xywh(xywh_to_xyxy(xywh)), xywh)
    clipped = clip_boxes_xywh(np.array([[-5.0, 90.0, 20.0, 20.0], [200.0, 0.0, 5.0, 5.0]]), height=100, width=150)
    np.testing.assert_array_equal(clipped, [[0.0, 90.0, 15.0, 10.0], [150.0, 0.0, 0.0, 5.0]])


def test_bad_boxes_are_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        iou_matrix(np.zeros((2, 3)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="non-negative"):
        iou_matrix(np.array([[0.0, 0.0, -1.0, 1.0]]), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="pred_scores"):
        frame([UNIT], [UNIT], scores=[0.5, 0.5])


# All boxes span y in [0, 10], so IoU is the 1-D interval IoU along x.
# g0=[0,10], g1=[2,12], p0=[0.5,10.5], p1=[-2,8]:
#   IoU(g0,p0)=9.5/10.5, IoU(g0,p1)=8/12, IoU(g1,p0)=8.5/11.5, IoU(g1,p1)=6/14.
# Greedy (best pair first) takes g0-p0 then g1-p1: 9.5/10.5 + 6/14 = 1.333;
# Hungarian takes g0-p1 and g1-p0: 8/12 + 8.5/11.5 = 1.406.
GREEDY_GT = [[0.0, 0.0, 10.0, 10.0], [2.0, 0.0, 10.0, 10.0]]
GREEDY_PRED = [[0.5, 0.0, 10.0, 10.0], [-2.0, 0.0, 10.0, 10.0]]


def test_hungarian_beats_greedy() -> None:
    gt_idx, pred_idx, ious = match_boxes(np.array(GREEDY_GT), np.array(GREEDY_PRED))
    assert dict(zip(gt_idx.tolist(), pred_idx.tolist(), strict=True)) == {0: 1, 1: 0}
    np.testing.assert_allclose(ious, [8.0 / 12.0, 8.5 / 11.5])
    np.testing.assert_allclose(
        matched_iou_per_object(np.array(GREEDY_GT), np.array(GREEDY_PRED)), [8.0 / 12.0, 8.5 / 11.5]
    )


def test_missing_predictions_count_zero() -> None:
    gt = np.array([UNIT, [50.0, 50.0, 10.0, 10.0]])
    np.testing.assert_allclose(matched_iou_per_object(gt, np.array([[2.0, 2.0, 5.0, 5.0]])), [0.25, 0.0])
    np.testing.assert_array_equal(matched_iou_per_object(gt, np.zeros((0, 4))), [0.0, 0.0])


def test_extra_predictions_are_ignored() -> None:
    pred = np.array([[40.0, 40.0, 3.0, 3.0], [2.0, 2.0, 5.0, 5.0], [0.0, 50.0, 10.0, 10.0]])
    np.testing.assert_allclose(matched_iou_per_object(np.array([UNIT]), pred), [0.25])


def test_bbox_iou_is_mean_over_objects_not_frames() -> None:
    frames = [
        frame([UNIT], [UNIT], clip="a"),  # 1 object, IoU 1
        frame(GREEDY_GT + [[50.0, 50.0, 5.0, 5.0]], GREEDY_PRED, clip="b"),  # 3 objects, the last unmatched
    ]
    result = bbox_iou(frames)
    expected = [1.0, 8.0 / 12.0, 8.5 / 11.5, 0.0]
    np.testing.assert_allclose(result.object_ious, expected)
    assert result.mean_iou == pytest.approx(np.mean(expected))  # a mean over frames would differ
    assert result.object_clip_ids.tolist() == ["a", "b", "b", "b"]


def test_best_box_iou_uses_top_scoring_prediction_on_single_object_frames() -> None:
    frames = [
        frame([UNIT], [[5.0, 5.0, 10.0, 10.0], UNIT], scores=[0.9, 0.1], clip="a"),  # top box: 25/175
        frame([UNIT], [], clip="b"),  # no prediction: 0
        frame(GREEDY_GT, GREEDY_PRED, clip="c"),  # two objects: not a best-box frame
    ]
    result = bbox_iou(frames)
    np.testing.assert_allclose(result.best_box_ious, [25.0 / 175.0, 0.0])
    assert result.best_box_iou == pytest.approx(25.0 / 350.0)
    assert result.best_box_clip_ids.tolist() == ["a", "b"]
    # Matching, unlike best-box, picks the identical box.
    assert result.object_ious[0] == pytest.approx(1.0)


def test_best_box_iou_nan_without_single_object_frames_and_error_without_objects() -> None:
    assert math.isnan(bbox_iou([frame(GREEDY_GT, GREEDY_PRED)]).best_box_iou)
    with pytest.raises(ValueError, match="no ground-truth"):
        bbox_iou([frame([], [UNIT])])


# ------------------------------------------------------------------ bbox IoU that over-assertion cannot inflate
def _synthetic_like_frames(n_frames: int, seed: int) -> list[FrameBoxes]:
    """Ground truth shaped like the synthetic benchmark's: 1-3 boxes of 48-128 px in 448x672 frames."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_frames):
        n = int(rng.integers(1, 4))
        wh = rng.uniform(48, 128, size=(n, 2))
        xy = rng.uniform(size=(n, 2)) * ([672, 448] - wh)
        frames.append(
            FrameBoxes(
                image_id=str(i),
                clip_id=str(i // 3),
                height=448,
                width=672,
                gt_boxes=np.concatenate([xy, wh], 1),
                pred_boxes=np.zeros((0, 4)),
                pred_scores=np.zeros(0),
            )
        )
    return frames


def _with_count(frames: list[FrameBoxes], k: int) -> list[FrameBoxes]:
    return [replace(f, pred_boxes=np.zeros((k, 4)), pred_scores=np.ones(k)) for f in frames]


@pytest.mark.parametrize("k", [1, 2, 3, 5, 10, 20, 40, 100])
def test_random_boxes_at_any_count_score_below_a_tenth(k: int) -> None:
    frames = random_boxes(_with_count(_synthetic_like_frames(60, seed=k), k), seed=k)
    assert all(len(f.pred_boxes) == k for f in frames)
    result = bbox_iou(frames)
    assert result.mean_iou < 0.1
    assert chance_iou(_with_count(_synthetic_like_frames(60, seed=k), k), seed=k) == pytest.approx(result.mean_iou)
    if k == 100:  # the old per-object mean lets the matching pick lucky boxes: this test would catch it
        assert result.object_ious.mean() > 0.25


def test_perfect_predictions_score_one_and_an_extra_box_scores_lower() -> None:
    frames = _synthetic_like_frames(12, seed=0)
    perfect = [replace(f, pred_boxes=f.gt_boxes, pred_scores=np.ones(len(f.gt_boxes))) for f in frames]
    assert bbox_iou(perfect).mean_iou == pytest.approx(1.0)
    extra = [
        replace(
            perfect[0],
            pred_boxes=np.concatenate([perfect[0].gt_boxes, [[0.0, 0.0, 50.0, 50.0]]]),
            pred_scores=np.ones(len(perfect[0].gt_boxes) + 1),
        ),
        *perfect[1:],
    ]
    assert bbox_iou(extra).mean_iou < bbox_iou(perfect).mean_iou
    # A prediction on a frame without objects is an empty slot too.
    empty = replace(frames[0], gt_boxes=np.zeros((0, 4)), pred_boxes=[UNIT], pred_scores=[1.0])
    assert bbox_iou([*perfect, empty]).mean_iou < 1.0


def _reference_score(frames: list[FrameBoxes]) -> float:
    """Independent: own IoU in numpy, own matching by brute force over permutations, own pooling."""
    total, slots = 0.0, 0
    for f in frames:
        g, p = np.asarray(f.gt_boxes), np.asarray(f.pred_boxes)
        best = 0.0
        small, large = (g, p) if len(g) <= len(p) else (p, g)
        for perm in itertools.permutations(range(len(large)), len(small)):
            s = 0.0
            for i, j in enumerate(perm):
                a, b = small[i], large[j]
                iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
                ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
                inter = iw * ih
                s += inter / (a[2] * a[3] + b[2] * b[3] - inter)
            best = max(best, s)
        total += best
        slots += max(len(g), len(p))
    return total / slots


def test_bbox_iou_matches_an_independent_reference() -> None:
    rng = np.random.default_rng(7)
    frames = []
    for i in range(40):
        n, m = int(rng.integers(0, 4)), int(rng.integers(0, 5))
        gt = np.concatenate([rng.uniform(0, 60, (n, 2)), rng.uniform(10, 40, (n, 2))], 1)
        pred = np.concatenate([rng.uniform(0, 60, (m, 2)), rng.uniform(10, 40, (m, 2))], 1)
        if n and m:  # some near hits
            pred[0] = gt[0] + rng.normal(0, 3, 4).clip(-5, 5)
        frames.append(frame(gt.tolist() or [], pred.tolist() or [], clip=str(i % 7), image=str(i)))
    assert bbox_iou(frames).mean_iou == pytest.approx(_reference_score(frames), abs=1e-9)


def test_random_boxes_are_seeded_inside_the_frame_and_sized_like_the_truth() -> None:
    frames = _with_count(_synthetic_like_frames(20, seed=1), 7)
    a, b = random_boxes(frames, seed=3), random_boxes(frames, seed=3)
    assert all(np.array_equal(x.pred_boxes, y.pred_boxes) for x, y in zip(a, b))
    assert not np.array_equal(a[0].pred_boxes, random_boxes(frames, seed=4)[0].pred_boxes)
    boxes = np.concatenate([f.pred_boxes for f in a])
    sizes = np.concatenate([f.gt_boxes[:, 2:] for f in frames])
    assert (
        (boxes[:, :2] >= 0).all()
        and (boxes[:, 0] + boxes[:, 2] <= 672).all()
        and (boxes[:, 1] + boxes[:, 3] <= 448).all()
    )
    assert all(any(np.allclose(wh, s) for s in sizes) for wh in boxes[:, 2:])
    with pytest.raises(ValueError, match="ground-truth"):
        random_boxes([replace(frames[0], gt_boxes=np.zeros((0, 4)))], seed=0)
