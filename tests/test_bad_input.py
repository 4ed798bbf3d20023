"""Bad input never costs outputs: each of six ordinary mistakes stops `dvc repro` at the `validate` gates with one
line naming the params key, and leaves data/, features/, probes/ and metrics/ byte-identical.

A small pipeline (3 synthetic clips at 224x224; the oracle point and the tiny Qwen2.5-VL's ViT block 1, one
linear probe) is built once in a temporary repository; then each mistake is applied and `dvc repro` is run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from test_workflow import make_repo

pytestmark = pytest.mark.slow

TARGETS = ("probe@oracle", "extract@vit_l1")
PROFILE = {
    "data": {"height": 224, "width": 224, "synthetic": {"n_clips": 3}},
    "points": {"oracle": {"kind": "oracle", "stride": 14}, "vit_l1": {"kind": "vit_block", "layer": 1}},
    "probe": {
        "heads": ["linear"],
        "steps": 2,
        "val_every": 1,
        "temporal_epochs": 1,
        "bootstrap": 10,
        "bootstrap_map": 5,
    },
    "adapter": {"single": {}, "dual_stream": {}, "multi_scale": {}},
}
KEPT = ("data", "features", "probes", "metrics")
ONE_CLIP = json.dumps({"1": [{"name": "1/0001.jpg", "labels": []}]})  # Something-Else layout, video 1.webm


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["dvc", *args], cwd=repo, capture_output=True, text=True, env=env)


def _files(repo: Path) -> dict[str, bytes]:
    return {
        str(f.relative_to(repo)): f.read_bytes()
        for d in KEPT
        for f in sorted((repo / d).rglob("*"))
        if f.is_file() and f.name != ".gitignore"
    }


def _real(repo: Path, annotations: str, videos_exist: bool = True) -> Callable[[dict], None]:
    """A mistake on a real source: the annotations as given, the video directory there or not."""

    def apply(params: dict) -> None:
        videos = repo.parent / f"{repo.name}_videos"
        videos.mkdir(exist_ok=True)
        (videos / "1.webm").write_bytes(b"\x1a\x45\xdf\xa3 not decoded by the check")  # only its name is read
        ann = repo.parent / f"{repo.name}_annotations.json"
        ann.write_text(annotations)
        params["data"] |= {
            "source": "something_else",
            "video_dir": str(videos if videos_exist else repo.parent / "no_such_dir"),
            "annotations": str(ann),
        }

    return apply


def _set(path: tuple[str, ...], value: object) -> Callable[[dict], None]:
    def apply(params: dict) -> None:
        section = params
        for key in path[:-1]:
            section = section[key]
        section[path[-1]] = value

    return apply


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    repo = make_repo(tmp_path_factory.mktemp("bad_input"), PROFILE)
    res = _dvc(repo, "repro", *TARGETS)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return repo


def test_bad_input_never_costs_outputs(built: Path) -> None:
    repo = built
    before = _files(repo)
    assert any(k.startswith("features/vit_l1.zarr") for k in before) and "metrics/probe/oracle.json" in before
    original = (repo / "params.yaml").read_text()
    mistakes: dict[str, tuple[Callable[[dict], None], str]] = {
        "a typo'd key": (_set(("probe", "epoch"), 2), "probe.epoch: unknown key"),
        "a wrong type": (_set(("extract", "batch_frames"), "18"), "extract.batch_frames"),
        "a layer past the model's depth": (_set(("points", "vit_l1", "layer"), 40), "points.vit_l1.layer: 40"),
        "a data.video_dir that does not exist": (_real(repo, ONE_CLIP, videos_exist=False), "data.video_dir"),
        "an empty annotations file": (_real(repo, ""), "data.annotations"),
        "{} as annotations": (_real(repo, "{}"), "data.annotations"),
    }
    for mistake, (apply, key) in mistakes.items():
        params = yaml.safe_load(original)
        apply(params)
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        res = _dvc(repo, "repro", *TARGETS)
        assert res.returncode != 0, f"{mistake}: dvc repro passed"
        errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and key in errors[0], f"{mistake}:\n{res.stderr[-2000:]}"
        assert "Traceback" not in res.stderr, f"{mistake}:\n{res.stderr[-2000:]}"
        ran = [line for line in res.stdout.splitlines() if line.startswith("Running stage")]
        assert all("'validate" in line for line in ran), f"{mistake}: ran {ran}"
        assert _files(repo) == before, f"{mistake}: the outputs changed"
    (repo / "params.yaml").write_text(original)
    res = _dvc(repo, "repro", *TARGETS)
    assert res.returncode == 0 and "Running stage 'frames'" not in res.stdout, res.stdout[-2000:]
    assert _files(repo) == before
