"""Two extraction points side by side, from ``metrics/summary.json``: ``python -m foresight_lib.compare vit_l7 merger``.

One line per quantity: what each point is (kind, layer, weights, stride), then per probe head its bbox IoU with the
95% interval and chance level, its operating point (score threshold, at most k boxes per frame), mAP@0.5
(class-agnostic) with its interval, the selectivity over its control (the stronger on validation of the shuffled
control and the data's prior) with its paired interval and the shuffled control itself, then the prior, the
temporal and step probes' accuracies (chance beside) and the exact feature cost. The last column is the second
point's value minus the first's (point estimates only: each column carries its own interval; see the report for the
decision).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import ForesightError
from .report.summary import STEP_TASKS, HeadRow, PointRow, StepRow, TemporalRow

HEADS = ("linear", "mlp", "dense", "detr")


def _v(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _ci(value: float | None, lo: float | None, hi: float | None) -> str:
    return "n/a" if value is None else f"{_v(value)} [{_v(lo)}, {_v(hi)}]"


def _operating(h: HeadRow) -> str:
    """Each seed's operating point: ``score >= t, at most k``."""
    if not h.operating_points:
        return "n/a"
    return " / ".join(f">= {p['score_threshold']:g}, <= {p['max_boxes']}" for p in h.operating_points)


def _accuracy_cell(t: TemporalRow | StepRow | None, task: str) -> str:
    if t is None or getattr(t, f"{task}_accuracy") is None:
        return "n/a"
    acc = _ci(*(getattr(t, f"{task}_accuracy{s}") for s in ("", "_lo", "_hi")))
    return f"{acc} ({_v(getattr(t, f'{task}_chance'))})"


def _lines(a: PointRow, b: PointRow) -> list[tuple[str, str, str, float | None, float | None]]:
    """``(quantity, cell of a, cell of b, value of a, value of b)`` for every quantity either point has."""
    out: list[tuple[str, str, str, float | None, float | None]] = [
        ("kind, layer", a.label(), b.label(), None, None),
        *([("family", a.family or "", b.family or "", None, None)] if a.family or b.family else []),
        ("weights", str(a.weights), str(b.weights), None, None),
        ("stride (px)", str(a.stride), str(b.stride), None, None),
    ]
    empty = HeadRow()
    for head in HEADS:
        ha, hb = a.heads.get(head), b.heads.get(head)
        if ha is None and hb is None:
            continue
        ha, hb = ha or empty, hb or empty
        sa, sb = a.shuffled.get(head, empty), b.shuffled.get(head, empty)
        out += [
            (
                f"{head}: bbox IoU (chance)",
                f"{_ci(ha.bbox_iou, ha.bbox_iou_lo, ha.bbox_iou_hi)} ({_v(ha.bbox_iou_chance)})",
                f"{_ci(hb.bbox_iou, hb.bbox_iou_lo, hb.bbox_iou_hi)} ({_v(hb.bbox_iou_chance)})",
                ha.bbox_iou,
                hb.bbox_iou,
            ),
            (f"{head}: operating point", _operating(ha), _operating(hb), None, None),
            (
                f"{head}: mAP@0.5",
                _ci(ha.map50_class_agnostic, ha.map50_class_agnostic_lo, ha.map50_class_agnostic_hi),
                _ci(hb.map50_class_agnostic, hb.map50_class_agnostic_lo, hb.map50_class_agnostic_hi),
                ha.map50_class_agnostic,
                hb.map50_class_agnostic,
            ),
            (
                f"{head}: selectivity (vs)",
                f"{_ci(ha.selectivity, ha.selectivity_lo, ha.selectivity_hi)} ({ha.selectivity_control or 'n/a'})",
                f"{_ci(hb.selectivity, hb.selectivity_lo, hb.selectivity_hi)} ({hb.selectivity_control or 'n/a'})",
                ha.selectivity,
                hb.selectivity,
            ),
            (f"{head}: shuffled control IoU", _v(sa.bbox_iou), _v(sb.bbox_iou), sa.bbox_iou, sb.bbox_iou),
        ]
    pa, pb = a.prior or empty, b.prior or empty
    out.append(
        (
            "prior IoU (chance)",
            f"{_ci(pa.bbox_iou, pa.bbox_iou_lo, pa.bbox_iou_hi)} ({_v(pa.bbox_iou_chance)})",
            f"{_ci(pb.bbox_iou, pb.bbox_iou_lo, pb.bbox_iou_hi)} ({_v(pb.bbox_iou_chance)})",
            pa.bbox_iou,
            pb.bbox_iou,
        )
    )
    tasks = [("direction", a.temporal, b.temporal), ("order", a.temporal, b.temporal)]
    tasks += [(task, a.steps, b.steps) for task in STEP_TASKS]
    for task, xa, xb in tasks:
        ta, tb = (getattr(x, f"{task}_accuracy", None) if x else None for x in (xa, xb))
        if ta is None and tb is None:
            continue
        out.append((f"{task} accuracy (chance)", _accuracy_cell(xa, task), _accuracy_cell(xb, task), ta, tb))
    out += [
        (
            "feature bytes vs merger (x)",
            _v(a.memory_overhead_vs_merger),
            _v(b.memory_overhead_vs_merger),
            a.memory_overhead_vs_merger,
            b.memory_overhead_vs_merger,
        ),
        ("tokens per frame", _count(a.tokens_per_frame), _count(b.tokens_per_frame), None, None),
    ]
    return out


def _count(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def compare(summary: dict, a: str, b: str) -> str:
    """The side-by-side table of points ``a`` and ``b`` of a summary (``metrics/summary.json``'s content)."""
    for name in (a, b):
        if name not in summary or name.startswith("adapter:"):
            points = [n for n in summary if not n.startswith("adapter:")]
            raise ForesightError(f"point {name!r} is not in the summary (points: {', '.join(points)})")
    ra, rb = (PointRow.from_json(n, None, summary[n]) for n in (a, b))
    rows = [(q, ca, cb, "" if va is None or vb is None else f"{vb - va:+.3f}") for q, ca, cb, va, vb in _lines(ra, rb)]
    header = ("", a, b, f"{b} - {a}")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="first point (a key of metrics/summary.json)")
    parser.add_argument("b", help="second point")
    parser.add_argument("--summary", default="metrics/summary.json", help="the report's summary (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        path = Path(args.summary)
        if not path.is_file():
            raise ForesightError(f"{path} not found: run `dvc repro` (its report stage writes it) first")
        print(compare(json.loads(path.read_text()), args.a, args.b))
    except ForesightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
