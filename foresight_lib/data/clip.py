"""The in-memory clip every data source yields, and the ground-truth conventions shared by all of them.

Boxes are COCO ``[x, y, w, h]`` in pixels of the stored frame geometry (after resizing).
Frames are in temporal order: frame index = order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

DIRECTIONS: tuple[str, ...] = ("right", "down", "left", "up")
"""Motion direction classes, in image coordinates (y grows downwards). Index = class id."""

OBJECT_COLUMNS: tuple[str, ...] = ("frame", "object_id", "category", "x", "y", "w", "h", "visibility")
"""Per-frame ground truth of a :class:`Clip`. ``visibility`` is the visible fraction of the object's area in [0, 1]."""

STEP_COLUMNS: dict[str, str] = {
    "clip": "int64",
    "video": "str",
    "task": "str",
    "subset": "str",
    "step": "str",
    "step_id": "str",
    "step_index": "int64",
    "n_steps": "int64",
    "segment_start": "float64",
    "segment_end": "float64",
    "clip_start": "float64",
    "clip_end": "float64",
}
"""Step facts of a clip of a procedural source (``steps.parquet``), column -> dtype: the source video, its task
(COIN ``class``) and subset, the step label and the annotation's step id, the step's 0-based index in the video's
procedure (segments in order of start) of ``n_steps``, the segment and the clip's first and last frame times (s)."""


@dataclass
class Clip:
    """One decoded clip with its ground truth."""

    name: str
    frames: np.ndarray  # [F, H, W, 3] uint8
    objects: pd.DataFrame  # columns OBJECT_COLUMNS, one row per visible (frame, object)
    direction: int  # index into DIRECTIONS, -1 when unknown
    source: str  # "synthetic" or the video file path
    speed: float = float("nan")  # pixels per frame, NaN when unknown
    fps: float = float("nan")  # frame rate of the sampled frames, NaN for synthetic
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.frames.dtype != np.uint8 or self.frames.ndim != 4 or self.frames.shape[-1] != 3:
            raise ValueError(
                f"clip {self.name}: frames must be uint8 [F, H, W, 3], got {self.frames.dtype} {self.frames.shape}"
            )
        missing = set(OBJECT_COLUMNS) - set(self.objects.columns)
        if missing:
            raise ValueError(f"clip {self.name}: objects lack columns {sorted(missing)}")


@dataclass(frozen=True)
class Skipped:
    """A clip that could not be decoded, with the reason (listed in ``data/skipped.json``)."""

    name: str
    source: str
    reason: str


def direction_from_boxes(objects: pd.DataFrame) -> int:
    """Dominant motion direction (index into :data:`DIRECTIONS`) of box centres, -1 if nothing moves.

    Displacement is the mean over objects seen in at least two frames of (last centre - first centre);
    the class is the axis and sign of its larger component. Used for real data, where no label exists.
    """
    if objects.empty:
        return -1
    cx = objects["x"] + objects["w"] / 2
    cy = objects["y"] + objects["h"] / 2
    centres = objects.assign(cx=cx, cy=cy).sort_values("frame").groupby("object_id")
    moves = [(g["cx"].iloc[-1] - g["cx"].iloc[0], g["cy"].iloc[-1] - g["cy"].iloc[0]) for _, g in centres if len(g) > 1]
    if not moves:
        return -1
    dx, dy = np.mean(moves, axis=0)
    if dx == 0 and dy == 0:
        return -1
    if abs(dx) >= abs(dy):
        return DIRECTIONS.index("right" if dx > 0 else "left")
    return DIRECTIONS.index("down" if dy > 0 else "up")
