"""The LTX-Video VAE (diffusers ``AutoencoderKLLTXVideo``): load, check clip geometry, encode and decode.

Latents are always the *normalised* ones the LTX-Video transformer sees: ``(z - latents_mean) * scaling_factor /
latents_std``, exactly ``LTXPipeline._normalize_latents``; :func:`decode` undoes it as the pipeline does before
``vae.decode``. Frames are uint8 ``[B, F, H, W, 3]``, mapped to [-1, 1] like diffusers' ``VideoProcessor``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from ..errors import ForesightError

if TYPE_CHECKING:  # diffusers takes seconds to import: only the functions that build or load a VAE import it
    from diffusers import AutoencoderKLLTXVideo

LATENT_CHANNELS = 128
SPATIAL_COMPRESSION = 32
TEMPORAL_COMPRESSION = 8
VAE_CLASS = "AutoencoderKLLTXVideo"

DecodePath = Literal["timestep_conditioned", "plain"]

_EXPECTED = "'tiny' or a local diffusers LTX-Video checkpoint: a folder with vae/config.json, or the VAE folder itself"
_WEIGHT_FILE = re.compile(r"diffusion_pytorch_model(-\d+-of-\d+)?\.(safetensors|bin)(\.index\.json)?")
_HASH_CHUNK = 8 << 20

# Real 0.9.0/0.9.1 encoder layout (patch 4 x 2^3 conv downsamplings = 32x spatial, 1 x 2^3 = 8x temporal),
# with widths of 8-32 instead of 128-512 and one resnet per block.
_TINY_ENCODER: dict[str, object] = {
    "latent_channels": LATENT_CHANNELS,
    "patch_size": 4,
    "patch_size_t": 1,
    "block_out_channels": (8, 16, 32, 32),
    "layers_per_block": (1, 1, 1, 1, 1),
    "down_block_types": ("LTXVideoDownBlock3D",) * 4,
    "spatio_temporal_scaling": (True, True, True, False),
    "downsample_type": ("conv",) * 4,
}
# 0.9.0 decoder: mirror of the encoder, no timestep conditioning.
_TINY_DECODER_PLAIN: dict[str, object] = {
    "decoder_block_out_channels": (8, 16, 32, 32),
    "decoder_layers_per_block": (1, 1, 1, 1, 1),
    "decoder_spatio_temporal_scaling": (True, True, True, False),
    "decoder_inject_noise": (False,) * 5,
    "upsample_residual": (False,) * 4,
    "upsample_factor": (1,) * 4,
    "timestep_conditioning": False,
}
# 0.9.1 decoder: timestep conditioning, noise injection, residual depth-to-space upsampling.
_TINY_DECODER_TIMESTEP: dict[str, object] = {
    "decoder_block_out_channels": (16, 32, 64),
    "decoder_layers_per_block": (1, 1, 1, 1),
    "decoder_spatio_temporal_scaling": (True, True, True),
    "decoder_inject_noise": (True, True, True, False),
    "upsample_residual": (True, True, True),
    "upsample_factor": (2, 2, 2),
    "timestep_conditioning": True,
}


def build_tiny_vae(seed: int, timestep_conditioning: bool = False) -> AutoencoderKLLTXVideo:
    """Seeded random VAE with the real interface (128 latent channels, 32x/8x compression, 1 + 8k frames).

    ``timestep_conditioning=False`` mirrors the 0.9.0 layout, ``True`` the 0.9.1 decoder. Parameters and buffers
    diffusers initialises to constants (``latents_mean``/``latents_std``, the noise-injection scales) are drawn
    at random too, so that normalisation and noise injection are exercised. The global RNG is left untouched.
    """
    decoder = _TINY_DECODER_TIMESTEP if timestep_conditioning else _TINY_DECODER_PLAIN
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        from diffusers import AutoencoderKLLTXVideo

        vae = AutoencoderKLLTXVideo(**_TINY_ENCODER, **decoder)
        vae.latents_mean.normal_(0.0, 0.5)
        vae.latents_std.uniform_(0.5, 2.0)
        for name, param in vae.named_parameters():
            if "per_channel_scale" in name:
                param.normal_(0.0, 0.1)
    return vae.eval()


def load_vae(
    source: str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", seed: int = 0
) -> tuple[AutoencoderKLLTXVideo, dict[str, object]]:
    """Load the VAE and its identity record.

    ``"tiny"``: :func:`build_tiny_vae` with ``seed`` and timestep conditioning (like every checkpoint since 0.9.1);
    identity ``{"source": "tiny-random", "seed", "timestep_conditioning"}``.
    A directory: a diffusers LTX-Video checkpoint (``vae/`` subfolder) or the VAE folder itself, loaded with
    ``local_files_only=True``, safetensors when present (else ``.bin``, which diffusers reads with
    ``weights_only=True``), refused when a tensor is missing or mis-shaped; identity ``{"source", "hash",
    "timestep_conditioning"}`` where ``hash`` is the sha256 of the full content of ``config.json`` and the loaded
    weight files (see :func:`_hash_files`).
    """
    if source == "tiny":
        # torch's own cast: diffusers' ModelMixin.to warns that modules "should be kept in float32" whenever a
        # dtype is given, even when, as here, the list of such modules is empty
        vae = torch.nn.Module.to(build_tiny_vae(seed, timestep_conditioning=True), dtype=dtype)
        identity: dict[str, object] = {"source": "tiny-random", "seed": seed}
    else:
        vae_dir = check_vae_dir(Path(source))
        weights = vae_weight_files(vae_dir)
        safetensors = any(".safetensors" in p.name for p in weights)
        try:
            from diffusers import AutoencoderKLLTXVideo

            vae, info = AutoencoderKLLTXVideo.from_pretrained(
                vae_dir, local_files_only=True, use_safetensors=safetensors, torch_dtype=dtype, output_loading_info=True
            )
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ForesightError(f"LTX-Video VAE {vae_dir}: could not load: {' '.join(str(exc).split())}") from None
        bad = {k: info[k] for k in ("missing_keys", "mismatched_keys", "error_msgs") if info.get(k)}
        if bad:  # diffusers would leave these tensors randomly initialised
            summary = "; ".join(f"{k}: {len(v)} (first: {v[0]})" for k, v in bad.items())
            raise ForesightError(f"LTX-Video VAE {vae_dir}: weights do not match config.json ({summary})")
        identity = {"source": source, "hash": _hash_files([vae_dir / "config.json", *weights])}
    _check_compression(vae, source)
    identity["timestep_conditioning"] = bool(vae.config.timestep_conditioning)
    return vae.to(device=device).eval(), identity


def check_clip_geometry(n_frames: int, height: int, width: int) -> None:
    """ForesightError unless ``n_frames`` is 1 + 8k and both sides are multiples of 32 (the LTX-Video VAE rule)."""
    problems = []
    if n_frames < 1 or (n_frames - 1) % TEMPORAL_COMPRESSION:
        problems.append(
            f"frames must be 1 + {TEMPORAL_COMPRESSION}k (got {n_frames}, nearest valid: "
            f"{_nearest(n_frames, TEMPORAL_COMPRESSION, 1)})"
        )
    for side, value in (("height", height), ("width", width)):
        if value < SPATIAL_COMPRESSION or value % SPATIAL_COMPRESSION:
            problems.append(
                f"{side} must be a multiple of {SPATIAL_COMPRESSION} (got {value}, nearest valid: "
                f"{_nearest(value, SPATIAL_COMPRESSION, SPATIAL_COMPRESSION)})"
            )
    if problems:
        raise ForesightError(
            f"LTX-Video VAE clip {n_frames}x{height}x{width} (frames x height x width): " + "; ".join(problems)
        )


def latent_shape(n_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
    """Latent shape ``(128, 1 + (F - 1) // 8, H // 32, W // 32)`` of one clip (geometry checked first)."""
    check_clip_geometry(n_frames, height, width)
    return (
        LATENT_CHANNELS,
        1 + (n_frames - 1) // TEMPORAL_COMPRESSION,
        height // SPATIAL_COMPRESSION,
        width // SPATIAL_COMPRESSION,
    )


def decode_path(vae: AutoencoderKLLTXVideo) -> DecodePath:
    """Which decode :func:`decode` runs: noise mixing + ``temb`` (0.9.1 and later) or plain ``decode(z)`` (0.9.0)."""
    return "timestep_conditioned" if vae.config.timestep_conditioning else "plain"


@torch.no_grad()
def encode(vae: AutoencoderKLLTXVideo, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Normalised posterior-mode latents, float32 on the VAE's device, of uint8 clips ``[B, F, H, W, 3]``."""
    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8 or x.ndim != 5 or x.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [B, F, H, W, 3], got {x.dtype} {tuple(x.shape)}")
    check_clip_geometry(*x.shape[1:4])
    x = x.to(vae.device).permute(0, 4, 1, 2, 3)  # [B, 3, F, H, W]
    x = (x.to(torch.float32) / 255 * 2 - 1).to(vae.dtype)
    z = vae.encode(x).latent_dist.mode().to(torch.float32)  # [B, 128, F', H', W']
    mean, std = _latent_stats(vae)
    return (z - mean) * vae.config.scaling_factor / std


@torch.no_grad()
def decode(
    vae: AutoencoderKLLTXVideo,
    latents: torch.Tensor,
    decode_timestep: float,
    decode_noise_scale: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 frames ``[B, F, H, W, 3]`` (on the CPU) from normalised latents ``[B, 128, F', H', W']``.

    Follows ``LTXPipeline.__call__``: denormalise; for a timestep-conditioned decoder (:func:`decode_path`) mix
    ``(1 - decode_noise_scale) * z + decode_noise_scale * noise`` with ``noise`` from ``randn_tensor(generator)``
    (drawn in float32 here) and pass ``temb = decode_timestep``; otherwise plain ``decode(z)``; then
    ``(x / 2 + 0.5).clamp(0, 1) * 255`` rounded. diffusers draws decoder noise injection (0.9.1) from the global
    RNG; with a ``generator`` that draw is seeded from it, so the output is a function of the generator's state.
    """
    if latents.ndim != 5 or latents.shape[1] != LATENT_CHANNELS:
        raise ValueError(f"latents must be [B, {LATENT_CHANNELS}, F', H', W'], got {tuple(latents.shape)}")
    z = latents.to(vae.device, torch.float32)  # [B, 128, F', H', W']
    mean, std = _latent_stats(vae)
    z = z * std / vae.config.scaling_factor + mean
    temb = None
    if decode_path(vae) == "timestep_conditioned":
        from diffusers.utils.torch_utils import randn_tensor

        noise = randn_tensor(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        z = (1 - decode_noise_scale) * z + decode_noise_scale * noise
        temb = torch.full((z.shape[0],), decode_timestep, device=z.device, dtype=vae.dtype)  # [B]
    with _seeded_noise_injection(vae, generator):
        video = vae.decode(z.to(vae.dtype), temb, return_dict=False)[0]  # [B, 3, F, H, W]
    video = (video.to(torch.float32) / 2 + 0.5).clamp(0, 1) * 255
    return video.round().to(torch.uint8).permute(0, 2, 3, 4, 1).contiguous().cpu()  # [B, F, H, W, 3]


def _latent_stats(vae: AutoencoderKLLTXVideo) -> tuple[torch.Tensor, torch.Tensor]:
    """``latents_mean`` and ``latents_std`` as float32 ``[1, 128, 1, 1, 1]``."""
    shape = (1, -1, 1, 1, 1)
    return vae.latents_mean.view(shape).to(torch.float32), vae.latents_std.view(shape).to(torch.float32)


@contextlib.contextmanager
def _seeded_noise_injection(vae: AutoencoderKLLTXVideo, generator: torch.Generator | None) -> Iterator[None]:
    """Seed the global RNG (forked, restored on exit) from ``generator`` when the decoder injects noise."""
    if generator is None or not any(vae.config.decoder_inject_noise):
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    devices = [vae.device] if vae.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _nearest(value: int, step: int, minimum: int) -> str:
    """The valid values (``minimum + step * k``) either side of ``value``, as ``'a or b'``."""
    below = minimum + step * ((value - minimum) // step)
    return " or ".join(str(c) for c in (below, below + step) if c >= minimum)


def check_vae_dir(path: Path) -> Path:
    """The folder holding the VAE's ``config.json`` (``path/vae`` or ``path``), checked to be an LTX-Video VAE."""
    if not path.is_dir():
        raise ForesightError(f"LTX-Video VAE source {path}: no such directory (expected {_EXPECTED})")
    config = next((d / "config.json" for d in (path / "vae", path) if (d / "config.json").is_file()), None)
    if config is None:
        raise ForesightError(f"LTX-Video VAE source {path}: no vae/config.json or config.json (expected {_EXPECTED})")
    try:
        data = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ForesightError(f"LTX-Video VAE config {config}: not valid JSON ({exc})") from None
    class_name = data.get("_class_name") if isinstance(data, dict) else None
    if class_name != VAE_CLASS:
        raise ForesightError(
            f"LTX-Video VAE config {config}: _class_name is {class_name!r}, expected {VAE_CLASS!r} (an LTX-Video VAE)"
        )
    return config.parent


def vae_weight_files(vae_dir: Path) -> list[Path]:
    """The weight files diffusers loads: safetensors (shards and index included) when present, else ``.bin``."""
    files = sorted(p for p in vae_dir.iterdir() if _WEIGHT_FILE.fullmatch(p.name))
    safetensors = [p for p in files if ".safetensors" in p.name]
    if not files:
        raise ForesightError(
            f"LTX-Video VAE {vae_dir}: no diffusion_pytorch_model.safetensors (or .bin) next to config.json"
        )
    return safetensors or files


def _hash_files(paths: list[Path]) -> str:
    """sha256 over each file's name, size and full content, in the given order (about 1 s per GB)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _check_compression(vae: AutoencoderKLLTXVideo, source: str) -> None:
    """ForesightError unless the VAE has 128 latent channels, 32x spatial and 8x temporal compression."""
    got = (vae.config.latent_channels, vae.spatial_compression_ratio, vae.temporal_compression_ratio)
    want = (LATENT_CHANNELS, SPATIAL_COMPRESSION, TEMPORAL_COMPRESSION)
    if got != want:
        raise ForesightError(
            f"LTX-Video VAE {source}: latent channels / spatial / temporal compression are {got}, expected {want}"
        )
