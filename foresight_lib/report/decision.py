"""The Phase 1 go/no-go decision, computed from the summary and the ``decision`` params.

Rule (the research proposal's thresholds, with the uncertainty, the prior and a positive control made explicit).
Candidates are the pre-merge Qwen2.5-VL points (``vit_embed``, ``vit_block``; the ``order: naive`` ablation is shown,
never a candidate) x the probe heads that pass the oracle gate:
- **oracle gate**: a head decides only if it reads the ``oracle`` point (the ground truth rasterised per cell) at bbox
  IoU >= ``oracle_min_iou``; no oracle point, or no head passing, gives **INCONCLUSIVE** (the probe cannot read space
  that is there, so a low number says nothing about the features);
- **GO** if some candidate has the lower 95% bound of bbox IoU above ``go_iou``, of mAP@0.5 (``map_kind``) above
  ``go_map50`` and of its selectivity above ``selectivity_margin`` (a GO the prior alone would earn is not a GO),
  and the further criteria hold: feature memory vs the merger below ``memory_overhead_max``, LPIPS below
  ``lpips_max`` where measured (unmeasured LPIPS is reported as unchecked). Selectivity comes from the probe stage:
  the head's bbox IoU minus its control's on the same test frames, the control being the stronger (higher
  validation bbox IoU) of the shuffled control and the data's prior (the best constant prediction learnt from
  train), with a paired interval over clips and seeds;
- **NO-GO** if every candidate has the upper bound of bbox IoU below ``nogo_iou`` or, where its control's IoU (what
  no spatial information earns) reaches ``nogo_iou``, the upper bound of its selectivity below
  ``selectivity_margin``; and, when a real reference encoder is configured (an ``encoder`` point whose source is not
  ``tiny``), that reference clears ``go_iou`` and the margin on the same frames (else **INCONCLUSIVE**: the features
  cannot be blamed);
- **INVESTIGATE** otherwise.
Each outcome names the branch of the proposal's decision tree that follows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..params import DecisionParams, EncoderPoint, PointParams
from .summary import PRE_MERGE_KINDS, point_order

HEADS_BY_STRENGTH = ("linear", "mlp", "dense", "detr")
CHANGE_WHEN_INCONCLUSIVE = (
    "train the heads longer (`probe.steps`, `probe.patience`), sweep the learning rate (`probe.lrs`), use a "
    "stronger head (`dense`, `detr`) or a wider one (`probe.width`), or add clips "
    "(`data.synthetic.n_clips` / `data.max_clips`)"
)


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
    selectivity: float
    selectivity_lo: float
    selectivity_hi: float
    control_iou: float  # test bbox IoU of the control its selectivity was measured against
    control: str  # "shuffled" or "prior"
    chance_iou: float
    memory_overhead_vs_merger: float | None

    def text(self) -> str:
        return (
            f"`{self.point}` ({self.head} probe: bbox IoU {self.bbox_iou:.3f} [{self.bbox_iou_lo:.3f}, "
            f"{self.bbox_iou_hi:.3f}], mAP@0.5 {self.map50:.3f} [{self.map50_lo:.3f}, {self.map50_hi:.3f}], "
            f"selectivity {self.selectivity:.3f} [{self.selectivity_lo:.3f}, {self.selectivity_hi:.3f}])"
        )


def _num(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _candidates(summary: dict[str, Any], names: list[str], map_key: str) -> list[Candidate]:
    out = []
    for name in names:
        row = summary.get(name, {})
        memory = row.get("extract", {}).get("memory_overhead_vs_merger")
        for head in HEADS_BY_STRENGTH:
            m = row.get(head)
            if not m or m.get("bbox_iou") is None:
                continue
            out.append(
                Candidate(
                    name,
                    head,
                    m["bbox_iou"],
                    _num(m.get("bbox_iou_lo")),
                    _num(m.get("bbox_iou_hi")),
                    _num(m.get(map_key)),
                    _num(m.get(f"{map_key}_lo")),
                    _num(m.get(f"{map_key}_hi")),
                    _num(m.get("selectivity")),
                    _num(m.get("selectivity_lo")),
                    _num(m.get("selectivity_hi")),
                    _num(m.get("control_bbox_iou")),
                    m.get("selectivity_control", "n/a"),
                    _num(m.get("bbox_iou_chance")),
                    memory,
                )
            )
    return out


def oracle_gate(summary: dict[str, Any], points: dict[str, PointParams], params: DecisionParams) -> dict[str, Any]:
    """Which heads read the ``oracle`` point(s) at bbox IoU >= ``oracle_min_iou`` (every oracle point, if several)."""
    oracles = [n for n, p in points.items() if p.kind == "oracle"]
    heads: dict[str, float | None] = {}
    for head in HEADS_BY_STRENGTH:
        values = [summary.get(n, {}).get(head, {}).get("bbox_iou") for n in oracles]
        if any(v is not None for v in values):
            heads[head] = None if None in values else min(values)
    passing = [h for h, v in heads.items() if v is not None and v >= params.oracle_min_iou]
    return {
        "points": oracles,
        "threshold": params.oracle_min_iou,
        "bbox_iou": heads,
        "passing_heads": passing,
        "status": "missing" if not oracles or not heads else "pass" if passing else "fail",
    }


def benchmark_check(summary: dict[str, Any], points: dict[str, PointParams], data_source: str) -> dict[str, Any]:
    """Does every shuffled control sit at what no spatial information earns (its IoU's lower bound at or below the
    higher of its chance level and the point's prior, the best constant prediction)? Expected on the synthetic
    benchmark, where objects are placed uniformly (a check of the benchmark: a shuffled head may still learn how
    many boxes and how large from the tokens' content, never where); on real data the shuffled control measures
    what the data's prior gives."""
    above = []
    checked = 0
    for name, row in summary.items():
        if points[name].kind == "oracle":
            continue
        prior = row.get("prior", {}).get("bbox_iou")
        for head, m in row.get("shuffled", {}).items():
            if head == "temporal" or m.get("bbox_iou") is None or m.get("bbox_iou_chance") is None:
                continue
            checked += 1
            lo = m.get("bbox_iou_lo") if m.get("bbox_iou_lo") is not None else m["bbox_iou"]
            if lo > max(m["bbox_iou_chance"], prior if prior is not None else -math.inf):
                above.append(
                    f"{name}/{head}: {m['bbox_iou']:.3f} (chance {m['bbox_iou_chance']:.3f}"
                    + (f", prior {prior:.3f})" if prior is not None else ")")
                )
    expected = data_source == "synthetic"
    return {
        "data_source": data_source,
        "expected_at_chance": expected,
        "checked": checked,
        "above_chance": above,
        "status": "unchecked" if not checked else "at chance" if not above else "above chance",
    }


def decide(
    summary: dict[str, Any],
    points: dict[str, PointParams],
    params: DecisionParams,
    adapters: dict[str, dict[str, Any]],
    heads_run: list[str],
) -> dict[str, Any]:
    """The decision, its evidence and the branch that follows. ``adapters``: adapter -> its summary row
    (:func:`.summary.adapter_summary`; no ``lpips`` key when LPIPS was unavailable)."""
    map_key = f"map50_{params.map_kind}"
    margin = params.selectivity_margin
    pre_names = [
        n for n, p in points.items() if p.kind in PRE_MERGE_KINDS and getattr(p, "order", "raster") == "raster"
    ]
    references = [n for n, p in points.items() if isinstance(p, EncoderPoint) and p.source != "tiny"]
    hybrid_names = [n for n, p in points.items() if p.kind == "encoder"]
    criteria = {
        "oracle": f"a head decides only if it reads the oracle point at bbox IoU >= {params.oracle_min_iou}",
        "go": (
            f"lower 95% bound of bbox IoU > {params.go_iou}, of mAP@0.5 ({params.map_kind}) > {params.go_map50} "
            f"and of selectivity (IoU minus the stronger of the shuffled control and the data's prior) > {margin}"
        ),
        "no_go": (
            f"for every pre-merge point and gated probe: upper 95% bound of bbox IoU < {params.nogo_iou}, or, "
            f"where that control's IoU reaches {params.nogo_iou}, upper bound of selectivity < {margin}; "
            "and a configured real reference encoder clears the GO bar and the margin"
        ),
        "further": f"feature memory vs merger < {params.memory_overhead_max}x; LPIPS < {params.lpips_max} where measured",
    }
    gate = oracle_gate(summary, points, params)
    pre_all = _candidates(summary, pre_names, map_key)
    if not pre_all:
        return {
            "decision": "UNDETERMINED",
            "reason": "no pre-merge Qwen2.5-VL point was probed",
            "criteria": criteria,
            "branch": "add a vit_embed or vit_block point to params.yaml `points`",
            "oracle": gate,
        }
    best_all = max(pre_all, key=lambda c: c.bbox_iou)
    common = {
        "criteria": criteria,
        "oracle": gate,
        "best_pre_merge": asdict(best_all),
        "map_kind": params.map_kind,
        "selectivity_margin": margin,
    }
    if gate["status"] != "pass":
        if gate["status"] == "missing":
            why = "no oracle point was probed: the report cannot tell missing information from a probe that failed"
            what = "add `oracle: {kind: oracle, stride: 14}` to params.yaml `points`"
        else:
            reads = ", ".join(f"{h} {v:.3f}" if v is not None else f"{h} n/a" for h, v in gate["bbox_iou"].items())
            why = (
                f"the probe cannot read space that is there: the oracle reads bbox IoU {reads}, below "
                f"{params.oracle_min_iou}"
            )
            what = CHANGE_WHEN_INCONCLUSIVE
        return {
            "decision": "INCONCLUSIVE",
            "branch": f"Inconclusive: {why}. To change: {what}.",
            "deciding": asdict(best_all),
            **common,
        }

    pre = [c for c in pre_all if c.head in gate["passing_heads"]]
    if not pre:
        return {
            "decision": "INCONCLUSIVE",
            "deciding": asdict(best_all),
            **common,
            "branch": (
                f"Inconclusive: no pre-merge point was probed with a head that passes the oracle gate "
                f"({', '.join(gate['passing_heads'])}). To change: run those heads (`probe.heads`)."
            ),
        }
    best = max(pre, key=lambda c: c.bbox_iou)
    spatial = [c for c in pre if c.bbox_iou_lo > params.go_iou and c.map50_lo > params.go_map50]
    passing = [c for c in spatial if c.selectivity_lo > margin]
    measured_lpips = {k: row["lpips"] for k, row in adapters.items() if row.get("lpips") is not None}
    lpips_check = (
        {"status": "unchecked", "reason": "no adapter reconstruction with LPIPS available"}
        if not measured_lpips
        else {
            "status": "pass" if min(measured_lpips.values()) < params.lpips_max else "fail",
            "best": min(measured_lpips.values()),
            "threshold": params.lpips_max,
        }
    )
    reasons: list[str] = []

    def no_go(c: Candidate) -> bool:
        prior_above = not math.isnan(c.control_iou) and c.control_iou >= params.nogo_iou
        return c.bbox_iou_hi < params.nogo_iou or (prior_above and c.selectivity_hi < margin)

    if passing:
        go = max(passing, key=lambda c: c.bbox_iou)
        memory_ok = go.memory_overhead_vs_merger is None or go.memory_overhead_vs_merger < params.memory_overhead_max
        if not memory_ok:
            reasons.append(
                f"{go.point} needs {go.memory_overhead_vs_merger:.2f}x the merger's feature memory "
                f"(limit {params.memory_overhead_max}x)"
            )
        if lpips_check["status"] == "fail":
            reasons.append(f"best LPIPS {lpips_check['best']:.3f} is not below {params.lpips_max}")
        if not reasons:
            decision, chosen = "GO", go
            branch = f"Proceed to Phase 2: train the dual-stream adapter with its spatial stream from {go.text()}."
        else:
            decision, chosen = "INVESTIGATE", go
            branch = "Spatial criteria pass but a further criterion fails: " + "; ".join(reasons) + "."
    elif all(no_go(c) for c in pre):
        chosen = best
        refs = _candidates(summary, references, map_key)
        refs = [c for c in refs if c.head in gate["passing_heads"]]
        ref_ok = [c for c in refs if c.bbox_iou_lo > params.go_iou and c.selectivity_lo > margin]
        if references and not ref_ok:
            decision = "INCONCLUSIVE"
            seen = max(refs, key=lambda c: c.bbox_iou).text() if refs else "not probed with a gated head"
            branch = (
                f"Inconclusive: the pre-merge points read no spatial information, but neither does the real "
                f"reference encoder on the same frames ({seen}): the frames or the probe, not the features, may "
                f"be at fault. To change: {CHANGE_WHEN_INCONCLUSIVE}."
            )
        else:
            decision = "NO-GO"
            hybrid = _candidates(summary, hybrid_names, map_key)
            if hybrid:
                h = max(hybrid, key=lambda c: c.bbox_iou)
                alt = f"hybrid with a dedicated spatial model (best measured: {h.text()})"
            else:
                alt = "hybrid with a dedicated spatial model (none measured: add an `encoder` point)"
            branch = f"Abort the pre-merge route: {alt}, or a semantic-only scope."
    else:
        decision, chosen = "INVESTIGATE", best
        prior = [c for c in spatial if c.selectivity_lo <= margin]
        earlier = [n for n in pre_names if point_order(points[n]) < point_order(points[best.point])]
        stronger = [h for h in HEADS_BY_STRENGTH if h not in heads_run]
        first = points[best.point].kind == "vit_embed"
        branch = (
            "Investigate: "
            + (
                f"IoU and mAP@0.5 pass for {prior[0].text()}, but the selectivity's lower bound is not above {margin}: "
                f"its control ({prior[0].control}) reads {prior[0].control_iou:.3f}. Also "
                if prior
                else ""
            )
            + "try earlier layers ("
            + (
                ", ".join(f"`{n}`" for n in earlier)
                or (
                    f"none: `{best.point}`, the patch embedding, is the earliest point"
                    if first
                    else f"below `{best.point}`: add vit_block points with smaller layers"
                )
            )
            + ") and stronger probes ("
            + (", ".join(f"`{h}`" for h in stronger) or "all heads already run: a larger `probe.width` or more steps")
            + ")."
        )
    return {
        "decision": decision,
        "branch": branch,
        "deciding": asdict(chosen),
        "lpips": lpips_check,
        "further_criteria_failed": reasons,
        **common,
        "best_pre_merge": asdict(best),
    }
