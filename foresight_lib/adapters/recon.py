"""Reconstruction evaluation of decoded test clips (the VAE ceiling's once, each adapter's) against the originals.

- Image quality per frame (``metrics/image.py``): PSNR, SSIM, LPIPS (``null`` with the reason when its backbone
  weights are not cached); means with 95% bootstrap intervals over clips.
- Spatial fidelity, when a :data:`Detector` is given: the same detector runs on the original frames
  (:func:`evaluate_originals`) and on each decoded store (:func:`evaluate_decoded`); its boxes are scored against
  the ground-truth annotations by :func:`..metrics.detection.detection_metrics`, the probes' one definition.
- CKA between each adapter input (pooled onto the latent grid by :func:`.resample.pool_to_latent_grid`, so that
  both sides have one row per latent cell) and the VAE latents.
- Phase 2 criteria (:func:`phase2_verdicts`): spatial IoU, LPIPS, parameters and training convergence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
import zarr

from ..features import FeatureStore
from ..metrics.bootstrap import bootstrap_ci, clip_mean
from ..metrics.boxes import FrameBoxes
from ..metrics.cka import debiased_linear_cka, linear_cka
from ..metrics.detection import detection_metrics
from ..metrics.image import Lpips, lpips_available, psnr, ssim
from ..metrics.operating import OperatingPoint
from ..params import EvalParams, Phase2Criteria
from ..progress import progress_bar
from .resample import GridSpec, LatentSpec, pool_to_latent_grid

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes xywh [M, 4], scores [M], category ids [M]


class Detector(Protocol):
    """uint8 frames ``[N, H, W, 3]`` -> one ``(boxes, scores, category ids)`` per frame, all its detections;
    bbox IoU counts those kept at its ``operating_point`` (e.g. :class:`..probes.detector.ProbeDetector`: the point
    its probe chose on validation)."""

    operating_point: OperatingPoint

    def __call__(self, frames: np.ndarray) -> list[Detections]: ...


VERDICTS = ("target", "acceptable", "marginal", "fail")


def summarise(values: np.ndarray, clip_ids: Sequence[str], n_resamples: int, seed: int) -> dict[str, Any]:
    """Mean of per-frame ``values`` ``[N]`` and its 95% bootstrap interval over clips (PSNR may be ``inf``)."""
    with np.errstate(invalid="ignore"):
        ci = bootstrap_ci(clip_ids, clip_mean(values, clip_ids), n_resamples, seed)
    return {"mean": float(np.mean(values)), "ci95": list(ci)}


def clip_frame_boxes(
    detections: list[Detections], annotations: pd.DataFrame, clip: int, height: int, width: int
) -> list[FrameBoxes]:
    """One :class:`FrameBoxes` per frame of ``clip``: ground truth from ``annotations``, predictions given."""
    out = []
    for f, (boxes, scores, labels) in enumerate(detections):
        gt = annotations[(annotations["clip"] == clip) & (annotations["frame"] == f)]
        out.append(
            FrameBoxes(
                image_id=f"{clip}:{f}",
                clip_id=str(clip),
                height=height,
                width=width,
                gt_boxes=gt[["x", "y", "w", "h"]].to_numpy(np.float64),
                gt_labels=gt["category_id"].to_numpy(np.int64),
                pred_boxes=boxes,
                pred_scores=scores,
                pred_labels=labels,
            )
        )
    return out


def _detection_report(boxes: list[FrameBoxes], params: EvalParams, detector: Detector) -> dict[str, Any]:
    """:func:`..metrics.detection.detection_metrics` (the probes' own definition) of the detector's boxes."""
    if not any(len(f.gt_boxes) for f in boxes):
        return {"reason": "the clips hold no ground-truth box"}
    return detection_metrics(boxes, detector.operating_point, params.bootstrap, params.bootstrap_map, params.seed)


def evaluate_decoded(
    frames: zarr.Array,
    decoded: zarr.Array,
    annotations: pd.DataFrame,
    params: EvalParams,
    detector: Detector | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """A decoded store (:func:`..ltx.latents.write_decoded`) against the original frames ``[clip, F, H, W, 3]``.

    Per-frame PSNR, SSIM and LPIPS (means with 95% intervals over clips; LPIPS ``None`` with ``lpips_reason`` when
    unavailable) and, with ``detector``, its boxes on the decoded frames scored against the ground truth.
    """
    clips = [int(c) for c in decoded.attrs["clips"]]
    lpips_ok, lpips_reason = lpips_available(params.lpips_net)
    lpips = Lpips(params.lpips_net, "cuda" if torch.cuda.is_available() else "cpu") if lpips_ok else None
    per_frame: dict[str, list[np.ndarray]] = {"psnr": [], "ssim": [], "lpips": []}
    boxes: list[FrameBoxes] = []
    frame_clips: list[str] = []
    for row, clip in enumerate(progress_bar(clips, desc="recon", unit="clip", disable=not progress)):
        original, candidate = np.asarray(frames[clip]), np.asarray(decoded[row])  # [F, H, W, 3] each
        frame_clips.extend([str(clip)] * len(original))
        per_frame["psnr"].append(psnr(original, candidate))
        per_frame["ssim"].append(ssim(original, candidate))
        if lpips is not None:
            per_frame["lpips"].append(lpips(original, candidate))
        if detector is not None:
            boxes += clip_frame_boxes(detector(candidate), annotations, clip, *candidate.shape[1:3])
    result: dict[str, Any] = {
        metric: summarise(np.concatenate(values), frame_clips, params.bootstrap, params.seed) if values else None
        for metric, values in per_frame.items()
    }
    result.update(
        {
            "clips": clips,
            "frames": len(frame_clips),
            "lpips_net": params.lpips_net,
            "lpips_reason": lpips_reason,
            "detection": (_detection_report(boxes, params, detector) if detector else {"reason": "no detector given"}),
        }
    )
    return result


def evaluate_originals(
    frames: zarr.Array,
    clips: Sequence[int],
    annotations: pd.DataFrame,
    params: EvalParams,
    detector: Detector | None = None,
) -> dict[str, Any]:
    """The detector on the original frames of ``clips``: the reference for the decoded stores' detection."""
    if detector is None:
        return {"clips": list(clips), "detection": {"reason": "no detector given"}}
    boxes: list[FrameBoxes] = []
    for clip in clips:
        original = np.asarray(frames[int(clip)])  # [F, H, W, 3]
        boxes += clip_frame_boxes(detector(original), annotations, int(clip), *original.shape[1:3])
    return {"clips": list(clips), "detection": _detection_report(boxes, params, detector)}


def input_cka(store: FeatureStore, latents: zarr.Array, clips: Sequence[int], latent: LatentSpec) -> dict[str, Any]:
    """Linear and debiased linear CKA between a point's grids pooled onto the latent grid and the VAE latents.

    One row per (clip, latent step, latent cell) of ``clips``: ``[n, C]`` against ``[n, 128]``.
    """
    spec = GridSpec.of(store)
    pooled, target = [], []
    for c in clips:
        grid = pool_to_latent_grid(store.read([int(c)]).astype(np.float64), spec, latent)  # [1, F', H', W', C]
        pooled.append(grid.reshape(-1, spec.channels))
        z = np.asarray(latents[int(c)], dtype=np.float64)  # [128, F', H', W']
        target.append(np.moveaxis(z, 0, -1).reshape(-1, z.shape[0]))
    x, y = np.concatenate(pooled), np.concatenate(target)  # [n, C], [n, 128]
    return {"point": spec.point, "n": len(x), "linear": linear_cka(x, y), "debiased": debiased_linear_cka(x, y)}


def _level(value: float | None, target: float, acceptable: float, higher_is_better: bool) -> str:
    if value is None or not np.isfinite(value):
        return "unknown"
    better = (lambda a, b: a > b) if higher_is_better else (lambda a, b: a < b)
    return "target" if better(value, target) else "acceptable" if better(value, acceptable) else "fail"


def convergence_verdict(record: dict[str, Any] | None, criteria: Phase2Criteria) -> dict[str, Any]:
    """Criterion 4 (training convergence) from :func:`.train.convergence`'s record: ``fail`` when divergent, else
    ``target`` below ``steps_target`` optimiser steps to the selected epoch, ``acceptable`` below
    ``steps_acceptable``, ``marginal`` above (stable but slow); ``unknown`` without a record."""
    out: dict[str, Any] = {
        "value": None,
        "target": criteria.steps_target,
        "acceptable": criteria.steps_acceptable,
        "diverged": None,
        "reason": None,
    }
    if record is None:
        return {**out, "verdict": "unknown", "reason": "no convergence record in the training metrics"}
    steps = record["steps_to_best"]
    out.update(value=steps, diverged=record["diverged"], reason=record["reason"])
    if record["diverged"]:
        return {**out, "verdict": "fail"}
    return {
        **out,
        "verdict": "target"
        if steps < criteria.steps_target
        else "acceptable"
        if steps < criteria.steps_acceptable
        else "marginal",
    }


def phase2_verdicts(
    spatial_iou: float | None,
    lpips: float | None,
    parameters: int,
    convergence: dict[str, Any] | None,
    criteria: Phase2Criteria,
) -> dict[str, Any]:
    """Phase 2 criteria of one adapter: each ``target`` / ``acceptable`` / ``fail`` (``unknown`` when the number
    is missing); parameters also ``marginal`` (above acceptable, within the limit), convergence
    (:func:`convergence_verdict`) also ``marginal`` (stable, past ``steps_acceptable``). ``overall``: ``fail`` if
    any fails, else ``unknown`` if any is unknown, else the worst level."""
    params_level = (
        "target"
        if parameters <= criteria.params_target
        else "acceptable"
        if parameters <= criteria.params_acceptable
        else "marginal"
        if parameters <= criteria.params_limit
        else "fail"
    )
    verdicts = {
        "spatial_iou": {
            "value": spatial_iou,
            "target": criteria.iou_target,
            "acceptable": criteria.iou_acceptable,
            "verdict": _level(spatial_iou, criteria.iou_target, criteria.iou_acceptable, True),
        },
        "lpips": {
            "value": lpips,
            "target": criteria.lpips_target,
            "acceptable": criteria.lpips_acceptable,
            "verdict": _level(lpips, criteria.lpips_target, criteria.lpips_acceptable, False),
        },
        "parameters": {
            "value": parameters,
            "target": criteria.params_target,
            "acceptable": criteria.params_acceptable,
            "limit": criteria.params_limit,
            "verdict": params_level,
        },
        "convergence": convergence_verdict(convergence, criteria),
    }
    levels = [v["verdict"] for v in verdicts.values()]
    if "fail" in levels:
        overall = "fail"
    elif "unknown" in levels:
        overall = "unknown"
    else:
        overall = max(levels, key=VERDICTS.index)
    return {**verdicts, "overall": overall}
