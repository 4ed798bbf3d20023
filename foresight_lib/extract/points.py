"""From a point's params to a ready :class:`PointExtractor`, whichever model (or none) makes it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import ForesightError
from ..features import pixel_patches
from ..params import (
    EncoderPoint,
    ExtractParams,
    LlmPoint,
    MergerPoint,
    ModelParams,
    OraclePoint,
    PixelsPoint,
    PointParams,
)
from .writer import PointExtractor

if TYPE_CHECKING:
    from .qwen import LoadedModel


def pixels_extractor(name: str, point: PixelsPoint, height: int, width: int, n_frames: int) -> PointExtractor:
    """The ``pixels`` control: raw pixel patches per cell, no model."""

    def run(clips: np.ndarray) -> np.ndarray:  # [k, F, H, W, 3] -> [k, F, gh, gw, p*p*3]
        k = clips.shape[0]
        grids = pixel_patches(clips.reshape(-1, height, width, 3), point.patch)
        return grids.reshape(k, n_frames, *grids.shape[1:])

    return PointExtractor(
        name=name, definition=point.model_dump(), stride=point.patch,
        grid=(n_frames, height // point.patch, width // point.patch), channels=point.patch**2 * 3,
        slot_frames=[[f] for f in range(n_frames)], weights={"weights": "none (raw pixels)"},
        run=run, clips_per_batch=8,
    )


def qwen_extractor(name: str, point: PointParams, model: ModelParams, extract: ExtractParams,
                   height: int, width: int, n_frames: int, loaded: LoadedModel | None = None) -> PointExtractor:
    """A Qwen2.5-VL point: a truncated forward to exactly this point, in true raster order.

    A model loaded here for a vision-only point keeps only its vision tower in memory.
    """
    from . import qwen

    if loaded is None:
        loaded = qwen.load_model(model, random_weights=point.weights == "random")
        if not isinstance(point, LlmPoint):
            qwen.drop_llm(loaded)
    config = loaded.model.config
    geometry = qwen.point_geometry(point, config, height, width, n_frames, extract.mode)
    merger = qwen.point_geometry(MergerPoint(kind="merger"), config, height, width, n_frames, extract.mode)
    itemsize = np.dtype(extract.dtype).itemsize
    clips_per_batch = max(1, extract.batch_frames // n_frames) if extract.mode == "image" else 1

    def run(clips: np.ndarray) -> np.ndarray:  # [k, F, H, W, 3] -> [k, T, gh, gw, C]
        k = clips.shape[0]
        if extract.mode == "image":  # every frame is its own image: one call over all k clips' frames
            grid = qwen.extract(loaded.model, clips.reshape(-1, height, width, 3), {name: point}, "image",
                                extract.batch_frames, norm=loaded.norm)[name]
            return grid.reshape(k, -1, *grid.shape[1:]).numpy()
        return torch.stack([
            qwen.extract(loaded.model, c, {name: point}, "video", extract.batch_frames, norm=loaded.norm)[name]
            for c in clips
        ]).numpy()

    return PointExtractor(
        name=name, definition=point.model_dump(), stride=geometry.stride, grid=geometry.grid,
        channels=geometry.channels, slot_frames=[list(s) for s in geometry.slot_frames],
        weights=loaded.identity, run=run, clips_per_batch=clips_per_batch, device=loaded.device,
        reference_bytes_per_frame=float(np.prod(merger.grid)) * merger.channels * itemsize / n_frames,
    )


def make_extractor(name: str, point: PointParams, model: ModelParams, extract: ExtractParams,
                   height: int, width: int, n_frames: int, frames_path: str | Path | None = None,
                   annotations_path: str | Path | None = None) -> PointExtractor:
    """The extractor for ``points.<name>``; an ``oracle`` point reads the frames stage's store and ground truth
    (``frames_path``, ``annotations_path``: required for it)."""
    if isinstance(point, PixelsPoint):
        return pixels_extractor(name, point, height, width, n_frames)
    if isinstance(point, OraclePoint):
        from .oracle import oracle_extractor

        if frames_path is None or annotations_path is None:
            raise ForesightError(f"point {name}: an oracle point needs the frames store and the annotations table "
                                 "(stages/extract.py --annotations data/annotations.parquet)")
        return oracle_extractor(name, point, frames_path, annotations_path, height, width, n_frames)
    if isinstance(point, EncoderPoint):
        from .encoders import (
            encoder_extractor,  # transformers loads only for the points that need a model
        )

        return encoder_extractor(name, point, height, width, n_frames, extract.batch_frames, model.dtype, model.device)
    return qwen_extractor(name, point, model, extract, height, width, n_frames)
