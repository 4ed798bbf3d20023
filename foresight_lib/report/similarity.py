"""CKA between extraction points on the same frames (the metric itself: :mod:`foresight_lib.metrics.cka`).

Points have different grids (stride 14, 16, 28, 32), so each point's grid of the first slot of every clip
(frame 0 in image and video mode) is average-pooled to one common grid of ``COMMON_GRID`` cells over the
frame (adaptive average pooling), and the samples are those cells: n = clips x cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..features import FeatureStore
from ..metrics.cka import debiased_linear_cka, linear_cka

COMMON_GRID = (8, 12)  # 56 px cells at 448x672


def pooled_cells(store: FeatureStore, clips: Sequence[int], grid: tuple[int, int] = COMMON_GRID) -> np.ndarray:
    """Frame 0 of each clip, pooled to ``grid``: float64 ``[len(clips) * gy * gx, C]``."""
    rows = []
    for clip in clips:
        x = torch.from_numpy(store.read(int(clip))[0]).permute(2, 0, 1)  # [C, gh, gw]
        pooled = F.adaptive_avg_pool2d(x[None], grid)[0]  # [C, gy, gx]
        rows.append(pooled.flatten(1).T.double().numpy())  # [gy*gx, C]
    return np.concatenate(rows)


def cka_matrices(stores: Mapping[str, FeatureStore], clips: Sequence[int]) -> dict[str, np.ndarray]:
    """``{"linear": [P, P], "debiased": [P, P]}`` over the points in ``stores`` (insertion order)."""
    cells = {name: pooled_cells(store, clips) for name, store in stores.items()}
    names = list(cells)
    out = {"linear": np.eye(len(names)), "debiased": np.eye(len(names))}
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = cells[names[i]], cells[names[j]]
            out["linear"][i, j] = out["linear"][j, i] = linear_cka(a, b)
            out["debiased"][i, j] = out["debiased"][j, i] = debiased_linear_cka(a, b)
    return out
