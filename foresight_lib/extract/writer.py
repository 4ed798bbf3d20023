"""The ``extract@<point>`` stage: stream clips through one extractor into a resumable feature store.

Every extraction point, whatever model makes it, is an :class:`.base.Extractor`. :func:`write_point` does
the rest: streaming over clips in batches, the store (:mod:`foresight_lib.features`, one chunk per clip),
resume after a kill, several processes at once (:mod:`.distributed`), and the measured cost in
``metrics/extract/<point>.json``.

Batches are fixed by clip index: batch ``b`` holds clips ``b*k .. b*k+k-1`` (``k = clips_per_batch``), less
those already finished. The batches are dealt round-robin to the processes, so each clip is computed in the
same batch whatever the number of processes, and the store is the same. Each process writes the chunks of its
own clips and records them in its own progress file; after all have finished, process 0 finalises the store.

Off the critical path: the next batch's frames are read while the model runs; a finished batch is cast to the
storage dtype where it was computed (on a GPU: before the copy, then copied into pinned memory on a side
stream), and its chunks are checked, compressed and written by a pool of threads while the next batch runs.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ForesightError
from ..features import feature_array
from ..progress import progress_bar
from ..store import PartialStore, open_complete, store_identity, write_json_atomic
from .base import Extractor
from .distributed import ALONE, Launch
from .flops import peak_flops

WRITERS = max(1, min(4, (os.cpu_count() or 1) // 2))
"""Threads checking, compressing and writing finished chunks while the next batch is computed."""


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _store_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass
class _HostBatch:
    """A computed batch on its way to the store."""

    clips: list[int]
    values: torch.Tensor  # [k, T, gh, gw, C] on the host: cast already (GPU) or the raw grids (CPU)
    finite: torch.Tensor | None = None  # GPU: were the raw grids all finite (host copy)
    largest: torch.Tensor | None = None  # GPU: largest raw magnitude (host copy)
    copied: torch.cuda.Event | None = None  # GPU: set when the copies are done


class _DeviceToHost:
    """GPU: cast on the device, copy into pinned memory on a side stream (overlapping the next forward)."""

    def __init__(self, device: torch.device) -> None:
        self.stream = torch.cuda.Stream(device)

    def __call__(self, clips: list[int], grids: torch.Tensor, dtype: torch.dtype) -> _HostBatch:
        finite = torch.isfinite(grids).all()  # [] bool, on the device
        largest = grids.abs().amax().float()  # []
        stored = grids.to(dtype)  # [k, T, gh, gw, C]
        self.stream.wait_stream(torch.cuda.current_stream(grids.device))
        host = _HostBatch(
            clips,
            torch.empty(stored.shape, dtype=dtype, pin_memory=True),
            torch.empty((), dtype=torch.bool, pin_memory=True),
            torch.empty((), dtype=torch.float32, pin_memory=True),
            torch.cuda.Event(),
        )
        with torch.cuda.stream(self.stream):
            for src, dst in ((stored, host.values), (finite, host.finite), (largest, host.largest)):
                dst.copy_(src, non_blocking=True)
                src.record_stream(self.stream)  # keep the device memory until the copy has read it
            host.copied.record(self.stream)
        return host


def _store_clip(arr: Any, batch: _HostBatch, j: int, dtype: torch.dtype, point: str) -> None:
    """Check clip ``batch.clips[j]``'s grid and write its chunk (runs in a writer thread)."""
    if batch.copied is not None:
        batch.copied.synchronize()
    raw = batch.values[j]  # [T, gh, gw, C]
    finite = bool(batch.finite) if batch.finite is not None else bool(torch.isfinite(raw).all())
    if not finite:
        raise ForesightError(f"point {point}: non-finite features in clips {batch.clips}")
    stored = raw.to(dtype)
    if not torch.isfinite(stored).all():
        largest = float(batch.largest) if batch.largest is not None else float(raw.abs().max())
        name = str(dtype).removeprefix("torch.")
        raise ForesightError(
            f"point {point}: features of clips {batch.clips} overflow {name} "
            f"(largest magnitude {largest:.3g}); set extract.dtype: float32"
        )
    arr[batch.clips[j]] = stored.numpy()


def _open_store(out_path: str | Path, attributes: dict[str, Any], launch: Launch) -> tuple[PartialStore, Any]:
    """Every process's view of the partial store; process 0 prepares it before the others open it."""
    fingerprint = {"attributes": attributes}
    if launch.rank == 0:
        store = PartialStore(out_path, fingerprint)
        arr = feature_array(store, attributes)
    launch.barrier()
    if launch.rank != 0:
        store = PartialStore(out_path, fingerprint, writer=launch.rank)
        arr = feature_array(store, attributes)
    launch.barrier()  # all have read the same finished clips before anyone records more
    return store, arr


def my_batches(n_clips: int, clips_per_batch: int, done: Callable[[int], bool], launch: Launch) -> list[list[int]]:
    """This process's batches: the fixed batches of ``clips_per_batch`` clips, less finished clips, dealt round-robin."""
    batches = [
        [i for i in range(b, min(b + clips_per_batch, n_clips)) if not done(i)]
        for b in range(0, n_clips, clips_per_batch)
    ]
    return [batch for batch in batches if batch][launch.rank :: launch.world]


def write_point(
    extractor: Extractor,
    frames_path: str | Path,
    out_path: str | Path,
    metrics_path: str | Path | None,
    dtype: str = "float16",
    progress: bool = True,
    launch: Launch = ALONE,
) -> dict[str, Any] | None:
    """Extract every clip of ``frames_path`` into ``out_path``; return (and write) the cost metrics.

    A killed run resumes from the clips every process had finished when called again with the same
    extractor, frames and settings, with any number of processes; the finished store is identical to an
    uninterrupted single-process run's. With several processes (``launch``), only process 0 returns
    the metrics and writes them; the others return None.
    """
    if dtype not in ("float16", "float32"):  # (the extractor, not the caller, knows its mode)
        raise ValueError(f"storage dtype {dtype!r}: float16 or float32")
    frames = open_complete(frames_path)  # [clip, F, H, W, 3] uint8
    n_clips, n_frames, height, width, _ = frames.shape
    t, gh, gw = extractor.grid
    if gh * extractor.stride != height or gw * extractor.stride != width:
        raise ForesightError(
            f"point {extractor.name}: grid {gh}x{gw} at stride {extractor.stride} does not cover {height}x{width} frames"
        )
    source = launch.gather(store_identity(frames_path) if launch.rank == 0 else None)[0]  # one process reads it all
    attributes = {
        "point": extractor.name,
        "definition": extractor.definition,
        "stride": extractor.stride,
        "grid": [t, gh, gw],
        "channels": extractor.channels,
        "slot_frames": extractor.slot_frames,
        "height": height,
        "width": width,
        "n_clips": n_clips,
        "n_frames": n_frames,
        "mode": extractor.mode,
        "dtype": dtype,
        "weights": extractor.weights,
        "frames": source,
    }
    store, arr = _open_store(out_path, attributes, launch)
    torch_dtype = getattr(torch, dtype)
    to_host = _DeviceToHost(extractor.device) if extractor.device.type == "cuda" else None
    if to_host is not None:
        torch.cuda.reset_peak_memory_stats(extractor.device)
    batches = my_batches(n_clips, extractor.clips_per_batch, store.is_done, launch)
    compute_s, frames_done = 0.0, 0
    started = time.perf_counter()
    bar = progress_bar(
        total=sum(map(len, batches)),
        desc=f"extract {extractor.name}" + (f" [{launch.rank}]" if launch.world > 1 else ""),
        unit="clip",
        disable=not progress,
        position=launch.local_rank,
    )

    def read(batch: list[int]) -> np.ndarray:
        if extractor.by_index:
            return np.asarray(batch)  # [k]
        return np.stack([frames[i] for i in batch])  # [k, F, H, W, 3]

    # A clip is recorded as done, by this thread only, once its chunk is written.
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
                grids = extractor.run(clips)  # [k, T, gh, gw, C] on the extractor's device
                if grids.shape != (len(batch), t, gh, gw, extractor.channels):
                    raise ForesightError(
                        f"point {extractor.name}: extractor returned {tuple(grids.shape)}, "
                        f"expected {(len(batch), t, gh, gw, extractor.channels)}"
                    )
                host = to_host(batch, grids, torch_dtype) if to_host else _HostBatch(batch, grids)
                compute_s += time.perf_counter() - tick
                pending.extend(
                    (i, writers.submit(_store_clip, arr, host, j, torch_dtype, extractor.name))
                    for j, i in enumerate(batch)
                )
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
    peak = torch.cuda.max_memory_allocated(extractor.device) if to_host else _peak_rss_bytes()
    records = launch.gather({"frames": frames_done, "compute_s": compute_s, "peak": int(peak)})  # waits for all
    wall_s = time.perf_counter() - started
    if launch.rank != 0:
        return None
    store.refresh()
    missing = [i for i in range(n_clips) if not store.is_done(i)]
    if missing:
        raise ForesightError(f"point {extractor.name}: clips {missing[:10]} were not extracted by any process")
    store.finalize()
    return _metrics(extractor, records, wall_s, n_clips, n_frames, dtype, out_path, launch, metrics_path)


def _metrics(
    extractor: Extractor,
    records: list[dict[str, Any]],
    wall_s: float,
    n_clips: int,
    n_frames: int,
    dtype: str,
    out_path: str | Path,
    launch: Launch,
    metrics_path: str | Path | None,
) -> dict[str, Any]:
    """The cost record of a finished extraction (all processes together)."""
    t, gh, gw = extractor.grid
    frames_done = sum(r["frames"] for r in records)
    compute_s = max(r["compute_s"] for r in records)
    fps = frames_done / wall_s if frames_done else None
    feature_bytes = t * gh * gw * extractor.channels * np.dtype(dtype).itemsize / n_frames
    cuda = extractor.device.type == "cuda"
    compute_dtype = getattr(torch, str(extractor.weights.get("dtype", "float32")))
    peak, peak_source = peak_flops(extractor.device, compute_dtype)
    if not extractor.flops_per_frame:
        mfu, why = None, "no model FLOPs (no model)"
    elif fps is None:
        mfu, why = None, "no frame was extracted in this run (resumed a finished store)"
    elif peak is None:
        mfu, why = None, peak_source
    else:
        mfu, why = fps * extractor.flops_per_frame / (peak * launch.world), None
    metrics = {
        "frames_per_second": fps,
        "compute_frames_per_second": frames_done / compute_s if frames_done else None,
        "frames_timed": frames_done,
        "processes": launch.world,
        "tokens_per_frame": t * gh * gw / n_frames,
        "channels": extractor.channels,
        "feature_bytes_per_frame": feature_bytes,
        "disk_bytes_per_frame": _store_bytes(Path(out_path)) / (n_clips * n_frames),
        "peak_memory_bytes": max(r["peak"] for r in records),
        "peak_memory_kind": ("cuda_max_allocated" if cuda else "process_max_rss")
        + (" (largest process)" if launch.world > 1 else ""),
        "device": str(extractor.device),
        "memory_overhead_vs_merger": (
            feature_bytes / extractor.reference_bytes_per_frame if extractor.reference_bytes_per_frame else None
        ),
        "weights": extractor.weights.get("weights"),
        "model_flops_per_frame": extractor.flops_per_frame,
        "mfu": mfu,
        "mfu_peak_flops_per_device": peak,
        "mfu_note": why or peak_source,
    }
    if metrics_path is not None:
        write_json_atomic(metrics_path, metrics)
    return metrics
