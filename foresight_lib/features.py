"""Feature stores: the one definition of ``features/<point>.zarr``, written and read only through this module.

Contract (whatever model made the store):
- array ``[clip, t, gh, gw, C]`` (dimensions ``clip, t, gy, gx, channel``), float16 or float32, one chunk per
  clip, fill value NaN (an unwritten clip is visible); cell ``(r, c)`` of slot ``t`` covers pixels
  ``[r*stride : (r+1)*stride, c*stride : (c+1)*stride]`` of the frames in ``slot_frames[t]``.
- attributes (:data:`ATTRS`): ``point`` (name), ``definition`` (the point's params), ``stride`` (pixels),
  ``grid`` ``[t, gh, gw]``, ``channels``, ``slot_frames``, ``height``, ``width``, ``n_clips``, ``n_frames``,
  ``mode`` (``image``: every slot one frame alone; ``video``: slots pair frames), ``dtype`` (storage),
  ``weights`` (which weights produced it), ``frames`` (identity of the frames store it was made from).

Probes and metrics read only this contract: nothing downstream may depend on which model made a grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from .errors import ForesightError
from .store import PartialStore, open_complete

ATTRS = (
    "point",
    "definition",
    "stride",
    "grid",
    "channels",
    "slot_frames",
    "height",
    "width",
    "n_clips",
    "n_frames",
    "mode",
    "dtype",
    "weights",
    "frames",
)
"""Every attribute of a feature store; the writer writes exactly these and the reader requires them."""
DIMENSIONS = ("clip", "t", "gy", "gx", "channel")


def feature_array(store: PartialStore, attributes: dict[str, Any]) -> zarr.Array:
    """Open (or, on a fresh start, create) the array of a feature store being written, one chunk per clip."""
    if set(attributes) != set(ATTRS):
        raise ValueError(f"feature store attributes must be exactly {ATTRS}, got {sorted(attributes)}")
    t, gh, gw = attributes["grid"]
    shape = (attributes["n_clips"], t, gh, gw, attributes["channels"])
    return store.array(
        shape, chunks=(1, *shape[1:]), dtype=attributes["dtype"], dimension_names=DIMENSIONS, attributes=attributes
    )


@dataclass
class FeatureStore:
    """A finished feature store, read clip by clip (never loaded whole)."""

    path: Path
    array: zarr.Array  # [clip, t, gh, gw, C]

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.array.attrs)

    @property
    def name(self) -> str:
        return self.array.attrs["point"]

    @property
    def stride(self) -> int:
        return int(self.array.attrs["stride"])

    @property
    def n_clips(self) -> int:
        return self.array.shape[0]

    @property
    def grid(self) -> tuple[int, int, int]:
        """``(t, gh, gw)``."""
        return tuple(self.array.shape[1:4])  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        return self.array.shape[4]

    @property
    def slot_frames(self) -> list[list[int]]:
        return self.array.attrs["slot_frames"]

    def read(self, clips: Sequence[int] | slice | int) -> np.ndarray:
        """Grids of the given clips as float32 ``[k, t, gh, gw, C]`` (or ``[t, gh, gw, C]`` for an int)."""
        if isinstance(clips, slice | int):
            return np.asarray(self.array[clips], dtype=np.float32)
        idx = np.asarray(clips)
        if idx.size and np.all(np.diff(idx) == 1):
            return np.asarray(self.array[int(idx[0]) : int(idx[-1]) + 1], dtype=np.float32)
        return (
            np.stack([np.asarray(self.array[int(i)], dtype=np.float32) for i in idx])
            if idx.size
            else np.empty((0, *self.array.shape[1:]), dtype=np.float32)
        )


def open_features(path: str | Path) -> FeatureStore:
    """Open a finished feature store and check its contract."""
    path = Path(path)
    arr = open_complete(path)
    missing = [k for k in ATTRS if k not in arr.attrs]
    if missing:
        raise ForesightError(f"{path}: not a foresight feature store (attributes missing: {', '.join(missing)})")
    if arr.ndim != 5 or list(arr.shape[1:4]) != list(arr.attrs["grid"]) or arr.shape[4] != arr.attrs["channels"]:
        raise ForesightError(
            f"{path}: shape {arr.shape} does not match its grid {arr.attrs['grid']} x {arr.attrs['channels']}"
        )
    return FeatureStore(path=path, array=arr)
