"""The summary: one typed row per extraction point (:class:`PointRow`), then one per adapter, from the stages' records.

``metrics/summary.json`` is its JSON form, keyed by point (and ``adapter:<name>``), science only: every value is a
number or a short label that the same params and data reproduce on any machine. Throughput and memory of the machine
that ran a stage are not in it (:class:`PointTiming`, ``metrics/timing.json``), so
``dvc metrics diff --targets metrics/summary.json`` between two runs shows what the science changed, not timing.
The file's keys follow model order (:func:`point_order`); ``dvc metrics diff`` prints one row per point and metric
(``vit_l7.linear.bbox_iou``, ...) and per adapter (``adapter:single_vit_l31.spatial_iou``, ...).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..adapters.recon import VERDICTS
from ..kinds import KINDS
from ..params import Params, PointParams

PRE_MERGE_KINDS = tuple(kind for kind, info in KINDS.items() if info.pre_merge)
SPATIAL_KEYS = (
    "bbox_iou",
    "best_box_iou",
    "map50_class_agnostic",
    "map_class_agnostic",
    "map50_class_aware",
    "map_class_aware",
)
RANDOM_WEIGHTS = ("tiny-random", "random-init")  # the extractors' labels of seeded random weights


def point_order(point: PointParams) -> tuple[int, str, str, int, int]:
    """Sort key: the oracle and pixel controls, then the VLM kinds from patch embed to the last LLM layer (the
    ``model`` section's points before each ``models`` entry's; a naive-order ablation right after its raster twin),
    then encoders (by family): the order of :data:`foresight_lib.kinds.KINDS`' ``sort``."""
    return (
        KINDS[point.kind].sort,
        getattr(point, "model", None) or "",
        getattr(point, "family", ""),  # an encoder's
        getattr(point, "layer", -1),
        int(getattr(point, "order", "raster") == "naive"),
    )


def vlm_families(params: Params) -> dict[str, str]:
    """Each VLM point's family: that of the model it reads (:meth:`Params.model_of`)."""
    return {n: params.model_of(p).family for n, p in params.points.items() if KINDS[p.kind].source == "vlm"}


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


@dataclass(frozen=True)
class HeadRow:
    """One probe head's spatial numbers at one point, or at its shuffled control: value, 95% bounds (``_lo``,
    ``_hi``), the bbox IoU's chance level, each seed's bbox IoU (several probe seeds) and the selectivity (bbox IoU
    minus the shuffled control's, paired interval)."""

    bbox_iou: float | None = None
    bbox_iou_lo: float | None = None
    bbox_iou_hi: float | None = None
    bbox_iou_chance: float | None = None
    bbox_iou_clip_sd: float | None = None  # per-clip SD of bbox IoU (bootstrap SE x sqrt(n_clips))
    n_clips: int | None = None  # test clips holding ground truth: those the intervals resample
    best_box_iou: float | None = None
    best_box_iou_lo: float | None = None
    best_box_iou_hi: float | None = None
    map50_class_agnostic: float | None = None
    map50_class_agnostic_lo: float | None = None
    map50_class_agnostic_hi: float | None = None
    map_class_agnostic: float | None = None
    map_class_agnostic_lo: float | None = None
    map_class_agnostic_hi: float | None = None
    map50_class_aware: float | None = None
    map50_class_aware_lo: float | None = None
    map50_class_aware_hi: float | None = None
    map_class_aware: float | None = None
    map_class_aware_lo: float | None = None
    map_class_aware_hi: float | None = None
    seeds: tuple[float | None, ...] | None = None
    selectivity: float | None = None
    selectivity_lo: float | None = None
    selectivity_hi: float | None = None
    selectivity_clip_sd: float | None = None
    selectivity_control: str | None = None  # the control it was measured against: "shuffled" or "prior"
    control_bbox_iou: float | None = None  # that control's test bbox IoU
    asserted_per_frame: float | None = None  # boxes counted at the operating point, per test frame
    objects_per_frame: float | None = None
    operating_points: tuple[dict[str, Any], ...] | None = None  # per seed: score threshold and max boxes per frame

    @classmethod
    def from_probe(cls, m: Mapping[str, Any]) -> HeadRow:
        """From a head's entry of ``metrics/probe/<point>.json`` (intervals as ``<key>_ci`` pairs)."""
        direct = (
            "bbox_iou_chance",
            "bbox_iou_clip_sd",
            "n_clips",
            "selectivity_clip_sd",
            "selectivity_control",
            "asserted_per_frame",
            "objects_per_frame",
        )
        values: dict[str, Any] = {key: m.get(key) for key in direct}
        for key in (*SPATIAL_KEYS, "selectivity"):
            lo, hi = m.get(f"{key}_ci") or (None, None)
            values |= {key: m.get(key), f"{key}_lo": lo, f"{key}_hi": hi}
        if "seeds" in m:
            values["seeds"] = tuple(seed_ious(m["seeds"]))
            points = [
                v["operating_point"] for v in m["seeds"].values() if isinstance(v, dict) and "operating_point" in v
            ]
            values["operating_points"] = tuple(points) or None
        elif "operating_point" in m:  # the prior: one constant prediction, no seeds
            values["operating_points"] = (m["operating_point"],)
        return cls(**values)

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> HeadRow:
        """From its JSON form (:meth:`to_json`); absent keys are unmeasured."""
        values = {f.name: m.get(f.name) for f in fields(cls)}
        for key in ("seeds", "operating_points"):
            if values[key] is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("seeds", "operating_points"):
            out[key] = None if out[key] is None else list(out[key])
        return {k: v for k, v in out.items() if v is not None}

    def interval(self, key: str) -> tuple[float, float, float]:
        """``(value, lo, hi)`` of ``key`` (a spatial key or ``selectivity``), NaN where unmeasured."""
        return _num(getattr(self, key)), _num(getattr(self, f"{key}_lo")), _num(getattr(self, f"{key}_hi"))


def seed_ious(seeds: Any) -> list[float | None]:
    """Per-seed bbox IoU from a head's ``seeds`` entry: a list, or a mapping by seed, of metric dicts (or numbers)."""
    values = list(seeds.values()) if isinstance(seeds, dict) else list(seeds)
    return [v.get("bbox_iou") if isinstance(v, dict) else v for v in values]


def _accuracy(task: str, r: Mapping[str, Any]) -> dict[str, Any]:
    """One probe task's accuracy entry (``accuracy``, ``accuracy_ci``, ``chance``) as ``<task>_*`` row fields."""
    lo, hi = r.get("accuracy_ci") or (None, None)
    return {
        f"{task}_accuracy": r["accuracy"],
        f"{task}_accuracy_lo": lo,
        f"{task}_accuracy_hi": hi,
        f"{task}_chance": r["chance"],
    }


class _JsonRow:
    """The JSON form of a flat row of optional numbers: the fields that are set."""

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> Any:
        return cls(**{f.name: m.get(f.name) for f in fields(cls)})  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}  # type: ignore[arg-type]


@dataclass(frozen=True)
class TemporalRow(_JsonRow):
    """Accuracy of the temporal probes (motion direction, frame order) with 95% bounds and the majority-class chance;
    ``None`` where the task was unavailable."""

    direction_accuracy: float | None = None
    direction_accuracy_lo: float | None = None
    direction_accuracy_hi: float | None = None
    direction_chance: float | None = None
    order_accuracy: float | None = None
    order_accuracy_lo: float | None = None
    order_accuracy_hi: float | None = None
    order_chance: float | None = None

    @classmethod
    def from_probe(cls, m: Mapping[str, Any]) -> TemporalRow:
        values: dict[str, Any] = {}
        for task, r in m.items():
            if r.get("available", True):
                values |= _accuracy(task, r)
        return cls(**values)


STEP_TASKS = ("step", "position", "task")  # :data:`foresight_lib.probes.steps.TASKS`


@dataclass(frozen=True)
class StepRow(_JsonRow):
    """Accuracy of the step probes (step recognition, procedure position, task recognition) with 95% bounds over
    videos and the chance level (the train split's majority class); ``None`` where the task was unavailable."""

    step_accuracy: float | None = None
    step_accuracy_lo: float | None = None
    step_accuracy_hi: float | None = None
    step_chance: float | None = None
    position_accuracy: float | None = None
    position_accuracy_lo: float | None = None
    position_accuracy_hi: float | None = None
    position_chance: float | None = None
    task_accuracy: float | None = None
    task_accuracy_lo: float | None = None
    task_accuracy_hi: float | None = None
    task_chance: float | None = None
    n_videos: int | None = None  # test videos: the unit the intervals resample

    @classmethod
    def from_probe(cls, m: Mapping[str, Any]) -> StepRow:
        """From the ``steps`` section of ``metrics/probe/<point>.json`` (:mod:`foresight_lib.probes.steps`)."""
        values: dict[str, Any] = {}
        for task in STEP_TASKS:
            r = m.get(task) or {}
            if r.get("available", True) and r.get("accuracy") is not None:
                values |= _accuracy(task, r) | {"n_videos": r.get("n_videos")}
        return cls(**values)

    def interval(self, task: str) -> tuple[float, float, float, float]:
        """``(accuracy, lo, hi, chance)`` of ``task``, NaN where unmeasured."""
        return tuple(_num(getattr(self, f"{task}_{k}")) for k in ("accuracy", "accuracy_lo", "accuracy_hi", "chance"))


@dataclass(frozen=True)
class PointRow:
    """One extraction point: what it is (kind, layer, weights, stride) and what its probes read (per head, on the
    point and on its shuffled control; temporal and step accuracies; why the box probes were skipped, if they were),
    with the exact feature cost of its grid."""

    name: str
    kind: str
    layer: int | None = None
    family: str | None = None  # VLM points: the family of the model they read (model.family or models.<m>.family)
    weights: str | None = None
    stride: int | None = None
    heads: dict[str, HeadRow] = field(default_factory=dict)
    shuffled: dict[str, HeadRow] = field(default_factory=dict)
    prior: HeadRow | None = None  # the data's prior: the best constant prediction learnt from train
    temporal: TemporalRow | None = None
    shuffled_temporal: TemporalRow | None = None
    steps: StepRow | None = None
    shuffled_steps: StepRow | None = None
    skipped: str | None = None  # why the box probes did not run (e.g. a dataset without boxes)
    memory_overhead_vs_merger: float | None = None
    tokens_per_frame: float | None = None
    feature_bytes_per_frame: float | None = None

    @property
    def probed(self) -> bool:
        return any(h.bbox_iou is not None for h in self.heads.values())

    @property
    def random_weights(self) -> bool:
        return self.weights in RANDOM_WEIGHTS

    def label(self) -> str:
        """``kind`` or ``kind, layer k``: what the name stands for, as the params define it."""
        return self.kind if self.layer is None else f"{self.kind}, layer {self.layer}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.layer is not None:
            out["layer"] = self.layer
        if self.family is not None:
            out["family"] = self.family
        out |= {"weights": self.weights, "stride": self.stride}
        out |= {head: row.to_json() for head, row in self.heads.items()}
        shuffled: dict[str, Any] = {head: row.to_json() for head, row in self.shuffled.items()}
        if self.shuffled_temporal is not None:
            shuffled["temporal"] = self.shuffled_temporal.to_json()
        if self.shuffled_steps is not None:
            shuffled["steps"] = self.shuffled_steps.to_json()
        out["shuffled"] = shuffled
        if self.prior is not None:
            out["prior"] = self.prior.to_json()
        if self.temporal is not None:
            out["temporal"] = self.temporal.to_json()
        if self.steps is not None:
            out["steps"] = self.steps.to_json()
        if self.skipped is not None:
            out["skipped"] = self.skipped
        cost = {
            "memory_overhead_vs_merger": self.memory_overhead_vs_merger,
            "tokens_per_frame": self.tokens_per_frame,
            "feature_bytes_per_frame": self.feature_bytes_per_frame,
        }
        if any(v is not None for v in cost.values()):
            out["extract"] = cost
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_json(
        cls, name: str, point: PointParams | None, m: Mapping[str, Any], heads: list[str] | None = None
    ) -> PointRow:
        """From the JSON form of a row (``metrics/summary.json``); ``point``: its params (None: the kind and layer
        the row records); ``heads``: the probe heads to read (default: the four heads, those present)."""
        names = heads or ["linear", "mlp", "dense", "detr"]
        shuffled = m.get("shuffled", {})
        extract = m.get("extract", {})
        return cls(
            name=name,
            kind=point.kind if point is not None else m["kind"],
            layer=getattr(point, "layer", None) if point is not None else m.get("layer"),
            family=m.get("family"),
            weights=m.get("weights"),
            stride=m.get("stride"),
            heads={h: HeadRow.from_json(m[h]) for h in names if m.get(h)},
            shuffled={h: HeadRow.from_json(shuffled[h]) for h in names if shuffled.get(h)},
            prior=HeadRow.from_json(m["prior"]) if m.get("prior") else None,
            temporal=TemporalRow.from_json(m["temporal"]) if m.get("temporal") else None,
            shuffled_temporal=TemporalRow.from_json(shuffled["temporal"]) if shuffled.get("temporal") else None,
            steps=StepRow.from_json(m["steps"]) if m.get("steps") else None,
            shuffled_steps=StepRow.from_json(shuffled["steps"]) if shuffled.get("steps") else None,
            skipped=m.get("skipped"),
            memory_overhead_vs_merger=extract.get("memory_overhead_vs_merger"),
            tokens_per_frame=extract.get("tokens_per_frame"),
            feature_bytes_per_frame=extract.get("feature_bytes_per_frame"),
        )


Rows = dict[str, PointRow]


def as_rows(summary: Mapping[str, PointRow | Mapping[str, Any]], points: Mapping[str, PointParams]) -> Rows:
    """The summary as typed rows: rows stay, JSON rows (``metrics/summary.json``'s form) are parsed."""
    return {
        name: row if isinstance(row, PointRow) else PointRow.from_json(name, points[name], row)
        for name, row in summary.items()
    }


@dataclass(frozen=True)
class PointTiming:
    """What one machine measured extracting a point: throughput and peak memory (``metrics/timing.json``)."""

    frames_per_second: float | None
    peak_memory_gib: float | None
    peak_memory_kind: str | None
    device: str | None


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def point_row(
    name: str,
    point: PointParams,
    probe: Mapping[str, Any] | None,
    extract: Mapping[str, Any] | None,
    heads: list[str],
    family: str | None = None,
) -> PointRow:
    """One point's row from its probe and extraction records (either may be missing: not run yet); ``family``: the
    VLM family of the model a VLM point reads."""
    probe = probe or {}
    extract = extract or {}
    shuffled = {h: HeadRow.from_probe(m) for h, m in probe.get("shuffled", {}).items() if h in heads}
    prior = HeadRow.from_probe(probe["prior"]) if "prior" in probe else None
    controls = {"shuffled": lambda h: shuffled.get(h), "prior": lambda h: prior}

    def head_row(h: str) -> HeadRow:
        """The head's row with the test bbox IoU of the control its selectivity was measured against."""
        row = HeadRow.from_probe(probe[h])
        control = controls[row.selectivity_control](h) if row.selectivity_control in controls else None
        return row if control is None else replace(row, control_bbox_iou=control.bbox_iou)

    return PointRow(
        name=name,
        kind=point.kind,
        layer=getattr(point, "layer", None),
        family=family,
        weights=probe.get("point", {}).get("weights", extract.get("weights")),
        stride=probe.get("point", {}).get("stride"),
        heads={h: head_row(h) for h in heads if h in probe},
        shuffled=shuffled,
        prior=prior,
        temporal=TemporalRow.from_probe(probe["temporal"]) if "temporal" in probe else None,
        shuffled_temporal=(
            TemporalRow.from_probe(probe["shuffled"]["temporal"]) if "temporal" in probe.get("shuffled", {}) else None
        ),
        steps=StepRow.from_probe(probe["steps"]) if "steps" in probe else None,
        shuffled_steps=StepRow.from_probe(probe["shuffled"]["steps"]) if "steps" in probe.get("shuffled", {}) else None,
        skipped=probe.get("skipped"),
        memory_overhead_vs_merger=extract.get("memory_overhead_vs_merger"),
        tokens_per_frame=extract.get("tokens_per_frame"),
        feature_bytes_per_frame=extract.get("feature_bytes_per_frame"),
    )


def build_summary(
    points: Mapping[str, PointParams],
    heads: list[str],
    metrics_dir: str | Path,
    families: Mapping[str, str] | None = None,
) -> Rows:
    """The row of every point in ``points`` (model order) from ``metrics/probe`` and ``metrics/extract``;
    ``families``: each VLM point's family (:func:`vlm_families`)."""
    metrics_dir = Path(metrics_dir)
    ordered = sorted(points, key=lambda name: point_order(points[name]))
    return {
        name: point_row(
            name,
            points[name],
            _read(metrics_dir / "probe" / f"{name}.json"),
            _read(metrics_dir / "extract" / f"{name}.json"),
            heads,
            (families or {}).get(name),
        )
        for name in ordered
    }


def build_timing(points: Mapping[str, PointParams], metrics_dir: str | Path) -> dict[str, PointTiming]:
    """Each extracted point's throughput and peak memory, from ``metrics/extract`` (points not extracted left out)."""
    out = {}
    for name in sorted(points, key=lambda n: point_order(points[n])):
        if (m := _read(Path(metrics_dir) / "extract" / f"{name}.json")) is not None:
            peak = m.get("peak_memory_bytes")
            out[name] = PointTiming(
                frames_per_second=m.get("frames_per_second"),
                peak_memory_gib=None if peak is None else peak / 2**30,
                peak_memory_kind=m.get("peak_memory_kind"),
                device=m.get("device"),
            )
    return out


def adapter_summary(recon: Mapping[str, Any]) -> dict[str, Any]:
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
    return {k: v for k, v in values.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
