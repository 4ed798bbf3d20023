"""The Phase 1 go/no-go decision, in three parts: :func:`gate` (can the probes read space at all?), :func:`classify`
(the rule: outcome, deciding point and head, and the bounds that decided) and :func:`explain` (the branch of the
proposal's decision tree that follows, and advice that names only what was not run yet). :func:`decide` joins them.

Rule (the research proposal's thresholds, with the uncertainty, the prior and a positive control made explicit).
Candidates are the pre-merge Qwen2.5-VL points (``vit_embed``, ``vit_block``; the ``order: naive`` ablation is shown,
never a candidate) x the probe heads that pass the oracle gate:
- **oracle gate**: a head decides only if it reads the box ``oracle`` point (``target: boxes``: the ground truth
  rasterised per cell) at bbox
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
- **INVESTIGATE** otherwise; where the deciding candidate's bbox IoU or selectivity interval straddles a threshold,
  the decision states the test clips that would separate them (``separate``: :func:`clips_to_separate`).
A dataset without boxes (the probe stage skipped the box probes, with its one-line reason) gives **NOT APPLICABLE**
with that reason. The step probes (a dataset with steps) are the proposal's temporal criterion, reported beside the
rule and never part of it, gated by a steps oracle point (:func:`step_gate`).
Before any of these, fewer than ``min_test_clips`` test clips behind the pre-merge intervals give **INCONCLUSIVE**
("too few test clips"): below that, the intervals' 95% level is not assured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..metrics.bootstrap import clips_to_clear
from ..params import DecisionParams, EncoderPoint, PointParams
from .summary import PRE_MERGE_KINDS, PointRow, Rows, as_rows, point_order

HEADS_BY_STRENGTH = ("linear", "mlp", "dense", "detr")


def _probe_advice(heads_run: list[str]) -> str:
    """What to change in the probes, naming only heads not run yet."""
    stronger = [f"`{h}`" for h in HEADS_BY_STRENGTH[2:] if h not in heads_run]
    head = f"a stronger head ({', '.join(stronger)} in `probe.heads`) or " if stronger else ""
    return (
        "train the heads longer (`probe.steps`, `probe.patience`), sweep the learning rate (`probe.lrs`), use "
        f"{head}a wider one (`probe.width`)"
    )


@dataclass(frozen=True)
class Candidate:
    """One (point, head) pair's numbers as the rule reads them (NaN where unmeasured)."""

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
    kind: str = ""
    layer: int | None = None
    family: str | None = None  # the VLM or encoder family it is read from

    def text(self) -> str:
        return (
            f"`{self.point}` ({where(asdict(self))}; {self.head} probe: bbox IoU {self.bbox_iou:.3f} [{self.bbox_iou_lo:.3f}, "
            f"{self.bbox_iou_hi:.3f}] (chance {self.chance_iou:.3f}), mAP@0.5 {self.map50:.3f} [{self.map50_lo:.3f}, "
            f"{self.map50_hi:.3f}], selectivity {self.selectivity:.3f} [{self.selectivity_lo:.3f}, "
            f"{self.selectivity_hi:.3f}])"
        )


def where(candidate: Mapping[str, Any]) -> str:
    """``kind[, layer k][, family]`` of a candidate (its JSON form): what the point is and which model made it."""
    from ..families import FAMILIES

    text = candidate["kind"] if candidate.get("layer") is None else f"{candidate['kind']}, layer {candidate['layer']}"
    family = candidate.get("family")
    if family:
        text += f", {FAMILIES[family].title if family in FAMILIES else family}"
    return text


@dataclass(frozen=True)
class Check:
    """One bound of one criterion against its threshold: ``value op threshold`` must hold for the criterion."""

    criterion: str  # e.g. "GO", "NO-GO", "oracle gate", "memory"
    quantity: str  # e.g. "lower 95% bound of bbox IoU"
    value: float
    op: str  # ">", "<" or ">="
    threshold: float
    key: str  # the params key of the threshold
    digits: int = 3  # decimals of the value in words (0: a count)

    @property
    def holds(self) -> bool:
        if math.isnan(self.value):
            return False
        return {">": self.value > self.threshold, "<": self.value < self.threshold, ">=": self.value >= self.threshold}[
            self.op
        ]

    def text(self) -> str:
        verdict = "holds" if self.holds else "fails"
        return (
            f"{self.criterion} needs the {self.quantity} {self.op} {self.threshold:g} (`{self.key}`): "
            f"{self.value:.{self.digits}f}, {verdict}"
        )


@dataclass(frozen=True)
class Gate:
    """Which heads read the ``oracle`` point(s) at bbox IoU >= the threshold (every oracle point, if several)."""

    points: list[str]
    threshold: float
    bbox_iou: dict[str, float | None]
    passing_heads: list[str]
    status: str  # "pass", "fail" or "missing"


@dataclass(frozen=True)
class StepGate:
    """Do the step probes read the step back from a steps oracle point (``target: steps``: the step one-hot in every
    cell) at step accuracy >= the threshold (the lowest, if several)?"""

    points: list[str]
    threshold: float
    step_accuracy: float | None
    status: str  # "pass", "fail" or "missing"


def step_gate(rows: Rows, points: Mapping[str, PointParams], params: DecisionParams) -> StepGate:
    """The step probes' gate (:class:`StepGate`) at ``oracle_min_step_accuracy``."""
    oracles = _oracles(points, "steps")
    values = [rows[n].steps.step_accuracy if n in rows and rows[n].steps else None for n in oracles]
    value = None if not values or None in values else min(values)
    status = "missing" if value is None else "pass" if value >= params.oracle_min_step_accuracy else "fail"
    return StepGate(oracles, params.oracle_min_step_accuracy, value, status)


def step_evidence(rows: Rows, points: Mapping[str, PointParams], params: DecisionParams) -> dict[str, Any] | None:
    """The step probes as the proposal's temporal criterion, beside (never part of) the spatial rule: their gate and
    every point's accuracies with intervals over videos and chance levels; None when no point has step probes."""
    measured = {n: r.steps.to_json() for n, r in rows.items() if r.steps is not None}
    if not measured:
        return None
    return {"gate": asdict(step_gate(rows, points, params)), "points": measured}


@dataclass(frozen=True)
class Classification:
    """The rule's outcome: ``case`` names the branch taken, ``deciding`` the (point, head) it turned on, ``checks``
    the bounds that decided it (those that failed, for INVESTIGATE; those that held, for GO and NO-GO)."""

    outcome: str  # GO, NO-GO, INVESTIGATE, INCONCLUSIVE, UNDETERMINED or NOT APPLICABLE
    case: str
    deciding: Candidate | None = None
    best_pre_merge: Candidate | None = None
    checks: tuple[Check, ...] = ()
    further_failed: tuple[str, ...] = ()
    lpips: dict[str, Any] = field(default_factory=dict)
    reference: Candidate | None = None
    hybrid: Candidate | None = None
    prior: Candidate | None = None
    reason: str = ""  # NOT APPLICABLE: why the spatial rule cannot be applied (the probe stage's one-line reason)


def _candidates(rows: Rows, names: list[str], map_key: str) -> list[Candidate]:
    out = []
    for name in names:
        row = rows.get(name)
        if row is None:
            continue
        for head in HEADS_BY_STRENGTH:
            m = row.heads.get(head)
            if m is None or m.bbox_iou is None:
                continue
            iou, map50, sel = m.interval("bbox_iou"), m.interval(map_key), m.interval("selectivity")
            out.append(
                Candidate(
                    name,
                    head,
                    *iou,
                    *map50,
                    *sel,
                    math.nan if m.control_bbox_iou is None else m.control_bbox_iou,
                    m.selectivity_control or "n/a",
                    math.nan if m.bbox_iou_chance is None else m.bbox_iou_chance,
                    row.memory_overhead_vs_merger,
                    row.kind,
                    row.layer,
                    row.family,
                )
            )
    return out


def _oracles(points: Mapping[str, PointParams], target: str) -> list[str]:
    """The ``oracle`` points of ``target`` (``boxes`` or ``steps``)."""
    return [n for n, p in points.items() if p.kind == "oracle" and getattr(p, "target", "boxes") == target]


def gate(rows: Rows, points: Mapping[str, PointParams], params: DecisionParams) -> Gate:
    """The oracle gate: which heads read the ground truth back at bbox IoU >= ``oracle_min_iou``, on the box oracles
    only (``target: boxes``; a steps oracle gates the step probes: :func:`step_gate`)."""
    oracles = _oracles(points, "boxes")
    heads: dict[str, float | None] = {}
    for head in HEADS_BY_STRENGTH:
        values = [rows[n].heads[head].bbox_iou if n in rows and head in rows[n].heads else None for n in oracles]
        if any(v is not None for v in values):
            heads[head] = None if None in values else min(values)
    passing = [h for h, v in heads.items() if v is not None and v >= params.oracle_min_iou]
    status = "missing" if not oracles or not heads else "pass" if passing else "fail"
    return Gate(oracles, params.oracle_min_iou, heads, passing, status)


def _go_checks(c: Candidate, params: DecisionParams) -> tuple[Check, ...]:
    return (
        Check("GO", "lower 95% bound of bbox IoU", c.bbox_iou_lo, ">", params.go_iou, "decision.go_iou"),
        Check(
            "GO",
            f"lower 95% bound of mAP@0.5 ({params.map_kind})",
            c.map50_lo,
            ">",
            params.go_map50,
            "decision.go_map50",
        ),
        Check(
            "GO",
            "lower 95% bound of selectivity",
            c.selectivity_lo,
            ">",
            params.selectivity_margin,
            "decision.selectivity_margin",
        ),
    )


def _no_go_check(c: Candidate, params: DecisionParams) -> Check:
    """The NO-GO bound that applies to ``c``: its selectivity's upper bound where its control reaches the
    NO-GO bar (the prior alone sits above it), else its bbox IoU's upper bound."""
    if not math.isnan(c.control_iou) and c.control_iou >= params.nogo_iou:
        iou = Check("NO-GO", "upper 95% bound of bbox IoU", c.bbox_iou_hi, "<", params.nogo_iou, "decision.nogo_iou")
        if iou.holds:
            return iou
        return Check(
            "NO-GO",
            f"upper 95% bound of selectivity (its control, the {c.control}, reaches the NO-GO bar)",
            c.selectivity_hi,
            "<",
            params.selectivity_margin,
            "decision.selectivity_margin",
        )
    return Check("NO-GO", "upper 95% bound of bbox IoU", c.bbox_iou_hi, "<", params.nogo_iou, "decision.nogo_iou")


def _lpips_check(adapters: Mapping[str, Mapping[str, Any]], params: DecisionParams) -> dict[str, Any]:
    measured = {k: row["lpips"] for k, row in adapters.items() if row.get("lpips") is not None}
    if not measured:
        return {"status": "unchecked", "reason": "no adapter reconstruction with LPIPS available"}
    best = min(measured.values())
    return {"status": "pass" if best < params.lpips_max else "fail", "best": best, "threshold": params.lpips_max}


def _pre_names(points: Mapping[str, PointParams]) -> list[str]:
    """The candidate points: pre-merge, in raster order (the naive-order ablation is shown, never a candidate)."""
    return [n for n, p in points.items() if p.kind in PRE_MERGE_KINDS and getattr(p, "order", "raster") == "raster"]


def count_test_clips(rows: Rows, names: list[str]) -> int | None:
    """The fewest test clips holding ground truth (``n_clips``, those the intervals resample) over the heads of the
    points ``names``; ``None`` when no record states it."""
    counts = [m.n_clips for n in names if n in rows for m in rows[n].heads.values() if m.n_clips is not None]
    return min(counts) if counts else None


def clips_to_separate(rows: Rows, c: Candidate, params: DecisionParams) -> list[dict[str, Any]]:
    """For each threshold the candidate's bbox IoU interval (``go_iou``, ``nogo_iou``) or selectivity interval
    (``selectivity_margin``) straddles: the test clips at which the interval's t half-width, at the measured per-clip
    SD (SE ~ 1/sqrt(n)), would clear the value's distance to it (:func:`..metrics.bootstrap.clips_to_clear`;
    ``clips_needed`` None: the value sits on the threshold or no SD was measured)."""
    m = rows[c.point].heads[c.head]
    iou = (c.bbox_iou, c.bbox_iou_lo, c.bbox_iou_hi, m.bbox_iou_clip_sd)
    sel = (c.selectivity, c.selectivity_lo, c.selectivity_hi, m.selectivity_clip_sd)
    checks = [
        ("bbox_iou", *iou, params.go_iou, "go_iou"),
        ("bbox_iou", *iou, params.nogo_iou, "nogo_iou"),
        ("selectivity", *sel, params.selectivity_margin, "selectivity_margin"),
    ]
    out = []
    for metric, value, lo, hi, sd, threshold, key in checks:
        if not lo <= threshold <= hi:  # False for NaN bounds
            continue
        sd = math.nan if sd is None else float(sd)
        out.append(
            {
                "point": c.point,
                "head": c.head,
                "metric": metric,
                "value": value,
                "ci": [lo, hi],
                "threshold": threshold,
                "threshold_key": f"decision.{key}",
                "clip_sd": sd,
                "test_clips": m.n_clips,
                "clips_needed": clips_to_clear(abs(value - threshold), sd),
            }
        )
    return out


def classify(
    rows: Rows,
    points: Mapping[str, PointParams],
    params: DecisionParams,
    adapters: Mapping[str, Mapping[str, Any]],
    the_gate: Gate,
) -> Classification:
    """The rule (module docstring) on typed rows. ``adapters``: adapter -> its summary row
    (:func:`.summary.adapter_summary`; no ``lpips`` key when LPIPS was unavailable)."""
    map_key = f"map50_{params.map_kind}"
    pre_names = _pre_names(points)
    pre_all = _candidates(rows, pre_names, map_key)
    skipped = [r.skipped for r in rows.values() if r.skipped]  # e.g. no boxes: the probe stage said why
    if not pre_all and skipped:
        return Classification("NOT APPLICABLE", "not_applicable", reason=skipped[0])
    if not pre_all:
        return Classification("UNDETERMINED", "no_pre_merge")
    best_all = max(pre_all, key=lambda c: c.bbox_iou)
    n_test = count_test_clips(rows, pre_names)
    if n_test is not None and n_test < params.min_test_clips:
        check = Check(
            "every verdict",
            "number of test clips",
            n_test,
            ">=",
            params.min_test_clips,
            "decision.min_test_clips",
            digits=0,
        )
        return Classification("INCONCLUSIVE", "too_few_clips", best_all, best_all, (check,))
    if the_gate.status == "missing":
        return Classification("INCONCLUSIVE", "gate_missing", best_all, best_all)
    if the_gate.status == "fail":
        head, value = max(
            ((h, v) for h, v in the_gate.bbox_iou.items() if v is not None),
            key=lambda hv: hv[1],
            default=("every", math.nan),
        )
        check = Check(
            "the oracle gate",
            f"bbox IoU of the oracle point ({head} probe, the best head)",
            value,
            ">=",
            params.oracle_min_iou,
            "decision.oracle_min_iou",
        )
        return Classification("INCONCLUSIVE", "gate_fail", best_all, best_all, (check,))
    pre = [c for c in pre_all if c.head in the_gate.passing_heads]
    if not pre:
        return Classification("INCONCLUSIVE", "no_gated_head", best_all, best_all)
    best = max(pre, key=lambda c: c.bbox_iou)
    lpips = _lpips_check(adapters, params)
    passing = [c for c in pre if all(check.holds for check in _go_checks(c, params))]
    if passing:
        go = max(passing, key=lambda c: c.bbox_iou)
        further: list[Check] = []
        if go.memory_overhead_vs_merger is not None:
            further.append(
                Check(
                    "GO",
                    "feature memory vs the merger's",
                    go.memory_overhead_vs_merger,
                    "<",
                    params.memory_overhead_max,
                    "decision.memory_overhead_max",
                )
            )
        if lpips["status"] != "unchecked":
            further.append(Check("GO", "best LPIPS", lpips["best"], "<", params.lpips_max, "decision.lpips_max"))
        failed = [c for c in further if not c.holds]
        reasons = []
        if any(c.key == "decision.memory_overhead_max" for c in failed):
            reasons.append(
                f"{go.point} needs {go.memory_overhead_vs_merger:.2f}x the merger's feature memory "
                f"(limit {params.memory_overhead_max}x)"
            )
        if any(c.key == "decision.lpips_max" for c in failed):
            reasons.append(f"best LPIPS {lpips['best']:.3f} is not below {params.lpips_max}")
        checks = (*_go_checks(go, params), *further)
        if failed:
            return Classification("INVESTIGATE", "further_failed", go, best, tuple(failed), tuple(reasons), lpips)
        return Classification("GO", "go", go, best, checks, (), lpips)
    if all(_no_go_check(c, params).holds for c in pre):
        references = [n for n, p in points.items() if isinstance(p, EncoderPoint) and p.source != "tiny"]
        refs = [c for c in _candidates(rows, references, map_key) if c.head in the_gate.passing_heads]
        ref_ok = [c for c in refs if c.bbox_iou_lo > params.go_iou and c.selectivity_lo > params.selectivity_margin]
        reference = max(refs, key=lambda c: c.bbox_iou) if refs else None
        checks = (_no_go_check(best, params),)
        if references and not ref_ok:
            return Classification("INCONCLUSIVE", "reference_blind", best, best, checks, (), lpips, reference)
        hybrid_names = [n for n, p in points.items() if p.kind == "encoder"]
        hybrid = _candidates(rows, hybrid_names, map_key)
        top = max(hybrid, key=lambda c: c.bbox_iou) if hybrid else None
        return Classification("NO-GO", "no_go", best, best, checks, (), lpips, reference, top)
    spatial = [c for c in pre if all(check.holds for check in _go_checks(c, params)[:2])]
    prior = next((c for c in spatial if c.selectivity_lo <= params.selectivity_margin), None)
    failed = tuple(c for c in (*_go_checks(best, params), _no_go_check(best, params)) if not c.holds)
    return Classification("INVESTIGATE", "investigate", best, best, failed, (), lpips, prior=prior)


def _more_clips(data_advice: str | None) -> str:
    return data_advice or "add clips (`data.synthetic.n_clips` / `data.max_clips`)"


def _earlier_advice(best: Candidate, points: Mapping[str, PointParams], rows: Rows) -> str:
    """Earlier pre-merge layers of the best point's model to try: configured ones not probed yet, and layers not
    configured at all."""
    model = getattr(points[best.point], "model", None)
    pre = {n: points[n] for n in _pre_names(points) if getattr(points[n], "model", None) == model}
    of_model = "" if model is None else f", model: {model}"
    earlier = [n for n, p in pre.items() if point_order(p) < point_order(points[best.point])]
    run = [n for n in earlier if n in rows and rows[n].probed]
    not_run = [n for n in earlier if n not in run]
    parts = []
    if run:
        parts.append("earlier points already probed: " + ", ".join(f"`{n}`" for n in run))
    if best.kind == "vit_embed":
        parts.append(f"none: `{best.point}`, the patch embedding, is the earliest point")
        return "; ".join(parts)
    new = []
    if not any(p.kind == "vit_embed" for p in pre.values()):
        new.append(f"`{{kind: vit_embed{of_model}}}`")
    layers = {p.layer for p in pre.values() if p.kind == "vit_block"}
    if best.layer is not None and best.layer > 0:
        k = best.layer // 2
        while k in layers and k > 0:
            k //= 2
        if k not in layers:
            new.append(f"`vit_l{k}: {{kind: vit_block, layer: {k}{of_model}}}`")
    elif best.layer is not None:
        new.append(f"`vit_block` points with layers below {best.layer}")
    if not_run:
        parts.append("configured but not probed yet: " + ", ".join(f"`{n}`" for n in not_run))
    if new:
        parts.append("not configured yet: add " + " or ".join(new) + " to `points`")
    if not not_run and not new:
        parts.append("every earlier layer is already configured")
    return "; ".join(parts)


def explain(
    c: Classification,
    the_gate: Gate,
    points: Mapping[str, PointParams],
    rows: Rows,
    params: DecisionParams,
    heads_run: list[str],
    *,
    data_source: str = "synthetic",
    data_advice: str | None = None,
) -> str:
    """The branch of the proposal's decision tree that follows from ``c``, with advice that names only layers and
    heads not run yet. ``data_advice``: how to add clips for this data source (None: the generic wording)."""
    inconclusive_change = f"{_probe_advice(heads_run)}, or {_more_clips(data_advice)}"
    if c.case == "no_pre_merge":
        return "Undetermined: no pre-merge Qwen2.5-VL point was probed. To change: add a vit_embed or vit_block point."
    if c.case == "not_applicable":
        return (
            f"Not applicable: the spatial verdict needs boxes ({c.reason}). Read the step probes, the proposal's "
            "temporal criterion (beside the spatial rule, not part of it); for the spatial question run a source "
            "with boxes (`data.source`: synthetic, something_else or coco_video)."
        )
    if c.case == "too_few_clips":
        return (
            f"Inconclusive: too few test clips ({int(c.checks[0].value)}): the rule reads intervals over at least "
            f"{params.min_test_clips} (`decision.min_test_clips`); below that their 95% level is not assured and an "
            f"interval spans most of what the metric can read. To change: {_more_clips(data_advice)}, or give the "
            "test split more of them (`data.splits.test`)."
        )
    if c.case == "gate_missing":
        return (
            "Inconclusive: no oracle point was probed: the report cannot tell missing information from a probe that "
            "failed. To change: add `oracle: {kind: oracle, stride: 14}` to params.yaml `points`."
        )
    if c.case == "gate_fail":
        reads = ", ".join(f"{h} {v:.3f}" if v is not None else f"{h} n/a" for h, v in the_gate.bbox_iou.items())
        return (
            f"Inconclusive: the probe cannot read space that is there: the oracle reads bbox IoU {reads}, below "
            f"{params.oracle_min_iou}. To change: {inconclusive_change}."
        )
    if c.case == "no_gated_head":
        return (
            f"Inconclusive: no pre-merge point was probed with a head that passes the oracle gate "
            f"({', '.join(the_gate.passing_heads)}). To change: run those heads (`probe.heads`)."
        )
    assert c.deciding is not None
    if c.case == "go":
        return f"Proceed to Phase 2: train the dual-stream adapter with its spatial stream from {c.deciding.text()}."
    if c.case == "further_failed":
        return "Spatial criteria pass but a further criterion fails: " + "; ".join(c.further_failed) + "."
    if c.case == "reference_blind":
        seen = c.reference.text() if c.reference else "not probed with a gated head"
        return (
            f"Inconclusive: the pre-merge points read no spatial information, but neither does the real reference "
            f"encoder on the same frames ({seen}): the frames or the probe, not the features, may be at fault. "
            f"To change: {inconclusive_change}."
        )
    if c.case == "no_go":
        alt = (
            f"hybrid with a dedicated spatial model (best measured: {c.hybrid.text()})"
            if c.hybrid
            else "hybrid with a dedicated spatial model (none measured: add an `encoder` point)"
        )
        return f"Abort the pre-merge route: {alt}, or a semantic-only scope."
    stronger = [h for h in HEADS_BY_STRENGTH if h not in heads_run]
    prior = ""
    if c.prior is not None:
        prior = (
            f"IoU and mAP@0.5 pass for {c.prior.text()}, but the selectivity's lower bound is not above "
            f"{params.selectivity_margin}: its control ({c.prior.control}) reads {c.prior.control_iou:.3f}. "
        )
    heads = (
        "heads not run yet: " + ", ".join(f"`{h}`" for h in stronger) + " (`probe.heads`)"
        if stronger
        else f"every head already run: a larger `probe.width`, more `probe.steps` or {_more_clips(data_advice)}"
    )
    return (
        f"Investigate: {prior}try earlier layers ({_earlier_advice(c.deciding, points, rows)}) and stronger probes "
        f"({heads})."
    )


def benchmark_check(summary: Mapping[str, Any], points: Mapping[str, PointParams], data_source: str) -> dict:
    """Does every shuffled control sit at what no spatial information earns (its IoU's lower bound at or below the
    higher of its chance level and the point's prior, the best constant prediction)? Expected on the synthetic
    benchmark, where objects are placed uniformly (a check of the benchmark: a shuffled head may still learn how many
    boxes and how large from the tokens' content, never where); on real data it is not: the permuted tokens still
    carry what the clip holds, and boxes of real data are not placed uniformly."""
    rows = as_rows(summary, points)
    above = []
    checked = 0
    for name, row in rows.items():
        if row.kind == "oracle":
            continue
        prior = row.prior.bbox_iou if row.prior is not None else None
        for head, m in row.shuffled.items():
            if m.bbox_iou is None or m.bbox_iou_chance is None:
                continue
            checked += 1
            lo = m.bbox_iou_lo if m.bbox_iou_lo is not None else m.bbox_iou
            if lo > max(m.bbox_iou_chance, prior if prior is not None else -math.inf):
                above.append(
                    f"{name}/{head}: {m.bbox_iou:.3f} (chance {m.bbox_iou_chance:.3f}"
                    + (f", prior {prior:.3f})" if prior is not None else ")")
                )
    return {
        "data_source": data_source,
        "expected_at_chance": data_source == "synthetic",
        "checked": checked,
        "above_chance": above,
        "status": "unchecked" if not checked else "at chance" if not above else "above chance",
    }


def criteria(params: DecisionParams) -> dict[str, str]:
    """The rule's criteria in words, with the thresholds of ``params``."""
    margin = params.selectivity_margin
    return {
        "oracle": f"a head decides only if it reads the box oracle point at bbox IoU >= {params.oracle_min_iou}",
        "clips": f"at least {params.min_test_clips} test clips (fewer: INCONCLUSIVE)",
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
        "steps": (
            "the proposal's temporal criterion, beside the spatial rule and not part of it: step recognition, procedure "
            "position and task recognition accuracy, each with its interval over videos and chance level; they count "
            f"only where a steps oracle point reads step accuracy >= {params.oracle_min_step_accuracy}"
        ),
    }


def decide(
    summary: Mapping[str, PointRow | Mapping[str, Any]],
    points: Mapping[str, PointParams],
    params: DecisionParams,
    adapters: Mapping[str, Mapping[str, Any]],
    heads_run: list[str],
    *,
    data_source: str = "synthetic",
    data_advice: str | None = None,
) -> dict[str, Any]:
    """:func:`gate`, :func:`classify` and :func:`explain` as one document: the decision, the deciding point and head,
    the bounds that decided (``checks``), the branch that follows and the evidence. ``summary``: typed rows or their
    JSON form."""
    rows = as_rows(summary, points)
    the_gate = gate(rows, points, params)
    c = classify(rows, points, params, adapters, the_gate)
    out: dict[str, Any] = {
        "decision": c.outcome,
        "branch": explain(
            c, the_gate, points, rows, params, heads_run, data_source=data_source, data_advice=data_advice
        ),
        "criteria": criteria(params),
        "oracle": asdict(the_gate),
        "checks": [asdict(check) | {"holds": check.holds, "text": check.text()} for check in c.checks],
    }
    if (steps := step_evidence(rows, points, params)) is not None:
        out["steps"] = steps
    if c.case == "not_applicable":
        return out | {"reason": f"the spatial verdict is not applicable: {c.reason}"}
    if c.case == "no_pre_merge":
        return out | {"reason": "no pre-merge Qwen2.5-VL point was probed"}
    assert c.deciding is not None and c.best_pre_merge is not None
    out |= {
        "deciding": asdict(c.deciding),
        "best_pre_merge": asdict(c.best_pre_merge),
        "map_kind": params.map_kind,
        "selectivity_margin": params.selectivity_margin,
        "test_clips": count_test_clips(rows, _pre_names(points)),
    }
    if c.outcome == "INVESTIGATE":
        out["separate"] = clips_to_separate(rows, c.deciding, params)
    if c.lpips:
        out |= {"lpips": c.lpips, "further_criteria_failed": list(c.further_failed)}
    return out
