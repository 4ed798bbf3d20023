"""The interface every extraction point implements, whatever model (or none) makes it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import ForesightError
from ..params import ExtractParams, ModelParams

StoreMode = Literal["image", "video"]
"""How a store's temporal slots were made: ``image``, every frame alone (one slot per frame); ``video``,
frames paired by the temporal patch (one slot per pair)."""


@dataclass(frozen=True)
class ExtractContext:
    """What every kind's extractor function may read besides its point: the point's model (``params.model_of``),
    the extraction params, the clip geometry and the frames stage's stores (an oracle point reads its ground truth
    from them)."""

    model: ModelParams
    extract: ExtractParams
    height: int
    width: int
    n_frames: int
    frames_path: str | Path | None = None
    annotations_path: str | Path | None = None
    steps_path: str | Path | None = None


@dataclass(kw_only=True)
class Extractor(ABC):
    """One extraction point, ready to run: its geometry, what made it, and frames -> raster grids.

    :func:`.writer.write_point` needs nothing else to write the point's feature store.
    """

    name: str
    definition: dict[str, Any]  # the point's params (plus what the extractor adds, e.g. dropped tokens)
    stride: int  # pixels per grid cell, both axes
    grid: tuple[int, int, int]  # (T, gh, gw)
    channels: int
    slot_frames: list[list[int]]  # per temporal slot, the frame indices it covers
    mode: StoreMode
    weights: dict[str, Any]  # JSON record of the weights that made it
    clips_per_batch: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    reference_bytes_per_frame: float | None = None  # the merger's feature bytes per frame, when known
    flops_per_frame: float | None = None  # model FLOPs per frame up to this point (0: no model); :mod:`.flops`
    by_index: bool = False  # ``run`` gets the clips' indices ``[k]``, not their frames (a point made from ground truth)

    @abstractmethod
    def run(self, clips: np.ndarray) -> torch.Tensor:
        """uint8 frames ``[k, F, H, W, 3]`` of ``k`` clips (or their indices ``[k]``, :attr:`by_index`) -> float grids
        ``[k, T, gh, gw, C]`` on ``device``."""


def resolve_layer(layer: int, depth: int, what: str) -> int:
    """Block index ``layer`` of a ``depth``-block stack (negative counts from the end: -1 is the last block)."""
    if not -depth <= layer < depth:
        raise ForesightError(
            f"{what} layer {layer} out of range: {depth} blocks, valid layers 0..{depth - 1} "
            f"(or -{depth}..-1 from the end)"
        )
    return layer % depth
