"""Percentile bootstrap confidence intervals over clips.

Frames of one clip are not independent, so the unit of resampling is the clip: draw as many clip
ids as there are, with replacement, recompute the statistic on the drawn clips (a clip drawn twice
counts twice), and take the (1-level)/2 and (1+level)/2 percentiles of the resampled statistics.

A statistic is any function of a list of clip ids (with repeats):
- bbox IoU: :func:`clip_mean` over the per-object IoUs and their clips;
- mAP: ``lambda ids: evaluation.map(frame_indices_of_clips(frames, ids))`` with :func:`bootstrap_cis`,
  where ``evaluation = CocoEvaluation(frames)`` ran COCOeval's per-image matching once; a duplicated
  clip's frames count as distinct images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .boxes import FrameBoxes

Statistic = Callable[[list[str]], float]


def _draws(clip_ids: Sequence[str], n_resamples: int, seed: int, level: float) -> list[list[str]]:
    """Validate the arguments; ``n_resamples`` draws, with replacement, of as many distinct ``clip_ids``."""
    clips = list(dict.fromkeys(clip_ids))
    if not clips:
        raise ValueError("bootstrap needs at least one clip")
    if n_resamples < 0:
        raise ValueError(f"n_resamples must be >= 0 (got {n_resamples})")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1) (got {level})")
    draws = np.random.default_rng(seed).integers(0, len(clips), size=(n_resamples, len(clips)))  # [R, C]
    return [[clips[i] for i in row] for row in draws]


def _interval(stats: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the resampled statistics ``[R]``; ``(nan, nan)`` when R = 0."""
    if len(stats) == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(stats, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


def bootstrap_ci(clip_ids: Sequence[str], statistic: Statistic, n_resamples: int, seed: int,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` of ``statistic`` over the distinct ``clip_ids``.

    Deterministic for a given seed (numpy ``default_rng``); ``n_resamples=0`` gives ``(nan, nan)``.
    """
    draws = _draws(clip_ids, n_resamples, seed, level)
    return _interval(np.array([statistic(ids) for ids in draws], dtype=np.float64), level)


def bootstrap_cis(clip_ids: Sequence[str], statistics: Callable[[list[str]], Mapping[str, float]],
                  n_resamples: int, seed: int, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """:func:`bootstrap_ci` for a statistic returning several named numbers from one evaluation (mAP@0.5 and
    mAP from one COCOeval run); the same seed draws the same resamples as :func:`bootstrap_ci`.

    ``n_resamples=0`` gives ``(nan, nan)`` for every name (the names come from one call on all clips).
    """
    draws = _draws(clip_ids, n_resamples, seed, level)
    if not draws:
        return {key: (float("nan"), float("nan")) for key in statistics(list(dict.fromkeys(clip_ids)))}
    results = [statistics(ids) for ids in draws]
    return {key: _interval(np.array([r[key] for r in results], dtype=np.float64), level) for key in results[0]}


def clip_mean(values: np.ndarray, value_clip_ids: Sequence[str]) -> Statistic:
    """Statistic: the mean of ``values`` ``[K]`` over the items of the given clips (repeats count again).

    Raises ValueError, when called, if none of the given clips has a value.
    """
    values = np.asarray(values, dtype=np.float64)  # [K]
    owners = np.asarray(value_clip_ids, dtype=str)  # [K]
    if values.shape != owners.shape or values.ndim != 1:
        raise ValueError(f"values {values.shape} and value_clip_ids {owners.shape} must be matching 1-D arrays")
    sums = {c: float(values[owners == c].sum()) for c in np.unique(owners)}
    counts = {c: int((owners == c).sum()) for c in sums}

    def mean(ids: list[str]) -> float:
        n = sum(counts.get(c, 0) for c in ids)
        if n == 0:
            raise ValueError("clip_mean: none of the given clips has a value")
        return sum(sums.get(c, 0.0) for c in ids) / n

    return mean


def frame_indices_of_clips(frames: Sequence[FrameBoxes], clip_ids: Sequence[str]) -> list[int]:
    """Positions in ``frames`` of each clip's frames, clip by clip in ``clip_ids`` order (repeats repeated)."""
    by_clip: dict[str, list[int]] = {}
    for i, frame in enumerate(frames):
        by_clip.setdefault(frame.clip_id, []).append(i)
    unknown = set(clip_ids) - by_clip.keys()
    if unknown:
        raise ValueError(f"clips with no frame: {sorted(unknown)}")
    return [i for c in clip_ids for i in by_clip[c]]


def frames_of_clips(frames: Sequence[FrameBoxes], clip_ids: Sequence[str]) -> list[FrameBoxes]:
    """The frames of each clip in ``clip_ids``, in that order; a repeated clip's frames are repeated."""
    by_clip: dict[str, list[FrameBoxes]] = {}
    for frame in frames:
        by_clip.setdefault(frame.clip_id, []).append(frame)
    unknown = set(clip_ids) - by_clip.keys()
    if unknown:
        raise ValueError(f"clips with no frame: {sorted(unknown)}")
    return [frame for c in clip_ids for frame in by_clip[c]]
