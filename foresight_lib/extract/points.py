"""From a point's params to a ready :class:`.base.Extractor`, whichever model (or none) makes it."""

from __future__ import annotations

from ..params import EncoderPoint, ExtractParams, ModelParams, PixelsPoint, PointParams
from .base import Extractor
from .pixels import pixels_extractor


def make_extractor(name: str, point: PointParams, model: ModelParams, extract: ExtractParams,
                   height: int, width: int, n_frames: int) -> Extractor:
    """The extractor for ``points.<name>`` (transformers loads only for the points that need a model)."""
    if isinstance(point, PixelsPoint):
        return pixels_extractor(name, point, height, width, n_frames, max(1, extract.batch_frames // n_frames))
    if isinstance(point, EncoderPoint):
        from .encoders import encoder_extractor

        return encoder_extractor(name, point, height, width, n_frames, extract.batch_frames, model.dtype, model.device)
    from .qwen import qwen_extractor

    return qwen_extractor(name, point, model, extract, height, width, n_frames)
