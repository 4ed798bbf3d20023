"""Selectivity of every probed point: its bbox IoU minus its shuffled control's on the same test frames.

Recomputed from the probes' test predictions (``probes/<point>/predictions.parquet``: head ``<head>`` and
``shuffled/<head>``; a ``seed`` column, when present, pairs point and control seed by seed) and the frames stage's
ground truth, with :func:`foresight_lib.metrics.detection.selectivity`, the one definition. The frames scored are
the target frame of every slot (the point's ``slot_frames``) of every test clip, with or without a detection.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.splits import split_clips
from ..metrics.boxes import BboxIouResult, FrameBoxes, bbox_iou
from ..metrics.detection import selectivity
from ..params import ProbeParams


def _frames(
    pred: pd.DataFrame,
    targets: list[tuple[int, int]],
    truth: dict[tuple[int, int], np.ndarray],
    height: int,
    width: int,
    threshold: float,
) -> list[FrameBoxes]:
    """One :class:`FrameBoxes` per target (clip, frame): its ground truth and the predictions scoring >= threshold."""
    pred = pred[pred["score"] >= threshold]
    by_frame = {key: g[["x", "y", "w", "h"]].to_numpy(np.float64) for key, g in pred.groupby(["clip", "frame"])}
    empty = np.zeros((0, 4))
    return [
        FrameBoxes(
            image_id=f"{c}:{f}",
            clip_id=str(c),
            height=height,
            width=width,
            gt_boxes=truth.get((c, f), empty),
            pred_boxes=by_frame.get((c, f), empty),
            pred_scores=np.ones(len(by_frame.get((c, f), empty))),
        )
        for c, f in targets
    ]


def point_selectivity(
    point_dir: Path,
    probe_metrics: Path,
    data_dir: Path,
    heads: list[str],
    params: ProbeParams,
) -> dict[str, dict[str, Any]]:
    """``{head: {"selectivity": value, "selectivity_ci": [lo, hi]}}`` for every head (a head or control without a row
    in the predictions asserted nothing); ``{head: {"selectivity_reason": ...}}`` where it cannot be computed; empty
    when the point has no predictions or metrics file."""
    path = point_dir / "predictions.parquet"
    if not path.is_file() or not probe_metrics.is_file():
        return {}
    point = json.loads(probe_metrics.read_text())["point"]
    slots, stride, (_, gh, gw) = point["slot_frames"], point["stride"], point["grid"]
    height, width = gh * stride, gw * stride
    clips = pd.read_parquet(data_dir / "clips.parquet")
    ann = pd.read_parquet(data_dir / "annotations.parquet")
    test = split_clips(clips, "test").tolist()
    targets = [(c, int(s[0])) for c in test for s in slots]
    truth = {
        (int(c), int(f)): g[["x", "y", "w", "h"]].to_numpy(np.float64) for (c, f), g in ann.groupby(["clip", "frame"])
    }
    pred = pd.read_parquet(path)
    seeds = sorted(pred["seed"].unique().tolist()) if "seed" in pred.columns else [None]
    out: dict[str, dict[str, Any]] = {}
    for head in heads:

        def results(name: str) -> list[BboxIouResult]:
            rows = pred[pred["head"] == name]
            return [
                bbox_iou(
                    _frames(
                        rows if s is None else rows[rows["seed"] == s],
                        targets,
                        truth,
                        height,
                        width,
                        params.score_threshold,
                    )
                )
                for s in seeds
            ]

        try:
            value = selectivity(
                results(head),
                results(f"shuffled/{head}"),
                params.bootstrap,
                params.seed,
            )
        except ValueError as exc:
            out[head] = {"selectivity_reason": str(exc)}
            continue
        out[head] = {
            "selectivity": value["selectivity"],
            "selectivity_ci": list(value["selectivity_ci"]),
            "selectivity_clip_sd": value["selectivity_clip_sd"],
        }
    return out
