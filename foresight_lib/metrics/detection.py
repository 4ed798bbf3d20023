"""The one evaluation of detections against ground truth, shared by every probe and the decoded-video check.

Given every frame's ground truth and *all* its detections (with scores):
- ``bbox_iou``: the detections that count at the detector's operating point (:mod:`.operating`, the one rule)
  matched one-to-one to the ground truth (Hungarian on IoU); matched IoUs summed over frames, divided by the summed
  ``max(objects, asserted)`` per frame (:func:`~foresight_lib.metrics.boxes.bbox_iou`: extra boxes cannot raise it);
  ``bbox_iou_chance``: the same of random boxes at the asserted count (:func:`~.boxes.chance_iou`);
- ``best_box_iou``: on frames with exactly one object, the IoU of the single highest-scoring detection;
- ``map50_*`` / ``map_*``: COCO AP@0.5 and AP@[.5:.95] over all detections (COCOeval's, :mod:`.coco`),
  class-agnostic and class-aware;
each with a 95% bootstrap interval over clips (``*_ci``, :mod:`.bootstrap`), within [0, 1]; the IoU intervals
resample the clips that hold ground truth.

:func:`selectivity`: a point's bbox IoU minus a control's on the same frames, with a paired interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .bootstrap import (
    UNIT,
    SeedsEstimate,
    bootstrap_ci,
    bootstrap_cis,
    bootstrap_clips_seeds,
    clip_mean,
    clip_ratio,
    frame_indices_of_clips,
)
from .boxes import BboxIouResult, FrameBoxes, bbox_iou, chance_iou
from .coco import CocoEvaluation
from .operating import OperatingPoint, asserted

NAN_CI = (float("nan"), float("nan"))


def _maps(frames: Sequence[FrameBoxes], class_aware: bool, n_resamples: int, seed: int) -> dict[str, Any]:
    evaluations = {"class_agnostic": CocoEvaluation(frames, class_agnostic=True)}
    if class_aware:
        evaluations["class_aware"] = CocoEvaluation(frames, class_agnostic=False)

    def values(indices: Sequence[int] | None) -> dict[str, float]:
        out = {}
        for flavour, evaluation in evaluations.items():
            try:
                result = evaluation.map(indices)
            except ValueError:  # a resample without ground truth: AP undefined
                result = {"map50": float("nan"), "map": float("nan")}
            out |= {f"{name}_{flavour}": value for name, value in result.items()}
        return out

    point = values(None)
    clips = list(dict.fromkeys(f.clip_id for f in frames))
    intervals = (
        bootstrap_cis(clips, lambda ids: values(frame_indices_of_clips(frames, ids)), n_resamples, seed, support=UNIT)
        if n_resamples
        else dict.fromkeys(point, NAN_CI)
    )
    return {**point, **{f"{name}_ci": intervals[name] for name in point}}


def detection_metrics(
    frames: Sequence[FrameBoxes],
    points: OperatingPoint | Sequence[OperatingPoint],
    n_resamples: int,
    n_resamples_map: int,
    seed: int,
) -> dict[str, Any]:
    """bbox IoU with its chance level (both of the detections that count at ``points``: one operating point, or one
    per frame), best-box IoU and mAP (both flavours, all detections) of ``frames`` (all detections), with 95%
    intervals; the chance level's random boxes are seeded by ``seed``.

    Class-aware mAP is computed when every frame carries labels. Raises ValueError without any ground truth.
    """
    kept = asserted(frames, points)
    iou, best = bbox_iou(kept), bbox_iou(frames)  # bbox IoU of asserted detections; best-box IoU of all
    out: dict[str, Any] = {
        "bbox_iou": iou.mean_iou,
        "bbox_iou_ci": bootstrap_ci(
            np.unique(iou.object_clip_ids), iou_statistic(iou), n_resamples, seed, support=UNIT
        ),
        "bbox_iou_chance": chance_iou(kept, seed),
        "best_box_iou": best.best_box_iou,
        "best_box_iou_ci": (
            bootstrap_ci(
                np.unique(best.best_box_clip_ids),
                clip_mean(best.best_box_ious, best.best_box_clip_ids),
                n_resamples,
                seed,
                support=UNIT,
            )
            if len(best.best_box_ious)
            else NAN_CI
        ),
    }
    class_aware = all(f.gt_labels is not None and f.pred_labels is not None for f in frames)
    out |= _maps(frames, class_aware, n_resamples_map, seed)
    out |= {
        "n_frames": len(frames),
        "n_objects": len(iou.object_ious),
        "n_single_object_frames": len(best.best_box_ious),
        "detections_per_frame": float(np.mean([len(f.pred_boxes) for f in frames])),
        "asserted_per_frame": float(np.mean([len(f.pred_boxes) for f in kept])),
        "objects_per_frame": float(np.mean([len(f.gt_boxes) for f in frames])),
    }
    return out


def iou_statistic(result: BboxIouResult) -> Callable[[list[str]], float]:
    """bbox IoU of the given clips (repeats count again), for the bootstrap: :func:`.bootstrap.clip_ratio` of the
    per-frame matched IoU sums over the per-frame slot counts."""
    return clip_ratio(result.frame_matched, result.frame_slots, result.frame_clip_ids)


def seeds_bbox_iou(
    frames_by_seed: Sequence[Sequence[FrameBoxes]],
    points_by_seed: Sequence[OperatingPoint],
    n_resamples: int,
    seed: int,
) -> SeedsEstimate:
    """bbox IoU of the detections that count at each seed's operating point, averaged over probe seeds
    (``frames_by_seed[s]``: seed ``s``'s frames, the same frames for every seed), its interval over clips and
    seeds and its per-clip SD (:func:`.bootstrap.bootstrap_clips_seeds`). One seed gives :func:`detection_metrics`'
    bbox IoU and interval."""
    results = [bbox_iou(asserted(frames, p)) for frames, p in zip(frames_by_seed, points_by_seed, strict=True)]
    return bootstrap_clips_seeds(
        np.unique(results[0].object_clip_ids), [iou_statistic(r) for r in results], n_resamples, seed, support=UNIT
    )


def selectivity(
    points: Sequence[BboxIouResult], controls: Sequence[BboxIouResult], n_resamples: int, seed: int, level: float = 0.95
) -> dict[str, Any]:
    """What a point's features add over a control: its bbox IoU minus the control's, on the same frames.

    ``points[s]`` and ``controls[s]`` are probe seed ``s``'s results (one entry per seed, paired by seed). Returns
    ``{"selectivity": mean over seeds of (point - control), "selectivity_ci": (low, high), "selectivity_clip_sd"}``:
    the paired interval resamples the clips that hold ground truth jointly for point and control (and the seeds,
    with several: :func:`.bootstrap.bootstrap_clips_seeds`, which also gives the per-clip SD). Raises ValueError on unpaired inputs or frames that differ.
    """
    if not points or len(points) != len(controls):
        raise ValueError(f"selectivity needs one control per point result (got {len(points)} and {len(controls)})")
    for p, c in zip(points, controls):
        if not np.array_equal(p.object_clip_ids, c.object_clip_ids):
            raise ValueError("selectivity compares results on the same frames: their ground truth differs")
    pairs = [(iou_statistic(p), iou_statistic(c)) for p, c in zip(points, controls)]
    stats = [lambda ids, p=p, c=c: p(ids) - c(ids) for p, c in pairs]
    out = bootstrap_clips_seeds(
        np.unique(points[0].object_clip_ids), stats, n_resamples, seed, level, support=(-1.0, 1.0)
    )
    return {"selectivity": out.value, "selectivity_ci": out.ci, "selectivity_clip_sd": out.clip_sd}
