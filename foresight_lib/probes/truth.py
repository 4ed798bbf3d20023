"""The frames stage's ground truth (boxes per frame, split and direction per clip), checked against a feature store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.frames import FramesOutputs
from ..errors import ForesightError
from ..features import FeatureStore
from ..store import open_complete

_BOX_TOLERANCE = 1.0  # pixels a box may pass the frame edge before the geometry counts as mismatched


@dataclass(frozen=True)
class GroundTruth:
    """The frames stage's tables: per-frame boxes and per-clip split and motion direction."""

    height: int
    width: int
    n_frames: int
    categories: tuple[str, ...]
    clips: pd.DataFrame  # clip (0..n-1, in order), name, split, direction
    boxes: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]  # (clip, frame) -> ([N, 4] xywh px, [N] class index)

    def frame(self, clip: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``[N, 4]`` (xywh px) and class indices ``[N]`` of one frame; empty when nothing is annotated."""
        return self.boxes.get((clip, frame), (np.zeros((0, 4)), np.zeros(0, dtype=np.int64)))


def load_ground_truth(frames_dir: str | Path) -> GroundTruth:
    """Read ``frames.zarr``'s attributes, ``annotations.parquet`` and ``clips.parquet`` from ``frames_dir``."""
    out = FramesOutputs(Path(frames_dir))
    for path in (out.annotations, out.clips):
        if not path.is_file():
            raise ForesightError(f"{path}: not found (run the frames stage first)")
    attrs = dict(open_complete(out.frames).attrs)
    clips = pd.read_parquet(out.clips)
    if not np.array_equal(clips["clip"].to_numpy(), np.arange(len(clips))):
        raise ForesightError(f"{out.clips}: clip ids must be 0..{len(clips) - 1} in order")
    if len(clips) != attrs["n_clips"]:
        raise ForesightError(f"{out.clips}: {len(clips)} clips but {out.frames} holds {attrs['n_clips']}")
    ann = pd.read_parquet(out.annotations)
    height, width, n_frames = int(attrs["height"]), int(attrs["width"]), int(attrs["n_frames"])
    bad = ann[
        (ann["clip"] < 0)
        | (ann["clip"] >= len(clips))
        | (ann["frame"] < 0)
        | (ann["frame"] >= n_frames)
        | (ann["x"] < -_BOX_TOLERANCE)
        | (ann["y"] < -_BOX_TOLERANCE)
        | (ann["x"] + ann["w"] > width + _BOX_TOLERANCE)
        | (ann["y"] + ann["h"] > height + _BOX_TOLERANCE)
    ]
    if len(bad):
        row = bad.iloc[0]
        raise ForesightError(
            f"{out.annotations}: {len(bad)} boxes outside the {len(clips)} clips x {n_frames} frames of {height}x{width} "
            f"px in {out.frames} (first: clip {row['clip']} frame {row['frame']} box "
            f"{[float(row[c]) for c in 'xywh']})"
        )
    categories = tuple(attrs["categories"])
    if len(ann) and not ann["category_id"].between(1, len(categories)).all():
        raise ForesightError(f"{out.annotations}: category_id outside 1..{len(categories)} ({', '.join(categories)})")
    boxes = {
        (int(c), int(f)): (g[["x", "y", "w", "h"]].to_numpy(np.float64), g["category_id"].to_numpy(np.int64) - 1)
        for (c, f), g in ann.groupby(["clip", "frame"], sort=True)
    }
    return GroundTruth(
        height=height,
        width=width,
        n_frames=n_frames,
        categories=categories,
        clips=clips[["clip", "name", "split", "direction"]],
        boxes=boxes,
    )


def check_match(store: FeatureStore, truth: GroundTruth) -> None:
    """The store must describe the clips and frames the ground truth describes."""
    attrs = store.attrs
    if store.n_clips != len(truth.clips):
        raise ForesightError(
            f"{store.path}: {store.n_clips} clips but the annotations describe {len(truth.clips)} "
            f"(was it extracted from another frames store?)"
        )
    if (attrs["height"], attrs["width"]) != (truth.height, truth.width):
        raise ForesightError(
            f"{store.path}: made from {attrs['height']}x{attrs['width']} frames but the annotations "
            f"are for {truth.height}x{truth.width}"
        )
    _, gh, gw = store.grid
    if (gh * store.stride, gw * store.stride) != (truth.height, truth.width):
        raise ForesightError(
            f"{store.path}: grid {gh}x{gw} at stride {store.stride} does not cover {truth.height}x{truth.width} frames"
        )
    frames = [f for slot in store.slot_frames for f in slot]
    if len(store.slot_frames) != store.grid[0] or not frames or min(frames) < 0 or max(frames) >= truth.n_frames:
        raise ForesightError(
            f"{store.path}: slot_frames {store.slot_frames} do not fit {store.grid[0]} slots of "
            f"{truth.n_frames}-frame clips"
        )
