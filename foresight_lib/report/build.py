"""The ``report`` stage: summary, timing, Phase 1 decision, figures and ``reports/phase1.md``.

Inputs: the per-point records (``metrics/probe``, ``metrics/extract``), the probes' test predictions and training
curves, the feature stores (for CKA), the frames (for the box sheet) and the configured adapters' records and sheets.
Outputs: ``metrics/summary.json`` (science, keyed by point), ``metrics/timing.json`` (throughput and memory of the
machine), ``metrics/decision.json`` (the verdict and the deciding numbers: the one declared DVC metric),
``reports/decision.json`` (the whole decision document: criteria, checks, evidence, tables) and
``reports/phase1.md`` with its PNGs.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

from ..cost import clips_for_test, estimate, with_clips
from ..data.splits import split_clips
from ..errors import ForesightError
from ..features import open_features
from ..metrics.boxes import FrameBoxes
from ..metrics.operating import OperatingPoint, asserted
from ..params import Params
from ..store import write_json_atomic
from .decision import benchmark_check, decide
from .facts import configured_adapters, read_adapter_records, run_facts
from .markdown import render_markdown
from .plots import plot_boxes, plot_by_point, plot_cka, plot_curves
from .similarity import cka_matrices
from .summary import PRE_MERGE_KINDS, Rows, adapter_summary, build_summary, build_timing, vlm_families
from .tables import adapter_table, family_table, family_table_json, plot_rows, point_table, point_table_json

DECISION_METRICS = (  # the deciding candidate's numbers in metrics/decision.json
    "bbox_iou",
    "bbox_iou_lo",
    "bbox_iou_hi",
    "map50",
    "map50_lo",
    "selectivity",
    "selectivity_lo",
)


def decision_metrics(doc: dict[str, Any]) -> dict[str, Any]:
    """``metrics/decision.json``: the verdict, the deciding point and head and their numbers, rounded to 4 digits
    (labels and numbers only: ``dvc metrics show`` prints it as one short row)."""
    out: dict[str, Any] = {"decision": doc["decision"]}
    if deciding := doc.get("deciding"):
        out |= {"point": deciding["point"], "head": deciding["head"]}
        out |= {k: None if np.isnan(deciding[k]) else round(deciding[k], 4) for k in DECISION_METRICS}
    return out


def _curves(live_dirs: dict[str, Path]) -> dict[str, pd.DataFrame]:
    """Training curves from dvclive directories: ``{name: [step, train/loss, val/loss, ...]}``, those present."""
    curves = {}
    for name, live in live_dirs.items():
        frames = [
            pd.read_csv(f, sep="\t")[["step", f.stem]].rename(columns={f.stem: f"{f.parent.name}/{f.stem}"})
            for f in sorted((live / "plots" / "metrics").rglob("*.tsv"))
        ]
        if frames:
            df = frames[0]
            for other in frames[1:]:
                df = df.merge(other, on="step", how="outer")
            curves[name] = df
    return curves


def _write_curves(curves: dict[str, pd.DataFrame], out: Path) -> None:
    """One TSV per curve set (``step, train_loss, val_loss, ...``) for the ``reports/curves`` plots in dvc.yaml."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name, df in curves.items():
        df.rename(columns=lambda c: c.replace("/", "_")).to_csv(
            out / f"{name.replace('/', '.')}.tsv", sep="\t", index=False
        )


def _copy_sheets(adapters: list[str], adapters_dir: Path, out: Path) -> dict[str, str]:
    """Copy each adapter's original | ceiling | adapter sheet into the report: ``{adapter: path in reports/}``."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    copied = {}
    for name in adapters:
        if (sheet := adapters_dir / name / "sheet.png").is_file():
            shutil.copyfile(sheet, out / f"{name}.png")
            copied[name] = f"{out.name}/{name}.png"
    return copied


def _sheet_points(rows: Rows, head: str) -> list[str]:
    """Best pre-merge point, the merger and the last LLM layer (those probed with ``head``: none without boxes)."""
    probed = {n: r for n, r in rows.items() if head in r.heads}
    pre = [n for n, r in probed.items() if r.kind in PRE_MERGE_KINDS]
    chosen = [max(pre, key=lambda n: rows[n].heads[head].bbox_iou or 0)] if pre else []
    chosen += [n for n, r in probed.items() if r.kind == "merger"][:1]  # the merger, then the deepest LLM point
    chosen += [n for n, r in probed.items() if r.kind == "llm"][-1:]
    return chosen


def _box_sheet(
    points: dict[str, OperatingPoint], head: str, probes_dir: Path, data_dir: Path, out: Path, n_frames: int = 4
) -> bool:
    """Frame 0 of the first test clips with the ground truth and the boxes ``head`` asserts at each point's operating
    point (``{point: its head's operating point}``, the first seed's)."""
    points = {n: p for n, p in points.items() if (probes_dir / n / "predictions.parquet").is_file()}
    if not points:
        return False
    ann = pd.read_parquet(data_dir / "annotations.parquet")
    clips = pd.read_parquet(data_dir / "clips.parquet")
    frames = zarr.open_array(data_dir / "frames.zarr", mode="r")
    test = split_clips(clips, "test")[:n_frames]
    shown, truth, predicted = {}, {}, {}
    for name, point in points.items():
        pred = pd.read_parquet(probes_dir / name / "predictions.parquet")
        pred = pred[pred["head"] == head]
        if "seed" in pred.columns:
            pred = pred[pred["seed"] == pred["seed"].min()]
        shown[name], truth[name], predicted[name] = [], [], []
        for clip in test:
            shown[name].append(np.asarray(frames[int(clip), 0]))
            gt = ann[(ann["clip"] == clip) & (ann["frame"] == 0)]
            pr = pred[(pred["clip"] == clip) & (pred["frame"] == 0)]
            boxes = pr[["x", "y", "w", "h"]].to_numpy(np.float64)
            frame = FrameBoxes("sheet", str(clip), *frames.shape[2:4], np.zeros((0, 4)), boxes, pr["score"].to_numpy())
            (kept,) = asserted([frame], point)
            truth[name].append(gt[["x", "y", "w", "h"]].to_numpy())
            predicted[name].append(kept.pred_boxes)
    plot_boxes(shown, truth, predicted, out)
    return True


def separation_cost(params: Params, test_clips: int | None) -> dict[str, Any]:
    """What a run with ``test_clips`` test clips costs (:mod:`..cost`, as ``check --cost`` prints it): the clips in
    all (test clips / the test fraction, as the splits round), its GPU-hours and uncompressed disk."""
    if test_clips is None:
        return {}
    total = clips_for_test(test_clips, params.data)
    try:
        cost = estimate(with_clips(params, total))
    except ForesightError as exc:
        return {"total_clips": total, "cost_reason": str(exc)}
    return {"total_clips": total, "gpu_hours": cost.gpu_hours, "disk_gb": cost.disk_bytes / 1e9}


def build_report(
    params: Params,
    metrics_dir: str | Path = "metrics",
    probes_dir: str | Path = "probes",
    features_dir: str | Path = "features",
    data_dir: str | Path = "data",
    reports_dir: str | Path = "reports",
    adapters_dir: str | Path = "adapters",
) -> dict[str, Any]:
    """Write the summary, timing, decision, figures and markdown report; return the decision document."""
    metrics_dir, probes_dir, reports_dir = Path(metrics_dir), Path(probes_dir), Path(reports_dir)
    features_dir, data_dir, adapters_dir = Path(features_dir), Path(data_dir), Path(adapters_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    heads = list(params.probe.heads)
    rows = build_summary(params.points, heads, metrics_dir, vlm_families(params))
    configured = configured_adapters(params)
    recon, stale_recon = read_adapter_records(metrics_dir / "recon", configured)
    training, stale_training = read_adapter_records(metrics_dir / "adapter", configured)
    facts = run_facts(params, rows, data_dir, stale_recon + stale_training)
    adapter_rows = {name: adapter_summary(r) for name, r in recon.items()}
    write_json_atomic(
        metrics_dir / "summary.json",
        {**{n: r.to_json() for n, r in rows.items()}, **{f"adapter:{n}": row for n, row in adapter_rows.items()}},
    )
    timing: dict[str, Any] = {n: asdict(t) for n, t in build_timing(params.points, metrics_dir).items()}
    timing |= {f"adapter:{n}": t.get("memory") for n, t in training.items()}
    write_json_atomic(metrics_dir / "timing.json", timing)

    doc = decide(
        rows,
        params.points,
        params.decision,
        adapter_rows,
        heads,
        data_source=params.data.source,
        data_advice=facts.more_clips(),
    )
    doc["clips_per_split"] = dict(facts.n_clips)
    for entry in doc.get("separate", []):
        entry |= separation_cost(params, entry["clips_needed"])
    doc["data"] = facts.data_text()
    doc["random_weights"] = facts.random_points
    doc["ignored"] = facts.ignored_files
    doc["benchmark"] = benchmark_check(rows, params.points, params.data.source)

    figures = {}
    plot_by_point(rows, heads, params.decision, reports_dir / "by_point.png")
    figures["by_point"] = "by_point.png"
    curves = _curves({f"{n}/{h}": probes_dir / n / "live" / h for n in rows for h in heads})
    if curves:
        plot_curves(curves, reports_dir / "curves.png")
        figures["curves"] = "curves.png"
    adapter_curves = _curves({f"adapter/{n}": adapters_dir / n / "live" for n in training})
    _write_curves({**curves, **adapter_curves}, reports_dir / "curves")
    box_head = doc.get("best_pre_merge", {}).get("head", heads[0])  # the head that read the best pre-merge IoU
    sheet = {
        name: OperatingPoint(**rows[name].heads[box_head].operating_points[0])
        for name in _sheet_points(rows, box_head)
        if rows[name].heads[box_head].operating_points
    }
    if _box_sheet(sheet, box_head, probes_dir, data_dir, reports_dir / "boxes.png"):
        figures["boxes"] = "boxes.png"
        doc["boxes_head"] = box_head
    stores = {n: open_features(features_dir / f"{n}.zarr") for n in rows if (features_dir / f"{n}.zarr").exists()}
    if len(stores) > 1:
        n_clips = min(s.n_clips for s in stores.values())
        cka = cka_matrices(stores, range(n_clips))
        plot_cka(list(stores), cka, reports_dir / "cka.png")
        figures["cka"] = "cka.png"
        doc["cka"] = {"points": list(stores), **{k: np.round(v, 4).tolist() for k, v in cka.items()}}
    doc["figures"] = figures
    doc["sheets"] = _copy_sheets(list(recon), adapters_dir, reports_dir / "sheets")
    table = point_table(rows, params.points)
    doc["table"] = point_table_json(table, params.decision.map_kind)
    doc["phase2"] = recon
    doc["adapters"] = training
    families = family_table(rows, params.points, params, box_head)
    if families is not None:
        doc["families"] = family_table_json(families)
    write_json_atomic(metrics_dir / "decision.json", decision_metrics(doc))
    write_json_atomic(reports_dir / "decision.json", doc)
    markdown = render_markdown(doc, table, adapter_table(recon, training), facts, heads, params, families)
    (reports_dir / "phase1.md").write_text(markdown)
    pd.DataFrame(plot_rows(rows, heads, params.decision.map_kind)).to_json(
        reports_dir / "by_point.json", orient="records", indent=1
    )
    return doc
