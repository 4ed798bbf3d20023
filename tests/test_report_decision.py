"""The Phase 1 decision on hand-made summaries: every branch, and the interval bounds it reads."""

import pytest

from foresight_lib.params import parse_params
from foresight_lib.report.decision import benchmark_check, decide
from foresight_lib.report.summary import adapter_summary, point_order

POINTS = parse_params(
    {
        "points": {
            "llm_l27": {"kind": "llm", "layer": 27},
            "vit_l31": {"kind": "vit_block", "layer": 31},
            "pixels": {"kind": "pixels"},
            "vit_embed": {"kind": "vit_embed"},
            "merger": {"kind": "merger"},
            "vit_l7": {"kind": "vit_block", "layer": 7},
            "dino": {"kind": "encoder", "family": "dinov2", "layer": 11},
            "vit_l7_naive": {"kind": "vit_block", "layer": 7, "order": "naive"},
            "oracle": {"kind": "oracle", "stride": 14},
        }
    }
).points
DECISION = parse_params({}).decision


def head(iou, lo, hi, m, mlo, mhi, sel=None):
    """A head's summary row; selectivity defaults to the IoU itself (a shuffled control at 0)."""
    sel = sel or (iou, lo, hi)
    return {
        "bbox_iou": iou,
        "bbox_iou_lo": lo,
        "bbox_iou_hi": hi,
        "bbox_iou_chance": 0.02,
        "map50_class_agnostic": m,
        "map50_class_agnostic_lo": mlo,
        "map50_class_agnostic_hi": mhi,
        "selectivity": sel[0],
        "selectivity_lo": sel[1],
        "selectivity_hi": sel[2],
    }


def summary(vit_l7, vit_l31=None, dino=None, memory=1.43, oracle=0.95, shuffled=0.0, points=POINTS, control="shuffled"):
    """Rows of every point; ``vit_l7``'s selectivity was measured against ``control``, which reads ``shuffled``."""
    s = {name: {} for name in points}
    shuffled_row = {"linear": {"bbox_iou": shuffled, "bbox_iou_lo": shuffled, "bbox_iou_chance": 0.02}}
    vit_l7 = {**vit_l7, "control_bbox_iou": shuffled, "selectivity_control": control}
    s["vit_l7"] = {"linear": vit_l7, "shuffled": shuffled_row, "extract": {"memory_overhead_vs_merger": memory}}
    if vit_l31:
        s["vit_l31"] = {"linear": vit_l31, "shuffled": shuffled_row, "extract": {"memory_overhead_vs_merger": memory}}
    if dino:
        s["dino"] = {"linear": dino}
    s["merger"] = {"linear": head(0.9, 0.85, 0.95, 0.9, 0.8, 0.95)}  # post-merge points never decide Phase 1
    s["vit_l7_naive"] = {"linear": head(0.9, 0.85, 0.95, 0.9, 0.8, 0.95)}  # nor does the naive-order ablation
    if oracle is not None and "oracle" in points:
        s["oracle"] = {"linear": head(oracle, oracle - 0.03, oracle + 0.02, 0.9, 0.85, 0.95)}
    return s


def test_points_sort_in_model_order():
    assert sorted(POINTS, key=lambda n: point_order(POINTS[n])) == [
        "oracle",
        "pixels",
        "vit_embed",
        "vit_l7",
        "vit_l7_naive",
        "vit_l31",
        "merger",
        "llm_l27",
        "dino",
    ]


def test_go_needs_both_lower_bounds_above_the_thresholds():
    d = decide(summary(head(0.55, 0.45, 0.6, 0.3, 0.2, 0.4)), POINTS, DECISION, {}, ["linear"])
    assert d["decision"] == "GO" and "`vit_l7`" in d["branch"] and "dual-stream" in d["branch"]
    assert d["lpips"]["status"] == "unchecked"
    # The point estimate passes but the lower bound of IoU does not: not GO.
    d = decide(summary(head(0.45, 0.38, 0.52, 0.3, 0.2, 0.4)), POINTS, DECISION, {}, ["linear"])
    assert d["decision"] == "INVESTIGATE"
    # IoU passes, mAP's lower bound does not.
    d = decide(summary(head(0.55, 0.45, 0.6, 0.2, 0.1, 0.3)), POINTS, DECISION, {}, ["linear"])
    assert d["decision"] == "INVESTIGATE"


def test_no_go_needs_every_upper_bound_below_the_threshold():
    low = head(0.10, 0.05, 0.15, 0.01, 0.0, 0.02)
    d = decide(summary(low, low, dino=head(0.6, 0.5, 0.7, 0.4, 0.3, 0.5)), POINTS, DECISION, {}, ["linear"])
    assert d["decision"] == "NO-GO" and "hybrid" in d["branch"] and "`dino`" in d["branch"]
    # One upper bound reaching the threshold keeps the question open.
    d = decide(summary(low, head(0.15, 0.1, 0.21, 0.0, 0.0, 0.1)), POINTS, DECISION, {}, ["linear"])
    assert d["decision"] == "INVESTIGATE"


def test_investigate_names_earlier_layers_and_stronger_probes():
    d = decide(
        summary(head(0.2, 0.1, 0.3, 0.1, 0.0, 0.2), head(0.3, 0.22, 0.38, 0.1, 0.0, 0.2)),
        POINTS,
        DECISION,
        {},
        ["linear"],
    )
    assert d["decision"] == "INVESTIGATE" and d["best_pre_merge"]["point"] == "vit_l31"
    assert "`vit_l7`" in d["branch"] and "`vit_embed`" in d["branch"]
    assert all(f"`{h}`" in d["branch"] for h in ("mlp", "dense", "detr"))


@pytest.mark.parametrize(
    "lpips, memory, expected",
    [(0.2, 1.43, "GO"), (0.5, 1.43, "INVESTIGATE"), (None, 1.43, "GO"), (0.2, 2.5, "INVESTIGATE")],
)
def test_further_criteria(lpips, memory, expected):
    adapters = {"a": adapter_summary(_recon(lpips, "acceptable"))}  # the row the report builds from recon JSON
    d = decide(summary(head(0.55, 0.45, 0.6, 0.3, 0.2, 0.4), memory=memory), POINTS, DECISION, adapters, ["linear"])
    assert d["decision"] == expected
    assert d["lpips"]["status"] == ("unchecked" if lpips is None else "pass" if lpips < 0.35 else "fail")


def test_thresholds_come_from_params():
    strict = parse_params({"decision": {"go_iou": 0.5}}).decision
    d = decide(summary(head(0.55, 0.45, 0.6, 0.3, 0.2, 0.4)), POINTS, strict, {}, ["linear"])
    assert d["decision"] == "INVESTIGATE"


def _recon(lpips, overall):
    phase2 = {
        "spatial_iou": {"value": 0.55},
        "lpips": {"value": lpips},
        "parameters": {"value": 1_000},
        "overall": overall,
    }
    adapter = {"detection": {"map50_class_agnostic": 0.3}, "psnr": {"mean": 24.0}, "ssim": {"mean": 0.7}}
    return {"adapter": adapter, "phase2": phase2}


def test_adapter_rows_of_the_summary_leave_out_what_was_not_measured():
    assert adapter_summary(_recon(0.25, "acceptable")) == {
        "spatial_iou": 0.55,
        "map50_class_agnostic": 0.3,
        "lpips": 0.25,
        "psnr": 24.0,
        "ssim": 0.7,
        "parameters": 1_000,
        "phase2_level": 2,
    }
    unavailable = adapter_summary(_recon(None, "unknown"))
    assert "lpips" not in unavailable and "phase2_level" not in unavailable and unavailable["psnr"] == 24.0
    assert adapter_summary(_recon(0.5, "fail"))["phase2_level"] == 0


def test_investigate_on_the_patch_embedding_says_there_is_nothing_earlier():
    s = summary(head(0.1, 0.05, 0.15, 0.0, 0.0, 0.1))
    s["vit_embed"] = {"linear": head(0.3, 0.22, 0.38, 0.1, 0.0, 0.2)}
    d = decide(s, POINTS, DECISION, {}, ["linear"])
    assert d["decision"] == "INVESTIGATE" and d["best_pre_merge"]["point"] == "vit_embed"
    assert "none: `vit_embed`, the patch embedding, is the earliest point" in d["branch"]


# ----------------------------------------------------------------- oracle gate, selectivity, reference encoder
def test_inconclusive_when_the_oracle_is_not_read_or_missing():
    good = head(0.55, 0.45, 0.6, 0.3, 0.2, 0.4)
    d = decide(summary(good, oracle=0.6), POINTS, DECISION, {}, ["linear"])
    assert d["decision"] == "INCONCLUSIVE" and "0.600" in d["branch"] and "0.85" in d["branch"]
    assert "probe.steps" in d["branch"] and d["oracle"]["status"] == "fail"
    no_oracle = {n: p for n, p in POINTS.items() if n != "oracle"}
    d = decide(summary(good, points=no_oracle), no_oracle, DECISION, {}, ["linear"])
    assert d["decision"] == "INCONCLUSIVE" and "kind: oracle" in d["branch"] and d["oracle"]["status"] == "missing"
    # The gate reads the param.
    d = decide(
        summary(good, oracle=0.6), POINTS, parse_params({"decision": {"oracle_min_iou": 0.5}}).decision, {}, ["linear"]
    )
    assert d["decision"] == "GO"


def test_the_prior_alone_clearing_the_iou_bar_is_not_go():
    # IoU and mAP clear the GO bar, but the shuffled control reads 0.5: the features add 0.05 [-0.05, 0.15].
    prior = head(0.55, 0.45, 0.6, 0.3, 0.2, 0.4, sel=(0.05, -0.05, 0.15))
    d = decide(summary(prior, shuffled=0.5), POINTS, DECISION, {}, ["linear"])
    assert d["decision"] == "INVESTIGATE" and "its control (shuffled) reads 0.500" in d["branch"]
    d = decide(summary(prior, shuffled=0.5, control="prior"), POINTS, DECISION, {}, ["linear"])
    assert d["decision"] == "INVESTIGATE" and "its control (prior) reads 0.500" in d["branch"]
    assert d["deciding"]["control"] == "prior"
    # The selectivity's upper bound below the margin where the prior sits above the NO-GO bar: NO-GO.
    nothing = head(0.52, 0.45, 0.6, 0.3, 0.2, 0.4, sel=(0.01, -0.05, 0.07))
    d = decide(summary(nothing, shuffled=0.5), POINTS, DECISION, {}, ["linear"])
    assert d["decision"] == "NO-GO"
    # Where the prior sits below the NO-GO bar, a low selectivity alone is not NO-GO.
    d = decide(
        summary(head(0.3, 0.22, 0.38, 0.1, 0.0, 0.2, sel=(0.01, -0.05, 0.07)), shuffled=0.1),
        POINTS,
        DECISION,
        {},
        ["linear"],
    )
    assert d["decision"] == "INVESTIGATE"


def test_no_go_needs_a_configured_real_reference_to_see_space():
    real = parse_params(
        {
            "points": {
                **{n: p.model_dump() for n, p in POINTS.items() if n != "dino"},
                "dino": {"kind": "encoder", "family": "dinov2", "layer": 6, "source": "/ckpt/dinov2-small"},
            }
        }
    ).points
    low = head(0.10, 0.05, 0.15, 0.01, 0.0, 0.02)
    d = decide(summary(low, dino=head(0.15, 0.1, 0.2, 0.0, 0.0, 0.1), points=real), real, DECISION, {}, ["linear"])
    assert d["decision"] == "INCONCLUSIVE" and "reference encoder" in d["branch"]
    d = decide(summary(low, dino=head(0.65, 0.6, 0.7, 0.4, 0.3, 0.5), points=real), real, DECISION, {}, ["linear"])
    assert d["decision"] == "NO-GO" and "`dino`" in d["branch"]


def test_benchmark_check_states_whether_the_shuffled_controls_sit_at_chance():
    at_chance = summary(head(0.55, 0.45, 0.6, 0.3, 0.2, 0.4), shuffled=0.01)  # lower bound 0.01 <= chance 0.02
    check = benchmark_check(at_chance, POINTS, "synthetic")
    assert check["status"] == "at chance" and check["expected_at_chance"] and check["checked"] == 1
    prior = summary(head(0.55, 0.45, 0.6, 0.3, 0.2, 0.4), shuffled=0.3)
    check = benchmark_check(prior, POINTS, "something_else")
    assert check["status"] == "above chance" and not check["expected_at_chance"]
    assert check["above_chance"] == ["vit_l7/linear: 0.300 (chance 0.020)"]
    # A shuffled control that learns the prior's worth (how many boxes, how large; never where) is at chance.
    prior["vit_l7"]["prior"] = {"bbox_iou": 0.35}
    assert benchmark_check(prior, POINTS, "synthetic")["status"] == "at chance"
    prior["vit_l7"]["prior"] = {"bbox_iou": 0.25}
    assert benchmark_check(prior, POINTS, "synthetic")["above_chance"] == [
        "vit_l7/linear: 0.300 (chance 0.020, prior 0.250)"
    ]


def test_too_few_test_clips_is_inconclusive():
    """The clips the intervals resample come from the probe metrics (``n_clips``); below ``min_test_clips`` no
    verdict, whatever the intervals say; at the minimum the rule decides."""
    strong = head(0.55, 0.45, 0.6, 0.3, 0.2, 0.4)
    for n, expected in ((3, "INCONCLUSIVE"), (DECISION.min_test_clips, "GO")):
        d = decide(summary({**strong, "n_clips": n}), POINTS, DECISION, {}, ["linear"])
        assert d["decision"] == expected and d["test_clips"] == n
    few = decide(summary({**strong, "n_clips": 3}), POINTS, DECISION, {}, ["linear"])
    assert "too few test clips (3)" in few["branch"]
    assert few["checks"][0]["text"].endswith("(`decision.min_test_clips`): 3, fails")  # a count, not 3.000
    # The fewest over the pre-merge points decides; the minimum comes from params.
    s = summary({**strong, "n_clips": 12}, {**strong, "n_clips": 8})
    assert decide(s, POINTS, DECISION, {}, ["linear"])["test_clips"] == 8
    assert decide(s, POINTS, DECISION.model_copy(update={"min_test_clips": 8}), {}, ["linear"])["decision"] == "GO"


def test_bad_min_test_clips_stops_naming_the_key():
    from foresight_lib.errors import ForesightError

    for bad in (1, 0, "many", 2.5):
        with pytest.raises(ForesightError, match=r"^params: decision.min_test_clips: [^\n]*$"):
            parse_params({"decision": {"min_test_clips": bad}})


def test_an_investigate_straddling_a_threshold_states_the_clips_that_would_separate_it():
    """bbox IoU 0.25 [0.15, 0.35] straddles nogo_iou 0.2; at per-clip SD 0.15 the t half-width
    e(n) * 0.15 / sqrt(n) drops below the distance 0.05 at n = 38 (scipy.stats' t as reference)."""
    from scipy.stats import t as student_t

    row = {**head(0.25, 0.15, 0.35, 0.1, 0.0, 0.2, sel=(0.25, 0.05, 0.45)), "n_clips": 10}
    row |= {"bbox_iou_clip_sd": 0.15, "selectivity_clip_sd": float("nan")}
    d = decide(summary(row), POINTS, DECISION, {}, ["linear"])
    assert d["decision"] == "INVESTIGATE"
    by_key = {e["threshold_key"]: e for e in d["separate"]}
    assert set(by_key) == {"decision.nogo_iou", "decision.selectivity_margin"}  # 0.4 lies outside [0.15, 0.35]
    iou = by_key["decision.nogo_iou"]
    half = [student_t.ppf(0.975, n - 1) * (n / (n - 1)) ** 0.5 * 0.15 / n**0.5 for n in range(2, 100)]
    expected = next(n for n, h in zip(range(2, 100), half) if h < 0.05)
    assert iou["clips_needed"] == expected and iou["test_clips"] == 10 and iou["value"] == 0.25
    assert by_key["decision.selectivity_margin"]["clips_needed"] is None  # no per-clip SD measured
    # A GO states nothing of the kind.
    assert "separate" not in decide(summary(head(0.55, 0.45, 0.6, 0.3, 0.2, 0.4)), POINTS, DECISION, {}, ["linear"])


def test_the_report_states_the_clips_per_split_and_what_would_separate_a_straddled_threshold():
    """render_markdown on a decision built by ``decide``, with the cost of the larger run from :mod:`foresight_lib.cost`
    (the default profile at the clip count whose test split holds the clips needed)."""
    from foresight_lib.cost import clips_for_test, estimate, with_clips
    from foresight_lib.report.build import separation_cost
    from foresight_lib.report.facts import RunFacts
    from foresight_lib.report.markdown import render_markdown
    from foresight_lib.report.summary import as_rows
    from foresight_lib.report.tables import adapter_table, point_table

    params = parse_params({"points": {n: p.model_dump() for n, p in POINTS.items()}})
    row = {**head(0.25, 0.15, 0.35, 0.1, 0.0, 0.2, sel=(0.25, 0.15, 0.35)), "n_clips": 10}
    row |= {"bbox_iou_clip_sd": 0.15, "selectivity_clip_sd": 0.15}
    s = summary(row)
    d = decide(s, params.points, params.decision, {}, ["linear"])
    (entry,) = d["separate"]  # selectivity's interval [0.15, 0.35] lies above the margin 0.1
    entry |= separation_cost(params, entry["clips_needed"])
    total = clips_for_test(38, params.data)
    assert entry["total_clips"] == total
    assert entry["gpu_hours"] == pytest.approx(estimate(with_clips(params, total)).gpu_hours)
    facts = RunFacts("synthetic", {"train": 29, "val": 9, "test": 10}, None, None, None, {}, [], [])
    d |= {"clips_per_split": facts.n_clips, "benchmark": benchmark_check(s, params.points, "synthetic")}
    rows = as_rows(s, params.points)
    text = render_markdown(d, point_table(rows, params.points), adapter_table({}, {}), facts, ["linear"], params)
    assert "- Clips per split: train 29, val 9, test 10" in text and "the rule needs at least 10" in text
    assert f"about 38 test clips (now 10) would put the interval on one side: a run of {total} clips in all" in text
    assert "`decision.nogo_iou` 0.2" in text and "GPU-hours" in text


def test_a_straddle_the_t_bound_already_clears_is_put_on_the_skewed_bound():
    from foresight_lib.report.markdown import separation_lines

    entry = {
        "point": "vit_l7",
        "head": "dense",
        "metric": "selectivity",
        "value": 0.25,
        "ci": [0.05, 0.35],
        "threshold": 0.1,
        "threshold_key": "decision.selectivity_margin",
        "clip_sd": 0.15,
        "test_clips": 10,
        "clips_needed": 7,
    }
    (line,) = separation_lines([entry])
    assert "the t bound would clear it from 7 test clips (now 10)" in line and "percentile bound" in line
    (line,) = separation_lines([{**entry, "clips_needed": None}])
    assert "no number of test clips separates them" in line


STEP_POINTS = parse_params(
    {
        "points": {
            **{n: p.model_dump() for n, p in POINTS.items()},
            "oracle_steps": {"kind": "oracle", "stride": 56, "target": "steps"},
        }
    }
).points


def steps_row(step, position=0.6, task=0.4):
    """A point's step probes: accuracy, its interval over videos and the chance level per task."""
    out = {"n_videos": 8}
    for name, value in (("step", step), ("position", position), ("task", task)):
        out |= {
            f"{name}_accuracy": value,
            f"{name}_accuracy_lo": value - 0.1,
            f"{name}_accuracy_hi": min(1.0, value + 0.05),
            f"{name}_chance": 0.3,
        }
    return out


def test_the_gate_reads_only_box_oracles_and_a_steps_oracle_gates_the_step_probes():
    s = summary(head(0.55, 0.45, 0.6, 0.3, 0.2, 0.4))
    s["vit_l7"]["steps"] = steps_row(0.7)
    # a steps oracle's box heads read nothing: it holds no boxes, and must not close the box gate
    s["oracle_steps"] = {"linear": head(0.0, 0.0, 0.0, 0.0, 0.0, 0.0), "steps": steps_row(1.0, 1.0)}
    d = decide(s, STEP_POINTS, DECISION, {}, ["linear"])
    assert d["oracle"]["points"] == ["oracle"] and d["oracle"]["status"] == "pass" and d["decision"] == "GO"
    assert d["steps"]["gate"] == {
        "points": ["oracle_steps"],
        "threshold": DECISION.oracle_min_step_accuracy,
        "step_accuracy": 1.0,
        "status": "pass",
    }
    assert d["steps"]["points"]["vit_l7"]["step_accuracy"] == 0.7 and "not part of it" in d["criteria"]["steps"]
    s["oracle_steps"]["steps"] = steps_row(0.5)
    d = decide(s, STEP_POINTS, DECISION, {}, ["linear"])
    assert d["steps"]["gate"]["status"] == "fail" and d["decision"] == "GO"  # the step gate never moves the verdict
    no_step_oracle = {n: p for n, p in STEP_POINTS.items() if n != "oracle_steps"}
    del s["oracle_steps"]
    assert decide(s, no_step_oracle, DECISION, {}, ["linear"])["steps"]["gate"]["status"] == "missing"
    assert "steps" not in decide(summary(head(0.55, 0.45, 0.6, 0.3, 0.2, 0.4)), POINTS, DECISION, {}, ["linear"])


def test_without_boxes_the_spatial_verdict_is_not_applicable_and_the_report_shows_the_step_probes():
    from foresight_lib.report.build import _sheet_points
    from foresight_lib.report.facts import RunFacts
    from foresight_lib.report.markdown import render_markdown
    from foresight_lib.report.summary import as_rows
    from foresight_lib.report.tables import adapter_table, point_table

    params = parse_params({"points": {n: p.model_dump() for n, p in STEP_POINTS.items()}})
    reason = "no boxes in data/annotations.parquet: the box and motion probes need boxes; none was trained"
    s = {name: {"skipped": reason} for name in params.points}
    s["vit_l7"]["steps"] = steps_row(0.7)
    s["oracle_steps"]["steps"] = steps_row(1.0, 1.0)
    d = decide(s, params.points, params.decision, {}, ["linear"])
    assert d["decision"] == "NOT APPLICABLE" and reason in d["branch"] and reason in d["reason"]
    assert d["oracle"]["status"] == "missing" and d["steps"]["gate"]["status"] == "pass"
    facts = RunFacts("coin", {"train": 12, "val": 4, "test": 4}, None, None, None, {}, [], [])
    d |= {"clips_per_split": facts.n_clips, "benchmark": benchmark_check(s, params.points, "coin")}
    rows = as_rows(s, params.points)
    text = render_markdown(d, point_table(rows, params.points), adapter_table({}, {}), facts, ["linear"], params)
    assert (
        "## Decision: **NOT APPLICABLE**" in text and f"none (the spatial verdict is not applicable: {reason})" in text
    )
    assert "| step acc. (chance) | position acc. (chance) | task acc. (chance) |" in text
    vit_l7 = next(line for line in text.splitlines() if line.startswith("| `vit_l7`"))
    assert "| 0.700 [0.600, 0.750] (0.300) | 0.600 [0.500, 0.650] (0.300) | 0.400 [0.300, 0.450] (0.300) |" in vit_l7
    assert "- Step gate (steps oracle `oracle_steps`): pass; step accuracy 1.000 (threshold 0.9" in text
    assert "the proposal's temporal criterion, beside the spatial rule and not part of it" in text
    assert _sheet_points(rows, "linear") == []  # no box sheet without boxes (the merger's row has no head either)
