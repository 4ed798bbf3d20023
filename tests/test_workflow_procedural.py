"""The procedural profile through DVC: the synthetic COIN-format set read by the COIN reader, a dataset without boxes
whose probe stages skip the spatial probes with a reason and run the step probes, and a report that says the spatial
verdict is not applicable and shows the step accuracies.

The profile is ``profiles/procedural.yaml`` made small: 12 tiny videos (224x224, 8 fps), the steps oracle and the
pixels point, one linear head, a few optimiser steps, no adapters.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_workflow import _run, make_repo

from foresight_lib.tools.synthetic_coin import write_synthetic_coin

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_the_procedural_profile_runs_step_probes_and_reports_no_spatial_verdict(tmp_path):
    coin = write_synthetic_coin(tmp_path / "procedural", 12, seed=1, height=224, width=224, fps=8).parent
    profile = yaml.safe_load((ROOT / "profiles/procedural.yaml").read_text())
    profile["data"] |= {"video_dir": str(coin / "videos"), "annotations": str(coin / "COIN.json")}
    profile["points"] = {k: v for k, v in profile["points"].items() if k in ("oracle_steps", "pixels")}
    profile["probe"] |= {"heads": ["linear"], "steps": 20, "val_every": 5, "temporal_epochs": 2, "bootstrap": 50}
    profile["adapter"] |= {"single": {}, "dual_stream": {}, "multi_scale": {}}
    (tmp_path / "repo").mkdir()
    repo = make_repo(tmp_path / "repo", profile)
    for d in ("metrics/recon", "metrics/adapter", "adapters"):  # the report's directory deps, as a clone holds them
        (repo / d).mkdir(parents=True, exist_ok=True)
    out = _run(repo, "dvc", "repro", "report")
    assert "NOT APPLICABLE" in out, out[-3000:]
    summary = json.loads((repo / "metrics/summary.json").read_text())
    oracle, pixels = summary["oracle_steps"], summary["pixels"]
    assert oracle["skipped"].startswith("no boxes in") and "linear" not in oracle
    assert oracle["steps"]["step_accuracy"] >= 0.9 and pixels["steps"]["step_chance"] is not None
    report = (repo / "reports/phase1.md").read_text()
    assert "step acc." in report and "no boxes in" in report
