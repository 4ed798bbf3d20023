"""The Phase 1 go/no-go decision, computed from the summary and the ``decision`` params.

Rule (the research proposal's, with the uncertainty made explicit): over every pre-merge Qwen2.5-VL
point (``vit_embed``, ``vit_block``) and every probe head,
- **GO** if some (point, head) has the *lower* 95% bound of bbox IoU above ``go_iou`` and the lower
  bound of mAP@0.5 (``map_kind``) above ``go_map50``, and its further criteria hold: feature memory vs the
  merger below ``memory_overhead_max``, and LPIPS below ``lpips_max`` where a reconstruction was measured
  (unmeasured LPIPS is reported as unchecked, never assumed);
- **NO-GO** if every (point, head) has the *upper* bound of bbox IoU below ``nogo_iou``;
- **INVESTIGATE** otherwise.
Each outcome names the branch of the proposal's decision tree that follows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..params import DecisionParams, PointParams
from .summary import PRE_MERGE_KINDS, point_order

HEADS_BY_STRENGTH = ("linear", "mlp", "dense", "detr")


@dataclass(frozen=True)
class Candidate:
    point: str
    head: str
    bbox_iou: float
    bbox_iou_lo: float
    bbox_iou_hi: float
    map50: float
    map50_lo: float
    map50_hi: float
    memory_overhead_vs_merger: float | None


def _candidates(summary: dict[str, Any], points: dict[str, PointParams], kinds: tuple[str, ...], map_key: str) -> list[Candidate]:
    out = []
    for name, row in summary.items():
        if points[name].kind not in kinds:
            continue
        memory = row.get("extract", {}).get("memory_overhead_vs_merger")
        for head in HEADS_BY_STRENGTH:
            m = row.get(head)
            if not m or m["bbox_iou"] is None:
                continue
            out.append(Candidate(name, head, m["bbox_iou"], _num(m["bbox_iou_lo"]), _num(m["bbox_iou_hi"]),
                                 _num(m[map_key]), _num(m[f"{map_key}_lo"]), _num(m[f"{map_key}_hi"]), memory))
    return out


def _num(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def decide(summary: dict[str, Any], points: dict[str, PointParams], params: DecisionParams,
           adapters: dict[str, dict[str, Any]], heads_run: list[str]) -> dict[str, Any]:
    """The decision, its evidence and the branch that follows. ``adapters``: adapter -> its summary row
    (:func:`.summary.adapter_summary`; no ``lpips`` key when LPIPS was unavailable)."""
    map_key = f"map50_{params.map_kind}"
    pre = _candidates(summary, points, PRE_MERGE_KINDS, map_key)
    hybrid = _candidates(summary, points, ("encoder",), map_key)
    criteria = {
        "go": f"lower 95% bound of bbox IoU > {params.go_iou} and of mAP@0.5 ({params.map_kind}) > {params.go_map50}",
        "no_go": f"upper 95% bound of bbox IoU < {params.nogo_iou} for every pre-merge point and probe",
        "further": f"feature memory vs merger < {params.memory_overhead_max}x; LPIPS < {params.lpips_max} where measured",
    }
    if not pre:
        return {"decision": "UNDETERMINED", "reason": "no pre-merge Qwen2.5-VL point was probed", "criteria": criteria,
                "branch": "add a vit_embed or vit_block point to params.yaml `points`"}

    best = max(pre, key=lambda c: c.bbox_iou)
    passing = [c for c in pre if c.bbox_iou_lo > params.go_iou and c.map50_lo > params.go_map50]
    measured_lpips = {k: row["lpips"] for k, row in adapters.items() if row.get("lpips") is not None}
    lpips_check = ({"status": "unchecked", "reason": "no adapter reconstruction with LPIPS available"} if not measured_lpips else
                   {"status": "pass" if min(measured_lpips.values()) < params.lpips_max else "fail",
                    "best": min(measured_lpips.values()), "threshold": params.lpips_max})
    reasons = []
    if passing:
        go = max(passing, key=lambda c: c.bbox_iou)
        memory_ok = go.memory_overhead_vs_merger is None or go.memory_overhead_vs_merger < params.memory_overhead_max
        if not memory_ok:
            reasons.append(f"{go.point} needs {go.memory_overhead_vs_merger:.2f}x the merger's feature memory "
                           f"(limit {params.memory_overhead_max}x)")
        if lpips_check["status"] == "fail":
            reasons.append(f"best LPIPS {lpips_check['best']:.3f} is not below {params.lpips_max}")
        if not reasons:
            decision, chosen = "GO", go
            branch = (f"Proceed to Phase 2: train the dual-stream adapter with its spatial stream from `{go.point}` "
                      f"({go.head} probe: bbox IoU {go.bbox_iou:.3f} [{go.bbox_iou_lo:.3f}, {go.bbox_iou_hi:.3f}], "
                      f"mAP@0.5 {go.map50:.3f} [{go.map50_lo:.3f}, {go.map50_hi:.3f}]).")
        else:
            decision, chosen = "INVESTIGATE", go
            branch = "Spatial criteria pass but a further criterion fails: " + "; ".join(reasons) + "."
    elif all(c.bbox_iou_hi < params.nogo_iou for c in pre):
        decision, chosen = "NO-GO", best
        if hybrid:
            h = max(hybrid, key=lambda c: c.bbox_iou)
            alt = (f"hybrid with a dedicated spatial model (best measured: `{h.point}`, {h.head} probe bbox IoU "
                   f"{h.bbox_iou:.3f} [{h.bbox_iou_lo:.3f}, {h.bbox_iou_hi:.3f}])")
        else:
            alt = "hybrid with a dedicated spatial model (none measured: add an `encoder` point)"
        branch = f"Abort the pre-merge route: {alt}, or a semantic-only scope."
    else:
        decision, chosen = "INVESTIGATE", best
        earlier = [n for n, p in points.items() if p.kind in PRE_MERGE_KINDS and point_order(p) < point_order(points[best.point])]
        stronger = [h for h in HEADS_BY_STRENGTH if h not in heads_run]
        first = points[best.point].kind == "vit_embed"
        branch = ("Investigate: try earlier layers (" + (", ".join(f"`{n}`" for n in earlier) or
                  (f"none: `{best.point}`, the patch embedding, is the earliest point" if first else
                   f"below `{best.point}`: add vit_block points with smaller layers")) + ") and stronger probes (" +
                  (", ".join(f"`{h}`" for h in stronger) or "all heads already run: a larger `probe.width` or more epochs")
                  + ").")
    return {
        "decision": decision,
        "branch": branch,
        "criteria": criteria,
        "deciding": asdict(chosen),
        "best_pre_merge": asdict(best),
        "lpips": lpips_check,
        "further_criteria_failed": reasons,
        "map_kind": params.map_kind,
    }
