"""Step probes on a tiny COIN-format set written here: the steps oracle reads its steps and their order back, its
shuffled control sits at chance, both with intervals over videos."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import small_params

from foresight_lib.compare import compare
from foresight_lib.data.frames import write_frames
from foresight_lib.extract.points import make_extractor
from foresight_lib.extract.writer import write_point
from foresight_lib.metrics.temporal import majority_chance
from foresight_lib.params import ExtractParams, ModelParams, OraclePoint, ProbeParams
from foresight_lib.probes.run import run_probes
from foresight_lib.report.summary import PointRow, point_row
from foresight_lib.tools.synthetic_coin import write_synthetic_coin

VIDEOS = 20  # 12 / 4 / 4 videos per split: an interval over 4 test videos


@pytest.fixture(scope="module")
def step_run(tmp_path_factory) -> dict:
    """The probe stage's metrics of the steps oracle point of 20 synthetic procedural videos (32x32 px)."""
    root = tmp_path_factory.mktemp("steps")
    write_synthetic_coin(root / "coin", VIDEOS, seed=3, height=32, width=32, fps=8)
    data = small_params(
        data={
            "source": "coin",
            "height": 224,
            "width": 224,
            "annotations": str(root / "coin" / "COIN.json"),
            "video_dir": str(root / "coin" / "videos"),
        }
    ).data
    frames = write_frames(data, root / "data", progress=False)
    point = OraclePoint(kind="oracle", stride=56, target="steps")
    extractor = make_extractor("steps", point, ModelParams(), ExtractParams(), 224, 224, 9, steps_path=frames.steps)
    write_point(extractor, frames.frames, root / "oracle.zarr", None, progress=False)
    return run_probes(root / "oracle.zarr", frames.root, ProbeParams(), None, root / "live", None, None)


def test_steps_oracle_reads_near_one_and_its_shuffled_control_sits_at_chance(step_run):
    assert step_run["skipped"].startswith("no boxes in")  # the spatial probes skip with their reason
    for task in ("step", "position"):
        m, control = step_run["steps"][task], step_run["shuffled"]["steps"][task]
        lo, hi = m["accuracy_ci"]
        assert m["accuracy"] >= 0.95 and lo > m["chance"] and lo <= m["accuracy"] <= hi, (task, m)
        c_lo, c_hi = control["accuracy_ci"]
        assert c_lo <= control["chance"] <= c_hi and control["accuracy"] < lo, (task, control)
        assert m["n_videos"] == control["n_videos"] == 4
    assert step_run["steps"]["position"]["chance"] == pytest.approx(0.5, abs=0.05)
    # the synthetic tasks share their step labels, so the step alone names the task only in part
    task = step_run["steps"]["task"]
    assert task["n_classes"] == 4 and 0.0 <= task["accuracy_ci"][0] <= task["accuracy"] <= task["accuracy_ci"][1]


def test_majority_chance_is_the_test_rate_of_trains_most_frequent_class():
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 3, 50), rng.integers(0, 3, 40)
    counts = [(train == k).sum() for k in range(3)]
    majority = min(k for k in range(3) if counts[k] == max(counts))
    assert majority_chance(train, test) == sum(int(t == majority) for t in test) / len(test)
    assert majority_chance(np.array([1, 0]), np.array([0, 0, 1])) == pytest.approx(2 / 3)  # tie: smallest id


def test_step_accuracies_reach_the_summary_with_intervals_and_chance(step_run):
    point = OraclePoint(kind="oracle", stride=56, target="steps")
    row = point_row("oracle_steps", point, step_run, None, ["linear", "dense"])
    out = row.to_json()
    for task in ("step", "position", "task"):
        probe = step_run["steps"][task]
        assert out["steps"][f"{task}_accuracy"] == probe["accuracy"]
        assert [out["steps"][f"{task}_accuracy_lo"], out["steps"][f"{task}_accuracy_hi"]] == probe["accuracy_ci"]
        assert out["steps"][f"{task}_chance"] == probe["chance"]
        assert out["shuffled"]["steps"][f"{task}_accuracy"] == step_run["shuffled"]["steps"][task]["accuracy"]
    assert out["skipped"] == step_run["skipped"] and out["steps"]["n_videos"] == 4
    assert PointRow.from_json("oracle_steps", point, out).to_json() == out
    table = compare({"oracle_steps": out, "again": out}, "oracle_steps", "again")
    assert "step accuracy (chance)" in table and "position accuracy (chance)" in table and "task accuracy" in table
