import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import zarr
from helpers import small_params

from foresight_lib.data.clip import Skipped
from foresight_lib.data.frames import ClipSource, open_source, write_frames
from foresight_lib.data.synthetic import make_clip
from foresight_lib.errors import ForesightError


def _read(out):
    arr = zarr.open_array(out.frames, mode="r")
    return arr, pd.read_parquet(out.annotations), pd.read_parquet(out.clips)


def test_frames_store_holds_every_clip_and_its_ground_truth(tmp_path, params):
    out = write_frames(params.data, tmp_path, progress=False)
    arr, ann, clips = _read(out)
    d = params.data
    assert arr.shape == (6, 9, d.height, d.width, 3) and arr.dtype == np.uint8
    assert arr.chunks == (1, 9, d.height, d.width, 3)
    assert arr.attrs["source"] == "synthetic" and arr.attrs["seed"] == d.seed and arr.attrs["n_clips"] == 6
    assert arr.attrs["categories"] == ["circle", "square", "triangle", "cross"]
    assert not (tmp_path / "frames.zarr.partial").exists() and not (tmp_path / "frames.zarr" / "tables").exists()
    for i in (0, 5):
        clip = make_clip(d.seed, i, d.height, d.width, d.n_frames)
        assert np.array_equal(arr[i], clip.frames)
        mine = ann[ann["clip"] == i].reset_index(drop=True)
        assert np.allclose(mine[["x", "y", "w", "h"]].to_numpy(), clip.objects[["x", "y", "w", "h"]].to_numpy())
        assert (mine.category_id == mine.category.map({c: k + 1 for k, c in enumerate(arr.attrs["categories"])})).all()
    assert list(clips["clip"]) == list(range(6))
    assert set(clips.split) == {"train", "val", "test"}
    assert json.loads(out.skipped.read_text())["skipped"] == []


def test_splits_are_deterministic(tmp_path, params):
    a = write_frames(params.data, tmp_path / "a", progress=False)
    b = write_frames(params.data, tmp_path / "b", progress=False)
    assert pd.read_parquet(a.clips).equals(pd.read_parquet(b.clips))
    assert pd.read_parquet(a.annotations).equals(pd.read_parquet(b.annotations))


class _Crash(RuntimeError):
    pass


def _source_with(params, bad: dict[int, str] | None = None, crash_at: int | None = None) -> ClipSource:
    """The synthetic source, with some clips undecodable and an optional crash when loading clip ``crash_at``."""
    real = open_source(params.data)

    def load(i):
        if i == crash_at:
            raise _Crash(f"killed at clip {i}")
        if bad and i in bad:
            return Skipped(name=f"clip{i}", source=f"/videos/clip{i}.mp4", reason=bad[i])
        return real.load(i)

    return ClipSource(load=load, count=real.count, categories=real.categories)


def test_killed_run_resumes_to_an_identical_store(tmp_path, params):
    clean = write_frames(params.data, tmp_path / "clean", progress=False)
    with pytest.raises(_Crash):
        write_frames(params.data, tmp_path / "resumed", source=_source_with(params, crash_at=4), progress=False)
    assert not (tmp_path / "resumed" / "frames.zarr").exists(), "an unfinished store must not look finished"
    progress = json.loads((tmp_path / "resumed" / "frames.zarr.partial" / "progress.json").read_text())
    assert sorted(progress["done"]) == ["0", "1", "2", "3"]

    calls = []
    source = _source_with(params)
    load = source.load
    source.load = lambda i: calls.append(i) or load(i)
    resumed = write_frames(params.data, tmp_path / "resumed", source=source, progress=False)
    assert calls == [4, 5], "a resumed run decodes only the clips it had not finished"
    assert np.array_equal(zarr.open_array(clean.frames)[:], zarr.open_array(resumed.frames)[:])
    assert pd.read_parquet(clean.annotations).equals(pd.read_parquet(resumed.annotations))
    assert pd.read_parquet(clean.clips).equals(pd.read_parquet(resumed.clips))


def test_skipped_clips_are_listed_with_reasons(tmp_path):
    params = small_params(data={"max_skipped_fraction": 0.5, "synthetic": {"n_clips": 6}})
    out = write_frames(params.data, tmp_path, source=_source_with(params, bad={1: "truncated file"}), progress=False)
    arr, ann, clips = _read(out)
    assert arr.shape[0] == 5 and arr.attrs["n_clips"] == 5
    assert list(clips.name) == [f"synthetic_{i:05d}" for i in (0, 2, 3, 4, 5)]
    assert set(ann["clip"]) <= set(range(5))
    skipped = json.loads(out.skipped.read_text())
    assert skipped["skipped"] == [{"name": "clip1", "source": "/videos/clip1.mp4", "reason": "truncated file"}]


def test_too_many_skipped_clips_fail_leaving_the_previous_outputs_and_a_resumable_run(tmp_path, params):
    write_frames(params.data, tmp_path, progress=False)  # an earlier good run: a failed one must not lose it
    snapshot = {f: f.read_bytes() for f in tmp_path.rglob("*") if f.is_file()}
    strict = small_params(data={"max_skipped_fraction": 0.2, "synthetic": {"n_clips": 6}})
    bad = {0: "corrupt", 2: "zero frames"}
    with pytest.raises(
        ForesightError, match=r"2 of 6 clips could not be decoded.*max_skipped_fraction.*replaced none of the outputs"
    ):
        write_frames(strict.data, tmp_path, source=_source_with(strict, bad=bad), progress=False)
    assert all(f.read_bytes() == content for f, content in snapshot.items()), "the previous outputs are untouched"
    assert len(json.loads((tmp_path / "frames.zarr.partial" / "skipped.json").read_text())["skipped"]) == 2

    lenient = small_params(data={"max_skipped_fraction": 0.5, "synthetic": {"n_clips": 6}})
    calls = []
    source = _source_with(lenient, bad=bad)
    load = source.load
    source.load = lambda i: calls.append(i) or load(i)
    out = write_frames(lenient.data, tmp_path, source=source, progress=False)
    assert calls == [], "raising max_skipped_fraction resumes the failed run's decoded clips"
    assert _read(out)[0].shape[0] == 4 and not (tmp_path / "frames.zarr.partial").exists()


def test_a_bad_annotation_file_stops_before_any_output_is_touched(tmp_path, params):
    write_frames(params.data, tmp_path / "out", progress=False)
    snapshot = {f: f.read_bytes() for f in (tmp_path / "out").rglob("*") if f.is_file()}
    (tmp_path / "videos").mkdir()
    (tmp_path / "ann.json").write_text("{not json")
    real = small_params(
        data={"source": "coco_video", "video_dir": str(tmp_path / "videos"), "annotations": str(tmp_path / "ann.json")}
    )
    with pytest.raises(ForesightError, match="not valid JSON"):
        write_frames(real.data, tmp_path / "out", progress=False)
    assert {f: f.read_bytes() for f in (tmp_path / "out").rglob("*") if f.is_file()} == snapshot


def test_stage_reports_bad_params_in_one_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("data:\n  height: 450\n")
    res = subprocess.run(
        [sys.executable, "-m", "stages.frames", "--params", str(bad), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "data.height" in res.stderr and "Traceback" not in res.stderr
