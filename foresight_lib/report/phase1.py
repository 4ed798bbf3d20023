"""The ``report`` stage: summary, Phase 1 decision, figures and ``reports/phase1.md``.

Inputs are the per-point metrics (``metrics/probe``, ``metrics/extract``), the probes' test predictions
and training curves, the feature stores (for CKA), the frames (for the box sheet) and, when present,
the adapters' reconstruction metrics and sheets. Outputs: ``metrics/summary.json`` (keyed by point),
``metrics/decision.json`` (the same content as the report), ``reports/phase1.md`` with its PNGs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

from ..data.splits import split_clips
from ..features import open_features
from ..metrics.boxes import FrameBoxes
from ..metrics.operating import OperatingPoint, asserted
from ..params import Params
from ..store import write_json_atomic
from .decision import benchmark_check, decide
from .plots import plot_boxes, plot_by_point, plot_cka, plot_curves
from .similarity import cka_matrices
from .summary import PRE_MERGE_KINDS, adapter_summary, build_summary

IOU_DEFINITION = (
    "bbox IoU: per test frame, the detections that count at the head's operating point (those scoring at least a "
    "threshold of `probe.score_thresholds`, at most k of `probe.max_boxes` per frame, highest first; the pair "
    "chosen per head and seed on validation bbox IoU, with the training step and the learning rate) matched "
    "one-to-one to the ground-truth boxes (Hungarian on IoU); the matched IoUs summed over all frames, divided by "
    "the sum over frames of max(objects, asserted boxes): an unmatched object and every box beyond the frame's "
    "object count score 0, so asserting extra boxes cannot raise it. Chance: the same score of random boxes at the "
    "asserted count (sizes drawn from the ground-truth boxes, placed uniformly, seeded). Prior: the best constant "
    "prediction learnt from train (the mean train box, k copies, k chosen on validation), scored the same way. "
    "Selectivity: the head's bbox IoU minus its control's on the same frames, the control being the stronger on "
    "validation of the shuffled control and the prior, with a paired interval (clips, and seeds where several, "
    "resampled jointly). 95% intervals: bias-corrected bootstrap over clips with expanded tails."
)
RANDOM_WARNING = (
    "**Warning: the weights are random** ({weights}). This is the embedded default: every number "
    "below describes the pipeline on a synthetic benchmark, not Qwen2.5-VL. Point `model.source` "
    "at a checkpoint for a real decision."
)


def _fmt(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def _ci(row: dict[str, Any], key: str) -> str:
    if not row or row.get(key) is None:
        return "n/a"
    return f"{_fmt(row[key])} [{_fmt(row.get(f'{key}_lo'))}, {_fmt(row.get(f'{key}_hi'))}]"


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


def _sheet_points(summary: dict[str, Any], params: Params, head: str) -> list[str]:
    """Best pre-merge point, the merger and the last LLM layer (those present)."""
    pts = params.points
    pre = [n for n in summary if pts[n].kind in PRE_MERGE_KINDS and summary[n].get(head)]
    chosen = [max(pre, key=lambda n: summary[n][head]["bbox_iou"] or 0)] if pre else []
    chosen += [n for n in summary if pts[n].kind == "merger"][:1]
    llm = [n for n in summary if pts[n].kind == "llm"]
    chosen += llm[-1:]
    return chosen


def _box_sheet(
    points: dict[str, OperatingPoint], head: str, probes_dir: Path, data_dir: Path, out: Path, n_frames: int = 4
) -> bool:
    """Frame 0 of the first test clips with the ground truth and the boxes ``head`` asserts at each point's operating
    point (``{point: its head's operating point}``, the first seed's)."""
    ann = pd.read_parquet(data_dir / "annotations.parquet")
    clips = pd.read_parquet(data_dir / "clips.parquet")
    frames = zarr.open_array(data_dir / "frames.zarr", mode="r")
    test = split_clips(clips, "test")[:n_frames]
    shown, truth, predicted = {}, {}, {}
    for name, point in points.items():
        path = probes_dir / name / "predictions.parquet"
        if not path.is_file():
            continue
        pred = pd.read_parquet(path)
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
    if not shown:
        return False
    plot_boxes(shown, truth, predicted, out)
    return True


def build_report(
    params: Params,
    metrics_dir: str | Path = "metrics",
    probes_dir: str | Path = "probes",
    features_dir: str | Path = "features",
    data_dir: str | Path = "data",
    reports_dir: str | Path = "reports",
    adapters_dir: str | Path = "adapters",
) -> dict[str, Any]:
    """Write the summary, decision, figures and markdown report; return the decision document."""
    metrics_dir, probes_dir, reports_dir = Path(metrics_dir), Path(probes_dir), Path(reports_dir)
    features_dir, data_dir = Path(features_dir), Path(data_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    heads = list(params.probe.heads)
    summary = build_summary(params.points, heads, metrics_dir)
    recon = {p.stem: json.loads(p.read_text()) for p in sorted((metrics_dir / "recon").glob("*.json"))}
    adapter_rows = {name: adapter_summary(r) for name, r in recon.items()}
    write_json_atomic(
        metrics_dir / "summary.json", {**summary, **{f"adapter:{name}": row for name, row in adapter_rows.items()}}
    )
    decision = decide(summary, params.points, params.decision, adapter_rows, heads)
    weights = sorted({str(row.get("weights")) for row in summary.values() if row.get("weights")})
    decision["weights"] = weights
    decision["random_weights"] = any("random" in w for w in weights)
    decision["bbox_iou_definition"] = IOU_DEFINITION
    decision["benchmark"] = benchmark_check(summary, params.points, params.data.source)

    figures = {}
    plot_by_point(summary, heads, params.decision, reports_dir / "by_point.png")
    figures["by_point"] = "by_point.png"
    curves = _curves({f"{n}/{h}": probes_dir / n / "live" / h for n in summary for h in heads})
    if curves:
        plot_curves(curves, reports_dir / "curves.png")
        figures["curves"] = "curves.png"
    adapter_curves = _curves(
        {
            f"adapter/{p.stem}": Path(adapters_dir) / p.stem / "live"
            for p in sorted((metrics_dir / "adapter").glob("*.json"))
        }
    )
    _write_curves({**curves, **adapter_curves}, reports_dir / "curves")
    box_head = decision.get("best_pre_merge", {}).get("head", heads[0])  # the head that read the best pre-merge IoU
    sheet = {
        name: OperatingPoint(**summary[name][box_head]["operating_points"][0])
        for name in _sheet_points(summary, params, box_head)
        if summary[name].get(box_head, {}).get("operating_points")
    }
    if _box_sheet(sheet, box_head, probes_dir, data_dir, reports_dir / "boxes.png"):
        figures["boxes"] = "boxes.png"
        decision["boxes_head"] = box_head
    stores = {n: open_features(features_dir / f"{n}.zarr") for n in summary if (features_dir / f"{n}.zarr").exists()}
    if len(stores) > 1:
        n_clips = min(s.n_clips for s in stores.values())
        cka = cka_matrices(stores, range(n_clips))
        plot_cka(list(stores), cka, reports_dir / "cka.png")
        figures["cka"] = "cka.png"
        decision["cka"] = {"points": list(stores), **{k: np.round(v, 4).tolist() for k, v in cka.items()}}
    decision["figures"] = figures
    decision["phase2"] = recon
    decision["sheets"] = _copy_sheets(list(recon), Path(adapters_dir), reports_dir / "sheets")
    decision["adapters"] = {p.stem: json.loads(p.read_text()) for p in sorted((metrics_dir / "adapter").glob("*.json"))}
    decision["table"] = _table_rows(summary, heads, params)
    write_json_atomic(metrics_dir / "decision.json", decision)
    (reports_dir / "phase1.md").write_text(render_markdown(decision, summary, heads, params))
    pd.DataFrame(_plot_rows(summary, heads, params)).to_json(reports_dir / "by_point.json", orient="records", indent=1)
    return decision


def _plot_rows(summary: dict[str, Any], heads: list[str], params: Params) -> list[dict[str, Any]]:
    """Long-format rows for ``dvc plots``: one per (point, head)."""
    key = f"map50_{params.decision.map_kind}"
    return [
        {"point": name, "head": head, "bbox_iou": row[head]["bbox_iou"], "map50": row[head][key]}
        for name, row in summary.items()
        for head in heads
        if row.get(head)
    ]


def _table_rows(summary: dict[str, Any], heads: list[str], params: Params) -> list[dict[str, Any]]:
    key = f"map50_{params.decision.map_kind}"
    rows = []
    for name, row in summary.items():
        entry: dict[str, Any] = {
            "point": name,
            "kind": params.points[name].kind,
            "weights": row.get("weights"),
            "order": getattr(params.points[name], "order", None),
        }
        for head in heads:
            m = row.get(head, {})
            entry[head] = {
                "bbox_iou": m.get("bbox_iou"),
                "bbox_iou_ci": [m.get("bbox_iou_lo"), m.get("bbox_iou_hi")],
                "bbox_iou_chance": m.get("bbox_iou_chance"),
                "seeds": m.get("seeds"),
                "selectivity": m.get("selectivity"),
                "selectivity_ci": [m.get("selectivity_lo"), m.get("selectivity_hi")],
                "map50": m.get(key),
                "map50_ci": [m.get(f"{key}_lo"), m.get(f"{key}_hi")],
                "selectivity_control": m.get("selectivity_control"),
                "operating_points": m.get("operating_points"),
                "shuffled_bbox_iou": row.get("shuffled", {}).get(head, {}).get("bbox_iou"),
                "shuffled_bbox_iou_chance": row.get("shuffled", {}).get(head, {}).get("bbox_iou_chance"),
            }
        entry["prior"] = row.get("prior")
        entry["temporal"] = row.get("temporal", {})
        entry["memory_overhead_vs_merger"] = row.get("extract", {}).get("memory_overhead_vs_merger")
        rows.append(entry)
    return rows


def _iou_cell(m: dict[str, Any]) -> str:
    """``value [lo, hi] (chance c) @ t, k``: the operating point(s), then ``seeds a / b / c`` where the probe trained
    several seeds."""
    if not m or m.get("bbox_iou") is None:
        return "n/a"
    cell = f"{_ci(m, 'bbox_iou')} ({_fmt(m.get('bbox_iou_chance'))})"
    if m.get("operating_points"):
        cell += " @ " + " / ".join(f"{p['score_threshold']:g}, {p['max_boxes']}" for p in m["operating_points"])
    if m.get("seeds") and len(m["seeds"]) > 1:
        cell += "; seeds " + " / ".join(_fmt(v) for v in m["seeds"])
    return cell


def _selectivity_cell(m: dict[str, Any]) -> str:
    """``value [lo, hi] vs control``."""
    if not m or m.get("selectivity") is None:
        return "n/a"
    return f"{_ci(m, 'selectivity')} vs {m.get('selectivity_control', 'n/a')}"


def _prior_cell(row: dict[str, Any]) -> str:
    """The data's prior: ``value [lo, hi] (chance c) x k``."""
    p = row.get("prior")
    if not p:
        return "n/a"
    return f"{_ci(p, 'bbox_iou')} ({_fmt(p.get('bbox_iou_chance'))}) x {p.get('max_boxes')}"


def _times(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def _mean_ci(m: dict[str, Any] | None) -> str:
    return "n/a" if not m else f"{_fmt(m['mean'])} [{_fmt(m['ci95'][0])}, {_fmt(m['ci95'][1])}]"


def _detected(d: dict[str, Any], key: str) -> str:
    return (
        d.get("reason", "n/a")
        if key not in d
        else f"{_fmt(d[key])} [{_fmt(d[f'{key}_ci'][0])}, {_fmt(d[f'{key}_ci'][1])}]"
    )


OPTION_ORDER = {"A": 0, "B": 1, "C": 2}


def _convergence(v: dict[str, Any] | None) -> str:
    if not v:
        return "unknown"
    if v.get("diverged"):
        return f"fail: divergent ({v['reason']})"
    return "unknown" if v["value"] is None else f"{v['verdict']}: {v['value']:,} steps"


def _memory(m: dict[str, Any] | None) -> str:
    if not m:
        return "n/a"
    activations = f"activations {m['activation_bytes'] / 2**20:,.1f} MiB/step"
    if m.get("peak_allocated_bytes") is not None:
        return f"{m['peak_allocated_bytes'] / 2**30:,.2f} GiB peak ({m['device']}, {m['precision']}); {activations}"
    return f"{activations} ({m['device']}, {m['precision']}; no allocator peak)"


def phase2_table(recon: dict[str, Any], training: dict[str, Any]) -> list[str]:
    """One row per adapter, options A, B, C first (same latents, same test clips), then the VAE ceiling and the
    original frames as references; below, the learned point weights of each option C adapter."""
    header = [
        "",
        "option",
        "parameters",
        "latent variance explained (test)",
        "spatial IoU on decoded frames",
        "mAP@0.5 (class-agnostic)",
        "LPIPS",
        "PSNR",
        "SSIM",
        "CKA input vs latents",
        "convergence (steps to selected epoch)",
        "training memory",
        "Phase 2 verdict",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    reference = None
    names = sorted(recon, key=lambda n: (OPTION_ORDER.get(training.get(n, {}).get("option"), 3), n))
    for name in names:
        r, train = recon[name], training.get(name, {})
        a, p = r["adapter"], r["phase2"]
        cka = ", ".join(f"{c['point']} {_fmt(c['linear'], 2)}" for c in r.get("cka", {}).values())
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{name}`",
                    train.get("option", "n/a"),
                    f"{p['parameters']['value']:,}",
                    _fmt(train.get("explained", {}).get("test")),
                    _detected(a["detection"], "bbox_iou"),
                    _detected(a["detection"], "map50_class_agnostic"),
                    _mean_ci(a["lpips"]) if a["lpips"] else "unavailable",
                    _mean_ci(a["psnr"]),
                    _mean_ci(a["ssim"]),
                    cka,
                    _convergence(p.get("convergence")),
                    _memory(train.get("memory")),
                    p["overall"],
                ]
            )
            + " |"
        )
        reference = r
    if reference is not None:
        for label, key in (("VAE ceiling", "ceiling"), ("original frames", "original")):
            m = reference[key]
            lines.append(
                "| "
                + " | ".join(
                    [
                        label,
                        "",
                        "",
                        "",
                        _detected(m["detection"], "bbox_iou"),
                        _detected(m["detection"], "map50_class_agnostic"),
                        (_mean_ci(m["lpips"]) if m.get("lpips") else "unavailable") if key == "ceiling" else "",
                        _mean_ci(m.get("psnr")) if key == "ceiling" else "",
                        _mean_ci(m.get("ssim")) if key == "ceiling" else "",
                        "",
                        "",
                        "",
                        "",
                    ]
                )
                + " |"
            )
        lines += [
            "",
            "Options (the proposal's): A = pure pre-merge (`single` on a ViT point), B = dual stream "
            "(pre-merge spatial + merger/LLM semantic), C = multi-scale ViT (`multi_scale`); post-merge = "
            "`single` on the merger or an LLM layer. Boxes on decoded frames come from the "
            f"`{reference.get('detector')}` probe, the same detector run on the original frames (last row). "
            "LPIPS: " + (reference["ceiling"].get("lpips_reason") or "") + ".",
        ]
    weights = {n: training[n]["point_weights"] for n in names if training.get(n, {}).get("point_weights")}
    for name, w in weights.items():
        lines += [
            "",
            f"Learned point weights of `{name}` (softmax, sum 1): "
            + ", ".join(f"`{point}` {value:.3f}" for point, value in w.items())
            + ".",
        ]
    return lines


def render_markdown(decision: dict[str, Any], summary: dict[str, Any], heads: list[str], params: Params) -> str:
    """``reports/phase1.md``: the same content as ``metrics/decision.json``, readable."""
    d = params.decision
    lines = ["# Phase 1 report: where does spatial information survive?", ""]
    if decision.get("random_weights"):
        lines += [RANDOM_WARNING.format(weights=", ".join(decision["weights"])), ""]
    lines += [
        f"Weights: {', '.join(decision.get('weights', [])) or 'n/a'}.",
        "",
        f"## Decision: **{decision['decision']}**",
        "",
        decision["branch"],
        "",
        f"- Oracle gate: {decision['criteria']['oracle']}",
        f"- GO: {decision['criteria']['go']}",
        f"- NO-GO: {decision['criteria']['no_go']}",
        f"- Further criteria: {decision['criteria']['further']}",
    ]
    gate = decision.get("oracle", {})
    reads = ", ".join(f"{h} {_fmt(v)}" for h, v in gate.get("bbox_iou", {}).items()) or "n/a"
    lines.append(
        f"- Oracle ({', '.join(f'`{p}`' for p in gate.get('points', [])) or 'none configured'}): "
        f"{gate.get('status', 'missing')}; bbox IoU by head: {reads} (threshold {gate.get('threshold')}; "
        f"heads that decide: {', '.join(gate.get('passing_heads', [])) or 'none'})"
    )
    bench = decision.get("benchmark")
    if bench:
        where = (
            "expected on the synthetic benchmark, where objects are placed uniformly: a check of the benchmark"
            if bench["expected_at_chance"]
            else "not expected on real data: it measures what the prior gives"
        )
        lines.append(
            f"- Shuffled controls at chance (lower bound at or below the higher of chance and the prior): "
            f"{bench['status']} ({where})"
            + (f"; above chance: {'; '.join(bench['above_chance'])}" if bench["above_chance"] else "")
        )
    if "lpips" in decision:
        lpips = decision["lpips"]
        lines.append(
            f"- LPIPS: {lpips['status']}"
            + (
                f" ({lpips['reason']})"
                if "reason" in lpips
                else f" (best {_fmt(lpips.get('best'))}, threshold {lpips.get('threshold')})"
            )
        )
    lines += [
        "",
        f"Definition. {IOU_DEFINITION} mAP as COCOeval computes it: mAP@0.5 ({d.map_kind}) is the "
        "rule's; class-aware values are in `metrics/summary.json`.",
        "",
        "## Extraction points",
        "",
    ]
    header = (
        ["point", "weights"]
        + [f"{h} bbox IoU (chance)" for h in heads]
        + [f"{h} selectivity" for h in heads]
        + [f"{h} mAP@0.5" for h in heads]
        + ["shuffled IoU (chance)", "prior IoU (chance) x boxes"]
        + ["direction acc. (chance)", "order acc. (chance)", "memory vs merger"]
    )
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    key = f"map50_{d.map_kind}"
    for name, row in summary.items():
        t = row.get("temporal", {})
        shuffled = ", ".join(
            f"{_fmt(row.get('shuffled', {}).get(h, {}).get('bbox_iou'))} "
            f"({_fmt(row.get('shuffled', {}).get(h, {}).get('bbox_iou_chance'))})"
            for h in heads
        )
        point = params.points[name]
        label = f"`{name}`" + (
            " (naive order: the proposal's reshape, not un-permuted)"
            if getattr(point, "order", "raster") == "naive"
            else " (positive control)"
            if point.kind == "oracle"
            else ""
        )
        cells = [label, str(row.get("weights", "n/a"))]
        cells += [_iou_cell(row.get(h, {})) for h in heads] + [_selectivity_cell(row.get(h, {})) for h in heads]
        cells += [_ci(row.get(h, {}), key) for h in heads]
        cells += [
            shuffled,
            _prior_cell(row),
            f"{_fmt(t.get('direction_accuracy'))} ({_fmt(t.get('direction_chance'))})",
            f"{_fmt(t.get('order_accuracy'))} ({_fmt(t.get('order_chance'))})",
            _times(row.get("extract", {}).get("memory_overhead_vs_merger")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        (
            "bbox IoU cells: value [95% interval] (chance level) @ operating point (score threshold, at most k "
            "boxes per frame; one per seed), then each probe seed's value where several seeds were trained. "
            "Selectivity: IoU minus the control's (the stronger on validation of the shuffled control and the "
            f"data's prior), paired interval; GO needs its lower bound above {d.selectivity_margin}. Prior: the "
            "mean train box repeated k times (k chosen on validation)."
        ),
    ]
    if decision.get("phase2"):
        lines += ["", "## Phase 2: adapters", "", *phase2_table(decision["phase2"], decision.get("adapters", {}))]
        for name, sheet in decision.get("sheets", {}).items():
            caption = f"`{name}`: original | VAE ceiling | adapter (test clips)"
            lines += ["", f"![{caption}]({sheet})", "", f"*{caption}*"]
    figures = decision.get("figures", {})
    captions = {
        "by_point": "bbox IoU and mAP@0.5 by extraction point (model order), 95% intervals, thresholds dashed",
        "curves": "probe training curves",
        "boxes": f"test frames: ground truth (green) and the `{decision.get('boxes_head')}` probe's predictions (red)",
        "cka": "CKA between extraction points (frame 0 of every clip, pooled to 8x12 cells)",
    }
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{captions[k]}]({v})\n\n*{captions[k]}*\n" for k, v in figures.items()]
    return "\n".join(lines) + "\n"
