"""The report describes the run it reports: a real-format (`something_else`) run with checkpoint weights, built from
hand-written stage records (the report stage reads only those, the frames' tables and, where present, predictions)."""

from __future__ import annotations

import json
import runpy
from dataclasses import replace
from pathlib import Path

import pandas as pd

from foresight_lib.params import Params, parse_params
from foresight_lib.report.build import build_report
from foresight_lib.report.facts import RunFacts
from foresight_lib.report.markdown import verdict_lines

POINTS = {
    "oracle": {"kind": "oracle", "stride": 14},
    "pixels": {"kind": "pixels"},
    "vit_l7": {"kind": "vit_block", "layer": 3},  # renamed layer: the report must show layer 3
    "vit_l7_random": {"kind": "vit_block", "layer": 3, "weights": "random"},
    "merger": {"kind": "merger"},
}
ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = {"oracle": "none (ground truth rasterised)", "pixels": "none (raw pixels)", "vit_l7_random": "random-init"}


def _head(iou: float, chance: float = 0.05) -> dict:
    ci = [iou - 0.05, iou + 0.05]
    return {
        "bbox_iou": iou,
        "bbox_iou_ci": ci,
        "bbox_iou_chance": chance,
        "map50_class_agnostic": iou / 2,
        "map50_class_agnostic_ci": [iou / 2 - 0.05, iou / 2 + 0.05],
    }


def _real_run(tmp_path: Path) -> tuple[Params, dict[str, Path]]:
    params = parse_params(
        {
            "data": {"source": "something_else", "video_dir": "/videos", "annotations": "/boxes.json"},
            "model": {"source": "/ckpt/Qwen2.5-VL-7B-Instruct"},
            "ltx": {"source": "/ckpt/LTX-Video"},
            "points": POINTS,
            "probe": {"heads": ["linear"]},
            "adapter": {"single": {}, "dual_stream": {}, "multi_scale": {}},
        }
    )
    dirs = {k: tmp_path / k for k in ("metrics", "probes", "features", "data", "reports", "adapters")}
    for d in dirs.values():
        d.mkdir()
    for sub in ("probe", "extract", "recon", "adapter"):
        (dirs["metrics"] / sub).mkdir()
    for name in POINTS:
        iou = {"oracle": 0.6, "pixels": 0.3}.get(name, 0.35)  # the oracle fails the gate: INCONCLUSIVE
        probe = {
            "point": {"weights": WEIGHTS.get(name, "checkpoint"), "stride": 14},
            "linear": _head(iou),
            "shuffled": {"linear": _head(0.3)},  # real data: the shuffled control sits far above chance
        }
        (dirs["metrics"] / "probe" / f"{name}.json").write_text(json.dumps(probe))
        extract = {"frames_per_second": 12.5, "peak_memory_bytes": 2**30, "memory_overhead_vs_merger": 1.43}
        (dirs["metrics"] / "extract" / f"{name}.json").write_text(json.dumps(extract))
    # Records of an adapter that is no longer configured (from an earlier synthetic run): never read.
    (dirs["metrics"] / "recon" / "single_merger.json").write_text("{}")
    (dirs["metrics"] / "adapter" / "single_merger.json").write_text("{}")
    pd.DataFrame({"clip": range(20), "split": ["train"] * 12 + ["val"] * 4 + ["test"] * 4}).to_parquet(
        dirs["data"] / "clips.parquet"
    )
    source = {"source": "something_else", "videos_annotated": 25, "videos_found": 20, "videos_used": 20}
    (dirs["data"] / "skipped.json").write_text(json.dumps({"skipped": [], "fraction": 0.0, "source_report": source}))
    return params, dirs


def test_a_real_format_run_is_reported_as_itself(tmp_path):
    params, dirs = _real_run(tmp_path)
    doc = build_report(
        params,
        metrics_dir=dirs["metrics"],
        probes_dir=dirs["probes"],
        features_dir=dirs["features"],
        data_dir=dirs["data"],
        reports_dir=dirs["reports"],
        adapters_dir=dirs["adapters"],
    )
    report = (dirs["reports"] / "phase1.md").read_text()
    first_screen = report.split("## Extraction points")[0]
    # Warnings name exactly the points whose weights are random.
    assert "the weights are random" not in report and "embedded default" not in report
    assert "Random weights (controls, not findings) at: `vit_l7_random` (random-init" in first_screen
    assert "`vit_l7`" not in first_screen.split("Random weights")[1].split("\n")[0]
    # Data wording follows data.source.
    assert "20 Something-Something v2 videos with Something-Else boxes (train 12, val 4, test 4)" in first_screen
    assert "synthetic" not in report
    # Only configured adapters are read; the stale records are named as ignored.
    assert "## Phase 2" not in report and "single_merger.json" in first_screen and "Ignored" in first_screen
    summary = json.loads((dirs["metrics"] / "summary.json").read_text())
    assert not any(k.startswith("adapter:") for k in summary)
    # The controls' message is data-aware.
    assert "Shuffled controls at chance: above chance (not expected on real data" in first_screen
    assert "measure what the prior gives" not in report
    # Advice is actionable: data.max_clips is unset and every video found is used.
    assert doc["decision"] == "INCONCLUSIVE" and "data.max_clips" not in report
    assert "every one of the 20 annotated videos found is used" in doc["branch"]
    # Every point shows its kind and layer (the name vit_l7 says 7, the params say 3).
    row = next(line for line in report.splitlines() if line.startswith("| `vit_l7` |"))
    assert "| vit_block, layer 3 |" in row and "| checkpoint |" in row
    # The first screen names the deciding point and head, its numbers and the bound that decided.
    assert (
        "**Deciding point and head**: `vit_l7` (vit_block, layer 3, Qwen2.5-VL), linear probe: bbox IoU 0.350"
        in first_screen
    )
    assert "the oracle gate needs the bbox IoU of the oracle point (linear probe, the best head) >= 0.85" in report
    # Timing lives in its own file, not in the summary.
    timing = json.loads((dirs["metrics"] / "timing.json").read_text())
    assert timing["vit_l7"]["frames_per_second"] == 12.5 and "frames_per_second" not in json.dumps(summary)
    assert json.loads((dirs["metrics"] / "decision.json").read_text())["point"] == "vit_l7"


def test_the_report_stage_prints_the_verdict_and_why(tmp_path, capsys):
    params, dirs = _real_run(tmp_path)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps(params.model_dump()))  # JSON is YAML
    report_stage = runpy.run_path(str(ROOT / "stages" / "report.py"), run_name="stage")["main"]
    report_stage(
        ["--params", str(params_file), *[a for k, d in dirs.items() for a in (f"--{k}", str(d))]],
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("verdict:  INCONCLUSIVE on 20 Something-Something v2 videos")
    assert any(line.startswith("deciding: `vit_l7` (vit_block, layer 3, Qwen2.5-VL), linear probe") for line in out)
    assert any(line.startswith("why:      the oracle gate needs") for line in out)
    assert out[-1] == f"report:   {dirs['reports']}/phase1.md" and len(out) <= 12
    assert out == verdict_lines(
        json.loads((dirs["reports"] / "decision.json").read_text()), f"{dirs['reports']}/phase1.md"
    )


def test_warnings_and_advice_follow_the_run():
    facts = RunFacts(
        data_source="synthetic",
        n_clips={"train": 3, "val": 1, "test": 1},
        max_clips=None,
        videos_found=None,
        videos_used=None,
        model_points={"vit_l7": "tiny-random", "merger": "tiny-random"},
        configured_adapters=[],
        ignored_files=[],
    )
    assert "the weights are random** at every model point: `vit_l7`, `merger` (tiny-random" in facts.weights_warning()
    mixed = replace(facts, model_points={"vit_l7": "checkpoint", "vit_l7_random": "random-init"})
    assert mixed.weights_warning().startswith("Random weights (controls, not findings) at: `vit_l7_random` (")
    assert "`vit_l7`" not in mixed.weights_warning()
    assert replace(facts, model_points={"vit_l7": "checkpoint"}).weights_warning() is None
    assert facts.more_clips() == "add clips (`data.synthetic.n_clips`, now 5)"
    capped = replace(facts, data_source="something_else", max_clips=5, videos_found=30, videos_used=5)
    assert capped.more_clips() == "raise `data.max_clips` (now 5; 30 annotated videos found, 5 used)"
    assert "data.max_clips" not in replace(capped, videos_used=30, max_clips=40).more_clips()
