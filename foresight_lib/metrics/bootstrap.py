"""Bias-corrected, expanded bootstrap confidence intervals over clips (and probe seeds).

Frames of one clip are not independent, so the unit of resampling is the clip: draw as many clip
ids as there are, with replacement, and recompute the statistic on the drawn clips (a clip drawn twice
counts twice).

Interval: the bias-corrected percentile bootstrap (BC, Efron 1981) with expanded tails (Hesterberg 2015). With
``p`` the share of resampled statistics below the point estimate (ties count half), ``z0 = Phi^-1(p)`` and ``n``
distinct clips, the bounds are the ``Phi(2 z0 -+ e)`` quantiles of the resamples, ``e = sqrt(n / (n - 1)) *
t_{n-1}((1 + level) / 2)`` (1.96 at ``n -> inf``; one clip gives the degenerate interval of its own value).
Why: pooled AP over clips is not a mean of clip values; a resample with fewer distinct clips pools fewer
incomparable score scales and scores higher, so the resamples sit above the point estimate (89-91% of them on one
landed probe) and the plain percentile interval is shifted upward; BC moves the bounds by that measured median
bias (z0 = 0 gives the percentile bounds back) and stays inside the statistic's range (unlike the basic interval
``2 theta - q``), without BCa's jackknife (one COCOeval accumulation per clip). The bootstrap also sees only about
half of pooled AP's own small-sample bias and ~93% of its spread at 20 clips, so BC alone covered 88-90%; the
expansion (the Student-t width a mean of ``n`` clips would get) brings it to the nominal level. Coverage of 95%
intervals measured by simulation (``tests/test_metrics_coverage.py``'s model, clip score offsets sd 0.5, 200-300
repetitions): mAP@0.5 91-94% and bbox IoU 92-95% at 20 and 40 clips, against 88-90% (mAP) for the percentile,
basic and plain BC intervals.

Seeds (:func:`bootstrap_clips_seeds`): with one statistic per probe seed, each resample draws the clips
(jointly for every seed) and, independently, as many seeds with replacement, and averages the drawn
seeds' statistics: the interval then holds the spread over seeds as well as over clips.

A statistic is any function of a list of clip ids (with repeats):
- bbox IoU: :func:`clip_ratio` over the per-frame matched IoU sums and slot counts and their clips;
- mAP: ``lambda ids: evaluation.map(frame_indices_of_clips(frames, ids))`` with :func:`bootstrap_cis`,
  where ``evaluation = CocoEvaluation(frames)`` ran COCOeval's per-image matching once; a duplicated
  clip's frames count as distinct images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy.special import ndtr, ndtri, stdtrit  # scipy.stats' norm.cdf, norm.ppf, t.ppf without its import cost

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


def _interval(stats: np.ndarray, point: float, level: float, n_clips: int) -> tuple[float, float]:
    """Bias-corrected, expanded percentile interval of the resampled statistics ``[R]`` around ``point`` over
    ``n_clips`` distinct clips (module docstring); ``(nan, nan)`` when R = 0 or a resample or the point is NaN."""
    if len(stats) == 0 or np.isnan(stats).any() or np.isnan(point):
        return float("nan"), float("nan")
    r = len(stats)
    below = (np.sum(stats < point) + 0.5 * np.sum(stats == point)) / r
    z0 = ndtri(np.clip(below, 0.5 / r, 1.0 - 0.5 / r))
    half = (
        np.sqrt(n_clips / (n_clips - 1)) * stdtrit(n_clips - 1, (1.0 + level) / 2.0)
        if n_clips > 1
        else ndtri((1.0 + level) / 2.0)
    )
    tails = ndtr(2.0 * z0 + np.array([-half, half]))  # [2]
    low, high = np.quantile(stats, tails)
    return float(low), float(high)


def bootstrap_ci(
    clip_ids: Sequence[str], statistic: Statistic, n_resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Bias-corrected, expanded bootstrap ``(low, high)`` of ``statistic`` over the distinct ``clip_ids``.

    Deterministic for a given seed (numpy ``default_rng``); ``n_resamples=0`` gives ``(nan, nan)``.
    """
    draws = _draws(clip_ids, n_resamples, seed, level)
    if not draws:
        return float("nan"), float("nan")
    point = statistic(list(dict.fromkeys(clip_ids)))
    return _interval(np.array([statistic(ids) for ids in draws], dtype=np.float64), point, level, len(draws[0]))


def bootstrap_cis(
    clip_ids: Sequence[str],
    statistics: Callable[[list[str]], Mapping[str, float]],
    n_resamples: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """:func:`bootstrap_ci` for a statistic returning several named numbers from one evaluation (mAP@0.5 and
    mAP from one COCOeval run); the same seed draws the same resamples as :func:`bootstrap_ci`.

    ``n_resamples=0`` gives ``(nan, nan)`` for every name (the names come from one call on all clips).
    """
    draws = _draws(clip_ids, n_resamples, seed, level)
    point = statistics(list(dict.fromkeys(clip_ids)))
    if not draws:
        return {key: (float("nan"), float("nan")) for key in point}
    results = [statistics(ids) for ids in draws]
    n = len(draws[0])
    return {
        key: _interval(np.array([r[key] for r in results], dtype=np.float64), point[key], level, n) for key in point
    }


def bootstrap_clips_seeds(
    clip_ids: Sequence[str], statistics: Sequence[Statistic], n_resamples: int, seed: int, level: float = 0.95
) -> tuple[float, tuple[float, float]]:
    """The mean over probe seeds of a statistic, and its bias-corrected interval over clips *and* seeds.

    ``statistics[s]`` is seed ``s``'s statistic (e.g. :func:`clip_ratio` of that seed's bbox IoU parts). Each
    resample draws the clips once for every seed and ``len(statistics)`` seeds with replacement, and averages the
    drawn seeds' statistics on the drawn clips. Returns ``(mean over seeds on all clips, (low, high))``; one seed
    gives :func:`bootstrap_ci`'s interval. Deterministic for a given seed; ``n_resamples=0`` gives NaN bounds.
    """
    if not statistics:
        raise ValueError("bootstrap_clips_seeds needs at least one seed's statistic")
    draws = _draws(clip_ids, n_resamples, seed, level)
    clips = list(dict.fromkeys(clip_ids))
    point = float(np.mean([stat(clips) for stat in statistics]))
    if not draws:
        return point, (float("nan"), float("nan"))
    n = len(statistics)
    picks = (
        np.random.default_rng([seed, 1]).integers(0, n, size=(len(draws), n))
        if n > 1
        else np.zeros((len(draws), 1), int)
    )
    stats = np.array([np.mean([statistics[s](ids) for s in row]) for ids, row in zip(draws, picks)])  # [R]
    return point, _interval(stats, point, level, len(clips))


def clip_ratio(numerators: np.ndarray, denominators: np.ndarray, value_clip_ids: Sequence[str]) -> Statistic:
    """Statistic: ``sum(numerators) / sum(denominators)`` over the items ``[K]`` of the given clips (repeats count
    again): a pooled ratio such as bbox IoU (matched IoU sums over slot counts per frame).

    Raises ValueError, when called, if the given clips' denominators sum to 0.
    """
    num = np.asarray(numerators, dtype=np.float64)  # [K]
    den = np.asarray(denominators, dtype=np.float64)  # [K]
    owners = np.asarray(value_clip_ids, dtype=str)  # [K]
    if not num.shape == den.shape == owners.shape or num.ndim != 1:
        raise ValueError(
            f"numerators {num.shape}, denominators {den.shape} and value_clip_ids {owners.shape} "
            "must be matching 1-D arrays"
        )
    sums = {c: (float(num[owners == c].sum()), float(den[owners == c].sum())) for c in np.unique(owners)}

    def ratio(ids: list[str]) -> float:
        total = sum(sums.get(c, (0.0, 0.0))[1] for c in ids)
        if total == 0:
            raise ValueError("clip statistic: none of the given clips has a value")
        return sum(sums.get(c, (0.0, 0.0))[0] for c in ids) / total

    return ratio


def clip_mean(values: np.ndarray, value_clip_ids: Sequence[str]) -> Statistic:
    """Statistic: the mean of ``values`` ``[K]`` over the items of the given clips (repeats count again).

    Raises ValueError, when called, if none of the given clips has a value.
    """
    values = np.asarray(values, dtype=np.float64)  # [K]
    return clip_ratio(values, np.ones_like(values), value_clip_ids)


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
