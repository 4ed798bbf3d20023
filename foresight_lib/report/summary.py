"""``metrics/summary.json``: one entry per extraction point, then one per adapter, from the per-stage metrics.

``dvc metrics diff --targets metrics/summary.json`` then prints one row per point and metric
(``vit_l7.linear.bbox_iou``, ...) and per adapter (``adapter:single_vit_l31.spatial_iou``, ...). The file's keys
are sorted; the report's tables list points in model order (:func:`point_order`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..adapters.recon import VERDICTS
from ..params import PointParams

KIND_ORDER = {"oracle": -1, "pixels": 0, "vit_embed": 1, "vit_block": 2, "merger": 3, "llm": 4, "encoder": 5}
PRE_MERGE_KINDS = ("vit_embed", "vit_block")
SPATIAL_KEYS = (
    "bbox_iou",
    "best_box_iou",
    "map50_class_agnostic",
    "map_class_agnostic",
    "map50_class_aware",
    "map_class_aware",
)


def point_order(point: PointParams) -> tuple[int, str, int, int]:
    """Sort key: the oracle and pixel controls, then Qwen2.5-VL from patch embed to the last LLM layer (a naive-order
    ablation right after its raster twin), then encoders."""
    family = getattr(point, "family", "")
    return (
        KIND_ORDER[point.kind],
        family,
        getattr(point, "layer", -1),
        int(getattr(point, "order", "raster") == "naive"),
    )


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _spatial(m: dict[str, Any]) -> dict[str, Any]:
    """A head's spatial metrics with their 95% intervals as ``_lo`` / ``_hi``, the bbox IoU's chance level, boxes
    asserted and objects per frame, its selectivity (computed by the probe stage) and the control it was measured
    against, and, per seed, its bbox IoU (``seeds``, when several) and operating point (``operating_points``)."""
    out: dict[str, Any] = {}
    for key in (*SPATIAL_KEYS, "selectivity"):
        if key not in m:
            continue
        out[key] = m.get(key)
        lo, hi = m.get(f"{key}_ci") or (None, None)
        out[f"{key}_lo"], out[f"{key}_hi"] = lo, hi
    for key in ("bbox_iou_chance", "asserted_per_frame", "objects_per_frame", "selectivity_control"):
        if key in m:
            out[key] = m[key]
    if "seeds" in m:
        out["seeds"] = seed_ious(m["seeds"])
        out["operating_points"] = [
            v["operating_point"] for v in m["seeds"].values() if isinstance(v, dict) and "operating_point" in v
        ]
    return out


def _prior(m: dict[str, Any]) -> dict[str, Any]:
    """The data's prior (the best constant prediction learnt from train): its spatial metrics and box count."""
    return {**_spatial(m), "max_boxes": m["operating_point"]["max_boxes"], "val_bbox_iou": m.get("val_bbox_iou")}


def seed_ious(seeds: Any) -> list[float | None]:
    """Per-seed bbox IoU from a head's ``seeds`` entry: a list, or a mapping by seed, of metric dicts (or numbers)."""
    values = list(seeds.values()) if isinstance(seeds, dict) else list(seeds)
    return [v.get("bbox_iou") if isinstance(v, dict) else v for v in values]


def _temporal(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for task, r in m.items():
        if not r.get("available", True):
            out[f"{task}_accuracy"] = None
            continue
        lo, hi = r.get("accuracy_ci") or (None, None)
        out |= {
            f"{task}_accuracy": r["accuracy"],
            f"{task}_accuracy_lo": lo,
            f"{task}_accuracy_hi": hi,
            f"{task}_chance": r["chance"],
        }
    return out


def point_summary(probe: dict[str, Any] | None, extract: dict[str, Any] | None, heads: list[str]) -> dict[str, Any]:
    """One point's row: per head the spatial metrics, the shuffled control, the data's prior (``prior``), temporal
    accuracies, extraction cost."""
    row: dict[str, Any] = {}
    if probe is not None:
        for head in heads:
            if head in probe:
                row[head] = _spatial(probe[head])
        shuffled = probe.get("shuffled", {})
        row["shuffled"] = {
            head: {
                "bbox_iou": shuffled[head]["bbox_iou"],
                "bbox_iou_lo": (shuffled[head].get("bbox_iou_ci") or (None, None))[0],
                "bbox_iou_hi": (shuffled[head].get("bbox_iou_ci") or (None, None))[1],
                "bbox_iou_chance": shuffled[head].get("bbox_iou_chance"),
                "map50_class_agnostic": shuffled[head]["map50_class_agnostic"],
            }
            for head in heads
            if head in shuffled
        }
        if "prior" in probe:
            row["prior"] = _prior(probe["prior"])
        for head in heads:  # the test bbox IoU of the control each head's selectivity was measured against
            control = row.get(head, {}).get("selectivity_control")
            if control is not None:
                row[head]["control_bbox_iou"] = (row["prior"] if control == "prior" else row["shuffled"][head])[
                    "bbox_iou"
                ]
        if "temporal" in probe:
            row["temporal"] = _temporal(probe["temporal"])
        if "temporal" in shuffled:
            row["shuffled"]["temporal"] = _temporal(shuffled["temporal"])
        row["weights"] = probe["point"]["weights"]
        row["stride"] = probe["point"]["stride"]
    if extract is not None:
        row["extract"] = {
            "frames_per_second": extract["frames_per_second"],
            "memory_overhead_vs_merger": extract["memory_overhead_vs_merger"],
            "peak_memory_gib": extract["peak_memory_bytes"] / 2**30,
            "disk_bytes_per_frame": extract["disk_bytes_per_frame"],
        }
    return row


def build_summary(points: dict[str, PointParams], heads: list[str], metrics_dir: str | Path) -> dict[str, Any]:
    """The summary of every point in ``points`` (model order) from ``metrics/probe`` and ``metrics/extract``."""
    metrics_dir = Path(metrics_dir)
    ordered = sorted(points, key=lambda name: point_order(points[name]))
    return {
        name: point_summary(
            _read(metrics_dir / "probe" / f"{name}.json"), _read(metrics_dir / "extract" / f"{name}.json"), heads
        )
        for name in ordered
    }


def adapter_summary(recon: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one ``metrics/recon/<adapter>.json`` worth diffing: its Phase 2 criteria (with the optimiser
    steps to the selected epoch) and image metrics.

    ``phase2_level`` encodes the overall verdict as a number (fail 0, marginal 1, acceptable 2, target 3) so that
    ``dvc metrics diff`` shows it; an ``unknown`` verdict (e.g. LPIPS unavailable) leaves it out. A metric that
    could not be computed is left out, never written as a number.
    """
    adapter, phase2 = recon["adapter"], recon["phase2"]
    values = {
        "spatial_iou": phase2["spatial_iou"]["value"],
        "map50_class_agnostic": adapter["detection"].get("map50_class_agnostic"),
        "lpips": phase2["lpips"]["value"],
        "psnr": adapter["psnr"]["mean"],
        "ssim": adapter["ssim"]["mean"],
        "parameters": phase2["parameters"]["value"],
        "steps_to_best": phase2.get("convergence", {}).get("value"),
        "phase2_level": None
        if phase2["overall"] == "unknown"
        else len(VERDICTS) - 1 - VERDICTS.index(phase2["overall"]),
    }
    return {k: v for k, v in values.items() if v is not None}
