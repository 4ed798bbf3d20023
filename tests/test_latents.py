"""The latents stage and VAE decodes: exact latents, resume after a kill, clear geometry errors, shared decode noise."""

from __future__ import annotations

import runpy

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from helpers import small_params
from PIL import Image

from foresight_lib.adapters.sheet import HEADER
from foresight_lib.cli import run
from foresight_lib.data.frames import write_frames
from foresight_lib.data.splits import read_split
from foresight_lib.errors import ForesightError
from foresight_lib.ltx import latents as L
from foresight_lib.ltx import vae as V
from foresight_lib.params import LtxParams
from foresight_lib.store import PartialStore, open_complete

LTX = LtxParams(device="cpu")


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    """4 synthetic 1-frame clips at 224x224 (splits: 2 train, 1 val, 1 test)."""
    out = tmp_path_factory.mktemp("data")
    write_frames(
        small_params(data={"width": 224, "n_frames": 1, "synthetic": {"n_clips": 4}}).data, out, progress=False
    )
    return out


@pytest.fixture(scope="module")
def clean(frames_dir, tmp_path_factory):
    return L.write_latents(
        frames_dir / "frames.zarr", tmp_path_factory.mktemp("lat") / "latents.zarr", LTX, progress=False
    )


def test_latents_are_the_vae_encoding_of_each_clip(frames_dir, clean):
    frames = open_complete(frames_dir / "frames.zarr")
    assert clean.shape == (4, 128, 1, 7, 7) and clean.dtype == np.float32
    vae, identity = V.load_vae("tiny", seed=0)
    np.testing.assert_array_equal(clean[2], V.encode(vae, frames[2:3])[0].numpy())
    attrs = clean.attrs
    assert attrs["vae"] == identity and attrs["decode_path"] == "timestep_conditioned"
    assert (attrs["n_frames"], attrs["height"], attrs["width"], attrs["latent_shape"]) == (1, 224, 224, [128, 1, 7, 7])
    assert attrs["frames"]["sha256"] and attrs["compute_dtype"] == "float32" and attrs["device"] == "cpu"


def test_killed_run_resumes_to_identical_latents(frames_dir, clean, tmp_path, monkeypatch):
    encode, calls = V.encode, []

    def dying(vae, frames):
        calls.append(len(frames))
        if len(calls) > 2:
            raise KeyboardInterrupt
        return encode(vae, frames)

    monkeypatch.setattr(V, "encode", dying)
    with pytest.raises(KeyboardInterrupt):
        L.write_latents(frames_dir / "frames.zarr", tmp_path / "latents.zarr", LTX, progress=False)
    with pytest.raises(ForesightError, match="unfinished run"):
        open_complete(tmp_path / "latents.zarr")
    calls.clear()
    monkeypatch.setattr(V, "encode", lambda vae, frames: calls.append(len(frames)) or encode(vae, frames))
    resumed = L.write_latents(frames_dir / "frames.zarr", tmp_path / "latents.zarr", LTX, progress=False)
    assert calls == [1, 1], "only the two clips the killed run had not finished are encoded again"
    np.testing.assert_array_equal(resumed[:], clean[:])
    assert resumed.attrs.asdict() == clean.attrs.asdict()


def _frames_store(path, n_frames: int, height: int, width: int) -> None:
    store = PartialStore(path, {"test": True})
    arr = store.array(
        (1, n_frames, height, width, 3),
        (1, n_frames, height, width, 3),
        "uint8",
        ("clip", "frame", "y", "x", "rgb"),
        {},
    )
    arr[0] = 0
    store.finalize()


@pytest.mark.parametrize(
    "geometry, words",
    [
        ((8, 64, 96), ["frames must be 1 + 8k", "got 8", "nearest valid: 1 or 9"]),
        ((9, 64, 100), ["width must be a multiple of 32", "got 100"]),
    ],
)
def test_bad_clip_geometry_is_one_clear_line(tmp_path, capsys, geometry, words):
    _frames_store(tmp_path / "frames.zarr", *geometry)
    with pytest.raises(ForesightError) as err:
        L.write_latents(tmp_path / "frames.zarr", tmp_path / "latents.zarr", LTX, progress=False)
    assert all(w in str(err.value) for w in [str(tmp_path / "frames.zarr"), *words]), str(err.value)
    assert not (tmp_path / "latents.zarr.partial").exists()
    stage = runpy.run_path("stages/latents.py", run_name="stage")
    with pytest.raises(SystemExit) as exit_:
        run(stage["main"], ["--frames", str(tmp_path / "frames.zarr"), "--out", str(tmp_path / "l.zarr")])
    stderr = capsys.readouterr().err
    assert exit_.value.code == 2 and stderr.count("\n") == 1 and words[0] in stderr


@pytest.fixture(scope="module")
def small_latents() -> zarr.Array:
    """Random normalised latents of three 9-frame 64x96 clips, as the latents stage stores them (cheap to decode)."""
    _, identity = V.load_vae("tiny", seed=0)
    arr = zarr.create_array(
        store={},
        shape=(3, 128, 2, 2, 3),
        dtype="float32",
        attributes={"vae": identity, "n_frames": 9, "height": 64, "width": 96, "latent_shape": [128, 2, 2, 3]},
    )
    arr[:] = np.random.default_rng(0).normal(size=arr.shape)
    return arr


def test_decodes_share_noise_per_clip_and_resume(small_latents, tmp_path, monkeypatch):
    vae, identity = L.load_ltx_vae(LTX)
    L.check_same_vae(identity, small_latents.attrs, "latents")
    rows = clips = [0, 2]
    ceiling = L.write_decoded(
        vae, small_latents, rows, clips, tmp_path / "ceiling.zarr", LTX, {"source": "latents"}, progress=False
    )
    assert ceiling.shape == (2, 9, 64, 96, 3) and ceiling.dtype == np.uint8 and ceiling.attrs["clips"] == clips
    expected = V.decode(
        vae,
        torch.from_numpy(small_latents[2:3]),
        LTX.decode_timestep,
        LTX.decode_noise_scale,
        L.decode_generator(LTX.seed, 2),
    )
    np.testing.assert_array_equal(ceiling[1], expected[0].numpy())
    # the same latents stored elsewhere (as an adapter's prediction) decode to the same frames: same noise per clip
    copy = zarr.create_array(
        store={}, shape=(1, *small_latents.shape[1:]), dtype="float32", attributes=small_latents.attrs.asdict()
    )
    copy[0] = small_latents[2]
    again = L.write_decoded(vae, copy, [0], [2], tmp_path / "adapter.zarr", LTX, {"source": "x"}, progress=False)
    np.testing.assert_array_equal(again[0], ceiling[1])
    as_clip_0 = L.write_decoded(vae, copy, [0], [0], tmp_path / "other.zarr", LTX, {"source": "x"}, progress=False)
    assert not np.array_equal(as_clip_0[0], ceiling[1])

    decode, calls = V.decode, []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return decode(*args, **kwargs)

    monkeypatch.setattr(V, "decode", dying)
    with pytest.raises(KeyboardInterrupt):
        L.write_decoded(
            vae, small_latents, rows, clips, tmp_path / "resumed.zarr", LTX, {"source": "latents"}, progress=False
        )
    monkeypatch.setattr(V, "decode", decode)
    resumed = L.write_decoded(
        vae, small_latents, rows, clips, tmp_path / "resumed.zarr", LTX, {"source": "latents"}, progress=False
    )
    np.testing.assert_array_equal(resumed[:], ceiling[:])


def test_read_split(frames_dir, tmp_path):
    parts = [read_split(frames_dir / "clips.parquet", s) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [2, 1, 1] and sorted(np.concatenate(parts).tolist()) == [0, 1, 2, 3]
    pd.DataFrame({"clip": [0], "split": ["train"]}).to_parquet(tmp_path / "clips.parquet")
    with pytest.raises(ForesightError, match="no clip in the test split"):
        read_split(tmp_path / "clips.parquet", "test")


def test_another_vae_is_refused(clean):
    _, identity = V.load_vae("tiny", seed=1)
    with pytest.raises(ForesightError, match="rerun the latents stage"):
        L.check_same_vae(identity, clean.attrs, "latents/latents.zarr")


def test_differentiable_decode_matches_the_pipeline_decode(small_latents):
    vae = V.build_tiny_vae(0, timestep_conditioning=True)
    with torch.no_grad():
        for name, param in vae.named_parameters():
            if "per_channel_scale" in name:  # no decoder noise injection: both decodes are deterministic
                param.zero_()
    z = torch.from_numpy(small_latents[0:1]).requires_grad_(True)
    x = L.decode_for_loss(vae, z, 0.05)  # [1, 3, F, H, W]
    x.mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    frames = V.decode(vae, z.detach(), 0.05, 0.0)  # [1, F, H, W, 3]
    expected = ((x.detach().clamp(-1, 1) / 2 + 0.5) * 255).permute(0, 2, 3, 4, 1)
    assert (expected - frames.float()).abs().max() <= 0.5 + 1e-3


def test_decode_stages_write_the_ceiling_then_the_adapter_and_its_sheet(small_latents, tmp_path, capsys):
    """decode_ceiling (test split of the VAE latents), decode_adapter (its predicted latents) and the PNG sheet."""
    zarr.save_array(str(tmp_path / "latents.zarr"), small_latents[:])
    zarr.open_array(str(tmp_path / "latents.zarr"), mode="r+").attrs.update(small_latents.attrs.asdict())
    pd.DataFrame({"clip": [0, 1, 2], "split": ["test", "train", "test"]}).to_parquet(tmp_path / "clips.parquet")
    zarr.save_array(str(tmp_path / "frames.zarr"), np.zeros((3, 9, 64, 96, 3), dtype=np.uint8))
    predicted = tmp_path / "adapters" / "a" / "latents.zarr"  # the adapter predicts the VAE latents exactly
    zarr.save_array(str(predicted), small_latents[[0, 2]])
    zarr.open_array(str(predicted), mode="r+").attrs.update({**small_latents.attrs.asdict(), "clips": [0, 2]})
    (tmp_path / "params.yaml").write_text("ltx: {device: cpu}\neval: {sheet_clips: 2}\n")
    ceiling_stage = runpy.run_path("stages/decode_ceiling.py", run_name="stage")["main"]
    adapter_stage = runpy.run_path("stages/decode_adapter.py", run_name="stage")["main"]
    params = ["--params", str(tmp_path / "params.yaml")]
    run(
        ceiling_stage,
        [
            *params,
            "--latents",
            str(tmp_path / "latents.zarr"),
            "--clips",
            str(tmp_path / "clips.parquet"),
            "--out",
            str(tmp_path / "ceiling.zarr"),
        ],
    )
    adapter = [
        "--adapter",
        "a",
        "--latents",
        str(predicted),
        "--ceiling",
        str(tmp_path / "ceiling.zarr"),
        "--frames",
        str(tmp_path / "frames.zarr"),
        "--out",
        str(tmp_path / "adapters/a/decoded.zarr"),
        "--sheet",
        str(tmp_path / "adapters/a/sheet.png"),
    ]
    run(adapter_stage, [*params, *adapter])
    ceiling, decoded = open_complete(tmp_path / "ceiling.zarr"), open_complete(tmp_path / "adapters/a/decoded.zarr")
    assert ceiling.attrs["clips"] == decoded.attrs["clips"] == [0, 2]
    np.testing.assert_array_equal(decoded[:], ceiling[:])  # same latents, same per-clip noise
    with Image.open(tmp_path / "adapters" / "a" / "sheet.png") as sheet:
        assert sheet.size == (3 * 48 + 2 * 4, HEADER + 2 * 32 + 4)  # 3 columns, 2 rows of half-size panels

    (tmp_path / "params.yaml").write_text("ltx: {device: cpu, seed: 1}\n")
    with pytest.raises(SystemExit):
        run(adapter_stage, [*params, *adapter])
    assert "rerun the latents stage" in capsys.readouterr().err
