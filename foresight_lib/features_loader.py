"""One loader for the grids of a feature store, used by the probes and the adapters: float16, standardised on the fly.

A :class:`SplitLoader` serves the grids of one split's clips. It holds them as float16 (the store's dtype by
default; a float32 store is rounded to float16 once, and a value outside float16's range is an error naming
the clip) in the first place they fit:

- ``gpu``: in GPU memory, when the training device is CUDA and the split fits what is left of the GPU budget
  (``probe.gpu_memory_gb``);
- ``host``: in host RAM, when it fits what is left of the host budget (``probe.host_memory_gb``);
- ``stream``: nowhere; every pass reads the store block by block, a background thread reading the next block
  while the current one is used (reads overlap compute).

Budgets are spent split by split, in the order the splits are opened (train first: it is read every epoch).
A resident split is read from the store once (the statistics pass fills it); a streamed split once per pass.
:attr:`SplitLoader.bytes_read` counts the decompressed bytes read from the store.

Standardisation (probes): once :func:`train_statistics` (float64 sums over every train token, one pass) has given
the per-channel train mean and std, :meth:`SplitLoader.standardise` makes the loader serve
``float16((float32(x) - mean) / std)``: a held split is standardised in place once, a streamed block as it is read,
so the numbers do not depend on where a split is held, and an epoch costs no conversion beyond a batch's
``.float()``. Without it (adapters) the loader serves the stored float16 values.

Real profile (Qwen2.5-VL-7B at 448x672, 9 frames per clip, a pre-merge point: 1536 tokens x 1280 channels x 2
bytes = 3.9 MB per frame), one 80 GB GPU and 128 GB host RAM, ``profiles/real.yaml``'s ``probe.gpu_memory_gb: 56``
and ``host_memory_gb: 64`` (GiB): at its 600 clips (70/10/20 split) the train split (~14.9 GB), validation (~2.1 GB)
and test (~4.2 GB) are all held on the GPU. At the issue's 2,000 clips (12,600 train frames) the train split
(~49 GB) is held on the GPU and the validation (~7 GB) and test (~14 GB) splits in host RAM. Either way nothing is
streamed: each split is read from the store once per stage, whatever the number of heads, controls, learning
rates and seeds. A merger or LLM point (384 tokens x 3584, 2.75 MB per frame) takes 0.7x as much.
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import ForesightError
from .features import FeatureStore
from .workers import Workers

GB = 1024**3
RESIDENCIES = ("gpu", "host", "stream")


@dataclass
class MemoryBudget:
    """Bytes still free for resident splits on the GPU and in host RAM (spent as splits are opened)."""

    gpu_bytes: int
    host_bytes: int

    @classmethod
    def of(cls, gpu_gb: float, host_gb: float) -> MemoryBudget:
        return cls(int(gpu_gb * GB), int(host_gb * GB))

    def place(self, nbytes: int, device: torch.device) -> str:
        """Where a split of ``nbytes`` goes (module docstring), spending the budget it takes."""
        if device.type == "cuda" and nbytes <= self.gpu_bytes:
            self.gpu_bytes -= nbytes
            return "gpu"
        if nbytes <= self.host_bytes:
            self.host_bytes -= nbytes
            return "host"
        return "stream"


@dataclass(frozen=True)
class Standardiser:
    """Per-channel mean and standard deviation ``[C]`` (float32) of the train tokens."""

    mean: np.ndarray  # [C]
    std: np.ndarray  # [C]

    def apply(self, grids: torch.Tensor) -> torch.Tensor:
        """Raw float16 grids ``[..., C]`` -> standardised float16 grids on the same device (float32 arithmetic)."""
        mean = torch.from_numpy(self.mean).to(grids.device)
        std = torch.from_numpy(self.std).to(grids.device)
        return grids.float().sub_(mean).div_(std).half()


def read_float16(store: FeatureStore, clips: np.ndarray) -> np.ndarray:
    """float16 grids ``[k, T, gh, gw, C]`` of ``clips`` (any order), checked to be finite in float16."""
    clips = np.asarray(clips, dtype=np.int64)
    out = np.empty((len(clips), *store.grid, store.channels), dtype=np.float16)
    order = np.argsort(clips, kind="stable")
    sorted_clips = clips[order]
    start = 0
    while start < len(sorted_clips):  # contiguous runs are one slice (one Zarr request)
        stop = start + 1
        while stop < len(sorted_clips) and sorted_clips[stop] == sorted_clips[stop - 1] + 1:
            stop += 1
        run = store.array[int(sorted_clips[start]) : int(sorted_clips[stop - 1]) + 1]
        with np.errstate(over="ignore"):  # beyond float16 becomes inf, refused below
            out[order[start:stop]] = np.asarray(run, dtype=np.float16)
        start = stop
    finite = np.isfinite(out).reshape(len(clips), -1).all(axis=1)  # [k]
    if not finite.all():
        raise ForesightError(
            f"{store.path}: non-finite features (NaN or inf) in clip(s) "
            f"{clips[~finite].tolist()} (held as float16: beyond +-65504 is inf); re-extract this point"
        )
    return out


@dataclass
class SplitLoader:
    """The grids of ``clips`` of one store, held where :class:`MemoryBudget` placed them (module docstring)."""

    store: FeatureStore
    clips: np.ndarray  # [n] the split's clips
    residency: str
    device: torch.device
    block_clips: int
    bytes_read: int = 0
    standardiser: Standardiser | None = None  # set by standardise(): served grids are standardised
    _held: torch.Tensor | None = None  # [n, T, gh, gw, C] float16 on the GPU or in host RAM
    _row: dict[int, int] = field(default_factory=dict)  # clip -> row of _held

    @classmethod
    def open(
        cls, store: FeatureStore, clips: Sequence[int], budget: MemoryBudget, device: torch.device, block_clips: int
    ) -> SplitLoader:
        clips = np.asarray(clips, dtype=np.int64)
        nbytes = len(clips) * int(np.prod(store.grid)) * store.channels * 2
        return cls(store, clips, budget.place(nbytes, device), device, block_clips)

    @property
    def frame_bytes(self) -> int:
        """float16 bytes of one clip's grids."""
        return int(np.prod(self.store.grid)) * self.store.channels * 2

    def _read(self, clips: np.ndarray) -> torch.Tensor:
        """float16 grids of ``clips`` from the store (standardised when the loader is), in host memory."""
        grids = read_float16(self.store, clips)
        self.bytes_read += grids.nbytes
        x = torch.from_numpy(grids)
        return x if self.standardiser is None else self.standardiser.apply(x)

    def standardise(self, standardiser: Standardiser) -> None:
        """Serve standardised grids from now on (a held split is converted in place, a block at a time)."""
        if self.standardiser is not None:
            raise ValueError("this loader is already standardised")
        if self._held is not None:
            for start in range(0, len(self._held), self.block_clips):
                self._held[start : start + self.block_clips] = standardiser.apply(
                    self._held[start : start + self.block_clips]
                )
        self.standardiser = standardiser

    def _fill(self) -> None:
        """Read the whole split once into its resident home (GPU or host)."""
        target = self.device if self.residency == "gpu" else torch.device("cpu")
        held = torch.empty((len(self.clips), *self.store.grid, self.store.channels), dtype=torch.float16, device=target)
        for start in range(0, len(self.clips), self.block_clips):
            block = self.clips[start : start + self.block_clips]
            held[start : start + len(block)] = self._read(block).to(target)
        self._held = held
        self._row = {int(c): i for i, c in enumerate(self.clips)}

    def blocks(self, order: Sequence[int] | None = None) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """``(clips [k], float16 grids [k, T, gh, gw, C] on the device)``, ``block_clips`` clips at a time, in
        ``order`` (clips of this split; default: the split's order)."""
        order = self.clips if order is None else np.asarray(order, dtype=np.int64)
        cuts = [order[s : s + self.block_clips] for s in range(0, len(order), self.block_clips)]
        if self.residency != "stream":
            if self._held is None:
                self._fill()
            for block in cuts:
                yield block, self.take(block)
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as reader:  # prefetch the next block
            pending = reader.submit(self._read, cuts[0]) if cuts else None
            for i, block in enumerate(cuts):
                grids = pending.result()
                pending = reader.submit(self._read, cuts[i + 1]) if i + 1 < len(cuts) else None
                yield block, grids.to(self.device)

    def take(self, clips: Sequence[int]) -> torch.Tensor:
        """float16 grids ``[k, T, gh, gw, C]`` of ``clips`` (of this loader, any order) on the device: from memory
        when resident (filled on first use), else read now."""
        clips = np.asarray(clips, dtype=np.int64)
        if self.residency == "stream":
            return self._read(clips).to(self.device)
        if self._held is None:
            self._fill()
        rows = torch.as_tensor([self._row[int(c)] for c in clips], device=self._held.device)
        return self._held.index_select(0, rows).to(self.device)


def train_statistics(loader: SplitLoader, workers: Workers | None = None) -> Standardiser:
    """Per-channel mean and standard deviation over every token of ``loader``'s (raw) clips (float64 sums, a block
    per worker at a time, added in block order: the same numbers on any number of workers; a channel constant on
    these clips gets std 1); a resident loader is filled by this pass."""
    if loader.standardiser is not None:
        raise ValueError("statistics need the raw grids")
    workers = workers or Workers(1, loader.device)
    channels = loader.store.channels
    total = torch.zeros(channels, dtype=torch.float64, device=loader.device)
    squares = torch.zeros(channels, dtype=torch.float64, device=loader.device)
    count = 0
    blocks = (grids for _, grids in loader.blocks())
    while group := list(itertools.islice(blocks, workers.n)):  # a block per worker at a time
        for block_total, block_squares, n in workers.map(functools.partial(_sums, channels=channels), group):
            total += block_total
            squares += block_squares
            count += n
    mean = (total / count).cpu().numpy()
    std = np.sqrt(np.maximum((squares / count).cpu().numpy() - mean**2, 0.0))
    std[std < 1e-6] = 1.0  # constant on train (e.g. a class absent from it): centred, not scaled into float16 overflow
    return Standardiser(mean.astype(np.float32), std.astype(np.float32))


def _sums(grids: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-channel float64 sum and sum of squares ``[C]`` of a block's grids ``[k, T, gh, gw, C]``, and its tokens."""
    flat = grids.reshape(-1, channels).double()  # [k*T*gh*gw, C]
    return flat.sum(0), (flat * flat).sum(0), len(flat)
