"""Coverage of the 95% intervals by simulation: detections drawn from a known model, the population value
estimated from a large sample, intervals from the library's own functions on many small samples."""

from __future__ import annotations

import numpy as np
import pytest

from foresight_lib.metrics.bootstrap import (
    bootstrap_ci,
    bootstrap_clips_seeds,
    clip_mean,
    frame_indices_of_clips,
)
from foresight_lib.metrics.boxes import FrameBoxes, bbox_iou
from foresight_lib.metrics.coco import CocoEvaluation
from foresight_lib.metrics.detection import iou_statistic, selectivity
from foresight_lib.metrics.operating import OperatingPoint, asserted

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


def test_clips_seeds_interval_holds_the_seed_spread() -> None:
    clips = [f"c{i}" for i in range(12)]
    rng = np.random.default_rng(0)
    values = rng.uniform(0.1, 0.3, 12)  # one value per clip
    one = clip_mean(values, clips)
    # One seed: the plain clip bootstrap.
    point, ci = bootstrap_clips_seeds(clips, [one], 300, seed=4)
    assert point == pytest.approx(values.mean()) and ci == bootstrap_ci(clips, one, 300, seed=4)
    # The seeds: 0.185, 0.169 and a failed 0.000. The clip-only interval of the seed mean is narrow;
    # drawing seeds too reaches down towards the failed seed.
    seeds = [clip_mean(values * 0 + v, clips) for v in (0.185, 0.169, 0.0)]
    point, (lo, hi) = bootstrap_clips_seeds(clips, seeds, 400, seed=1)
    assert point == pytest.approx((0.185 + 0.169) / 3)
    assert lo < 0.07 and hi > 0.16
    assert bootstrap_clips_seeds(clips, seeds, 400, seed=1) == (point, (lo, hi))
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
