"""The oracle control point: the ground truth rasterised per cell, checked against an independent rasterisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import small_params

from foresight_lib.data.frames import write_frames
from foresight_lib.errors import ForesightError
from foresight_lib.extract.oracle import rasterise
from foresight_lib.extract.points import make_extractor
from foresight_lib.extract.writer import write_point
from foresight_lib.features import open_features
from foresight_lib.params import ExtractParams, ModelParams, OraclePoint
from foresight_lib.probes.grid import assign_cells

HEIGHT, WIDTH = 224, 448


def reference(boxes: np.ndarray, labels: np.ndarray, gh: int, gw: int, stride: int, k: int) -> np.ndarray:
    """Cell by cell, box by box, in plain Python."""
    out = np.zeros((gh, gw, 5 + k))
    for r in range(gh):
        for c in range(gw):
            cx, cy = (c + 0.5) * stride, (r + 0.5) * stride
            best = None
            for i, (x, y, w, h) in enumerate(boxes):
                centre_cell = (
                    min(max(int((x + w / 2) // stride), 0), gw - 1) == c
                    and min(max(int((y + h / 2) // stride), 0), gh - 1) == r
                )
                holds = (x <= cx < x + w and y <= cy < y + h) or centre_cell
                if holds and (best is None or w * h < boxes[best][2] * boxes[best][3]):
                    best = i
            if best is not None:
                x, y, w, h = boxes[best]
                out[r, c, :5] = [
                    1.0,
                    (cx - x) / stride,
                    (cy - y) / stride,
                    (x + w - cx) / stride,
                    (y + h - cy) / stride,
                ]
                out[r, c, 5 + labels[best]] = 1.0
    return out


def test_rasterise_matches_an_independent_rasterisation_and_the_probe_targets() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(0, 5))
        wh = rng.uniform(3, 120, (n, 2))  # some boxes smaller than a cell
        boxes = np.concatenate([rng.uniform(-10, [WIDTH - 20, HEIGHT - 20], (n, 2)), wh], 1)
        labels = rng.integers(0, 4, n)
        grid = rasterise(boxes, labels, HEIGHT // 14, WIDTH // 14, 14, 4)
        np.testing.assert_allclose(grid, reference(boxes, labels, HEIGHT // 14, WIDTH // 14, 14, 4), atol=1e-5)
        if n:  # the probes' own targets read the same cells
            positive, distances, classes = assign_cells(
                [torch.tensor(boxes)],
                [torch.tensor(labels)],
                HEIGHT // 14,
                WIDTH // 14,
                14,
            )
            np.testing.assert_array_equal(grid[..., 0] == 1, positive[0].numpy())
            np.testing.assert_allclose(grid[..., 1:5], distances[0].numpy(), atol=1e-4)
            np.testing.assert_array_equal(
                np.where(grid[..., 0] == 1, grid[..., 5:].argmax(-1), -1),
                classes[0].numpy(),
            )


def test_oracle_store_holds_the_rasterised_ground_truth(tmp_path: Path) -> None:
    write_frames(small_params(data={"synthetic": {"n_clips": 4}}).data, tmp_path, progress=False)
    point = OraclePoint(kind="oracle", stride=28)
    extractor = make_extractor(
        "oracle",
        point,
        ModelParams(),
        ExtractParams(),
        HEIGHT,
        WIDTH,
        9,
        tmp_path / "frames.zarr",
        tmp_path / "annotations.parquet",
    )
    write_point(
        extractor,
        tmp_path / "frames.zarr",
        tmp_path / "oracle.zarr",
        None,
        dtype="float32",
        progress=False,
    )
    store = open_features(tmp_path / "oracle.zarr")
    assert store.stride == 28 and tuple(store.grid) == (9, HEIGHT // 28, WIDTH // 28)
    ann = pd.read_parquet(tmp_path / "annotations.parquet")
    grids = np.asarray(store.array[:])  # [clip, T, gh, gw, C]
    assert grids.shape[-1] == 5 + 4
    for (clip, frame), g in ann.groupby(["clip", "frame"]):
        expected = reference(
            g[["x", "y", "w", "h"]].to_numpy(),
            g["category_id"].to_numpy() - 1,
            HEIGHT // 28,
            WIDTH // 28,
            28,
            4,
        )
        np.testing.assert_allclose(grids[clip, frame], expected, atol=1e-5)
    assert grids[..., 0].sum() > 0
    with pytest.raises(ForesightError, match="not found"):
        make_extractor(
            "oracle",
            point,
            ModelParams(),
            ExtractParams(),
            HEIGHT,
            WIDTH,
            9,
            tmp_path / "frames.zarr",
            tmp_path / "missing.parquet",
        )
