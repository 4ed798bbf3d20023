"""VAE latents of every clip, and VAE decodes of latents into frame stores (the ceiling and each adapter's).

``latents/latents.zarr``: float ``[clip, 128, F', H', W']``, the *normalised* latents (:func:`..vae.encode`) of
every clip of ``data/frames.zarr``, one chunk per clip, resumable. Attributes: ``vae`` (identity), ``decode_path``,
``n_frames``, ``height``, ``width``, ``latent_shape``, ``n_clips``, ``dtype`` (storage), ``compute_dtype``,
``device``, ``frames`` (identity of the frames store).

A decoded store (:func:`write_decoded`): uint8 ``[row, F, H, W, 3]`` for the clips listed in its ``clips``
attribute. ``latents/decoded.zarr`` (the decode_ceiling stage) decodes the stored latents of the test split: the best reconstruction any
adapter can reach. Every decode of clip ``c`` draws its noise from :func:`decode_generator` ``(ltx.seed, c)``, so
the ceiling and every adapter's decode of a clip see the same noise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import zarr

from ..device import resolve_device, resolve_dtype
from ..errors import ForesightError
from ..params import LtxParams
from ..progress import progress_bar
from ..store import PartialStore, open_complete, store_identity
from . import vae as V

if TYPE_CHECKING:
    from diffusers import AutoencoderKLLTXVideo


def load_ltx_vae(ltx: LtxParams) -> tuple[AutoencoderKLLTXVideo, dict[str, Any]]:
    """The VAE that ``ltx`` names, on its device and dtype, with its identity record."""
    device = resolve_device(ltx.device, "ltx.device")
    return V.load_vae(ltx.source, resolve_dtype(ltx.dtype, device), device, seed=ltx.seed)


def decode_generator(seed: int, clip: int) -> torch.Generator:
    """The CPU generator of clip ``clip``'s decode noise: independent per clip, identical across decodes."""
    state = np.random.SeedSequence([seed, clip]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def write_latents(frames_path: str | Path, out_path: str | Path, ltx: LtxParams, progress: bool = True) -> zarr.Array:
    """Encode every clip of ``frames_path`` into ``out_path`` (resumable); return the finished array."""
    frames = open_complete(frames_path)  # [clip, F, H, W, 3] uint8
    n_clips, n_frames, height, width, _ = frames.shape
    try:
        shape = V.latent_shape(n_frames, height, width)  # (128, F', H', W')
    except ForesightError as err:
        raise ForesightError(
            f"{frames_path}: {err}; rebuild the frames with a data.n_frames, height and width that fit"
        ) from None
    vae, identity = load_ltx_vae(ltx)
    attributes = {
        "vae": identity,
        "decode_path": V.decode_path(vae),
        "n_frames": n_frames,
        "height": height,
        "width": width,
        "latent_shape": list(shape),
        "n_clips": n_clips,
        "dtype": ltx.latents_dtype,
        "compute_dtype": str(vae.dtype).removeprefix("torch."),
        "device": vae.device.type,
        "frames": store_identity(frames_path),
    }
    store = PartialStore(out_path, {"attributes": attributes})
    arr = store.array(
        (n_clips, *shape),
        chunks=(1, *shape),
        dtype=ltx.latents_dtype,
        dimension_names=("clip", "channel", "t", "y", "x"),
        attributes=attributes,
    )
    todo = [i for i in range(n_clips) if not store.is_done(i)]
    bar = progress_bar(total=n_clips, initial=n_clips - len(todo), desc="latents", unit="clip", disable=not progress)
    for start in range(0, len(todo), ltx.batch_clips):
        batch = todo[start : start + ltx.batch_clips]
        z = V.encode(vae, np.stack([frames[i] for i in batch]))  # [k, 128, F', H', W']
        if not torch.isfinite(z).all():
            raise ForesightError(f"latents: non-finite VAE latents for clips {batch}")
        for i, latent in zip(batch, z.cpu().numpy(), strict=True):
            arr[i] = latent.astype(ltx.latents_dtype)
            store.mark_done(i)
        bar.update(len(batch))
    bar.close()
    store.finalize()
    return open_complete(out_path)


def check_same_vae(identity: Mapping[str, Any], latents_attrs: Mapping[str, Any], what: str) -> None:
    """ForesightError unless ``identity`` is the VAE that encoded the latents described by ``latents_attrs``."""
    if dict(identity) != dict(latents_attrs["vae"]):
        raise ForesightError(
            f"{what} were encoded by VAE {latents_attrs['vae']}, but ltx now names "
            f"{dict(identity)}: rerun the latents stage"
        )


def write_decoded(
    vae: AutoencoderKLLTXVideo,
    latents: zarr.Array,
    rows: Sequence[int],
    clips: Sequence[int],
    out_path: str | Path,
    ltx: LtxParams,
    attributes: Mapping[str, Any],
    progress: bool = True,
) -> zarr.Array:
    """Decode ``latents[rows]`` (clip ids ``clips``) into a uint8 frames store ``[row, F, H, W, 3]`` (resumable).

    ``attributes`` describe where the latents came from; the store adds ``clips``, ``vae``, ``decode_path``, the
    decode settings and ``latents_sha256`` (of the decoded rows: a partial store of other latents is not resumed).
    Clip ``c`` is decoded with :func:`decode_generator` ``(ltx.seed, c)``.
    """
    rows, clips = [int(r) for r in rows], [int(c) for c in clips]
    if len(rows) != len(clips) or not rows:
        raise ValueError(f"rows ({len(rows)}) and clips ({len(clips)}) must be equal, non-empty lists")
    n_frames, height, width = (int(latents.attrs[k]) for k in ("n_frames", "height", "width"))
    digest = hashlib.sha256()
    for r in rows:
        digest.update(np.ascontiguousarray(latents[r]).tobytes())
    attrs = {
        **attributes,
        "clips": clips,
        "vae": latents.attrs["vae"],
        "decode_path": V.decode_path(vae),
        "decode_timestep": ltx.decode_timestep,
        "decode_noise_scale": ltx.decode_noise_scale,
        "decode_seed": ltx.seed,
        "n_frames": n_frames,
        "height": height,
        "width": width,
        "latents_sha256": digest.hexdigest(),
    }
    store = PartialStore(out_path, {"attributes": attrs})
    shape = (len(rows), n_frames, height, width, 3)
    arr = store.array(
        shape,
        chunks=(1, *shape[1:]),
        dtype="uint8",
        dimension_names=("row", "frame", "y", "x", "rgb"),
        attributes=attrs,
    )
    todo = [k for k in range(len(rows)) if not store.is_done(k)]
    for k in progress_bar(todo, desc=f"decode {Path(out_path).name}", unit="clip", disable=not progress):
        z = torch.from_numpy(np.asarray(latents[rows[k]], dtype=np.float32))[None]  # [1, 128, F', H', W']
        arr[k] = V.decode(vae, z, ltx.decode_timestep, ltx.decode_noise_scale, decode_generator(ltx.seed, clips[k]))[
            0
        ].numpy()  # [F, H, W, 3]
        store.mark_done(k)
    store.finalize()
    return open_complete(out_path)


def decode_for_loss(vae: AutoencoderKLLTXVideo, latents: torch.Tensor, decode_timestep: float) -> torch.Tensor:
    """Differentiable decode of normalised latents ``[B, 128, F', H', W']`` to float frames ``[B, 3, F, H, W]``
    (about [-1, 1]): the denormalisation and ``temb`` of :func:`..vae.decode`, without its latent noise, clamp and
    rounding. A 0.9.1 decoder's own noise injection draws from the global RNG (seeded by the caller)."""
    mean, std = V._latent_stats(vae)
    z = (latents * std / vae.config.scaling_factor + mean).to(vae.dtype)  # [B, 128, F', H', W']
    temb = None
    if V.decode_path(vae) == "timestep_conditioned":
        temb = torch.full((z.shape[0],), decode_timestep, device=z.device, dtype=vae.dtype)  # [B]
    return vae.decode(z, temb, return_dict=False)[0].to(torch.float32)
