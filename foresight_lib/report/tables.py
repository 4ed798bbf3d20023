"""The report's tables as typed rows, built from the summary and the adapters' records (no formatting here: the
markdown is written by :mod:`.markdown`, the JSON forms by the ``*_json`` functions)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..kinds import KINDS
from ..params import Params, PointParams
from .summary import PointRow, Rows

OPTION_ORDER = {"A": 0, "B": 1, "C": 2}


@dataclass(frozen=True)
class PointTableRow:
    """One extraction point of the Phase 1 table: its summary row and its role (a control, an ablation, or a
    candidate: ``""``)."""

    row: PointRow
    role: str


def _role(row: PointRow, point: PointParams) -> str:
    if point.kind == "oracle":
        return "positive control"
    if point.kind == "pixels":
        return "control: raw pixels"
    if getattr(point, "order", "raster") == "naive":
        return "naive order: the proposal's reshape, not un-permuted"
    if row.random_weights and getattr(point, "weights", "pretrained") == "random":
        return "control: random weights"
    return ""


def point_table(rows: Rows, points: Mapping[str, PointParams]) -> list[PointTableRow]:
    """Every point in model order with its role."""
    return [PointTableRow(row, _role(row, points[name])) for name, row in rows.items()]


@dataclass(frozen=True)
class FamilyTable:
    """VLM points side by side: one row per kind, one column per model they read (the proposal's Appendix D: is the
    loss of spatial information Qwen2.5-VL-specific?), each cell the points of that kind and model (model order)."""

    head: str  # whose bbox IoU the cells show
    models: dict[str, str]  # "model" or a models entry -> its label (family, source)
    rows: list[tuple[str, dict[str, list[PointRow] | None]]]  # (kind, {model: its points of it; None: no such kind})


def family_table(rows: Rows, points: Mapping[str, PointParams], params: Params, head: str) -> FamilyTable | None:
    """The side-by-side table where the VLM points read more than one model, else None."""
    from ..families import FAMILIES

    vlm = {n: getattr(points[n], "model", None) or "model" for n in rows if KINDS[points[n].kind].source == "vlm"}
    used = [m for m in ("model", *params.models) if m in vlm.values()]
    if len(used) < 2:
        return None
    specs = {m: params.model if m == "model" else params.models[m] for m in used}
    models = {m: f"{FAMILIES[spec.family].title} ({spec.source})" for m, spec in specs.items()}
    kinds = [k for k in KINDS if any(points[n].kind == k for n in vlm)]
    table = [
        (
            k,
            {
                m: [rows[n] for n in vlm if vlm[n] == m and points[n].kind == k]
                if specs[m].family in KINDS[k].families
                else None
                for m in used
            },
        )
        for k in kinds
    ]
    return FamilyTable(head=head, models=models, rows=table)


def family_table_json(table: FamilyTable) -> dict[str, Any]:
    """The side-by-side table as JSON (``reports/decision.json``): ``{head, models, rows: {kind: {model: {point:
    [bbox IoU, lo, hi, chance]} or null where the model's family has no such kind}}}``."""
    return {
        "head": table.head,
        "models": table.models,
        "rows": {
            kind: {
                m: None
                if points is None
                else {
                    r.name: None
                    if (h := r.heads.get(table.head)) is None
                    else [h.bbox_iou, h.bbox_iou_lo, h.bbox_iou_hi, h.bbox_iou_chance]
                    for r in points
                }
                for m, points in cells.items()
            }
            for kind, cells in table.rows
        },
    }


def point_table_json(table: list[PointTableRow], map_kind: str) -> list[dict[str, Any]]:
    """The Phase 1 table as JSON (``reports/decision.json``)."""
    key = f"map50_{map_kind}"
    out = []
    for entry in table:
        r = entry.row
        item: dict[str, Any] = {"point": r.name, "kind": r.kind, "layer": r.layer, "weights": r.weights}
        item["role"] = entry.role
        for head, m in r.heads.items():
            shuffled = r.shuffled.get(head)
            item[head] = {
                "bbox_iou": m.bbox_iou,
                "bbox_iou_ci": [m.bbox_iou_lo, m.bbox_iou_hi],
                "bbox_iou_chance": m.bbox_iou_chance,
                "seeds": None if m.seeds is None else list(m.seeds),
                "selectivity": m.selectivity,
                "selectivity_ci": [m.selectivity_lo, m.selectivity_hi],
                "map50": getattr(m, key),
                "map50_ci": [getattr(m, f"{key}_lo"), getattr(m, f"{key}_hi")],
                "selectivity_control": m.selectivity_control,
                "operating_points": None if m.operating_points is None else list(m.operating_points),
                "shuffled_bbox_iou": None if shuffled is None else shuffled.bbox_iou,
                "shuffled_bbox_iou_chance": None if shuffled is None else shuffled.bbox_iou_chance,
            }
        item["prior"] = None if r.prior is None else r.prior.to_json()
        item["temporal"] = None if r.temporal is None else r.temporal.to_json()
        item["steps"] = None if r.steps is None else r.steps.to_json()
        item["skipped"] = r.skipped
        item["memory_overhead_vs_merger"] = r.memory_overhead_vs_merger
        out.append(item)
    return out


def plot_rows(rows: Rows, heads: list[str], map_kind: str) -> list[dict[str, Any]]:
    """Long-format rows for ``dvc plots``: one per (point, head) probed."""
    key = f"map50_{map_kind}"
    return [
        {"point": name, "head": head, "bbox_iou": row.heads[head].bbox_iou, "map50": getattr(row.heads[head], key)}
        for name, row in rows.items()
        for head in heads
        if head in row.heads
    ]


@dataclass(frozen=True)
class AdapterTableRow:
    """One adapter of the Phase 2 table: option, size, fit, what survives decoding, convergence and memory."""

    name: str
    option: str
    parameters: int
    explained_test: float | None
    detection: dict[str, Any]  # bbox_iou, map50_class_agnostic with their _ci, or a reason
    lpips: dict[str, Any] | None  # mean, ci95; None: unavailable
    psnr: dict[str, Any] | None
    ssim: dict[str, Any] | None
    cka: list[tuple[str, float]]  # (point, linear CKA with the latents)
    convergence: dict[str, Any] | None
    memory: dict[str, Any] | None
    verdict: str
    point_weights: dict[str, float] | None  # option C: the learned weight of each point


@dataclass(frozen=True)
class ReferenceRow:
    """The VAE ceiling (test clips decoded from their own latents) or the original frames, scored alike."""

    label: str
    detection: dict[str, Any]
    lpips: dict[str, Any] | None = None
    psnr: dict[str, Any] | None = None
    ssim: dict[str, Any] | None = None


@dataclass(frozen=True)
class AdapterTable:
    rows: list[AdapterTableRow]
    references: list[ReferenceRow] = field(default_factory=list)
    detector: str | None = None
    lpips_reason: str = ""


def adapter_table(recon: Mapping[str, Mapping[str, Any]], training: Mapping[str, Mapping[str, Any]]) -> AdapterTable:
    """One row per adapter, options A, B, C first, then post-merge (same latents, same test clips); the VAE ceiling
    and the original frames as references."""
    names = sorted(recon, key=lambda n: (OPTION_ORDER.get(training.get(n, {}).get("option"), 3), n))
    rows = []
    for name in names:
        r, train = recon[name], training.get(name, {})
        a, p = r["adapter"], r["phase2"]
        rows.append(
            AdapterTableRow(
                name=name,
                option=train.get("option", "n/a"),
                parameters=p["parameters"]["value"],
                explained_test=train.get("explained", {}).get("test"),
                detection=a["detection"],
                lpips=a["lpips"] or None,
                psnr=a.get("psnr"),
                ssim=a.get("ssim"),
                cka=[(c["point"], c["linear"]) for c in r.get("cka", {}).values()],
                convergence=p.get("convergence"),
                memory=train.get("memory"),
                verdict=p["overall"],
                point_weights=train.get("point_weights"),
            )
        )
    if not names:
        return AdapterTable([])
    last = recon[names[-1]]
    ceiling = last["ceiling"]
    references = [
        ReferenceRow(
            "VAE ceiling", ceiling["detection"], ceiling.get("lpips") or None, ceiling.get("psnr"), ceiling.get("ssim")
        ),
        ReferenceRow("original frames", last["original"]["detection"]),
    ]
    return AdapterTable(rows, references, last.get("detector"), ceiling.get("lpips_reason") or "")
