"""The ``pixels`` control: raw pixel patches per cell, no model (what every feature must beat)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ForesightError
from ..params import PixelsPoint
from .base import ExtractContext, Extractor


def pixel_patches(frames: np.ndarray, patch: int) -> np.ndarray:
    """Raw ``patch`` x ``patch`` x 3 patches per cell, scaled to [0, 1].

    ``frames``: uint8 [N, H, W, 3] -> float32 [N, H/patch, W/patch, patch*patch*3], values in (y, x, rgb) order.
    """
    n, h, w, _ = frames.shape
    if h % patch or w % patch:
        raise ForesightError(f"pixels point: frame size {h}x{w} is not a multiple of its patch {patch}")
    x = frames.reshape(n, h // patch, patch, w // patch, patch, 3).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // patch, w // patch, patch * patch * 3).astype(np.float32) / 255.0


@dataclass(kw_only=True)
class PixelsExtractor(Extractor):
    patch: int

    def run(self, clips: np.ndarray) -> torch.Tensor:  # [k, F, H, W, 3] -> [k, F, gh, gw, p*p*3]
        k, f, h, w, _ = clips.shape
        grids = pixel_patches(clips.reshape(-1, h, w, 3), self.patch)
        return torch.from_numpy(grids.reshape(k, f, *grids.shape[1:]))


def pixels_extractor(
    name: str, point: PixelsPoint, height: int, width: int, n_frames: int, clips_per_batch: int = 8
) -> PixelsExtractor:
    """The ``pixels`` point: every frame alone, one cell per ``patch`` x ``patch`` pixel patch."""
    return PixelsExtractor(
        name=name,
        definition=point.model_dump(),
        stride=point.patch,
        grid=(n_frames, height // point.patch, width // point.patch),
        channels=point.patch**2 * 3,
        slot_frames=[[f] for f in range(n_frames)],
        mode="image",
        weights={"weights": "none (raw pixels)"},
        clips_per_batch=clips_per_batch,
        flops_per_frame=0.0,
        patch=point.patch,
    )


def pixels_point_extractor(name: str, point: PixelsPoint, context: ExtractContext) -> PixelsExtractor:
    """The ``pixels`` kind's entry point (:data:`foresight_lib.kinds.KINDS`)."""
    n_frames = context.n_frames
    return pixels_extractor(
        name, point, context.height, context.width, n_frames, max(1, context.extract.batch_frames // n_frames)
    )
