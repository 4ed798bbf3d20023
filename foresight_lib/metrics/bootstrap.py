"""Bootstrap confidence intervals over clips (and probe seeds) that keep their level down to a few clips.

Frames of one clip are not independent, so the unit of resampling is the clip: draw as many clip
ids as there are, with replacement, and recompute the statistic on the drawn clips (a clip drawn twice
counts twice).
The unit is whatever the ids name: the step probes pass video ids (clips of one video are not independent
either), and "clip" below then reads "video".

Interval (:func:`interval`): with ``n`` distinct clips, ``R`` resampled statistics of standard deviation ``se``,
``p`` the share of them below the point estimate (ties count half), ``z0 = Phi^-1(p)`` and the expansion
``e = sqrt(n / (n - 1)) * t_{n-1}((1 + level) / 2)`` (1.96 at ``n -> inf``), each bound is the outer of
- the bias-corrected, expanded percentile bound (BC, Efron 1981, with Hesterberg's 2015 expansion): the
  ``Phi(2 z0 -+ e)`` quantile of the resamples, which follows the statistic's skew and median bias, and
- the bias-corrected Student-t bound ``point + se * (z0 -+ e)``: for the mean of ``n`` clip values exactly the
  t-interval (``se * e = t_{n-1} s / sqrt(n)``), otherwise its delta-method analogue;
then clipped to the statistic's ``support`` (IoU and mAP: [0, 1]). One clip gives the degenerate interval of its
own value.
Why both: the percentile bounds cannot leave the range the resamples reach, the clips' own minimum and maximum
mean at 3 clips (the expansion then asks for quantiles beyond it), so the 95% percentile interval of 3 clip
values covers only ~73%: the chance that the population value lies between the smallest and the largest of 3
draws. The t bound is not limited by the resamples; the percentile bound keeps the coverage of a skewed
statistic and of pooled AP, whose resamples sit above the point estimate (a resample with fewer distinct clips
pools fewer incomparable score scales). Coverage of 95% intervals measured by simulation
(``tests/test_metrics_coverage.py``; skewed, bounded per-clip IoU-like values pooled as bbox IoU is, and a paired
difference): 90-95% at 3, 5, 10 and 30 clips, where the percentile interval alone gives 71-76% at 3 clips and
87-91% at 5; with 30% of clips failing outright (value 0) 89% at 3 clips, 91% at 5 and 95% at 10 (the reason
for ``decision.min_test_clips``); mAP@0.5 93% and bbox IoU 96% of simulated detections at 20 clips.

Seeds (:func:`bootstrap_clips_seeds`): with one statistic per probe seed, each resample draws the clips
(jointly for every seed) and, independently, as many seeds with replacement, and averages the drawn
seeds' statistics: the interval then holds the spread over seeds as well as over clips. It also returns the
per-clip standard deviation ``se * sqrt(n)``, from which :func:`clips_to_clear` plans a test set that would
separate a value from a threshold (the t half-width ``e(n) * sd / sqrt(n)``).

A statistic is any function of a list of clip ids (with repeats):
- bbox IoU: :func:`clip_ratio` over the per-frame matched IoU sums and slot counts and their clips;
- mAP: ``lambda ids: evaluation.map(frame_indices_of_clips(frames, ids))`` with :func:`bootstrap_cis`,
  where ``evaluation = CocoEvaluation(frames)`` ran COCOeval's per-image matching once; a duplicated
  clip's frames count as distinct images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr, ndtri, stdtrit  # scipy.stats' norm.cdf, norm.ppf, t.ppf without its import cost

from .boxes import FrameBoxes

Statistic = Callable[[list[str]], float]
Support = tuple[float, float]
UNBOUNDED: Support = (-np.inf, np.inf)
UNIT: Support = (0.0, 1.0)  # IoU, AP, accuracy


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


def expansion(n_clips: int, level: float = 0.95) -> float:
    """``e(n) = sqrt(n / (n - 1)) * t_{n-1}((1 + level) / 2)``: the half-width of the ``level`` interval of a mean of
    ``n`` clip values in units of its bootstrap standard error (the normal quantile for one clip)."""
    if n_clips <= 1:
        return float(ndtri((1.0 + level) / 2.0))
    return float(np.sqrt(n_clips / (n_clips - 1)) * stdtrit(n_clips - 1, (1.0 + level) / 2.0))


def interval(
    stats: np.ndarray, point: float, level: float, n_clips: int, support: Support = UNBOUNDED
) -> tuple[float, float]:
    """The interval of the resampled statistics ``[R]`` around ``point`` over ``n_clips`` distinct clips (module
    docstring), within ``support``; ``(nan, nan)`` when R = 0 or a resample or the point is NaN."""
    if len(stats) == 0 or np.isnan(stats).any() or np.isnan(point):
        return float("nan"), float("nan")
    r = len(stats)
    below = (np.sum(stats < point) + 0.5 * np.sum(stats == point)) / r
    z0 = ndtri(np.clip(below, 0.5 / r, 1.0 - 0.5 / r))
    half = expansion(n_clips, level)
    percentile = np.quantile(stats, ndtr(2.0 * z0 + np.array([-half, half])))  # [2]
    se = float(np.std(stats, ddof=1)) if r > 1 else 0.0
    low = min(float(percentile[0]), point + se * (z0 - half))
    high = max(float(percentile[1]), point + se * (z0 + half))
    return float(np.clip(low, *support)), float(np.clip(high, *support))


def bootstrap_ci(
    clip_ids: Sequence[str],
    statistic: Statistic,
    n_resamples: int,
    seed: int,
    level: float = 0.95,
    support: Support = UNBOUNDED,
) -> tuple[float, float]:
    """Bootstrap ``(low, high)`` of ``statistic`` over the distinct ``clip_ids`` (:func:`interval`).

    Deterministic for a given seed (numpy ``default_rng``); ``n_resamples=0`` gives ``(nan, nan)``.
    """
    draws = _draws(clip_ids, n_resamples, seed, level)
    if not draws:
        return float("nan"), float("nan")
    point = statistic(list(dict.fromkeys(clip_ids)))
    stats = np.array([statistic(ids) for ids in draws], dtype=np.float64)  # [R]
    return interval(stats, point, level, len(draws[0]), support)


def bootstrap_cis(
    clip_ids: Sequence[str],
    statistics: Callable[[list[str]], Mapping[str, float]],
    n_resamples: int,
    seed: int,
    level: float = 0.95,
    support: Support = UNBOUNDED,
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
        key: interval(np.array([r[key] for r in results], dtype=np.float64), point[key], level, n, support)
        for key in point
    }


class SeedsEstimate(NamedTuple):
    """A statistic averaged over probe seeds: its value, interval over clips and seeds, and per-clip SD."""

    value: float
    ci: tuple[float, float]
    clip_sd: float  # bootstrap standard error x sqrt(distinct clips); NaN without resamples
    n_clips: int  # distinct clips resampled


def bootstrap_clips_seeds(
    clip_ids: Sequence[str],
    statistics: Sequence[Statistic],
    n_resamples: int,
    seed: int,
    level: float = 0.95,
    support: Support = UNBOUNDED,
) -> SeedsEstimate:
    """The mean over probe seeds of a statistic, its interval over clips *and* seeds, and its per-clip SD.

    ``statistics[s]`` is seed ``s``'s statistic (e.g. :func:`clip_ratio` of that seed's bbox IoU parts). Each
    resample draws the clips once for every seed and ``len(statistics)`` seeds with replacement, and averages the
    drawn seeds' statistics on the drawn clips. The value is the mean over seeds on all clips; one seed gives
    :func:`bootstrap_ci`'s interval. Deterministic for a given seed; ``n_resamples=0`` gives NaN bounds and SD.
    """
    if not statistics:
        raise ValueError("bootstrap_clips_seeds needs at least one seed's statistic")
    draws = _draws(clip_ids, n_resamples, seed, level)
    clips = list(dict.fromkeys(clip_ids))
    point = float(np.mean([stat(clips) for stat in statistics]))
    if not draws:
        return SeedsEstimate(point, (float("nan"), float("nan")), float("nan"), len(clips))
    n = len(statistics)
    picks = (
        np.random.default_rng([seed, 1]).integers(0, n, size=(len(draws), n))
        if n > 1
        else np.zeros((len(draws), 1), int)
    )
    stats = np.array([np.mean([statistics[s](ids) for s in row]) for ids, row in zip(draws, picks)])  # [R]
    sd = float(np.std(stats, ddof=1) * np.sqrt(len(clips))) if len(stats) > 1 else float("nan")
    return SeedsEstimate(point, interval(stats, point, level, len(clips), support), sd, len(clips))


def half_width(n_clips: int, clip_sd: float, level: float = 0.95) -> float:
    """The t half-width :func:`interval` gives a mean of ``n_clips`` clip values of standard deviation ``clip_sd``
    (per-clip SD as :class:`SeedsEstimate` reports it): ``e(n) * clip_sd / sqrt(n)``."""
    return expansion(n_clips, level) * clip_sd / np.sqrt(n_clips)


def clips_to_clear(distance: float, clip_sd: float, level: float = 0.95, most: int = 10**7) -> int | None:
    """The fewest clips (>= 2) whose :func:`half_width` at ``clip_sd`` is below ``distance`` (a value's distance to a
    threshold): SE ~ 1 / sqrt(n), the per-clip spread kept. ``None`` when even ``most`` clips do not (a value on the
    threshold, or no spread measured)."""
    if not (distance > 0 and np.isfinite(clip_sd)):
        return None
    if half_width(most, clip_sd, level) >= distance:
        return None
    low, high = 1, most  # half_width(low) >= distance (or low = 1) > half_width(high); it decreases with n
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if half_width(mid, clip_sd, level) >= distance else (low, mid)
    return max(high, 2)


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
