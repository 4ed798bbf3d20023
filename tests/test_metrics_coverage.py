"""Coverage of the 95% intervals by simulation: detections drawn from a known model, the population value
estimated from a large sample, intervals from the library's own functions on many small samples."""

from __future__ import annotations

import numpy as np
import pytest

from foresight_lib.metrics.bootstrap import (
    bootstrap_ci,
    bootstrap_clips_seeds,
    clip_mean,
    clip_ratio,
    frame_indices_of_clips,
    interval,
)
from foresight_lib.metrics.boxes import FrameBoxes, bbox_iou
from foresight_lib.metrics.coco import CocoEvaluation
from foresight_lib.metrics.detection import iou_statistic, selectivity
from foresight_lib.metrics.operating import OperatingPoint, asserted
from foresight_lib.params import DecisionParams

SCORE_THRESHOLD = OperatingPoint(0.5, 100)  # the detections scoring at least 0.5 count


def sample_clips(rng: np.random.Generator, n_clips: int, offset_sd: float, n_frames: int = 2) -> list[FrameBoxes]:
    """The known model: ``n_frames`` frames per clip, 1-2 objects of 20 px in 100x100 frames; each object found with
    probability 0.7 (a box jittered by 3 px), Poisson(1) false positives placed uniformly; scores are logistic in a
    per-clip offset (sd ``offset_sd``: scores not comparable across clips) plus N(1, 1) for hits, N(-0.5, 1) for
    false positives."""
    frames = []
    for c in range(n_clips):
        offset = rng.normal(0.0, offset_sd)
        for f in range(n_frames):
            n = int(rng.integers(1, 3))
            gt = np.concatenate([rng.uniform(0, 80, (n, 2)), np.full((n, 2), 20.0)], 1)
            hit = rng.random(n) < 0.7
            tp = gt[hit] + np.concatenate(
                [rng.normal(0, 3, (int(hit.sum()), 2)), np.zeros((int(hit.sum()), 2))],
                1,
            )
            k = int(rng.poisson(1.0))
            fp = np.concatenate([rng.uniform(0, 80, (k, 2)), np.full((k, 2), 20.0)], 1)
            logit = offset + np.concatenate([rng.normal(1.0, 1.0, len(tp)), rng.normal(-0.5, 1.0, k)])
            frames.append(
                FrameBoxes(
                    f"{c}:{f}",
                    str(c),
                    100,
                    100,
                    gt,
                    np.concatenate([tp, fp]),
                    1 / (1 + np.exp(-logit)),
                )
            )
    return frames


def test_95_percent_intervals_cover_the_population_value() -> None:
    offset_sd, n_clips, reps, resamples = 0.5, 20, 200, 100
    population = sample_clips(np.random.default_rng(12345), 6000, offset_sd)
    pop_map = CocoEvaluation(population, class_agnostic=True).map()["map50"]
    pop_iou = bbox_iou(asserted(population, SCORE_THRESHOLD)).mean_iou
    covered = {"map50": 0, "bbox_iou": 0}
    for rep in range(reps):
        frames = sample_clips(np.random.default_rng([7, rep]), n_clips, offset_sd)
        clips = [str(c) for c in range(n_clips)]
        evaluation = CocoEvaluation(frames, class_agnostic=True)
        lo, hi = bootstrap_ci(
            clips,
            lambda ids, e=evaluation, f=frames: e.map(frame_indices_of_clips(f, ids))["map50"],
            resamples,
            seed=rep,
        )
        covered["map50"] += lo <= pop_map <= hi
        lo, hi = bootstrap_ci(
            clips,
            iou_statistic(bbox_iou(asserted(frames, SCORE_THRESHOLD))),
            resamples,
            seed=rep,
        )
        covered["bbox_iou"] += lo <= pop_iou <= hi
    rates = {k: v / reps for k, v in covered.items()}
    print("coverage", rates)
    assert all(0.90 <= r <= 0.98 for r in rates.values()), rates


# Per-clip models of what the rule reads, each ``(rng, n) -> (numerators [n], denominators [n])`` of a pooled ratio
# (bbox IoU: matched IoU sums over slot counts, 6-29 slots per clip) and its population value.
def _slots(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(6, 30, n).astype(np.float64)


def _iou_low(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip IoUs Beta(1.2, 4): mean 0.23, skewed towards 0 (a weak point)."""
    w = _slots(rng, n)
    return rng.beta(1.2, 4.0, n) * w, w


def _iou_high(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip IoUs Beta(4, 1.3): mean 0.75, skewed towards 1 (a strong point)."""
    w = _slots(rng, n)
    return rng.beta(4.0, 1.3, n) * w, w


def _iou_failing(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A fifth of the clips read 0 (the head fails on them), the others Beta(5, 3): mean 0.5."""
    w = _slots(rng, n)
    return np.where(rng.random(n) < 0.2, 0.0, rng.beta(5.0, 3.0, n)) * w, w


def _paired(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Selectivity: a point's clip IoU Beta(2, 3) minus its control's, which shares 30% of it (paired)."""
    w = _slots(rng, n)
    point = rng.beta(2.0, 3.0, n)
    control = 0.3 * point + 0.7 * rng.beta(1.0, 6.0, n)
    return (point - control) * w, w


MODELS = {
    "iou_low": (_iou_low, 1.2 / 5.2),
    "iou_high": (_iou_high, 4.0 / 5.3),
    "iou_failing": (_iou_failing, 0.8 * 5 / 8),
    "selectivity": (_paired, 0.4 - (0.3 * 0.4 + 0.7 / 7)),
}


def _coverage(model: str, n: int, reps: int, resamples: int) -> float:
    """Share of ``reps`` samples of ``n`` clips whose 95% interval holds the population value: the resamples drawn as
    :func:`bootstrap_ci` draws them (the same generator and call), the ratio vectorised over them, the bounds from
    the library's :func:`interval`."""
    draw, truth = MODELS[model]
    rng = np.random.default_rng([n, len(model)])
    hits = 0
    for rep in range(reps):
        num, den = draw(rng, n)  # [n], [n]
        idx = np.random.default_rng(rep).integers(0, n, size=(resamples, n))  # [R, n], as _draws
        low, high = interval(num[idx].sum(1) / den[idx].sum(1), num.sum() / den.sum(), 0.95, n)
        hits += low <= truth <= high
    return hits / reps


def test_the_vectorised_coverage_harness_is_bootstrap_ci() -> None:
    num, den = _iou_failing(np.random.default_rng(0), 7)
    clips = [str(i) for i in range(7)]
    idx = np.random.default_rng(3).integers(0, 7, size=(200, 7))
    expected = interval(num[idx].sum(1) / den[idx].sum(1), num.sum() / den.sum(), 0.95, 7)
    assert bootstrap_ci(clips, clip_ratio(num, den, clips), 200, seed=3) == pytest.approx(expected, abs=1e-12)


def test_intervals_cover_at_every_test_set_size_the_rule_accepts() -> None:
    """95% intervals of skewed, bounded per-clip IoUs pooled as bbox IoU is, and of a paired difference (the
    selectivity), at 3, 5, 10 and 30 clips: >= 90% from ``decision.min_test_clips`` on. Below it they are still far
    above the 73-76% of the percentile interval at 3 clips (the min-max of the clips), but not guaranteed."""
    minimum = DecisionParams().min_test_clips
    rates = {(m, n): _coverage(m, n, reps=1000, resamples=300) for m in MODELS for n in (3, 5, 10, 30)}
    print("coverage", rates)
    assert all(r >= 0.90 for (_, n), r in rates.items() if n >= minimum), rates
    assert all(r >= 0.85 for r in rates.values()), rates
    assert all(r <= 0.99 for r in rates.values()), rates  # not covering by being uselessly wide


def test_clips_seeds_interval_holds_the_seed_spread() -> None:
    clips = [f"c{i}" for i in range(12)]
    rng = np.random.default_rng(0)
    values = rng.uniform(0.1, 0.3, 12)  # one value per clip
    one = clip_mean(values, clips)
    # One seed: the plain clip bootstrap.
    point, ci, sd, n = bootstrap_clips_seeds(clips, [one], 300, seed=4)
    assert point == pytest.approx(values.mean()) and ci == bootstrap_ci(clips, one, 300, seed=4) and n == 12
    # The per-clip SD: the bootstrap SE x sqrt(n), near the clip values' own SD.
    assert sd == pytest.approx(values.std(), rel=0.15)
    # The seeds: 0.185, 0.169 and a failed 0.000. The clip-only interval of the seed mean is narrow;
    # drawing seeds too reaches down towards the failed seed.
    seeds = [clip_mean(values * 0 + v, clips) for v in (0.185, 0.169, 0.0)]
    point, (lo, hi), _, _ = bootstrap_clips_seeds(clips, seeds, 400, seed=1)
    assert point == pytest.approx((0.185 + 0.169) / 3)
    assert lo < 0.07 and hi > 0.16
    assert bootstrap_clips_seeds(clips, seeds, 400, seed=1)[:2] == (point, (lo, hi))
    with pytest.raises(ValueError):
        bootstrap_clips_seeds(clips, [], 10, seed=0)


def test_selectivity_is_paired_over_clips_and_seeds() -> None:
    frames = sample_clips(np.random.default_rng(3), 15, 0.5)
    kept = bbox_iou(asserted(frames, SCORE_THRESHOLD))
    none = bbox_iou(
        [
            FrameBoxes(
                f.image_id,
                f.clip_id,
                f.height,
                f.width,
                f.gt_boxes,
                np.zeros((0, 4)),
                np.zeros(0),
            )
            for f in frames
        ]
    )
    same = selectivity([kept], [kept], 200, seed=0)
    assert same["selectivity"] == 0.0 and same["selectivity_ci"] == (
        0.0,
        0.0,
    )  # paired: identical inputs, no width
    gain = selectivity([kept], [none], 200, seed=0)
    assert gain["selectivity"] == pytest.approx(kept.mean_iou)
    assert 0.0 < gain["selectivity_ci"][0] < kept.mean_iou < gain["selectivity_ci"][1]
    two = selectivity([kept, kept], [none, kept], 200, seed=0)
    assert two["selectivity"] == pytest.approx(kept.mean_iou / 2)
    assert two["selectivity_ci"][0] < gain["selectivity_ci"][0]
    with pytest.raises(ValueError, match="one control"):
        selectivity([kept], [], 10, seed=0)
    with pytest.raises(ValueError, match="same frames"):
        selectivity([kept], [bbox_iou(frames[:4])], 10, seed=0)
