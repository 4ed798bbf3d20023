"""The ``extract@<point>`` stage: stream clips through one extractor into a resumable feature store.

Every extraction point, whatever model makes it, is a :class:`PointExtractor`: its geometry, the
weights that made it, and a function from frames to raster grids. :func:`write_point` handles the rest:
streaming over clips in batches, the Zarr store (one chunk per clip, ``features/<point>.zarr``), resume
after a kill, and the measured cost in ``metrics/extract/<point>.json``.
"""

from __future__ import annotations

import hashlib
import os
import resource
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..errors import ForesightError
from ..store import PartialStore, open_complete, write_json_atomic

WRITERS = max(1, min(4, (os.cpu_count() or 1) // 2))
"""Threads compressing and writing finished chunks while the next batch is computed."""


@dataclass
class PointExtractor:
    """One extraction point, ready to run.

    ``run`` maps uint8 frames ``[k, F, H, W, 3]`` of ``k`` clips to float32 grids ``[k, T, gh, gw, C]``; with
    ``by_index`` it gets the clips' indices ``[k]`` instead (a point made from the ground truth, not the pixels).
    """

    name: str
    definition: dict[str, Any]
    stride: int
    grid: tuple[int, int, int]  # (T, gh, gw)
    channels: int
    slot_frames: list[list[int]]
    weights: dict[str, Any]
    run: Callable[[np.ndarray], np.ndarray]
    clips_per_batch: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # Feature bytes per frame of the reference point (the merger) for the memory-overhead ratio, when known.
    reference_bytes_per_frame: float | None = None
    by_index: bool = False


def frames_identity(frames_path: str | Path) -> dict[str, Any]:
    """What a feature store was made from: the frames store's attributes and a hash of its chunks."""
    arr = open_complete(frames_path)
    digest = hashlib.sha256()
    root = Path(frames_path)
    for chunk in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(chunk.relative_to(root)).encode())
        digest.update(chunk.read_bytes())
    return {**dict(arr.attrs), "sha256": digest.hexdigest()}


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _store_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_point(
    extractor: PointExtractor,
    frames_path: str | Path,
    out_path: str | Path,
    metrics_path: str | Path | None,
    mode: str,
    dtype: str = "float16",
    progress: bool = True,
    extra_fingerprint: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Extract every clip of ``frames_path`` into ``out_path``; return (and write) the cost metrics.

    A killed run resumes from the last complete clip when called again with the same extractor,
    frames and settings; the finished store is identical to an uninterrupted run's.
    """
    frames = open_complete(frames_path)  # [clip, F, H, W, 3] uint8
    n_clips, n_frames, height, width, _ = frames.shape
    source = frames_identity(frames_path)
    t, gh, gw = extractor.grid
    if gh * extractor.stride != height or gw * extractor.stride != width:
        raise ForesightError(f"point {extractor.name}: grid {gh}x{gw} at stride {extractor.stride} does not cover {height}x{width} frames")
    attributes = {
        "point": extractor.name, "definition": extractor.definition, "stride": extractor.stride,
        "grid": [t, gh, gw], "channels": extractor.channels, "slot_frames": extractor.slot_frames,
        "height": height, "width": width, "n_clips": n_clips, "n_frames": n_frames, "mode": mode,
        "dtype": dtype, "weights": extractor.weights, "frames": source,
    }
    store = PartialStore(out_path, {"attributes": attributes, **(extra_fingerprint or {})})
    shape = (n_clips, t, gh, gw, extractor.channels)
    arr = store.array(shape, chunks=(1, *shape[1:]), dtype=dtype,
                      dimension_names=("clip", "t", "gy", "gx", "channel"), attributes=attributes)

    if extractor.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(extractor.device)
    todo = [i for i in range(n_clips) if not store.is_done(i)]
    batches = [todo[k : k + extractor.clips_per_batch] for k in range(0, len(todo), extractor.clips_per_batch)]
    compute_s, frames_done = 0.0, 0
    started = time.perf_counter()
    bar = tqdm(total=n_clips, initial=n_clips - len(todo), desc=f"extract {extractor.name}", unit="clip", disable=not progress)

    def read(batch: list[int]) -> np.ndarray:
        if extractor.by_index:
            return np.asarray(batch)  # [k]
        return np.stack([frames[i] for i in batch])  # [k, F, H, W, 3]

    def write(i: int, grid: np.ndarray) -> None:
        with np.errstate(over="ignore"):  # an overflow is reported below, with what to do about it
            stored = grid.astype(dtype)
        if not np.isfinite(stored).all():
            raise ForesightError(f"point {extractor.name}: features of clip {i} overflow {dtype} "
                                 f"(largest magnitude {np.abs(grid).max():.3g}); set extract.dtype: float32")
        arr[i] = stored

    # Reading the next batch and compressing finished chunks overlap the forward passes (Blosc and the
    # model release the GIL). A clip is marked done, by this thread only, once its chunk is written.
    pending: deque[tuple[int, Future[None]]] = deque()

    def finish(i: int, written: Future[None]) -> None:
        written.result()
        store.mark_done(i)
        bar.update(1)

    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(WRITERS) as writers:
        try:
            upcoming = reader.submit(read, batches[0]) if batches else None
            for n, batch in enumerate(batches):
                clips = upcoming.result()
                upcoming = reader.submit(read, batches[n + 1]) if n + 1 < len(batches) else None
                tick = time.perf_counter()
                grids = extractor.run(clips)  # [k, T, gh, gw, C]
                compute_s += time.perf_counter() - tick
                if grids.shape != (len(batch), *shape[1:]):
                    raise ForesightError(f"point {extractor.name}: extractor returned {grids.shape}, expected {(len(batch), *shape[1:])}")
                if not np.isfinite(grids).all():
                    raise ForesightError(f"point {extractor.name}: non-finite features for clips {batch}")
                pending.extend((i, writers.submit(write, i, grid)) for i, grid in zip(batch, grids))
                while pending and (pending[0][1].done() or len(pending) > 2 * WRITERS * extractor.clips_per_batch):
                    finish(*pending.popleft())
                frames_done += len(batch) * n_frames
            while pending:
                finish(*pending.popleft())
        finally:  # after a crash too: keep every chunk that was fully written
            for i, written in pending:
                if written.exception() is None:
                    store.mark_done(i)
    bar.close()
    wall_s = time.perf_counter() - started
    store.finalize()

    feature_bytes = t * gh * gw * extractor.channels * np.dtype(dtype).itemsize / n_frames
    peak = (torch.cuda.max_memory_allocated(extractor.device) if extractor.device.type == "cuda" else _peak_rss_bytes())
    metrics = {
        "frames_per_second": frames_done / wall_s if frames_done else None,
        "compute_frames_per_second": frames_done / compute_s if frames_done else None,
        "frames_timed": frames_done,
        "tokens_per_frame": t * gh * gw / n_frames,
        "channels": extractor.channels,
        "feature_bytes_per_frame": feature_bytes,
        "disk_bytes_per_frame": _store_bytes(Path(out_path)) / (n_clips * n_frames),
        "peak_memory_bytes": int(peak),
        "peak_memory_kind": "cuda_max_allocated" if extractor.device.type == "cuda" else "process_max_rss",
        "device": str(extractor.device),
        "memory_overhead_vs_merger": (feature_bytes / extractor.reference_bytes_per_frame
                                      if extractor.reference_bytes_per_frame else None),
        "weights": extractor.weights.get("weights"),
    }
    if metrics_path is not None:
        write_json_atomic(metrics_path, metrics)
    return metrics
