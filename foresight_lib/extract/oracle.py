"""The ``oracle`` control point: the ground truth rasterised at a stride, stored like any feature grid.

Per cell of a frame (stride ``s``, cell ``(r, c)`` centred at pixel ``((c + 0.5) s, (r + 0.5) s)``), with the
probes' own cell rule (:mod:`foresight_lib.probes.grid`): a cell belongs to a box when its centre lies inside the
box (``x0 <= cx < x1``, ``y0 <= cy < y1``), the cell holding a box's centre always does, and a cell of several boxes
belongs to the smallest (first on a tie). Channels ``[5 + K]``:
``0`` occupancy (1 for an owned cell), ``1:5`` the distances from the cell centre to the owner's left, top, right and
bottom edges in stride units, ``5:`` the owner's class one-hot over the K categories; all 0 for a free cell.

A head that cannot read this back into boxes cannot read space from any feature: it gates the Phase 1 decision.

``target: steps`` stores the step instead (a procedural source's ``steps.parquet``): every cell of every frame of a
clip holds the one-hot of the clip's step label over the K labels in sorted order, ``[K]`` channels. A step probe
must read it at ~1.0; it gates the step probes as the box oracle gates the boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import ForesightError
from ..params import OraclePoint
from ..store import open_complete
from .base import ExtractContext, Extractor


def rasterise(boxes: np.ndarray, labels: np.ndarray, gh: int, gw: int, stride: int, n_classes: int) -> np.ndarray:
    """Boxes ``[N, 4]`` xywh px with class indices ``[N]`` -> the oracle grid ``[gh, gw, 5 + n_classes]`` float32."""
    out = np.zeros((gh, gw, 5 + n_classes), dtype=np.float32)  # [gh, gw, 5 + K]
    if len(boxes) == 0:
        return out
    xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)  # [N, 4]
    cx = (np.arange(gw) + 0.5) * stride  # [gw]
    cy = (np.arange(gh) + 0.5) * stride  # [gh]
    inside = (
        (xyxy[:, 0, None, None] <= cx)
        & (cx < xyxy[:, 2, None, None])
        & (xyxy[:, 1, None, None] <= cy[:, None])
        & (cy[:, None] < xyxy[:, 3, None, None])
    )  # [N, gh, gw]
    rows = np.clip(np.floor((xyxy[:, 1] + xyxy[:, 3]) / 2 / stride).astype(int), 0, gh - 1)  # [N]
    cols = np.clip(np.floor((xyxy[:, 0] + xyxy[:, 2]) / 2 / stride).astype(int), 0, gw - 1)  # [N]
    inside[np.arange(len(boxes)), rows, cols] = True
    area = boxes[:, 2] * boxes[:, 3]  # [N]
    ranked = np.where(inside, area[:, None, None], np.inf)  # [N, gh, gw]
    owner = np.argmin(ranked, axis=0)  # [gh, gw] first smallest
    occupied = inside.any(axis=0)  # [gh, gw]
    own = xyxy[owner]  # [gh, gw, 4]
    grid_x, grid_y = np.meshgrid(cx, cy)  # [gh, gw]
    distances = (
        np.stack(
            [
                grid_x - own[..., 0],
                grid_y - own[..., 1],
                own[..., 2] - grid_x,
                own[..., 3] - grid_y,
            ],
            axis=-1,
        )
        / stride
    )  # [gh, gw, 4]
    out[..., 0] = occupied
    out[..., 1:5] = np.where(occupied[..., None], distances, 0.0)
    classes = np.asarray(labels, dtype=np.int64)[owner]  # [gh, gw]
    r, c = np.nonzero(occupied)
    out[r, c, 5 + classes[r, c]] = 1.0
    return out


@dataclass(kw_only=True)
class OracleExtractor(Extractor):
    """The ground truth of each clip rasterised, frame by frame (``run`` gets clip indices)."""

    truth: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]  # (clip, frame) -> (boxes [N, 4] xywh, classes [N])
    n_classes: int

    def run(self, clips: np.ndarray) -> torch.Tensor:  # clip indices [k] -> [k, F, gh, gw, 5 + K]
        n_frames, gh, gw = self.grid
        empty = (np.zeros((0, 4)), np.zeros(0, dtype=np.int64))
        grids = [
            [
                rasterise(*self.truth.get((int(c), f), empty), gh, gw, self.stride, self.n_classes)
                for f in range(n_frames)
            ]
            for c in clips
        ]
        return torch.from_numpy(np.asarray(grids, dtype=np.float32))


def oracle_extractor(
    name: str,
    point: OraclePoint,
    frames_path: str | Path,
    annotations_path: str | Path,
    height: int,
    width: int,
    n_frames: int,
) -> OracleExtractor:
    """The oracle point of ``points.<name>``: ground truth from ``annotations_path`` (the frames stage's table)."""
    if height % point.stride or width % point.stride:
        raise ForesightError(f"points.{name}.stride: {point.stride} must divide the frames' {height}x{width}")
    annotations_path = Path(annotations_path)
    if not annotations_path.is_file():
        raise ForesightError(f"point {name}: {annotations_path} not found (the oracle rasterises the ground truth)")
    categories = list(open_complete(frames_path).attrs["categories"])
    ann = pd.read_parquet(annotations_path)
    truth = {
        (int(c), int(f)): (
            g[["x", "y", "w", "h"]].to_numpy(np.float64),
            g["category_id"].to_numpy(np.int64) - 1,
        )
        for (c, f), g in ann.groupby(["clip", "frame"])
    }
    gh, gw = height // point.stride, width // point.stride
    return OracleExtractor(
        name=name,
        definition=point.model_dump(),
        stride=point.stride,
        grid=(n_frames, gh, gw),
        channels=5 + len(categories),
        slot_frames=[[f] for f in range(n_frames)],
        mode="image",
        weights={"weights": "none (ground truth rasterised)"},
        clips_per_batch=8,
        flops_per_frame=0.0,
        by_index=True,
        truth=truth,
        n_classes=len(categories),
    )


@dataclass(kw_only=True)
class StepOracleExtractor(Extractor):
    """Each clip's step label one-hot in every cell (``run`` gets clip indices)."""

    labels: np.ndarray  # [n_clips] int64, the step label index of each clip

    def run(self, clips: np.ndarray) -> torch.Tensor:  # clip indices [k] -> [k, F, gh, gw, K]
        one_hot = np.eye(self.channels, dtype=np.float32)[self.labels[np.asarray(clips, dtype=np.int64)]]  # [k, K]
        return torch.from_numpy(one_hot)[:, None, None, None, :].expand(-1, *self.grid, -1).contiguous()


def step_oracle_extractor(
    name: str, point: OraclePoint, steps_path: str | Path, height: int, width: int, n_frames: int
) -> StepOracleExtractor:
    """The ``target: steps`` oracle point of ``points.<name>``: the step of each clip from ``steps_path``."""
    if height % point.stride or width % point.stride:
        raise ForesightError(f"points.{name}.stride: {point.stride} must divide the frames' {height}x{width}")
    steps_path = Path(steps_path)
    if not steps_path.is_file():
        raise ForesightError(f"point {name}: {steps_path} not found (a steps oracle one-hot codes each clip's step)")
    steps = pd.read_parquet(steps_path, columns=["clip", "step"]).sort_values("clip")
    if steps.empty or not np.array_equal(steps["clip"].to_numpy(), np.arange(len(steps))):
        raise ForesightError(
            f"points.{name}.target: steps needs a step per clip in {steps_path} (a procedural source such as coin); "
            f"it has {len(steps)} rows"
        )
    vocabulary = sorted(steps["step"].unique())
    return StepOracleExtractor(
        name=name,
        definition=point.model_dump() | {"steps": vocabulary},
        stride=point.stride,
        grid=(n_frames, height // point.stride, width // point.stride),
        channels=len(vocabulary),
        slot_frames=[[f] for f in range(n_frames)],
        mode="image",
        weights={"weights": "none (ground-truth step one-hot)"},
        clips_per_batch=8,
        flops_per_frame=0.0,
        by_index=True,
        labels=steps["step"].map({s: i for i, s in enumerate(vocabulary)}).to_numpy(np.int64),
    )


def oracle_point_extractor(
    name: str, point: OraclePoint, context: ExtractContext
) -> OracleExtractor | StepOracleExtractor:
    """The ``oracle`` kind's entry point (:data:`foresight_lib.kinds.KINDS`): the boxes (``frames_path`` and
    ``annotations_path`` needed) or, for ``target: steps``, the steps (``steps_path``)."""
    c = context
    if point.target == "steps":
        if c.steps_path is None:
            raise ForesightError(
                f"point {name}: a steps oracle point needs the step table (stages/extract.py --steps data/steps.parquet)"
            )
        return step_oracle_extractor(name, point, c.steps_path, c.height, c.width, c.n_frames)
    if c.frames_path is None or c.annotations_path is None:
        raise ForesightError(
            f"point {name}: an oracle point needs the frames store and the annotations table "
            "(stages/extract.py --annotations data/annotations.parquet)"
        )
    return oracle_extractor(name, point, c.frames_path, c.annotations_path, c.height, c.width, c.n_frames)
