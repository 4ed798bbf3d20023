"""Clip-level bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from foresight_lib.metrics.bootstrap import (
    UNIT,
    bootstrap_ci,
    bootstrap_cis,
    clip_mean,
    clips_to_clear,
    frames_of_clips,
    half_width,
    interval,
)
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

    # Clip a alone scores 1.0; clip b (IoU 8/12) alone 0.4: the resamples span [0.4, 1.0]; two clips' t bounds
    # reach past them, and the support clips them to AP's range.
    low, high = bootstrap_ci(["a", "b"], stat, n_resamples=40, seed=0)
    assert low < 0.4 and high > 1.0
    assert bootstrap_ci(["a", "b"], stat, n_resamples=40, seed=0, support=UNIT) == (max(low, 0.0), 1.0)
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
    """The interval is the outer of the bias-corrected expanded percentile bounds and the bias-corrected t bounds,
    with scipy.stats' norm and t as the reference for the quantiles."""
    from scipy.stats import norm
    from scipy.stats import t as student_t

    def reference(stats: np.ndarray, point: float, level: float, n: int) -> tuple[float, float]:
        r = len(stats)
        z0 = norm.ppf(np.clip((np.sum(stats < point) + 0.5 * np.sum(stats == point)) / r, 0.5 / r, 1 - 0.5 / r))
        e = np.sqrt(n / (n - 1)) * student_t.ppf((1 + level) / 2, n - 1) if n > 1 else norm.ppf((1 + level) / 2)
        low, high = np.quantile(stats, norm.cdf(2 * z0 + np.array([-e, e])))
        se = np.std(stats, ddof=1) if r > 1 else 0.0
        return min(low, point + se * (z0 - e)), max(high, point + se * (z0 + e))

    rng = np.random.default_rng(0)
    for r, n, level in [(1, 1, 0.95), (7, 2, 0.9), (100, 20, 0.95), (500, 40, 0.5), (1000, 3, 0.99), (50, 1000, 0.95)]:
        stats = np.round(rng.normal(size=r), 1)  # ties with the point estimate
        for point in (0.0, float(stats.min()) - 1, float(stats.max()) + 1):
            assert interval(stats, point, level, n) == pytest.approx(reference(stats, point, level, n), abs=1e-12)
            low, high = interval(stats, point, level, n, support=(-0.5, 0.5))
            ref_low, ref_high = reference(stats, point, level, n)
            assert (low, high) == pytest.approx((np.clip(ref_low, -0.5, 0.5), np.clip(ref_high, -0.5, 0.5)))


def test_three_clips_reach_past_their_own_range() -> None:
    """At 3 clips the resampled means never leave the clips' min-max; the interval is the t-interval of the 3 values
    (scipy.stats), which does."""
    from scipy.stats import t as student_t

    values = np.array([0.1, 0.25, 0.6])
    clips = ["a", "b", "c"]
    low, high = bootstrap_ci(clips, clip_mean(values, clips), n_resamples=2000, seed=0)
    half = student_t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    assert low < values.min() and high > values.max()
    # The t bounds (up to the bootstrap's own SE estimate and its small median bias).
    assert low == pytest.approx(values.mean() - half, abs=0.05) and high == pytest.approx(
        values.mean() + half, abs=0.05
    )


def test_clips_to_clear_is_where_the_t_half_width_drops_below_the_distance() -> None:
    """Against scipy.stats' t: the fewest n with t_{n-1}(0.975) * sqrt(n / (n - 1)) * sd / sqrt(n) < distance."""
    from scipy.stats import t as student_t

    def reference_half(n: int, sd: float) -> float:
        return student_t.ppf(0.975, n - 1) * np.sqrt(n / (n - 1)) * sd / np.sqrt(n)

    for n in (2, 3, 10, 200):
        assert half_width(n, 0.3) == pytest.approx(reference_half(n, 0.3))
    for distance, sd in [(0.05, 0.2), (0.01, 0.3), (0.2, 0.15), (0.5, 0.01)]:
        n = clips_to_clear(distance, sd)
        assert n >= 2 and reference_half(n, sd) < distance
        assert n == 2 or reference_half(n - 1, sd) >= distance
    # A value on the threshold, or no spread measured, cannot be separated by any number of clips.
    assert clips_to_clear(0.0, 0.2) is None and clips_to_clear(0.1, float("nan")) is None
    assert clips_to_clear(1e-9, 0.3, most=1000) is None
