"""The ``probe@<point>`` stage: every spatial head, its controls, the temporal and the step probes of one point.

Each task list follows the data: boxes (``annotations.parquet`` has rows) -> the spatial heads and the motion
probes; steps (``steps.parquet`` has rows) -> the step probes (:mod:`.steps`).

The data path: :mod:`.data` (one point's grids held as :mod:`foresight_lib.features_loader` places them, paired
with :mod:`.truth`) -> :mod:`.spatial` and :mod:`.temporal` (every head, control, learning rate and seed trained
by :mod:`.engine` on one data stream, selected on validation: step, learning rate and, for the spatial heads, the
operating point) -> :mod:`.evaluate` (test predictions of every seed, metrics, selectivity) and :mod:`.prior` (the
data's prior).

Outputs:
- ``metrics/probe/<point>.json``: ``{<head>: {metric: value, <metric>_ci: [lo, hi], ..., "val_bbox_iou": ...,
  "selectivity": ..., "selectivity_ci": [lo, hi], "selectivity_control": "shuffled" | "prior",
  "control_val_bbox_iou": {...}, "seeds": {<seed>: {metric: value, "operating_point": {"score_threshold": ...,
  "max_boxes": ...}, "lr": ..., "best_step": ..., "steps": ..., "val_bbox_iou": ..., "val_loss": ...}}},
  "temporal": {"direction": {...}, "order": {...}}, "shuffled": {<head>: {...}, "temporal": {...}}, "prior": {metric:
  value, ..., "box": [x, y, w, h], "operating_point": {...}, "val_bbox_iou": ...}, "steps": {"step": {...},
  "position": {...}, "task": {...}}, "point": {...}}`` (metric
  definitions, how seeds are combined and how the control is chosen in :mod:`.evaluate` and :mod:`.temporal`; NaN is
  written as null). The same params give the same file; the time each part took goes to one line on stderr (no
  output file holds timings, so a rerun with the same numbers reruns nothing downstream). A dataset without boxes
  (``annotations.parquet`` has no rows, e.g. COIN's step segments) trains nothing: the file is ``{"skipped":
  <one-line reason>, "point": {...}}`` and, where ``steps.parquet`` has rows, the step probes (``"steps"`` and
  ``"shuffled": {"steps": ...}``: :mod:`.steps`, trained on every dataset with steps); the predictions table has no
  rows, ``heads_dir`` is empty.
- ``predictions.parquet``: the test split's decoded detections of every head and seed, ``head`` = ``<head>``,
  ``shuffled/<head>`` or ``prior``, ``seed`` the init seed (columns in :data:`.evaluate.PREDICTION_COLUMNS`).
- ``heads_dir``: the selected model of the first of ``probe.seeds`` of every (non-shuffled) head, with its operating
  point (:mod:`.detector`).
- dvclive curves under ``live_dir`` (:func:`.engine.write_curves`): ``<head>/`` (selected, first seed) and
  ``<head>/sweep/lr<lr>_seed<seed>/`` (every trainee), ``temporal/<task>/``, and the same for the control under
  ``shuffled/``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.frames import FramesOutputs
from ..device import resolve_device
from ..features import FeatureStore, open_features
from ..features_loader import MemoryBudget
from ..metrics.operating import OperatingPoint
from ..params import ProbeParams
from ..store import write_json_atomic, write_parquet_atomic
from ..workers import Workers
from .data import ProbeData
from .detector import save_probe
from .engine import write_curves
from .evaluate import (
    PREDICTION_COLUMNS,
    evaluate_split,
    head_selectivity,
    prediction_rows,
    seed_results,
    spatial_metrics,
)
from .prior import prior_metrics
from .spatial import SpatialSettings, train_spatial
from .steps import step_metrics
from .temporal import temporal_metrics
from .truth import load_ground_truth


def run_probes(
    point_store_path: str | Path,
    frames_dir: str | Path,
    probe_params: ProbeParams,
    out_metrics_path: str | Path | None,
    live_dir: str | Path,
    predictions_path: str | Path | None,
    heads_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Probe one point's feature store against the frames stage's ground truth; write and return the metrics.

    Runs on ``probe.device``; on the CPU, every torch op on one thread and the trainees spread over
    ``probe.threads`` threads (:class:`foresight_lib.workers.Workers`; torch's thread count is restored
    afterwards), so the numbers are reproducible for a given device kind, whatever ``probe.threads``.
    """
    device = resolve_device(probe_params.device, "probe.device")
    outputs = FramesOutputs(Path(frames_dir))
    annotations = outputs.annotations
    if annotations.is_file() and pd.read_parquet(annotations, columns=["clip"]).empty:
        reason = f"no boxes in {annotations}: the box and motion probes need boxes; none was trained"
        store = open_features(point_store_path)
        steps = _step_sections(store, outputs, probe_params, Path(live_dir), device)
        return _skip(store, reason, steps, out_metrics_path, predictions_path, heads_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with Workers(probe_params.threads, device) as workers:
            return _run(
                point_store_path,
                frames_dir,
                probe_params,
                device,
                workers,
                out_metrics_path,
                Path(live_dir),
                predictions_path,
                heads_dir,
            )
    finally:
        torch.set_num_threads(threads)


def open_point(
    point_store_path: str | Path,
    frames_dir: str | Path,
    params: ProbeParams,
    device: torch.device,
    workers: Workers | None = None,
) -> ProbeData:
    """One point's :class:`.data.ProbeData` as ``probe`` params say (order seed, batches, memory budgets)."""
    return ProbeData(
        open_features(point_store_path),
        load_ground_truth(frames_dir),
        params.seed,
        params.batch_size,
        params.block_clips,
        device,
        MemoryBudget.of(params.gpu_memory_gb, params.host_memory_gb),
        workers,
    )


def _run(
    point_store_path: str | Path,
    frames_dir: str | Path,
    params: ProbeParams,
    device: torch.device,
    workers: Workers,
    out_metrics_path: str | Path | None,
    live_dir: Path,
    predictions_path: str | Path | None,
    heads_dir: str | Path | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    data = open_point(point_store_path, frames_dir, params, device, workers)
    metrics: dict[str, Any] = {"point": _point_summary(data)}
    seconds: dict[str, float] = {"load": time.perf_counter() - started}

    tick = time.perf_counter()
    trainees, chosen = train_spatial(data, params, SpatialSettings.of(params), workers)
    write_curves(trainees, chosen, live_dir, params.seeds[0])
    seconds["train"] = time.perf_counter() - tick

    tick = time.perf_counter()
    groups = [(head, shuffled) for shuffled in (False, True) for head in params.heads]
    models = [(chosen[(h, c, s)].model, c) for h, c in groups for s in params.seeds]
    predictions, _ = evaluate_split(models, data, "test", workers=workers)
    seconds["test"] = time.perf_counter() - tick

    tick = time.perf_counter()
    tables, results = [], {}
    for g, (head, shuffled) in enumerate(groups):
        by_seed = {s: predictions[g * len(params.seeds) + k] for k, s in enumerate(params.seeds)}
        points = {s: chosen[(head, shuffled, s)].best.point for s in params.seeds}
        section = metrics.setdefault("shuffled", {}) if shuffled else metrics
        section[head] = spatial_metrics(
            data.truth, by_seed, points, params.bootstrap, 0 if shuffled else params.bootstrap_map, params.seed
        )
        for s in params.seeds:
            t = chosen[(head, shuffled, s)]
            section[head]["seeds"][s] |= {
                "lr": t.key.lr,
                "best_step": t.best_step,
                "steps": t.steps,
                "val_bbox_iou": t.best.quality,
                "val_loss": t.best.loss,
            }
        section[head]["seeds"] = {str(s): v for s, v in section[head]["seeds"].items()}
        section[head]["val_bbox_iou"] = float(np.mean([chosen[(head, shuffled, s)].best.quality for s in params.seeds]))
        results[(head, shuffled)] = seed_results(data.truth, by_seed, points)
        tables.append(prediction_rows(by_seed, f"shuffled/{head}" if shuffled else head))
        if heads_dir is not None and not shuffled:
            save_probe(
                heads_dir,
                head,
                chosen[(head, False, params.seeds[0])].model,
                points[params.seeds[0]],
                len(data.truth.categories),
                data.standardiser.mean,
                data.standardiser.std,
                data.stride,
                data.store.attrs["definition"],
                data.store.attrs["dtype"],
                params,
            )
    metrics["prior"], prior_val, prior_test = prior_metrics(data, params)
    tables.append(prediction_rows({0: prior_test}, "prior"))
    prior_results = seed_results(
        data.truth, {0: prior_test}, {0: OperatingPoint(**metrics["prior"]["operating_point"])}
    )
    for head in params.heads:
        metrics[head] |= head_selectivity(
            results[(head, False)],
            {
                "shuffled": (metrics["shuffled"][head]["val_bbox_iou"], results[(head, True)]),
                "prior": (prior_val, prior_results * len(params.seeds)),
            },
            params.bootstrap,
            params.seed,
        )
    seconds["metrics"] = time.perf_counter() - tick

    tick = time.perf_counter()
    temporal = temporal_metrics(data, params, live_dir, workers)
    metrics["temporal"], metrics["shuffled"]["temporal"] = temporal[False], temporal[True]
    for section in (metrics["temporal"], metrics["shuffled"]["temporal"]):
        for task in section.values():
            if "seeds" in task:
                task["seeds"] = {str(s): v for s, v in task["seeds"].items()}
    seconds["temporal"] = time.perf_counter() - tick
    tick = time.perf_counter()
    for key, section in _step_sections(data.store, FramesOutputs(Path(frames_dir)), params, live_dir, device).items():
        (metrics["shuffled"] if key == "shuffled" else metrics)["steps"] = section
    seconds["steps"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started
    seconds["bytes_read"] = data.bytes_read
    metrics = _null_nan(metrics)
    if out_metrics_path is not None:
        write_json_atomic(out_metrics_path, metrics)
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items() if k != "bytes_read")
    print(f"probe: {timings}; {seconds['bytes_read'] / 1e6:.1f} MB of features read", file=sys.stderr)
    if predictions_path is not None:
        write_parquet_atomic(pd.concat(tables, ignore_index=True), Path(predictions_path))
    return metrics


def _step_sections(
    store: FeatureStore, outputs: FramesOutputs, params: ProbeParams, live_dir: Path, device: torch.device
) -> dict[str, dict[str, Any]]:
    """``{"steps": {...}, "shuffled": {...}}``: the step probes (:mod:`.steps`) of a dataset whose ``steps.parquet``
    has rows; ``{}`` for one without steps."""
    if not outputs.steps.is_file():
        return {}
    steps = pd.read_parquet(outputs.steps)
    if steps.empty:
        return {}
    clips = pd.read_parquet(outputs.clips, columns=["clip", "split"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as every probe: the numbers do not depend on the machine's thread count
    try:
        result = step_metrics(store, steps, clips, params, live_dir, device)
    finally:
        torch.set_num_threads(threads)
    return {"steps": result[False], "shuffled": result[True]}


def _skip(
    store: FeatureStore,
    reason: str,
    steps: dict[str, dict[str, Any]],
    out_metrics_path: str | Path | None,
    predictions_path: str | Path | None,
    heads_dir: str | Path | None,
) -> dict[str, Any]:
    """The outputs of a point whose box probes cannot run on this dataset: the reason, what was probed, the step
    probes' ``steps`` sections (:func:`_step_sections`; none: nothing trained), no predictions and an empty
    ``heads_dir`` (no box head trained)."""
    attrs = store.attrs
    metrics = {
        "skipped": reason,
        "point": {
            "name": store.name,
            "stride": store.stride,
            "grid": list(store.grid),
            "channels": store.channels,
            "slot_frames": store.slot_frames,
            "mode": attrs["mode"],
            "weights": attrs["weights"].get("weights"),
            "definition": attrs["definition"],
        },
    }
    if steps:
        metrics |= {"steps": steps["steps"], "shuffled": {"steps": steps["shuffled"]}}
        metrics = _null_nan(metrics)
    if out_metrics_path is not None:
        write_json_atomic(out_metrics_path, metrics)
    if predictions_path is not None:
        write_parquet_atomic(pd.DataFrame(columns=list(PREDICTION_COLUMNS)), Path(predictions_path))
    if heads_dir is not None:
        Path(heads_dir).mkdir(parents=True, exist_ok=True)
    return metrics


def _point_summary(data: ProbeData) -> dict[str, Any]:
    """What was probed: the store's geometry and identity, the split sizes and where each split was held."""
    attrs = data.store.attrs
    return {
        "name": data.store.name,
        "stride": data.stride,
        "grid": list(data.store.grid),
        "channels": data.channels,
        "slot_frames": data.store.slot_frames,
        "mode": attrs["mode"],
        "weights": attrs["weights"].get("weights"),
        "definition": attrs["definition"],
        "clips": {split: len(c) for split, c in data.splits.items()},
        "held": {split: loader.residency for split, loader in data.loaders.items()},
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
