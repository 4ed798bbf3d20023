"""Token grids to the LTX-Video latent grid: the one definition of how adapters resample space and time.

Space: token cell ``(r, c)`` of a stride-``s`` grid covers pixels ``[s*r, s*(r+1))`` on each axis and latent cell
``i`` covers ``[32*i, 32*(i+1))``. :func:`area_matrix` gives each output cell the mean of the token cells it
overlaps, weighted by overlap length on each axis: a separable box filter in pixel coordinates, exact for any
stride (14 px pre-merge, 28 px merged) and centred on the output cell's centre.

Time: latent step 0 is frame 0 and step ``k`` is frames ``8k-7 .. 8k``. Each frame takes the temporal slot that
covers it (one per frame in image mode, pairs in video mode); a step is the mean over its frames
(:func:`temporal_matrix`), so a video-mode slot straddling two steps contributes to both, in proportion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import zarr

from ..errors import ForesightError
from ..features import FeatureStore
from ..ltx.vae import SPATIAL_COMPRESSION, TEMPORAL_COMPRESSION, latent_shape


@dataclass(frozen=True)
class GridSpec:
    """Geometry of one input feature grid ``[t, gh, gw, C]`` (from a feature store's metadata)."""

    point: str
    stride: int
    grid: tuple[int, int, int]  # (t, gh, gw)
    channels: int
    slot_frames: tuple[tuple[int, ...], ...]
    height: int
    width: int

    @classmethod
    def of(cls, store: FeatureStore) -> GridSpec:
        return cls(
            point=store.name,
            stride=store.stride,
            grid=store.grid,
            channels=store.channels,
            slot_frames=tuple(tuple(s) for s in store.slot_frames),
            height=int(store.attrs["height"]),
            width=int(store.attrs["width"]),
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GridSpec:
        return cls(**{**d, "grid": tuple(d["grid"]), "slot_frames": tuple(tuple(s) for s in d["slot_frames"])})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LatentSpec:
    """Clip geometry and the VAE latent shape ``(128, F', H', W')`` it gives."""

    n_frames: int
    height: int
    width: int

    @classmethod
    def of(cls, latents: zarr.Array) -> LatentSpec:
        """The geometry a latents store (VAE latents or an adapter's predictions) records."""
        return cls(*(int(latents.attrs[k]) for k in ("n_frames", "height", "width")))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return latent_shape(self.n_frames, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def latent_step_of_frame(n_frames: int) -> np.ndarray:
    """int64 ``[F]``: the latent step of each frame (0 for frame 0, ``(f - 1) // 8 + 1`` after)."""
    f = np.arange(n_frames)
    return np.where(f == 0, 0, (f - 1) // TEMPORAL_COMPRESSION + 1)


def frame_slots(spec: GridSpec, n_frames: int) -> np.ndarray:
    """int64 ``[F]``: the temporal slot of ``spec`` covering each of the clip's ``n_frames`` frames."""
    owner = np.full(n_frames, -1, dtype=np.int64)
    for slot, frames in enumerate(spec.slot_frames):
        for f in frames:
            if not 0 <= f < n_frames or owner[f] >= 0:
                raise ForesightError(
                    f"point {spec.point}: slot_frames {list(map(list, spec.slot_frames))} must cover frames "
                    f"0..{n_frames - 1} once each (frame {f})"
                )
            owner[f] = slot
    if (owner < 0).any():
        raise ForesightError(
            f"point {spec.point}: no slot covers frames {np.flatnonzero(owner < 0).tolist()} "
            f"of the {n_frames}-frame clips"
        )
    return owner


def step_matrix(n_frames: int) -> np.ndarray:
    """float64 ``[F', F]``: row ``k`` is the mean over the frames of latent step ``k``."""
    steps = latent_step_of_frame(n_frames)
    m = np.zeros((steps.max() + 1, n_frames))
    m[steps, np.arange(n_frames)] = 1.0
    return m / m.sum(axis=1, keepdims=True)


def temporal_matrix(spec: GridSpec, n_frames: int) -> np.ndarray:
    """float64 ``[F', t]``: row ``k`` averages, over the frames of latent step ``k``, the slot covering each frame."""
    return step_matrix(n_frames) @ np.eye(spec.grid[0])[frame_slots(spec, n_frames)]


def area_matrix(n_out: int, out_stride: float, n_in: int, in_stride: float) -> np.ndarray:
    """float64 ``[n_out, n_in]``: box-filter weights of input cells (``in_stride`` px) for each output cell.

    Weight = overlap length of the two cells' pixel intervals, rows normalised to sum to 1 (a row whose cell no
    input covers is an error).
    """
    lo_out = np.arange(n_out)[:, None] * out_stride
    lo_in = np.arange(n_in)[None, :] * in_stride
    overlap = np.clip(np.minimum(lo_out + out_stride, lo_in + in_stride) - np.maximum(lo_out, lo_in), 0.0, None)
    total = overlap.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ForesightError(
            f"a {n_in}-cell grid at {in_stride:g} px does not reach every cell of a "
            f"{n_out}-cell grid at {out_stride:g} px"
        )
    return overlap / total


def spatial_matrices(spec: GridSpec, latent: LatentSpec, subcells: int) -> tuple[np.ndarray, np.ndarray]:
    """Area matrices ``([H'*s, gh], [W'*s, gw])`` onto the latent grid refined ``subcells`` times per side."""
    if (spec.height, spec.width) != (latent.height, latent.width):
        raise ForesightError(
            f"point {spec.point}: its grid covers {spec.height}x{spec.width} frames, "
            f"the latents {latent.height}x{latent.width}"
        )
    _, _, lh, lw = latent.shape
    step = SPATIAL_COMPRESSION / subcells
    _, gh, gw = spec.grid
    return area_matrix(lh * subcells, step, gh, spec.stride), area_matrix(lw * subcells, step, gw, spec.stride)


def pool_to_latent_grid(grids: np.ndarray, spec: GridSpec, latent: LatentSpec) -> np.ndarray:
    """Fixed pooling of token grids onto the latent grid: float64 ``[k, t, gh, gw, C]`` -> ``[k, F', H', W', C]``
    (the step mean over frames, then the area filter; what an adapter's resampling starts from)."""
    time = temporal_matrix(spec, latent.n_frames)  # [F', t]
    ry, rx = spatial_matrices(spec, latent, subcells=1)  # [H', gh], [W', gw]
    x = np.einsum("kt,btrcd->bkrcd", time, grids)
    x = np.einsum("ir,bkrcd->bkicd", ry, x)
    return np.einsum("jc,bkicd->bkijd", rx, x)
