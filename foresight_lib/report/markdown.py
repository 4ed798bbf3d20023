"""Writing the report: ``reports/phase1.md`` from the decision document and the tables, and the few lines of the
verdict that the ``report`` stage prints (the last thing ``dvc repro`` shows)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from typing import Any

from ..params import Params
from .decision import where
from .facts import RunFacts
from .summary import STEP_TASKS, HeadRow, StepRow
from .tables import AdapterTable, FamilyTable, PointTableRow, adapter_table

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
    "resampled jointly). 95% intervals: bootstrap over clips (and seeds), each bound the outer of the "
    "bias-corrected, expanded percentile bound and the bias-corrected Student-t bound, so that they keep their "
    "level down to a few clips."
)


def _fmt(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _ci(m: HeadRow | None, key: str) -> str:
    if m is None or getattr(m, key) is None:
        return "n/a"
    return f"{_fmt(getattr(m, key))} [{_fmt(getattr(m, f'{key}_lo'))}, {_fmt(getattr(m, f'{key}_hi'))}]"


def _iou_cell(m: HeadRow | None) -> str:
    """``value [lo, hi] (chance c) @ t, k``: the operating point(s), then ``seeds a / b / c`` where the probe trained
    several seeds."""
    if m is None or m.bbox_iou is None:
        return "n/a"
    cell = f"{_ci(m, 'bbox_iou')} ({_fmt(m.bbox_iou_chance)})"
    if m.operating_points:
        cell += " @ " + " / ".join(f"{p['score_threshold']:g}, {p['max_boxes']}" for p in m.operating_points)
    if m.seeds and len(m.seeds) > 1:
        cell += "; seeds " + " / ".join(_fmt(v) for v in m.seeds)
    return cell


def _count(v: int | None) -> str:
    return "n/a" if v is None else str(v)


METRIC_NAMES = {"bbox_iou": "bbox IoU", "selectivity": "selectivity"}


def separation_lines(separate: list[dict[str, Any]]) -> list[str]:
    """One sentence per straddled threshold: how many test clips would separate the value from it, and the cost."""
    lines = []
    for e in separate:
        what = (
            f"`{e['point']}` ({e['head']}) {METRIC_NAMES[e['metric']]} {_fmt(e['value'])} "
            f"[{_fmt(e['ci'][0])}, {_fmt(e['ci'][1])}] straddles `{e['threshold_key']}` {e['threshold']}"
        )
        if e["clips_needed"] is None:
            lines.append(
                f"{what}: no number of test clips separates them (the value is on the threshold or no "
                "per-clip spread was measured)"
            )
            continue
        cost = (
            f"{e['gpu_hours']:.2f} GPU-hours and {e['disk_gb']:.1f} GB uncompressed (`check --cost`)"
            if "gpu_hours" in e
            else e.get("cost_reason", "cost unknown")
        )
        if e["test_clips"] is not None and e["clips_needed"] <= e["test_clips"]:
            lines.append(
                f"{what}: at its per-clip SD {_fmt(e['clip_sd'])} the t bound would clear it from "
                f"{e['clips_needed']} test clips (now {e['test_clips']}); the skewed percentile bound is what "
                "straddles it, and more test clips narrow that too"
            )
            continue
        lines.append(
            f"{what}: at its per-clip SD {_fmt(e['clip_sd'])} (SE ~ 1/sqrt(n)), about {e['clips_needed']} test clips "
            f"(now {_count(e['test_clips'])}) would put the interval on one side: a run of "
            f"{e.get('total_clips', 'n/a')} clips in all, {cost}"
        )
    return lines


def why(doc: Mapping[str, Any]) -> str:
    """The bounds that decided, in one sentence (where no bound did, why no rule applied, else the branch itself)."""
    checks = doc.get("checks") or []
    return "; ".join(c["text"] for c in checks) if checks else doc.get("reason") or doc["branch"]


def deciding_text(doc: Mapping[str, Any]) -> str:
    d = doc.get("deciding")
    if not d:
        return f"none ({doc.get('reason', 'no pre-merge point was probed')})"
    return (
        f"`{d['point']}` ({where(d)}), {d['head']} probe: bbox IoU {_fmt(d['bbox_iou'])} [{_fmt(d['bbox_iou_lo'])}, "
        f"{_fmt(d['bbox_iou_hi'])}] (chance {_fmt(d['chance_iou'])}), mAP@0.5 {_fmt(d['map50'])} "
        f"[{_fmt(d['map50_lo'])}, {_fmt(d['map50_hi'])}], selectivity "
        + (
            "n/a"
            if math.isnan(d["selectivity"])
            else f"{_fmt(d['selectivity'])} [{_fmt(d['selectivity_lo'])}, {_fmt(d['selectivity_hi'])}]"
        )
        + f" over its control ({d['control']}: {_fmt(d['control_iou'])})"
    )


def verdict_lines(doc: Mapping[str, Any], report_path: str, width: int = 110) -> list[str]:
    """The verdict, the deciding point and head, the bounds that decided and what follows, wrapped to ``width``."""
    out = []
    for label, text in (
        ("verdict", f"{doc['decision']} on {doc['data']}"),
        ("deciding", deciding_text(doc)),
        ("why", why(doc)),
        ("next", doc["branch"]),
        ("report", report_path),
    ):
        out += textwrap.wrap(text, width, initial_indent=f"{label + ':':<10}", subsequent_indent=" " * 10)
    return out


def _convergence(v: Mapping[str, Any] | None) -> str:
    if not v:
        return "unknown"
    if v.get("diverged"):
        return f"fail: divergent ({v['reason']})"
    return "unknown" if v["value"] is None else f"{v['verdict']}: {v['value']:,} steps"


def _memory(m: Mapping[str, Any] | None) -> str:
    if not m:
        return "n/a"
    activations = f"activations {m['activation_bytes'] / 2**20:,.1f} MiB/step"
    if m.get("peak_allocated_bytes") is not None:
        return f"{m['peak_allocated_bytes'] / 2**30:,.2f} GiB peak ({m['device']}, {m['precision']}); {activations}"
    return f"{activations} ({m['device']}, {m['precision']}; no allocator peak)"


def _mean_ci(m: Mapping[str, Any] | None) -> str:
    return "n/a" if not m else f"{_fmt(m['mean'])} [{_fmt(m['ci95'][0])}, {_fmt(m['ci95'][1])}]"


def _detected(d: Mapping[str, Any], key: str) -> str:
    return (
        d.get("reason", "n/a")
        if key not in d
        else f"{_fmt(d[key])} [{_fmt(d[f'{key}_ci'][0])}, {_fmt(d[f'{key}_ci'][1])}]"
    )


def adapter_table_lines(table: AdapterTable) -> list[str]:
    """The Phase 2 table in markdown, then the options' legend and each option C adapter's learned point weights."""
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
    for r in table.rows:
        cells = [
            f"`{r.name}`",
            r.option,
            f"{r.parameters:,}",
            _fmt(r.explained_test),
            _detected(r.detection, "bbox_iou"),
            _detected(r.detection, "map50_class_agnostic"),
            _mean_ci(r.lpips) if r.lpips else "unavailable",
            _mean_ci(r.psnr),
            _mean_ci(r.ssim),
            ", ".join(f"{point} {_fmt(value, 2)}" for point, value in r.cka),
            _convergence(r.convergence),
            _memory(r.memory),
            r.verdict,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for ref in table.references:
        image = ref.label == "VAE ceiling"
        cells = [
            ref.label,
            "",
            "",
            "",
            _detected(ref.detection, "bbox_iou"),
            _detected(ref.detection, "map50_class_agnostic"),
            (_mean_ci(ref.lpips) if ref.lpips else "unavailable") if image else "",
            _mean_ci(ref.psnr) if image else "",
            _mean_ci(ref.ssim) if image else "",
            "",
            "",
            "",
            "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if table.references:
        lines += [
            "",
            "Options (the proposal's): A = pure pre-merge (`single` on a ViT point), B = dual stream "
            "(pre-merge spatial + merger/LLM semantic), C = multi-scale ViT (`multi_scale`); post-merge = "
            "`single` on the merger or an LLM layer. Boxes on decoded frames come from the "
            f"`{table.detector}` probe, the same detector run on the original frames (last row). "
            "LPIPS: " + table.lpips_reason + ".",
        ]
    for r in table.rows:
        if r.point_weights:
            lines += [
                "",
                f"Learned point weights of `{r.name}` (softmax, sum 1): "
                + ", ".join(f"`{point}` {value:.3f}" for point, value in r.point_weights.items())
                + ".",
            ]
    return lines


def phase2_table(recon: Mapping[str, Mapping[str, Any]], training: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The Phase 2 table's markdown lines from the adapters' reconstruction and training records."""
    return adapter_table_lines(adapter_table(recon, training))


def _controls_line(bench: Mapping[str, Any]) -> str:
    """Whether the shuffled controls sit at chance, worded for the data: a check of the benchmark on synthetic data;
    on real data an expected excess that the selectivity, not the chance level, accounts for."""
    above = f"; above chance: {'; '.join(bench['above_chance'])}" if bench["above_chance"] else ""
    if bench["expected_at_chance"]:
        where = (
            "lower bound at or below the higher of chance and the prior; expected on the synthetic benchmark, "
            "where objects are placed uniformly: a check of the benchmark"
        )
    else:
        where = (
            "not expected on real data: permuted tokens keep each frame's content and real boxes are not placed "
            "uniformly, so a shuffled control can earn IoU without spatial information (and a constant box may "
            "earn more); the decision reads the selectivity over it, not the chance level"
        )
    return f"- Shuffled controls at chance: {bench['status']} ({where}){above}"


def _selectivity_cell(m: HeadRow | None) -> str:
    """``value [lo, hi] vs control``."""
    if m is None or m.selectivity is None:
        return "n/a"
    return f"{_ci(m, 'selectivity')} vs {m.selectivity_control or 'n/a'}"


def _prior_cell(p: HeadRow | None) -> str:
    """The data's prior: ``value [lo, hi] (chance c) x k``."""
    if p is None or p.bbox_iou is None:
        return "n/a"
    k = p.operating_points[0]["max_boxes"] if p.operating_points else "n/a"
    return f"{_ci(p, 'bbox_iou')} ({_fmt(p.bbox_iou_chance)}) x {k}"


def _step_lines(steps: Mapping[str, Any] | None, criterion: str) -> list[str]:
    """The step probes in the decision section: the proposal's temporal criterion and its gate (none measured: no
    line)."""
    if steps is None:
        return []
    g = steps["gate"]
    where = ", ".join(f"`{p}`" for p in g["points"]) or "none configured"
    return [
        f"- Step probes: {criterion}. The per-point accuracies are the step columns of the point table.",
        f"- Step gate (steps oracle {where}): {g['status']}; step accuracy {_fmt(g['step_accuracy'])} "
        f"(threshold {g['threshold']}, `decision.oracle_min_step_accuracy`)",
    ]


def _step_cell(s: StepRow | None, task: str) -> str:
    """``accuracy [lo, hi] (chance)`` of one step task, ``n/a`` where not measured."""
    if s is None or getattr(s, f"{task}_accuracy") is None:
        return "n/a"
    value, lo, hi, chance = s.interval(task)
    return f"{_fmt(value)} [{_fmt(lo)}, {_fmt(hi)}] ({_fmt(chance)})"


def family_lines(table: FamilyTable) -> list[str]:
    """The side-by-side table of VLM families (:func:`.tables.family_table`)."""
    header = ["kind", *(f"`{m}`: {label}" for m, label in table.models.items())]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kind, cells in table.rows:
        text = [
            "no such kind"
            if points is None
            else "<br>".join(
                f"`{r.name}`{'' if r.layer is None else f' ({r.layer})'}: {_ci(h := r.heads.get(table.head), 'bbox_iou')}"
                f" (chance {_fmt(None if h is None else h.bbox_iou_chance)})"
                for r in points
            )
            or "not run"
            for points in cells.values()
        ]
        lines.append("| " + " | ".join([kind, *text]) + " |")
    return [
        *lines,
        "",
        f"Cells: the `{table.head}` head's bbox IoU [95% interval] (chance level) of each point of that kind read from that model "
        "(layer in brackets; the depths differ between families: docs/design.md). The full rows are in the table "
        "above; `python -m foresight_lib.compare <a> <b>` compares two points.",
    ]


def _point_table_lines(table: list[PointTableRow], heads: list[str], params: Params) -> list[str]:
    d = params.decision
    with_steps = any(entry.row.steps is not None for entry in table)
    step_columns = ["step acc. (chance)", "position acc. (chance)", "task acc. (chance)"] if with_steps else []
    header = (
        ["point", "kind, layer", "weights"]
        + [f"{h} bbox IoU (chance)" for h in heads]
        + [f"{h} selectivity" for h in heads]
        + [f"{h} mAP@0.5" for h in heads]
        + ["shuffled IoU (chance)", "prior IoU (chance) x boxes"]
        + ["direction acc. (chance)", "order acc. (chance)", *step_columns, "memory vs merger"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    key = f"map50_{d.map_kind}"
    for entry in table:
        r = entry.row
        t = r.temporal
        shuffled = ", ".join(
            f"{_fmt(r.shuffled[h].bbox_iou if h in r.shuffled else None)} "
            f"({_fmt(r.shuffled[h].bbox_iou_chance if h in r.shuffled else None)})"
            for h in heads
        )
        label = r.label() + (f" ({r.family})" if r.family not in (None, params.model.family) else "")
        cells = [f"`{r.name}`" + (f" ({entry.role})" if entry.role else ""), label, str(r.weights or "n/a")]
        cells += [_iou_cell(r.heads.get(h)) for h in heads] + [_selectivity_cell(r.heads.get(h)) for h in heads]
        cells += [_ci(r.heads.get(h), key) for h in heads]
        cells += [
            shuffled,
            _prior_cell(r.prior),
            f"{_fmt(t and t.direction_accuracy)} ({_fmt(t and t.direction_chance)})",
            f"{_fmt(t and t.order_accuracy)} ({_fmt(t and t.order_chance)})",
            *([_step_cell(r.steps, task) for task in STEP_TASKS] if with_steps else []),
            "n/a" if r.memory_overhead_vs_merger is None else f"{r.memory_overhead_vs_merger:.2f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        (
            "bbox IoU cells: value [95% interval] (chance level) @ operating point (score threshold, at most k "
            "boxes per frame; one per seed), then each probe seed's value where several seeds were trained. "
            "Selectivity: IoU minus the control's (the stronger on validation of the shuffled control and the "
            f"data's prior), paired interval; GO needs its lower bound above {d.selectivity_margin}. Prior: the "
            "mean train box repeated k times (k chosen on validation). `kind, layer` is the point as the params "
            "define it (a point's name is only a label)."
            + (
                " Step columns: accuracy [95% interval over test videos] (chance: the train split's majority class) "
                "of step recognition, procedure position (which of two clips of one video comes first) and task "
                "recognition; the shuffled controls' are in `metrics/summary.json`."
                if with_steps
                else ""
            )
        ),
    ]
    return lines


CAPTIONS = {
    "by_point": (
        "bbox IoU and mAP@0.5 by extraction point (model order), 95% intervals, shuffled controls (x), chance level "
        "(grey bars: the random-box IoU of each point's asserted boxes), thresholds dashed"
    ),
    "curves": "probe training curves (one colour per point, one line style per head)",
    "boxes": "test frames: ground truth (green) and the `{head}` probe's predictions (red)",
    "cka": "CKA between extraction points (frame 0 of every clip, pooled to 8x12 cells)",
}
SHEET_CAPTION = "`{name}`: original | VAE ceiling | adapter (test clips)"
RANDOM_VAE = (
    "Sheets below: the VAE has random weights (`ltx.source: tiny`): its decoded frames are noise, the ceiling column included; "
    "that is expected, and these sheets check the pipeline, not the adapter's quality."
)


def render_markdown(
    doc: Mapping[str, Any],
    table: list[PointTableRow],
    adapters: AdapterTable,
    facts: RunFacts,
    heads: list[str],
    params: Params,
    families: FamilyTable | None = None,
) -> str:
    """``reports/phase1.md``: the verdict and why first, then the evidence, the tables and the figures; ``families``:
    the VLM families side by side, where points read more than one model."""
    d = params.decision
    lines = ["# Phase 1 report: where does spatial information survive?", ""]
    if (warning := facts.weights_warning()) is not None:
        lines += [warning, ""]
    lines += [
        f"## Decision: **{doc['decision']}**",
        "",
        f"- **Deciding point and head**: {deciding_text(doc)}",
        f"- **Why**: {why(doc)}",
        f"- **Next**: {doc['branch']}",
        f"- **Data**: {facts.data_text()}",
        "",
        f"- Oracle gate: {doc['criteria']['oracle']}",
        f"- GO: {doc['criteria']['go']}",
        f"- NO-GO: {doc['criteria']['no_go']}",
        f"- Further criteria: {doc['criteria']['further']}",
    ]
    if split_counts := doc.get("clips_per_split"):
        lines.append(
            "- Clips per split: "
            + ", ".join(f"{split} {n}" for split, n in split_counts.items())
            + f" (test clips with ground truth, which the intervals resample: {_count(doc.get('test_clips'))}; "
            f"the rule needs at least {d.min_test_clips})"
        )
    lines += [f"- {line}" for line in separation_lines(doc.get("separate", []))]
    gate = doc["oracle"]
    reads = ", ".join(f"{h} {_fmt(v)}" for h, v in gate["bbox_iou"].items()) or "n/a"
    lines.append(
        f"- Oracle ({', '.join(f'`{p}`' for p in gate['points']) or 'none configured'}): "
        f"{gate['status']}; bbox IoU by head: {reads} (threshold {gate['threshold']}; "
        f"heads that decide: {', '.join(gate['passing_heads']) or 'none'})"
    )
    lines += _step_lines(doc.get("steps"), doc["criteria"]["steps"])
    if families is not None:
        lines.append(f"- Families side by side: {', '.join(families.models.values())}; section below")
    lines.append(_controls_line(doc["benchmark"]))
    if "lpips" in doc:
        lpips = doc["lpips"]
        lines.append(
            f"- LPIPS: {lpips['status']}"
            + (
                f" ({lpips['reason']})"
                if "reason" in lpips
                else f" (best {_fmt(lpips.get('best'))}, threshold {lpips.get('threshold')})"
            )
        )
    if facts.ignored_files:
        lines.append(
            "- Ignored (adapters not configured in `adapter`, stale records of an earlier run): "
            + ", ".join(f"`{f}`" for f in facts.ignored_files)
        )
    lines += [
        "",
        f"Definition. {IOU_DEFINITION} mAP as COCOeval computes it: mAP@0.5 ({d.map_kind}) is the "
        "rule's; class-aware values are in `metrics/summary.json`.",
        "",
        "## Extraction points",
        "",
        *_point_table_lines(table, heads, params),
    ]
    if families is not None:
        lines += ["", "## VLM families side by side", "", *family_lines(families)]
    if adapters.rows:
        lines += ["", "## Phase 2: adapters", "", *adapter_table_lines(adapters)]
        if doc.get("sheets") and params.ltx.source == "tiny":
            lines += ["", RANDOM_VAE]
        for name, sheet in doc.get("sheets", {}).items():
            caption = SHEET_CAPTION.format(name=name)
            lines += ["", f"![{caption}]({sheet})", "", f"*{caption}*"]
    figures = doc.get("figures", {})
    if figures:
        lines += ["", "## Figures", ""]
        for k, v in figures.items():
            caption = CAPTIONS[k].format(head=doc.get("boxes_head"))
            lines += [f"![{caption}]({v})", "", f"*{caption}*", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
