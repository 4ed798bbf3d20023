"""Spatial predictions and their metrics (every number from :mod:`foresight_lib.metrics`).

Which detections count (:mod:`foresight_lib.metrics.operating`, the one rule):
- ``bbox_iou`` counts the detections kept at the trainee's operating point ``(score_threshold, max_boxes)``, chosen
  on validation with its step and learning rate (:mod:`.spatial`; recorded per seed as ``operating_point``, with
  ``val_bbox_iou``), through the project's one definition (:func:`foresight_lib.metrics.boxes.bbox_iou`); its chance
  level counts the same number of boxes per frame;
- ``best_box_iou`` (frames with exactly one object) uses the single highest-scoring detection, whatever
  its score; ``map*`` use every decoded detection (score >= ``probe.min_score``, at most
  ``probe.max_detections`` per frame) with its score.

Names: ``map50_class_agnostic`` / ``map_class_agnostic`` score boxes alone (every box one category: where
things are), ``map50_class_aware`` / ``map_class_aware`` also need the right class (category ids of the
annotations). ``bbox_iou_chance`` is bbox IoU's chance level (random boxes at the asserted count,
:func:`..metrics.boxes.chance_iou`). ``<metric>_ci`` is the 95% bias-corrected bootstrap interval over clips
(:mod:`..metrics.bootstrap`, seeded by ``probe.seed``): ``probe.bootstrap`` resamples for IoUs,
``probe.bootstrap_map`` for mAPs (0 writes null intervals). ``n_clips`` counts the test clips holding ground
truth (those the IoU interval resamples); ``bbox_iou_clip_sd`` is bbox IoU's per-clip standard deviation
(bootstrap standard error x sqrt(n_clips)), from which the report plans a test set that would separate a value
from a threshold.

Seeds (``probe.seeds``, the heads' initialisations): every seed is trained and tested. The reported bbox IoU is
the mean over seeds of each seed's bbox IoU (each at its own operating point), with an interval that resamples the
clips (jointly for every seed) and the seeds (with replacement): :func:`..metrics.detection.seeds_bbox_iou`, so a
seed that fails widens the interval. The other metrics are computed on the test frames of all seeds together, each
seed's frames as separate images of their clip (mAP: the AP of the seeds' detections pooled); their bootstrap
resamples clips, a drawn clip bringing its frames of every seed. Each seed's own test metrics (point estimates),
selected learning rate, step and operating point are reported beside it under ``seeds``, so the spread between seeds
stays visible.

Selectivity (:func:`head_selectivity`): a head's bbox IoU minus its control's on the same test frames, with a
paired interval over clips and seeds (:func:`..metrics.detection.selectivity`). The control is the stronger of the
shuffled control (the same head on the point's tokens permuted over the grid) and the data's prior
(:mod:`.prior`: the best constant prediction learnt from train), stronger meaning the higher *validation* bbox IoU:
the choice is made where every other choice is made, so it stays independent of the test frames the difference is
measured on (choosing on test would take the larger of two noisy numbers).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from ..metrics.boxes import BboxIouResult, FrameBoxes, bbox_iou
from ..metrics.detection import detection_metrics, seeds_bbox_iou, selectivity
from ..metrics.operating import OperatingPoint, asserted
from ..workers import Workers
from .base import Detections, SpatialProbe
from .data import Batch, ProbeData
from .truth import GroundTruth

PREDICTION_COLUMNS: tuple[str, ...] = ("clip", "frame", "head", "seed", "x", "y", "w", "h", "score", "label")


@dataclass(frozen=True)
class FramePrediction:
    """A head's detections on one sample's target frame."""

    clip: int
    frame: int
    detections: Detections


def decode(
    probe: SpatialProbe, outputs: dict[str, torch.Tensor], stride: int, at_least: float = 0.0
) -> list[Detections]:
    """Per-frame detections of a batch's outputs scoring at least ``at_least`` (decoded on the CPU)."""
    return probe.decode({k: v.detach().cpu() for k, v in outputs.items()}, stride, at_least)


def evaluate_split(
    probes: Sequence[tuple[SpatialProbe, bool]],
    data: ProbeData,
    split: str,
    at_least: float = 0.0,
    workers: Workers | None = None,
) -> tuple[list[list[FramePrediction]], list[float]]:
    """One pass over ``split`` (clip then slot order) for every ``(probe, shuffled)`` (spread over ``workers``):
    each one's decoded detections scoring at least ``at_least`` and its mean training loss."""
    workers = workers or Workers(1, data.device)
    for probe, _ in probes:
        probe.eval()
    predictions: list[list[FramePrediction]] = [[] for _ in probes]
    totals = [torch.zeros(()) for _ in probes]
    count = 0
    for batch in workers.ahead(data.batches(split, control=any(shuffled for _, shuffled in probes))):
        outcomes = workers.map(functools.partial(_outcome, batch=batch, stride=data.stride, at_least=at_least), probes)
        for i, (loss, detections) in enumerate(outcomes):
            totals[i] = totals[i] + loss * len(batch.clips)
            predictions[i].extend(
                FramePrediction(int(c), data.slot_frames[int(t)], d)
                for c, t, d in zip(batch.clips, batch.slots, detections)
            )
        count += len(batch.clips)
    return predictions, [float(t) / count for t in totals]


def _outcome(
    probe_shuffled: tuple[SpatialProbe, bool], batch: Batch, stride: int, at_least: float
) -> tuple[torch.Tensor, list[Detections]]:
    """One head's batch loss (on the CPU) and decoded detections, without gradients."""
    probe, shuffled = probe_shuffled
    with torch.no_grad():
        outputs = probe(batch.inputs(shuffled))
        return probe.loss(outputs, batch.targets).detach().cpu(), decode(probe, outputs, stride, at_least)


def frame_boxes(truth: GroundTruth, predictions: Sequence[FramePrediction], tag: str = "") -> list[FrameBoxes]:
    """Ground truth and every decoded detection of each predicted frame; labels are category ids; image ids
    ``<tag><clip>:<frame>``, clip ids the clip."""
    frames = []
    for p in predictions:
        gt_boxes, gt_classes = truth.frame(p.clip, p.frame)
        frames.append(
            FrameBoxes(
                image_id=f"{tag}{p.clip}:{p.frame}",
                clip_id=str(p.clip),
                height=truth.height,
                width=truth.width,
                gt_boxes=gt_boxes,
                pred_boxes=p.detections.boxes,
                pred_scores=p.detections.scores,
                gt_labels=gt_classes + 1,
                pred_labels=p.detections.labels + 1,
            )
        )
    return frames


_COUNTS = ("n_frames", "n_objects", "n_single_object_frames", "objects_per_frame")


def spatial_metrics(
    truth: GroundTruth,
    by_seed: Mapping[int, Sequence[FramePrediction]],
    points: Mapping[int, OperatingPoint],
    bootstrap: int,
    bootstrap_map: int,
    seed: int,
) -> dict[str, Any]:
    """bbox IoU (each seed at its operating point ``points[seed]``), best-box IoU and class-agnostic / class-aware
    mAP@0.5 and mAP of the seeds' test predictions together, with bootstrap intervals (module docstring;
    :func:`foresight_lib.metrics.detection.detection_metrics`, the one definition), and ``seeds``: each seed's point
    estimates and operating point. Counts (``n_frames``...) are per seed."""
    per_seed = {}
    for s, predictions in by_seed.items():
        alone = detection_metrics(frame_boxes(truth, predictions), points[s], 0, 0, seed)
        per_seed[s] = {k: v for k, v in alone.items() if not k.endswith("_ci")}
        per_seed[s]["operating_point"] = points[s].as_dict()
    pooled, pooled_points = [], []
    for s, predictions in by_seed.items():
        pooled += frame_boxes(truth, predictions, f"{s}:")
        pooled_points += [points[s]] * len(predictions)
    out = detection_metrics(pooled, pooled_points, bootstrap, bootstrap_map, seed)
    iou = seeds_bbox_iou(
        [frame_boxes(truth, predictions) for predictions in by_seed.values()],
        [points[s] for s in by_seed],
        bootstrap,
        seed,
    )
    out |= {"bbox_iou": iou.value, "bbox_iou_ci": iou.ci, "bbox_iou_clip_sd": iou.clip_sd, "n_clips": iou.n_clips}
    first = next(iter(per_seed.values()))
    return {**out, **{k: first[k] for k in _COUNTS}, "n_seeds": len(per_seed), "seeds": per_seed}


def seed_results(
    truth: GroundTruth, by_seed: Mapping[int, Sequence[FramePrediction]], points: Mapping[int, OperatingPoint]
) -> list[BboxIouResult]:
    """Each seed's bbox IoU result (at its operating point) on its test frames, in ``by_seed`` order."""
    return [bbox_iou(asserted(frame_boxes(truth, p), points[s])) for s, p in by_seed.items()]


def head_selectivity(
    head: Sequence[BboxIouResult],
    controls: Mapping[str, tuple[float, Sequence[BboxIouResult]]],
    bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    """Selectivity of a head (``head[s]``: seed ``s``'s test result) against the control of ``controls`` (``{name:
    (validation bbox IoU, its test results paired with the head's seeds)}``) with the higher validation bbox IoU (the
    first on a tie): ``selectivity``, ``selectivity_ci``, ``selectivity_control`` (its name) and
    ``control_val_bbox_iou`` (every control's validation bbox IoU, how the control was chosen)."""
    name = max(controls, key=lambda c: _finite_or(controls[c][0], -math.inf))
    value = selectivity(head, controls[name][1], bootstrap, seed)
    return {
        "selectivity": value["selectivity"],
        "selectivity_ci": list(value["selectivity_ci"]),
        "selectivity_control": name,
        "control_val_bbox_iou": {c: v for c, (v, _) in controls.items()},
    }


def _finite_or(x: float, default: float) -> float:
    return x if math.isfinite(x) else default


def prediction_rows(by_seed: Mapping[int, Sequence[FramePrediction]], head: str) -> pd.DataFrame:
    """One row per decoded detection: ``clip, frame, head, seed, x, y, w, h`` (px), ``score, label`` (category id)."""
    rows = [
        (p.clip, p.frame, head, s, *box, score, label + 1)
        for s, predictions in by_seed.items()
        for p in predictions
        for box, score, label in zip(
            p.detections.boxes.tolist(), p.detections.scores.tolist(), p.detections.labels.tolist()
        )
    ]
    return pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
