"""Real inputs are dependencies of `frames`: changing the annotation file or a video in place reruns it, and DVC's
run-cache never restores frames built from other inputs (four tiny Something-Else videos, `dvc repro frames`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_data_annotations import se_frames, write_video
from test_workflow import make_repo

pytestmark = pytest.mark.slow


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(["dvc", *args], cwd=repo, capture_output=True, text=True, env=env)
    assert res.returncode == 0, f"dvc {' '.join(args)}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return res.stdout


def _names(repo: Path) -> list[str]:
    return pd.read_parquet(repo / "data" / "clips.parquet")["name"].tolist()


def test_changed_inputs_rerun_frames_and_the_run_cache_restores_only_matching_frames(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("1", "2", "3", "4"):
        write_video(videos / f"{name}.webm", "libvpx-vp9", {"lossless": "1"})
    annotations = tmp_path / "boxes.json"
    every = json.dumps({name: se_frames(name, range(0, 30, 3)) for name in ("1", "2", "3", "4")})
    fewer = json.dumps({name: se_frames(name, range(0, 30, 3)) for name in ("2", "3", "4")})
    annotations.write_text(every)
    data = {
        "source": "something_else",
        "video_dir": str(videos),
        "annotations": str(annotations),
        "height": 224,
        "width": 224,
        "max_skipped_fraction": 0.0,
    }
    (tmp_path / "repo").mkdir()
    repo = make_repo(tmp_path / "repo", {"data": data})
    _dvc(repo, "repro", "frames")
    assert _names(repo) == ["1", "2", "3", "4"]
    assert "frames" not in json.loads(_dvc(repo, "status", "--json", "frames"))

    annotations.write_text(fewer)  # in place: the same path, other content
    assert "frames" in json.loads(_dvc(repo, "status", "--json", "frames"))
    _dvc(repo, "repro", "frames")
    assert _names(repo) == ["2", "3", "4"], "frames built from the earlier annotation file"

    annotations.write_text(every)  # back: the run-cache may restore, but only frames built from these inputs
    _dvc(repo, "repro", "frames")
    assert _names(repo) == ["1", "2", "3", "4"]

    before = (repo / "data" / "frames.zarr").stat().st_mtime_ns
    write_video(videos / "1.webm", "libvpx-vp9", {"lossless": "1", "g": "5"})  # the same frames, re-encoded
    assert "frames" in json.loads(_dvc(repo, "status", "--json", "frames")), "a changed video must rerun frames"
    assert "Running stage 'frames'" in _dvc(repo, "repro", "frames")
    assert (repo / "data" / "frames.zarr").stat().st_mtime_ns != before
