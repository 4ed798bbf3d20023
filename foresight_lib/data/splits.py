"""The train / val / test splits: assigned once by the frames stage (``clips.parquet`` column ``split``), read here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ForesightError
from ..params import DataParams

SPLITS: tuple[str, ...] = ("train", "val", "test")


def assign_splits(n: int, data: DataParams, videos: Sequence[str] | None = None) -> list[str]:
    """Deterministic split per stored clip index: a seeded permutation of the videos cut by the split fractions.

    ``videos`` names each clip's source video (default: every clip its own); all clips of a video share its split.
    """
    if videos is not None and len(videos) != n:
        raise ValueError(f"assign_splits: {len(videos)} video names for {n} clips")
    names, of_clip = np.unique(np.asarray(videos, dtype=object), return_inverse=True) if videos else (range(n), None)
    m = len(names)
    n_val = max(1, round(m * data.splits.val))
    n_test = max(1, round(m * data.splits.test))
    if m - n_val - n_test < 1:
        what = "videos" if videos else "clips"
        raise ForesightError(f"data: {m} {what} cannot fill train/val/test splits; at least 3 are needed")
    order = np.random.default_rng([data.seed, 1]).permutation(m)
    splits = np.empty(m, dtype=object)
    splits[order[:n_test]] = "test"
    splits[order[n_test : n_test + n_val]] = "val"
    splits[order[n_test + n_val :]] = "train"
    return list(splits if of_clip is None else splits[of_clip])


def split_clips(clips: pd.DataFrame, split: str) -> np.ndarray:
    """Sorted clip indices of ``split`` (train / val / test) in a ``clips.parquet`` table; int64 ``[k]``."""
    return np.sort(clips.loc[clips["split"] == split, "clip"].to_numpy(dtype=np.int64))


def read_split(clips_path: str | Path, split: str) -> np.ndarray:
    """:func:`split_clips` of the table at ``clips_path``; an empty split is an error."""
    picked = split_clips(pd.read_parquet(clips_path, columns=["clip", "split"]), split)
    if len(picked) == 0:
        raise ForesightError(f"{clips_path}: no clip in the {split} split")
    return picked
