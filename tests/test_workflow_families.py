"""Two VLM families side by side through DVC (the proposal's Appendix D question): a tiny Qwen2-VL and a tiny
Qwen3-VL named in ``models:``, a ViT block of the one and a deepstack level of the other extracted, probed and
reported in one run, the report's family table reading them by kind and model.

The profile is ``tests/profiles/small.yaml`` cut to those two points (no controls: this is about extraction and the
report's layout, not a verdict), one linear head, no adapters.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
import zarr
from test_workflow import _run, make_repo

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_two_families_extract_probe_and_report_side_by_side(tmp_path):
    profile = yaml.safe_load((ROOT / "tests/profiles/small.yaml").read_text())
    profile["models"] = {"q2": {"family": "qwen2_vl", "source": "tiny"}, "q3": {"family": "qwen3_vl", "source": "tiny"}}
    profile["points"] = {
        "q2_vit_l7": {"kind": "vit_block", "layer": 7, "model": "q2"},
        "q3_deepstack_last": {"kind": "deepstack", "layer": -1, "model": "q3"},
    }
    profile["adapter"] |= {"single": {}, "dual_stream": {}, "multi_scale": {}}
    profile["eval"] |= {"detector_point": "q2_vit_l7", "detector_head": "linear"}
    assert profile["data"]["height"] % 32 == profile["data"]["width"] % 32 == 0  # Qwen3-VL's 32-pixel merge unit
    (tmp_path / "repo").mkdir()
    repo = make_repo(tmp_path / "repo", profile)
    for d in ("metrics/recon", "metrics/adapter", "adapters"):  # the report's directory deps, as a clone holds them
        (repo / d).mkdir(parents=True, exist_ok=True)
    out = _run(repo, "dvc", "repro", "report")
    for point in profile["points"]:
        assert f"extract@{point}" in out and f"probe@{point}" in out, point

    stores = {p: zarr.open_array(str(repo / "features" / f"{p}.zarr"), mode="r").attrs for p in profile["points"]}
    assert stores["q2_vit_l7"]["weights"]["family"] == "qwen2_vl"
    assert stores["q3_deepstack_last"]["weights"]["family"] == "qwen3_vl"
    assert stores["q3_deepstack_last"]["stride"] == 32 and stores["q2_vit_l7"]["stride"] == 14
    assert stores["q3_deepstack_last"]["definition"]["layer"] == 2  # -1 resolved at load: the last of 3 levels

    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert [summary[p]["family"] for p in ("q2_vit_l7", "q3_deepstack_last")] == ["qwen2_vl", "qwen3_vl"]
    for point in ("q2_vit_l7", "q3_deepstack_last"):
        assert 0.0 <= summary[point]["linear"]["bbox_iou"] <= 1.0, point

    decision = json.loads((repo / "reports/decision.json").read_text())
    families = decision["families"]
    assert list(families["models"]) == ["q2", "q3"]
    assert families["rows"]["deepstack"]["q2"] is None and "q3_deepstack_last" in families["rows"]["deepstack"]["q3"]
    report = (repo / "reports/phase1.md").read_text()
    assert "## VLM families side by side" in report
    assert "Qwen2-VL" in report and "Qwen3-VL" in report and "deepstack" in report
