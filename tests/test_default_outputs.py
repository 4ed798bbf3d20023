"""The embedded default's committed results are decisive about the pipeline (issue 15 item 8).

Reads the outputs `dvc repro` wrote for ``params.yaml`` and committed beside ``dvc.lock``: they must be the ones
the lock recorded (same bytes, same params), and they must show that the pipeline can tell space from its absence:
95% intervals of the pre-merge points and the ``pixels`` control narrower than 0.2, the oracle passing the gate,
the shuffled controls at chance, and the naive-order ablation below its raster twin.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from foresight_lib.params import load_params

ROOT = Path(__file__).resolve().parents[1]
MAX_WIDTH = 0.2


@pytest.fixture(scope="module")
def committed() -> dict:
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]["report"]
    return {
        "lock": lock,
        "summary": json.loads((ROOT / "metrics/summary.json").read_text()),
        "decision": json.loads((ROOT / "reports/decision.json").read_text()),
        "params": load_params(ROOT / "params.yaml"),
        "raw": yaml.safe_load((ROOT / "params.yaml").read_text()),
    }


def test_the_committed_results_are_the_ones_the_lock_recorded_for_params_yaml(committed):
    lock = committed["lock"]
    for out in lock["outs"]:
        if out["path"].endswith(".json"):
            assert hashlib.md5((ROOT / out["path"]).read_bytes()).hexdigest() == out["md5"], out["path"]
    for key, value in lock["params"]["params.yaml"].items():
        here = committed["raw"]
        for part in key.split("."):
            here = here[part]
        assert here == value, f"params.yaml {key} changed since the committed run: rerun dvc repro"


def test_intervals_are_narrow_the_oracle_passes_and_the_controls_sit_at_chance(committed):
    summary, decision, params = committed["summary"], committed["decision"], committed["params"]
    kinds = {name: p.kind for name, p in params.points.items()}
    raster = [
        n
        for n, k in kinds.items()
        if k in ("pixels", "vit_embed")
        or (k == "vit_block" and getattr(params.points[n], "order", "raster") == "raster")
    ]
    assert "pixels" in raster and any(kinds[n] == "vit_block" for n in raster)
    for name in raster:
        for head in params.probe.heads:
            m = summary[name][head]
            assert m["bbox_iou_hi"] - m["bbox_iou_lo"] < MAX_WIDTH, (name, head, m["bbox_iou_lo"], m["bbox_iou_hi"])
    for name, point in params.points.items():  # every point's prior row, every head's operating point
        if point.kind == "oracle":
            continue
        assert summary[name]["prior"]["bbox_iou"] is not None, name
        for head in params.probe.heads:
            assert len(summary[name][head]["operating_points"]) == len(params.probe.seeds), (name, head)
            assert summary[name][head]["selectivity_control"] in ("shuffled", "prior"), (name, head)
    report = (ROOT / "reports/phase1.md").read_text()
    assert "prior IoU (chance) x boxes" in report and " @ " in report
    assert decision["oracle"]["status"] == "pass", decision["oracle"]
    assert decision["benchmark"]["status"] == "at chance" and not decision["benchmark"]["above_chance"]
    naive = [n for n in kinds if getattr(params.points[n], "order", "raster") == "naive"]
    for name in naive:  # the proposal's reshape loses what the raster grid of the same block keeps
        twin = next(
            n for n in raster if kinds[n] == kinds[name] and params.points[n].layer == params.points[name].layer
        )
        assert summary[name]["dense"]["bbox_iou_hi"] < summary[twin]["dense"]["bbox_iou_lo"], (name, twin)
