"""The extraction stage's storage: raster contract, resume after a kill, cost metrics, clear errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import zarr
from helpers import small_params

from foresight_lib.data.frames import write_frames
from foresight_lib.errors import ForesightError
from foresight_lib.extract.pixels import pixels_extractor
from foresight_lib.extract.points import make_extractor
from foresight_lib.extract.writer import write_point
from foresight_lib.features import ATTRS, open_features
from foresight_lib.params import ExtractParams, ModelParams, PixelsPoint


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    write_frames(small_params(data={"synthetic": {"n_clips": 5}}).data, out, progress=False)
    return out


def _pixels(frames_dir, patch=14):
    _, f, h, w, _ = zarr.open_array(frames_dir / "frames.zarr").shape
    return pixels_extractor("pixels", PixelsPoint(kind="pixels", patch=patch), h, w, f)


def test_pixels_store_cell_equals_its_pixel_patch(frames_dir, tmp_path):
    metrics = write_point(
        _pixels(frames_dir),
        frames_dir / "frames.zarr",
        tmp_path / "px.zarr",
        tmp_path / "m.json",
        dtype="float32",
        progress=False,
    )
    store = open_features(tmp_path / "px.zarr")
    frames = zarr.open_array(frames_dir / "frames.zarr")
    assert store.grid == (9, 16, 32) and store.stride == 14 and store.channels == 588
    assert store.attrs["slot_frames"] == [[f] for f in range(9)] and store.attrs["weights"]["weights"].startswith(
        "none"
    )
    clip, f, r, c = 3, 5, 7, 20
    patch = frames[clip, f, 14 * r : 14 * r + 14, 14 * c : 14 * c + 14] / 255.0  # [14, 14, 3]
    assert np.allclose(store.read(clip)[f, r, c], patch.reshape(-1))
    assert json.loads((tmp_path / "m.json").read_text()) == pytest.approx(metrics, nan_ok=True)
    assert metrics["tokens_per_frame"] == 16 * 32 and metrics["feature_bytes_per_frame"] == 16 * 32 * 588 * 4
    assert metrics["disk_bytes_per_frame"] > 0 and metrics["peak_memory_bytes"] > 0


class _Killed(RuntimeError):
    pass


def test_killed_run_resumes_to_an_identical_store(frames_dir, tmp_path):
    write_point(_pixels(frames_dir), frames_dir / "frames.zarr", tmp_path / "clean.zarr", None, progress=False)
    killer = _pixels(frames_dir)
    run, calls = killer.run, []

    def dying(clips):
        calls.append(len(clips))
        if sum(calls) > 3:
            raise _Killed
        return run(clips)

    killer.run, killer.clips_per_batch = dying, 1
    with pytest.raises(_Killed):
        write_point(killer, frames_dir / "frames.zarr", tmp_path / "resumed.zarr", None, progress=False)
    with pytest.raises(ForesightError, match="unfinished run"):
        open_features(tmp_path / "resumed.zarr")  # never taken as finished

    resumer = _pixels(frames_dir)
    seen = []
    resumer.run = lambda clips: seen.append(len(clips)) or run(clips)
    write_point(resumer, frames_dir / "frames.zarr", tmp_path / "resumed.zarr", None, progress=False)
    assert sum(seen) == 2, "only the two clips the killed run had not finished are extracted again"
    clean, resumed = open_features(tmp_path / "clean.zarr"), open_features(tmp_path / "resumed.zarr")
    assert np.array_equal(clean.read(slice(None)), resumed.read(slice(None)))
    assert clean.attrs == resumed.attrs


def test_a_changed_point_discards_the_partial_store(frames_dir, tmp_path):
    killer = _pixels(frames_dir)
    killer.run = lambda clips: (_ for _ in ()).throw(_Killed())
    with pytest.raises(_Killed):
        write_point(killer, frames_dir / "frames.zarr", tmp_path / "p.zarr", None, progress=False)
    write_point(_pixels(frames_dir, patch=28), frames_dir / "frames.zarr", tmp_path / "p.zarr", None, progress=False)
    assert open_features(tmp_path / "p.zarr").stride == 28


def test_non_finite_features_stop_the_stage(frames_dir, tmp_path):
    bad = _pixels(frames_dir)
    run = bad.run
    bad.run = lambda clips: run(clips) * np.nan
    with pytest.raises(ForesightError, match="non-finite features"):
        write_point(bad, frames_dir / "frames.zarr", tmp_path / "nan.zarr", None, progress=False)


def test_stage_names_an_unknown_point_in_one_line(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.extract",
            "--point",
            "vit_l99",
            "--frames",
            str(tmp_path / "frames.zarr"),
            "--out",
            str(tmp_path / "f.zarr"),
            "--metrics",
            str(tmp_path / "m.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "'vit_l99' is not in points" in res.stderr and "vit_embed" in res.stderr


def test_values_that_overflow_float16_stop_the_stage(frames_dir, tmp_path):
    big = _pixels(frames_dir)
    run = big.run
    big.run = lambda clips: run(clips) * 1e6  # finite in float32, inf in float16
    with pytest.raises(ForesightError, match="overflow float16.*extract.dtype: float32"):
        write_point(big, frames_dir / "frames.zarr", tmp_path / "big.zarr", None, dtype="float16", progress=False)
    assert not (tmp_path / "big.zarr").exists()


def test_the_storage_cast_rounds_as_numpy_does():
    """The writer casts with torch (on the device, on a GPU): the same float16 bits as numpy's cast, ties, tiny
    values and overflow included; a bfloat16 model's output cast directly equals the cast through float32."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(20000).astype(np.float32) * s for s in (1e-7, 1e-4, 1.0, 1e3, 7e4)])
    ties = 1 + np.arange(1, 64, 2, dtype=np.float32) * np.float32(2.0**-11)  # exactly halfway between float16s
    x = np.concatenate([x, ties, -ties])
    ours = torch.from_numpy(x).to(torch.float16).numpy()
    with np.errstate(over="ignore"):
        theirs = x.astype(np.float16)
    assert np.array_equal(ours.view(np.uint16), theirs.view(np.uint16))
    bf16 = torch.from_numpy(x).to(torch.bfloat16)
    assert torch.equal(bf16.to(torch.float16).view(torch.int16), bf16.float().to(torch.float16).view(torch.int16))


def test_a_per_frame_store_says_image_mode_under_video_extraction(frames_dir, tmp_path):
    """Pixels (like encoders) always see each frame alone: their store says so whatever extract.mode is."""
    _, f, h, w, _ = zarr.open_array(frames_dir / "frames.zarr").shape
    extractor = make_extractor(
        "pixels", PixelsPoint(kind="pixels", patch=28), ModelParams(), ExtractParams(mode="video"), h, w, f
    )
    write_point(extractor, frames_dir / "frames.zarr", tmp_path / "px.zarr", None, progress=False)
    store = open_features(tmp_path / "px.zarr")
    assert store.attrs["mode"] == "image" and store.slot_frames == [[i] for i in range(f)]
    assert set(store.attrs) == set(ATTRS)  # the writer writes exactly the contract's attributes
