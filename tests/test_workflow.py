"""The DVC workflow users live in, end to end on a small profile in a temporary git repository.

`dvc repro` from scratch; a second `dvc repro` runs nothing, nor does a probe rerun with the same numbers; editing a module that only `report` imports changes
only `report`, and editing params.py (whose defaults every stage reads) changes every stage; a killed `frames`
run that DVC restores from its cache leaves its partial store until the next stage starts; changing one point's
layer changes (`dvc status`) only stages that read that point and reruns only its chain, the adapter that reads it
(`dual`; not `multi`, whose generated multi_scale stages read another point) and the report;
`dvc metrics diff` prints one row per point and metric;
`dvc exp run -S` on a probe parameter reruns probes but no extraction, and `dvc exp show` lists the experiment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILE = Path(__file__).with_name("profiles") / "small.yaml"

pytestmark = pytest.mark.slow(seconds=280)  # the longest file: it starts first (conftest.py)


def _run(repo: Path, *cmd: str, stdout_only: bool = False) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout if stdout_only else res.stdout + res.stderr


def _ran(output: str) -> set[str]:
    """The stages `dvc repro` / `dvc exp run` actually ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def _changed(repo: Path) -> set[str]:
    """The stages `dvc status` reports as changed."""
    return set(json.loads(_run(repo, "dvc", "status", "--json", stdout_only=True)))


def _kill_frames_midway(repo: Path) -> None:
    """`dvc repro -f frames`, SIGKILLed (dvc and the stage) once the first clip is done."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    dvc = subprocess.Popen(
        ["dvc", "repro", "-f", "frames"],
        cwd=repo,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    progress = repo / "data" / "frames.zarr.partial" / "progress.json"
    while dvc.poll() is None:
        try:
            if json.loads(progress.read_text())["done"]:
                os.killpg(dvc.pid, signal.SIGKILL)
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    assert dvc.wait() == -signal.SIGKILL, "frames ended before the kill"


REPLACED = {("points",), ("adapter", "single"), ("adapter", "dual_stream"), ("adapter", "multi_scale")}  # whole


def overlay(base: dict, profile: dict, path: tuple[str, ...] = ()) -> dict:
    """``params.yaml`` with the profile's values (DVC needs every declared key present, so start from the full file)."""
    out = dict(base)
    for key, value in profile.items():
        here = (*path, key)
        out[key] = (
            overlay(base.get(key, {}), value, here) if isinstance(value, dict) and here not in REPLACED else value
        )
    return out


def make_repo(repo: Path, profile: dict) -> Path:
    """A git + DVC repository in ``repo``: this checkout's pipeline and code, params.yaml with ``profile`` laid over
    the defaults, dvc.yaml's generated stages rewritten for it (as after copying a profile), one commit."""
    for item in ("dvc.yaml", "stages", "foresight_lib", "benchmarks"):  # benchmarks: the rates the report costs with
        src = ROOT / item
        (
            shutil.copytree(src, repo / item, ignore=shutil.ignore_patterns("__pycache__"))
            if src.is_dir()
            else shutil.copy(src, repo / item)
        )
    params = overlay(yaml.safe_load((ROOT / "params.yaml").read_text()), profile)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(repo, sys.executable, "-m", "foresight_lib.pipeline")
    _run(repo, "git", "init", "-q")
    _run(repo, "git", "config", "user.email", "test@foresight")
    _run(repo, "git", "config", "user.name", "foresight test")
    _run(repo, "dvc", "init", "-q")
    _run(repo, "dvc", "config", "core.analytics", "false")
    _run(repo, "dvc", "config", "core.check_update", "false")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "pipeline")  # dvclive (3.49) fails in a repository without commits
    return repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("workflow"), yaml.safe_load(PROFILE.read_text()))


def test_the_dvc_workflow(repo: Path) -> None:
    stages = set(_run(repo, "dvc", "stage", "list", "--name-only").split())
    first = _ran(_run(repo, "dvc", "repro"))
    assert first == stages and {"frames", "extract@vit_l7", "probe@vit_l7", "report"} <= first
    report = (repo / "reports" / "phase1.md").read_text()
    assert "## Decision: **" in report and "](sheets/dual.png)" in report
    assert {"adapter.dual.tsv", "vit_l7.linear.tsv"} <= {f.name for f in (repo / "reports" / "curves").iterdir()}
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert set(summary) == {
        "oracle",
        "pixels",
        "vit_embed",
        "vit_l7",
        "merger",
        "adapter:dual",
        "adapter:single_vit_embed",
        "adapter:multi",
    }
    assert "| `single_vit_embed` | A |" in report and "| `dual` | B |" in report and "| `multi` | C |" in report
    assert "Oracle (`oracle`)" in report and "selectivity" in report
    assert {"spatial_iou", "psnr", "ssim", "parameters"} <= set(summary["adapter:dual"])
    plots = json.loads(_run(repo, "dvc", "plots", "show", "--json", stdout_only=True))
    assert not plots.get("errors") and {
        "bbox_iou_by_point",
        "map50_by_point",
        "reports/boxes.png",
        "reports/curves/adapter.dual.tsv",
        "reports/sheets/dual.png",
    } <= set(plots["data"])
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "baseline")

    assert _ran(_run(repo, "dvc", "repro")) == set(), "a second repro must run nothing"
    assert _ran(_run(repo, "dvc", "repro", "-f", "-s", "probe@vit_l7")) == {"probe@vit_l7"}
    assert _changed(repo) == set(), "a probe rerun with the same numbers leaves everything downstream cached"

    for module, expected in (("foresight_lib/report/plots.py", {"report"}), ("foresight_lib/params.py", stages)):
        source = (repo / module).read_text()
        (repo / module).write_text(source + "# an edit\n")
        assert _changed(repo) == expected, f"editing {module}"
        (repo / module).write_text(source)
    assert _changed(repo) == set()

    _kill_frames_midway(repo)  # then DVC restores frames from its cache without running it: the partial stays
    restored = _run(repo, "dvc", "repro")
    assert "Stage 'frames' is cached - skipping run" in restored and _ran(restored) == set()
    assert (repo / "data" / "frames.zarr.partial").is_dir()

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["points"]["vit_l7"]["layer"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # dvc status lists the stages whose own params or deps changed, each a reader of points.vit_l7: validate (all
    # of params.yaml), extract@vit_l7, the adapter that reads it, and report (all points: their rows and the cost);
    # not the multi_scale adapter `multi`, which reads vit_embed only (a foreach stage would depend on all points)
    assert _changed(repo) == {"validate", "extract@vit_l7", "train_dual_stream@dual", "report"}
    dual = {"train_dual_stream@dual", "decode_dual_stream@dual", "recon_dual_stream@dual"}  # reads vit_l7
    assert _ran(_run(repo, "dvc", "repro")) == {"validate", "extract@vit_l7", "probe@vit_l7", "report", *dual}
    assert not (repo / "data" / "frames.zarr.partial").exists(), "the next stage to start removes the partial"

    diff = json.loads(
        _run(repo, "dvc", "metrics", "diff", "--targets", "metrics/summary.json", "--json", stdout_only=True)
    )
    rows = diff["metrics/summary.json"]
    assert rows["vit_l7.layer"]["old"] == 7 and rows["vit_l7.layer"]["new"] == 3, rows  # the point says its layer
    assert not any("frames_per_second" in key or "peak_memory" in key for key in rows), "timing is not science"
    assert all(key.split(".")[0] in ("vit_l7", "adapter:dual") for key in rows), "only the changed point's rows differ"
    table = _run(repo, "dvc", "metrics", "diff", "--targets", "metrics/summary.json", "--all")
    for point in ("pixels", "vit_embed", "vit_l7", "merger"):
        assert re.search(rf"^\S*summary.json\s+{point}\.linear\.bbox_iou\s", table, re.M), table
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "vit_l7 -> layer 3")

    ran = _ran(_run(repo, "dvc", "exp", "run", "-n", "more-steps", "-S", "probe.steps=6"))
    assert {f"probe@{p}" for p in ("oracle", "pixels", "vit_embed", "vit_l7", "merger")} <= ran and "report" in ran
    assert not any(s.startswith(("extract@", "frames", "latents")) for s in ran), ran
    assert "more-steps" in _run(repo, "dvc", "exp", "show", "--csv")
