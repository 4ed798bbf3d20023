"""From a point's params to a ready :class:`.base.Extractor`, whichever model (or none) makes it: the kind's entry
in :data:`foresight_lib.kinds.KINDS` names the function that builds it."""

from __future__ import annotations

from pathlib import Path

from ..kinds import KINDS, load
from ..params import ExtractParams, ModelParams, PointParams
from .base import ExtractContext, Extractor


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
    """The extractor for ``points.<name>`` (read from ``model``: the point's model); transformers loads only for the
    kinds that need a model."""
    context = ExtractContext(model, extract, height, width, n_frames, frames_path, annotations_path, steps_path)
    return load(KINDS[point.kind].extractor)(name, point, context)
