"""The ``probe@<point>`` stage: every spatial head, the shuffled control and the temporal probes of one point.

Outputs:
- ``metrics/probe/<point>.json``: ``{<head>: {metric: value, <metric>_ci: [lo, hi], ...}, "temporal": {"direction":
  {...}, "order": {...}}, "shuffled": {<head>: {...}, "temporal": {...}}, "point": {...}}``
  (metric definitions in :mod:`.evaluate` and :mod:`.temporal`; NaN is written as null). The same params give
  the same file; the time each part took goes to ``<live_dir>/seconds.json`` instead.
- ``predictions.parquet``: the test split's decoded detections of every head, ``head`` = ``<head>`` or
  ``shuffled/<head>`` (columns in :data:`.evaluate.PREDICTION_COLUMNS`).
- dvclive curves under ``live_dir``: ``<head>/``, ``temporal/<task>/``, and the same under ``shuffled/``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..features import open_features
from ..params import ProbeParams
from ..store import write_json_atomic, write_parquet_atomic
from .data import ProbeData, load_ground_truth
from .evaluate import FramePrediction, asserted_iou, mean_loss, predict, prediction_rows, spatial_metrics
from .detector import save_probe
from .heads import make_probe
from .temporal import temporal_metrics
from .train import fit, seeded, spatial_losses


def run_probes(point_store_path: str | Path, frames_dir: str | Path, probe_params: ProbeParams,
               out_metrics_path: str | Path | None, live_dir: str | Path,
               predictions_path: str | Path | None, heads_dir: str | Path | None = None) -> dict[str, Any]:
    """Probe one point's feature store against the frames stage's ground truth; write and return the metrics.

    ``heads_dir``: where the trained (non-shuffled) spatial heads are saved (:mod:`.detector`).
    Runs on ``probe.threads`` torch threads (restored afterwards): the numbers are reproducible for a given count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(probe_params.threads)
    try:
        return _run(point_store_path, frames_dir, probe_params, out_metrics_path, live_dir, predictions_path,
                    heads_dir)
    finally:
        torch.set_num_threads(threads)


def _run(point_store_path: str | Path, frames_dir: str | Path, params: ProbeParams, out_metrics_path: str | Path | None,
         live_dir: str | Path, predictions_path: str | Path | None, heads_dir: str | Path | None) -> dict[str, Any]:
    started = time.perf_counter()
    data = ProbeData(open_features(point_store_path), load_ground_truth(frames_dir), params)
    metrics: dict[str, Any] = {"point": _point_summary(data)}
    seconds: dict[str, float] = {"load": time.perf_counter() - started}
    tables = []
    for shuffled in (False, True):
        section = metrics.setdefault("shuffled", {}) if shuffled else metrics
        root = Path(live_dir) / "shuffled" if shuffled else Path(live_dir)
        prefix = "shuffled/" if shuffled else ""
        for head in params.heads:
            tick = time.perf_counter()
            section[head], test = _probe_head(data, head, params, root / head, shuffled,
                                              None if shuffled or heads_dir is None else Path(heads_dir))
            tables.append(prediction_rows(test, prefix + head))
            seconds[prefix + head] = time.perf_counter() - tick
        tick = time.perf_counter()
        section["temporal"] = temporal_metrics(data, params, root / "temporal", shuffled)
        seconds[prefix + "temporal"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started
    metrics = _null_nan(metrics)
    if out_metrics_path is not None:
        write_json_atomic(out_metrics_path, metrics)
    write_json_atomic(Path(live_dir) / "seconds.json", seconds)  # timings vary run to run: not a metric
    if predictions_path is not None:
        write_parquet_atomic(pd.concat(tables, ignore_index=True), Path(predictions_path))
    return metrics


def _probe_head(data: ProbeData, head: str, params: ProbeParams, live_dir: Path, shuffled: bool,
                heads_dir: Path | None) -> tuple[dict[str, Any], list[FramePrediction]]:
    """Train one spatial head (on shuffled cells for the control); its test metrics and test predictions."""
    with seeded(params.seed):
        probe = make_probe(head, data.channels, len(data.truth.categories), params)
        result = fit(probe, params, params.epochs, spatial_losses(probe, data, shuffled),
                     lambda: {"loss": mean_loss(probe, data, "val", shuffled)}, live_dir,
                     f"{data.store.name} {'shuffled ' if shuffled else ''}{head}")
    if heads_dir is not None:
        save_probe(heads_dir, head, probe, len(data.truth.categories), *data.statistics, data.stride,
                   data.store.attrs["definition"], data.store.attrs["dtype"], params)
    test = predict(probe, data, "test", shuffled)
    metrics = {**spatial_metrics(data, test, params, map_intervals=not shuffled), "best_epoch": result.best_epoch, "val_loss": result.best_val_loss,
               "val_bbox_iou": asserted_iou(data, predict(probe, data, "val", shuffled), params)}
    return metrics, test


def _point_summary(data: ProbeData) -> dict[str, Any]:
    """What was probed: the store's geometry and identity, and the split sizes."""
    attrs = data.store.attrs
    return {
        "name": data.store.name, "stride": data.stride, "grid": list(data.store.grid), "channels": data.channels,
        "slot_frames": data.store.slot_frames, "mode": attrs["mode"], "weights": attrs["weights"].get("weights"),
        "definition": attrs["definition"], "clips": {split: len(c) for split, c in data.splits.items()},
        "cached": data.caching,
    }


def _null_nan(obj: Any) -> Any:
    """``obj`` with tuples as lists and NaN / inf floats as None (valid JSON)."""
    if isinstance(obj, dict):
        return {k: _null_nan(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_null_nan(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
