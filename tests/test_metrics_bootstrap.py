"""Clip-level percentile bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from foresight_lib.metrics.bootstrap import _interval, bootstrap_ci, bootstrap_cis, clip_mean, frames_of_clips
from foresight_lib.metrics.boxes import FrameBoxes
from foresight_lib.metrics.coco import coco_map

CLIPS = [f"c{i}" for i in range(8)]
VALUES = np.array([0.1, 0.9, 0.4, 0.6, 0.2, 0.8, 0.3, 0.7, 0.5, 0.5])  # [10]
OWNERS = CLIPS + ["c0", "c0"]  # c0 owns three values


def test_clip_mean_counts_repeated_clips_again() -> None:
    stat = clip_mean(VALUES, OWNERS)
    assert stat(["c0"]) == pytest.approx((0.1 + 0.5 + 0.5) / 3)
    assert stat(["c0", "c0", "c1"]) == pytest.approx((2 * 1.1 + 0.9) / 7)
    with pytest.raises(ValueError):
        stat(["unknown"])


def test_deterministic_per_seed_and_contains_estimate() -> None:
    stat = clip_mean(VALUES, OWNERS)
    first = bootstrap_ci(CLIPS, stat, n_resamples=500, seed=3)
    assert first == bootstrap_ci(CLIPS, stat, n_resamples=500, seed=3)
    assert first != bootstrap_ci(CLIPS, stat, n_resamples=500, seed=4)
    low, high = first
    assert low < VALUES.mean() < high
    assert 0.1 < low < high < 0.9


def test_wider_level_gives_wider_interval() -> None:
    stat = clip_mean(VALUES, OWNERS)
    low50, high50 = bootstrap_ci(CLIPS, stat, n_resamples=500, seed=3, level=0.5)
    low95, high95 = bootstrap_ci(CLIPS, stat, n_resamples=500, seed=3, level=0.95)
    assert low95 < low50 < high50 < high95


def test_equal_clips_give_zero_width() -> None:
    low, high = bootstrap_ci(CLIPS, clip_mean(np.full(8, 0.25), CLIPS), n_resamples=200, seed=0)
    assert low == pytest.approx(0.25) and high == pytest.approx(0.25)


def test_zero_resamples_and_bad_arguments() -> None:
    stat = clip_mean(VALUES, OWNERS)
    assert all(math.isnan(v) for v in bootstrap_ci(CLIPS, stat, n_resamples=0, seed=0))
    with pytest.raises(ValueError):
        bootstrap_ci([], stat, n_resamples=10, seed=0)
    with pytest.raises(ValueError):
        bootstrap_ci(CLIPS, stat, n_resamples=10, seed=0, level=1.0)


def unit_frame(clip: str, pred: list, scores: list) -> FrameBoxes:
    return FrameBoxes(
        image_id=f"{clip}/0",
        clip_id=clip,
        height=100,
        width=100,
        gt_boxes=np.array([[0.0, 0.0, 10.0, 10.0]]),
        pred_boxes=np.array(pred),
        pred_scores=np.array(scores),
    )


def test_duplicated_clips_count_twice_in_map() -> None:
    frames = [
        unit_frame("a", [[0.0, 0.0, 10.0, 10.0]], [0.9]),  # a hit
        unit_frame("b", [[50.0, 50.0, 10.0, 10.0]], [0.95]),  # a miss and a higher-scored false positive
    ]
    resampled = frames_of_clips(frames, ["a", "a", "b"])
    assert [f.clip_id for f in resampled] == ["a", "a", "b"]
    # Ranked: FP, TP, TP over 3 GT -> precision 2/3 up to recall 2/3: 67 of COCO's 101 recall points.
    assert coco_map(resampled, class_agnostic=True)["map50"] == pytest.approx(2 / 3 * 67 / 101)
    # Without the duplicate: FP, TP over 2 GT -> precision 1/2 up to recall 1/2: 51 of 101.
    assert coco_map(frames_of_clips(frames, ["a", "b"]), class_agnostic=True)["map50"] == pytest.approx(0.5 * 51 / 101)
    with pytest.raises(ValueError, match="no frame"):
        frames_of_clips(frames, ["z"])


def test_bootstrap_over_map() -> None:
    frames = [unit_frame("a", [[0.0, 0.0, 10.0, 10.0]], [0.9]), unit_frame("b", [[2.0, 0.0, 10.0, 10.0]], [0.9])]

    def stat(ids: list[str]) -> float:
        return coco_map(frames_of_clips(frames, ids), class_agnostic=True)["map"]

    low, high = bootstrap_ci(["a", "b"], stat, n_resamples=40, seed=0)
    # Clip a alone scores 1.0; clip b (IoU 8/12) alone 0.4; the interval spans between them.
    assert low == pytest.approx(0.4) and high == pytest.approx(1.0)
    assert low <= stat(["a", "b"]) <= high


def test_named_statistics_share_the_resamples() -> None:
    frames = [
        unit_frame("a", [[0.0, 0.0, 10.0, 10.0]], [0.9]),
        unit_frame("b", [[2.0, 0.0, 10.0, 10.0]], [0.9]),
        unit_frame("c", [[50.0, 50.0, 10.0, 10.0]], [0.9]),
    ]

    def stats(ids: list[str]) -> dict[str, float]:
        return coco_map(frames_of_clips(frames, ids), class_agnostic=True)

    clips = ["a", "b", "c"]
    both = bootstrap_cis(clips, stats, n_resamples=30, seed=5, level=0.5)
    for key in ("map50", "map"):
        assert both[key] == bootstrap_ci(clips, lambda ids, key=key: stats(ids)[key], n_resamples=30, seed=5, level=0.5)
    assert both["map"] != both["map50"]
    empty = bootstrap_cis(clips, stats, n_resamples=0, seed=5)
    assert set(empty) == {"map50", "map"} and all(math.isnan(v) for ci in empty.values() for v in ci)


def test_interval_equals_the_scipy_stats_formula() -> None:
    """The interval's normal and Student-t quantiles (scipy.special) are scipy.stats' norm and t, to the bit."""
    from scipy.stats import norm
    from scipy.stats import t as student_t

    def reference(stats: np.ndarray, point: float, level: float, n: int) -> tuple[float, float]:
        r = len(stats)
        z0 = norm.ppf(np.clip((np.sum(stats < point) + 0.5 * np.sum(stats == point)) / r, 0.5 / r, 1 - 0.5 / r))
        half = np.sqrt(n / (n - 1)) * student_t.ppf((1 + level) / 2, n - 1) if n > 1 else norm.ppf((1 + level) / 2)
        low, high = np.quantile(stats, norm.cdf(2 * z0 + np.array([-half, half])))
        return float(low), float(high)

    rng = np.random.default_rng(0)
    for r, n, level in [(1, 1, 0.95), (7, 2, 0.9), (100, 20, 0.95), (500, 40, 0.5), (1000, 3, 0.99), (50, 1000, 0.95)]:
        stats = np.round(rng.normal(size=r), 1)  # ties with the point estimate
        for point in (0.0, float(stats.min()) - 1, float(stats.max()) + 1):
            assert _interval(stats, point, level, n) == reference(stats, point, level, n)
