"""A shared DVC cache: feature stores pushed to a remote come back in a fresh clone, and nothing reruns.

A local-directory remote stands in for S3/SSH (same commands). Small profile, two stages (frames and
extract@pixels, 3 clips at 224x448), in a temporary git repository set up as tests/test_workflow.py does.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml
from test_workflow import PROFILE, ROOT, _ran, _run, overlay

pytestmark = pytest.mark.slow


def _files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def test_push_clone_pull_and_nothing_reruns(tmp_path: Path) -> None:
    repo, remote, clone = tmp_path / "repo", tmp_path / "remote", tmp_path / "clone"
    repo.mkdir()
    for item in ("dvc.yaml", "stages", "foresight_lib"):
        src = ROOT / item
        (
            shutil.copytree(src, repo / item, ignore=shutil.ignore_patterns("__pycache__"))
            if src.is_dir()
            else shutil.copy(src, repo / item)
        )
    params = overlay(yaml.safe_load((ROOT / "params.yaml").read_text()), yaml.safe_load(PROFILE.read_text()))
    params["data"]["synthetic"]["n_clips"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(repo, sys.executable, "-m", "foresight_lib.pipeline")
    _run(repo, "git", "init", "-q")
    for key, value in (("user.email", "test@foresight"), ("user.name", "foresight test")):
        _run(repo, "git", "config", key, value)
    _run(repo, "dvc", "init", "-q")
    _run(repo, "dvc", "config", "core.analytics", "false")
    _run(repo, "dvc", "config", "core.check_update", "false")
    _run(repo, "dvc", "remote", "add", "-d", "shared", str(remote))  # a team: s3://bucket/foresight or ssh://host/path
    assert _ran(_run(repo, "dvc", "repro", "extract@pixels")) == {
        "validate",
        "validate_data",
        "frames",
        "extract@pixels",
    }
    _run(repo, "git", "add", "-A")  # dvc.lock, .dvc/config and the cache: false metrics go to git
    _run(repo, "git", "commit", "-qm", "features")
    _run(repo, "dvc", "push")

    _run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / "features" / "pixels.zarr").exists()
    _run(clone, "dvc", "pull", "--with-deps", "extract@pixels")  # (a bare `dvc pull` once every stage has run)
    assert _files(clone / "features" / "pixels.zarr") == _files(repo / "features" / "pixels.zarr")
    assert _files(clone / "data" / "frames.zarr") == _files(repo / "data" / "frames.zarr")
    assert _ran(_run(clone, "dvc", "repro", "extract@pixels")) == set(), "a pulled store must not be recomputed"
    assert "up to date" in _run(clone, "dvc", "status", "extract@pixels")
