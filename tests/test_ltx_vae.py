"""LTX-Video VAE wrapper: geometry, tiny-model determinism, pipeline-exact (de)normalisation, loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from diffusers.pipelines.ltx.pipeline_ltx import LTXPipeline
from diffusers.utils.torch_utils import randn_tensor
from safetensors.torch import load_file, save_file

from foresight_lib.errors import ForesightError
from foresight_lib.ltx import vae as V

H, W = 448, 672


def _clip(batch: int, frames: int, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, frames, height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def plain() -> V.AutoencoderKLLTXVideo:
    return V.build_tiny_vae(0)


@pytest.fixture(scope="module")
def conditioned() -> V.AutoencoderKLLTXVideo:
    return V.build_tiny_vae(0, timestep_conditioning=True)


@pytest.mark.parametrize("frames, batch, latent_frames", [(9, 1, 2), (17, 1, 3)])
def test_round_trip_shapes_at_448x672(plain, frames, batch, latent_frames):
    x = _clip(batch, frames, H, W)
    z = V.encode(plain, x)
    assert z.shape == (batch, 128, latent_frames, 14, 21) == (batch, *V.latent_shape(frames, H, W))
    assert z.dtype == torch.float32
    y = V.decode(plain, z, 0.05, 0.025)
    assert y.dtype == torch.uint8 and y.shape == x.shape


def test_batch_equals_one_by_one(plain):
    x = _clip(2, 9)
    z = V.encode(plain, x)
    torch.testing.assert_close(z[1:], V.encode(plain, x[1:]), rtol=1e-4, atol=1e-4)


def test_seed_fixes_weights_and_latents():
    rng_before = torch.get_rng_state()
    a, b, c = V.build_tiny_vae(3), V.build_tiny_vae(3), V.build_tiny_vae(4)
    assert torch.equal(torch.get_rng_state(), rng_before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    x = _clip(1, 9)
    assert torch.equal(V.encode(a, x), V.encode(b, x))
    assert not torch.allclose(V.encode(a, x), V.encode(c, x))


def test_encode_and_decode_match_the_ltx_pipeline():
    vae = V.build_tiny_vae(1, timestep_conditioning=True)
    with torch.no_grad():
        for name, param in vae.named_parameters():
            if "per_channel_scale" in name:  # no noise injection: the pipeline's decode is then exactly reproducible
                param.zero_()
    x = _clip(2, 9)
    z = V.encode(vae, x)
    with torch.no_grad():
        mode = vae.encode(torch.from_numpy(x).permute(0, 4, 1, 2, 3).float() / 255 * 2 - 1).latent_dist.mode()
        ref_z = LTXPipeline._normalize_latents(mode, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
        torch.testing.assert_close(z, ref_z)

        t, s = 0.05, 0.3
        latents = LTXPipeline._denormalize_latents(z, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
        noise = randn_tensor(latents.shape, generator=torch.Generator().manual_seed(7), dtype=latents.dtype)
        latents = (1 - s) * latents + s * noise
        video = vae.decode(latents, torch.tensor([t, t]), return_dict=False)[0]
        ref_frames = ((video / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1)
    assert torch.equal(V.decode(vae, z, t, s, torch.Generator().manual_seed(7)), ref_frames)


def test_decode_paths(plain, conditioned):
    assert V.decode_path(plain) == "plain"
    assert V.decode_path(conditioned) == "timestep_conditioned"
    z = V.encode(conditioned, _clip(1, 9))

    def dec(scale: float, seed: int = 0, timestep: float = 0.05) -> torch.Tensor:
        return V.decode(conditioned, z, timestep, scale, torch.Generator().manual_seed(seed))

    rng_before = torch.get_rng_state()
    zero = dec(0.0)
    assert torch.equal(torch.get_rng_state(), rng_before)  # injected decoder noise comes from the generator
    assert torch.equal(zero, dec(0.0))
    assert torch.equal(dec(0.5), dec(0.5))
    assert not torch.equal(zero, dec(0.5))
    assert not torch.equal(zero, dec(0.0, timestep=0.5))
    # the plain decoder ignores timestep and noise scale
    zp = V.encode(plain, _clip(1, 9))
    assert torch.equal(V.decode(plain, zp, 0.0, 0.0), V.decode(plain, zp, 0.5, 0.5, torch.Generator().manual_seed(1)))


@pytest.mark.parametrize(
    "geometry, words",
    [
        ((8, H, W), ["frames must be 1 + 8k", "got 8", "nearest valid: 1 or 9"]),
        ((9, 450, W), ["height must be a multiple of 32", "got 450", "nearest valid: 448 or 480"]),
        ((9, H, 20), ["width must be a multiple of 32", "nearest valid: 32"]),
    ],
)
def test_bad_geometry(geometry, words):
    with pytest.raises(ForesightError) as err:
        V.check_clip_geometry(*geometry)
    assert all(w in str(err.value) for w in words), str(err.value)
    with pytest.raises(ForesightError):
        V.latent_shape(*geometry)


def test_encode_rejects_bad_clip(plain):
    with pytest.raises(ForesightError, match="1 \\+ 8k"):
        V.encode(plain, _clip(1, 8))


def test_load_tiny():
    vae, identity = V.load_vae("tiny", torch.float32, "cpu", seed=5)
    assert identity == {"source": "tiny-random", "seed": 5, "timestep_conditioning": True}
    ref = V.build_tiny_vae(5, timestep_conditioning=True).state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in vae.state_dict().items())


def test_load_saved_checkpoint(tmp_path):
    saved = V.build_tiny_vae(2, timestep_conditioning=True)
    saved.save_pretrained(tmp_path / "ckpt" / "vae", safe_serialization=True)
    assert (tmp_path / "ckpt" / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    ref = saved.state_dict()
    identities = []
    for source in (tmp_path / "ckpt", tmp_path / "ckpt" / "vae"):  # pipeline root, or the VAE folder itself
        vae, identity = V.load_vae(str(source), torch.float32, "cpu")
        loaded = vae.state_dict()
        assert loaded.keys() == ref.keys() and all(torch.equal(loaded[k], ref[k]) for k in ref)
        assert identity["source"] == str(source) and identity["timestep_conditioning"] is True
        identities.append(identity["hash"])
    assert identities[0] == identities[1] and len(identities[0]) == 64
    V.build_tiny_vae(3).save_pretrained(tmp_path / "other", safe_serialization=True)
    assert V.load_vae(str(tmp_path / "other"))[1]["hash"] != identities[0]


def test_load_missing_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ForesightError, match="no such directory") as err:
        V.load_vae(str(missing))
    assert str(missing) in str(err.value) and "vae/config.json" in str(err.value)


def test_load_other_model_class(tmp_path):
    AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4).save_pretrained(tmp_path / "vae")
    with pytest.raises(ForesightError) as err:
        V.load_vae(str(tmp_path))
    msg = str(err.value)
    assert (
        str(tmp_path / "vae" / "config.json") in msg and "'AutoencoderKL'" in msg and "'AutoencoderKLLTXVideo'" in msg
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(ForesightError, match="no vae/config.json or config.json"):
        V.load_vae(str(tmp_path / "empty"))
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLLTXVideo"}))
    with pytest.raises(ForesightError, match="no diffusion_pytorch_model.safetensors"):
        V.load_vae(str(tmp_path / "empty"))


def test_load_refuses_missing_tensors(tmp_path):
    V.build_tiny_vae(0).save_pretrained(tmp_path, safe_serialization=True)
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    del state["decoder.conv_in.conv.bias"]
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(ForesightError, match="missing_keys: 1 \\(first: decoder.conv_in.conv.bias\\)"):
        V.load_vae(str(tmp_path))
