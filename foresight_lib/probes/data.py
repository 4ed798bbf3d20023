"""A feature store paired with the ground truth, streamed in blocks of clips within a memory budget.

Samples: a spatial sample is ``(clip, slot t)`` of a clip in the split; its *target frame* is the first frame
of ``slot_frames[t]`` (a video-mode slot covering frames ``[2t, 2t+1]`` is scored against frame ``2t``), and
its targets are that frame's annotated boxes (COCO xywh pixels) with class index ``category_id - 1``.

Inputs: every grid is standardised per channel with the mean and standard deviation of all train-split
tokens (one streamed pass over the train clips). The ``shuffled`` control permutes the cells of each
``(clip, slot)`` grid with its own permutation, drawn from ``(probe.seed, clip, t)``: the same scheme in
every split, epoch and head, so the tokens are kept and their spatial arrangement is gone.

Memory: features are held standardised as float32. When the whole store fits in ``probe.max_clips_in_memory``
clips it is read once and kept; otherwise every pass reads ``probe.block_clips`` clips at a time and keeps
nothing. The sample order does not depend on which: an epoch permutes the split's clips (seeded by
``(probe.seed, epoch)``), cuts them into blocks of ``block_clips`` clips and shuffles the samples within each
block, so a memory budget changes the reads, never the numbers. Every read is checked to be finite.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.frames import FramesOutputs
from ..data.splits import SPLITS, split_clips
from ..errors import ForesightError
from ..features import FeatureStore
from ..params import ProbeParams
from ..store import open_complete
from .base import BoxTargets

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
    bad = ann[(ann["clip"] < 0) | (ann["clip"] >= len(clips)) | (ann["frame"] < 0) | (ann["frame"] >= n_frames)
              | (ann["x"] < -_BOX_TOLERANCE) | (ann["y"] < -_BOX_TOLERANCE)
              | (ann["x"] + ann["w"] > width + _BOX_TOLERANCE) | (ann["y"] + ann["h"] > height + _BOX_TOLERANCE)]
    if len(bad):
        row = bad.iloc[0]
        raise ForesightError(
            f"{out.annotations}: {len(bad)} boxes outside the {len(clips)} clips x {n_frames} frames of {height}x{width} "
            f"px in {out.frames} (first: clip {row['clip']} frame {row['frame']} box "
            f"{[float(row[c]) for c in 'xywh']})")
    categories = tuple(attrs["categories"])
    if len(ann) and not ann["category_id"].between(1, len(categories)).all():
        raise ForesightError(f"{out.annotations}: category_id outside 1..{len(categories)} ({', '.join(categories)})")
    boxes = {
        (int(c), int(f)): (g[["x", "y", "w", "h"]].to_numpy(np.float64), g["category_id"].to_numpy(np.int64) - 1)
        for (c, f), g in ann.groupby(["clip", "frame"], sort=True)
    }
    return GroundTruth(height=height, width=width, n_frames=n_frames, categories=categories,
                       clips=clips[["clip", "name", "split", "direction"]], boxes=boxes)


@dataclass(frozen=True)
class Batch:
    """Standardised grids of ``B`` samples and who they are."""

    grids: torch.Tensor  # [B, gh, gw, C] float32
    clips: np.ndarray  # [B] clip index
    slots: np.ndarray  # [B] slot t


@dataclass(frozen=True)
class Block:
    """Standardised grids of ``k`` clips: clip ``clips[i]`` is ``grids[rows[i]]`` (``grids`` may hold more clips)."""

    clips: np.ndarray  # [k]
    grids: np.ndarray  # [n, T, gh, gw, C] float32
    rows: np.ndarray  # [k]

    def take(self, positions: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Grids ``[B, gh, gw, C]`` of slot ``slots[b]`` of the clip at ``positions[b]`` of this block."""
        return self.grids[self.rows[positions], slots]


class ProbeData:
    """One point's grids, their ground truth and the split's samples, streamed within ``max_clips_in_memory``."""

    def __init__(self, store: FeatureStore, truth: GroundTruth, params: ProbeParams) -> None:
        self.store, self.truth, self.params = store, truth, params
        _check_match(store, truth)
        self.stride = store.stride
        self.n_slots, self.gh, self.gw = store.grid
        self.slot_frames = [int(frames[0]) for frames in store.slot_frames]  # target frame of each slot
        self.splits = {s: split_clips(truth.clips, s) for s in SPLITS}
        for split, clips in self.splits.items():
            if len(clips) == 0:
                raise ForesightError(f"{store.path}: the {split!r} split has no clips (see clips.parquet)")
            if not any(len(self.targets(c, t)[0]) for c in clips for t in range(self.n_slots)):
                raise ForesightError(f"{store.path}: the {split!r} split has no annotated object in its target frames")
        self.caching = store.n_clips <= params.max_clips_in_memory
        # When caching: every clip's standardised grids, filled on first read.
        self._cache = np.empty((store.n_clips if self.caching else 0, *store.grid, store.channels), dtype=np.float32)
        self._cached = np.zeros(store.n_clips, dtype=bool)
        self._permutations: dict[tuple[int, int], np.ndarray] = {}  # (clip, slot) -> [gh*gw]
        self._mean, self._std = self._train_statistics()  # [C], [C]
        if self.caching:  # the train clips were kept raw by the statistics pass
            for clip in self.splits["train"]:
                self._standardise(self._cache[clip])
            self._cached[self.splits["train"]] = True

    @property
    def channels(self) -> int:
        return self.store.channels

    @property
    def cache_clips(self) -> int:
        """Clips the cache holds room for: the whole store when it fits the budget, else 0 (streaming)."""
        return len(self._cache)

    def targets(self, clip: int, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """Ground truth of a sample's target frame: boxes ``[N, 4]`` xywh px and class indices ``[N]``."""
        return self.truth.frame(clip, self.slot_frames[slot])

    def box_targets(self, batch: Batch) -> BoxTargets:
        """The :class:`BoxTargets` of a batch's samples."""
        truth = [self.targets(c, t) for c, t in zip(batch.clips, batch.slots)]
        return BoxTargets(boxes=[torch.tensor(b, dtype=torch.float32) for b, _ in truth],
                          labels=[torch.tensor(l, dtype=torch.long) for _, l in truth], stride=self.stride)

    def clip_blocks(self, clips: Sequence[int]) -> Iterator[Block]:
        """The given clips in order, ``block_clips`` at a time, from the cache or read from the store."""
        clips = np.asarray(clips, dtype=np.int64)
        for start in range(0, len(clips), self.params.block_clips):
            block = clips[start : start + self.params.block_clips]
            if self.caching:
                missing = block[~self._cached[block]]
                if len(missing):
                    self._cache[missing] = self._standardise(self._read(missing))
                    self._cached[missing] = True
                yield Block(block, self._cache, block)
            else:
                yield Block(block, self._standardise(self._read(block)), np.arange(len(block)))

    def batches(self, split: str, shuffled: bool, epoch: int | None = None) -> Iterator[Batch]:
        """Batches of ``batch_size`` samples of ``split``; ``epoch`` shuffles (module docstring), None keeps order."""
        clips = self.splits[split]
        rng = None if epoch is None else np.random.default_rng([self.params.seed, epoch])
        if rng is not None:
            clips = rng.permutation(clips)
        for block in self.clip_blocks(clips):
            order = np.arange(len(block.clips) * self.n_slots)  # sample index = clip position * T + slot
            if rng is not None:
                order = rng.permutation(order)
            for start in range(0, len(order), self.params.batch_size):
                pick = order[start : start + self.params.batch_size]
                pos, slots = pick // self.n_slots, pick % self.n_slots
                clips_b = block.clips[pos]
                yield Batch(self.prepare(block.take(pos, slots), clips_b, slots, shuffled), clips_b, slots)

    def prepare(self, grids: np.ndarray, clips: np.ndarray, slots: np.ndarray, shuffled: bool) -> torch.Tensor:
        """Standardised grids ``[B, gh, gw, C]`` as a tensor, cells permuted for the shuffled control."""
        x = torch.from_numpy(grids)  # [B, gh, gw, C]
        if not shuffled:
            return x
        perms = torch.from_numpy(np.stack([self.permutation(c, t) for c, t in zip(clips, slots)]))  # [B, gh*gw]
        flat = x.reshape(len(x), self.gh * self.gw, -1)  # [B, gh*gw, C]
        return flat[torch.arange(len(x))[:, None], perms].reshape(x.shape)

    def permutation(self, clip: int, slot: int) -> np.ndarray:
        """The shuffled control's cell permutation ``[gh*gw]`` of one ``(clip, slot)`` grid (drawn once, then kept)."""
        key = (int(clip), int(slot))
        if key not in self._permutations:
            self._permutations[key] = np.random.default_rng([self.params.seed, *key]).permutation(self.gh * self.gw)
        return self._permutations[key]

    def _read(self, block: np.ndarray) -> np.ndarray:
        """Raw float32 grids ``[k, T, gh, gw, C]`` of ``block`` from the store, checked to be finite."""
        order = np.argsort(block)
        grids = np.empty((len(block), *self.store.grid, self.channels), dtype=np.float32)
        grids[order] = self.store.read(block[order])
        finite = np.isfinite(grids).reshape(len(block), -1).all(axis=1)  # [k]
        if not finite.all():
            raise ForesightError(f"{self.store.path}: non-finite features (NaN or inf) in clip(s) "
                                 f"{block[~finite].tolist()}; re-extract this point")
        return grids

    @property
    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel train-split mean and standard deviation ``[C]`` every grid is standardised with."""
        return self._mean, self._std

    def _standardise(self, grids: np.ndarray) -> np.ndarray:
        """Raw grids ``[k, T, gh, gw, C]`` standardised in place."""
        grids -= self._mean
        grids /= self._std
        return grids

    def _train_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and standard deviation ``[C]`` over every train-split token (float64 sums).

        When caching, the train clips read here are kept and standardised once the statistics are known.
        """
        total, squares, count = np.zeros(self.channels), np.zeros(self.channels), 0
        train = self.splits["train"]
        for start in range(0, len(train), self.params.block_clips):
            block = train[start : start + self.params.block_clips]
            grids = self._read(block)  # [k, T, gh, gw, C]
            flat = grids.reshape(-1, self.channels)  # [k*T*gh*gw, C]
            total += flat.sum(axis=0, dtype=np.float64)
            squares += np.einsum("nc,nc->c", flat, flat, dtype=np.float64)
            count += len(flat)
            if self.caching:
                self._cache[block] = grids
        mean = total / count
        std = np.maximum(np.sqrt(np.maximum(squares / count - mean**2, 0.0)), 1e-6)
        return mean.astype(np.float32), std.astype(np.float32)


def _check_match(store: FeatureStore, truth: GroundTruth) -> None:
    """The store must describe the clips and frames the ground truth describes."""
    attrs = store.attrs
    if store.n_clips != len(truth.clips):
        raise ForesightError(f"{store.path}: {store.n_clips} clips but the annotations describe {len(truth.clips)} "
                             f"(was it extracted from another frames store?)")
    if (attrs["height"], attrs["width"]) != (truth.height, truth.width):
        raise ForesightError(f"{store.path}: made from {attrs['height']}x{attrs['width']} frames but the annotations "
                             f"are for {truth.height}x{truth.width}")
    _, gh, gw = store.grid
    if (gh * store.stride, gw * store.stride) != (truth.height, truth.width):
        raise ForesightError(f"{store.path}: grid {gh}x{gw} at stride {store.stride} does not cover "
                             f"{truth.height}x{truth.width} frames")
    frames = [f for slot in store.slot_frames for f in slot]
    if len(store.slot_frames) != store.grid[0] or not frames or min(frames) < 0 or max(frames) >= truth.n_frames:
        raise ForesightError(f"{store.path}: slot_frames {store.slot_frames} do not fit {store.grid[0]} slots of "
                             f"{truth.n_frames}-frame clips")
