"""From a point's params to a ready :class:`.base.Extractor`, whichever model (or none) makes it."""

from __future__ import annotations

from pathlib import Path

from ..errors import ForesightError
from ..params import EncoderPoint, ExtractParams, ModelParams, OraclePoint, PixelsPoint, PointParams
from .base import Extractor
from .pixels import pixels_extractor


def make_extractor(
    name: str,
    point: PointParams,
    model: ModelParams,
    extract: ExtractParams,
    height: int,
    width: int,
    n_frames: int,
    frames_path: str | Path | None = None,
    annotations_path: str | Path | None = None,
    steps_path: str | Path | None = None,
) -> Extractor:
    """The extractor for ``points.<name>`` (transformers loads only for the points that need a model); an ``oracle``
    point reads the frames stage's store and ground truth (``frames_path``, and ``annotations_path`` or, for
    ``target: steps``, ``steps_path``: required for it)."""
    if isinstance(point, PixelsPoint):
        return pixels_extractor(name, point, height, width, n_frames, max(1, extract.batch_frames // n_frames))
    if isinstance(point, OraclePoint) and point.target == "steps":
        from .oracle import step_oracle_extractor

        if steps_path is None:
            raise ForesightError(
                f"point {name}: a steps oracle point needs the step table (stages/extract.py --steps data/steps.parquet)"
            )
        return step_oracle_extractor(name, point, steps_path, height, width, n_frames)
    if isinstance(point, OraclePoint):
        from .oracle import oracle_extractor

        if frames_path is None or annotations_path is None:
            raise ForesightError(
                f"point {name}: an oracle point needs the frames store and the annotations table "
                "(stages/extract.py --annotations data/annotations.parquet)"
            )
        return oracle_extractor(name, point, frames_path, annotations_path, height, width, n_frames)
    if isinstance(point, EncoderPoint):
        from .encoders import encoder_extractor

        return encoder_extractor(name, point, height, width, n_frames, extract.batch_frames, model.dtype, model.device)
    from .qwen import qwen_extractor

    return qwen_extractor(name, point, model, extract, height, width, n_frames)
