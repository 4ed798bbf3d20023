"""One point's samples: its feature grids (through :mod:`foresight_lib.features_loader`) paired with the ground truth.

Samples: a spatial sample is ``(clip, slot t)`` of a clip in the split; its *target frame* is the first frame
of ``slot_frames[t]`` (a video-mode slot covering frames ``[2t, 2t+1]`` is scored against frame ``2t``), and
its targets are that frame's annotated boxes (COCO xywh pixels) with class index ``category_id - 1``.

Inputs: every grid is standardised per channel with the mean and standard deviation of all train-split
tokens (held standardised as float16, a batch turned to float32 as it is drawn:
:mod:`foresight_lib.features_loader`). The ``shuffled`` control permutes the cells of each ``(clip, slot)`` grid with its own permutation,
drawn from ``(seed, clip, t)``: the same scheme in every split and epoch, so the tokens are kept and their
spatial arrangement is gone. A batch is read and standardised once and, when asked, permuted once: every
trainee of :mod:`.engine` sees the same tensors.

Order: an epoch permutes the split's clips (seeded by ``(seed, epoch)``), cuts them into blocks of
``block_clips`` clips and shuffles the samples within each block, so where the features are held (GPU, host,
streamed) changes the reads, never the numbers. Evaluation passes keep clip then slot order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..data.splits import SPLITS, split_clips
from ..errors import ForesightError
from ..features import FeatureStore
from ..features_loader import MemoryBudget, SplitLoader, Standardiser, train_statistics
from ..workers import Workers
from .base import BoxTargets
from .truth import GroundTruth, check_match


@dataclass(frozen=True)
class Batch:
    """Standardised grids of ``B`` samples, who they are, and (when asked) the shuffled control's grids."""

    grids: torch.Tensor  # [B, gh, gw, C] float32 on the device
    control: torch.Tensor | None  # [B, gh, gw, C] the same grids with their cells permuted
    clips: np.ndarray  # [B] clip index
    slots: np.ndarray  # [B] slot t
    targets: BoxTargets

    def inputs(self, shuffled: bool) -> torch.Tensor:
        """The grids a head of the features (``shuffled=False``) or of the control sees."""
        if shuffled and self.control is None:
            raise ValueError("this batch was drawn without the shuffled control")
        return self.control if shuffled else self.grids


class ProbeData:
    """One point's grids and ground truth, split by split (module docstring).

    ``seed`` fixes the sample order and the control's permutations; ``budget`` is spent on the splits in the
    order train, val, test (:class:`~foresight_lib.features_loader.MemoryBudget`); the train statistics are
    summed on ``workers``.
    """

    def __init__(
        self,
        store: FeatureStore,
        truth: GroundTruth,
        seed: int,
        batch_size: int,
        block_clips: int,
        device: torch.device,
        budget: MemoryBudget,
        workers: Workers | None = None,
    ) -> None:
        check_match(store, truth)
        self.store, self.truth = store, truth
        self.seed, self.batch_size, self.device = seed, batch_size, device
        self.stride = store.stride
        self.n_slots, self.gh, self.gw = store.grid
        self.slot_frames = [int(frames[0]) for frames in store.slot_frames]  # target frame of each slot
        self.splits = {s: split_clips(truth.clips, s) for s in SPLITS}
        for split, clips in self.splits.items():
            if len(clips) == 0:
                raise ForesightError(f"{store.path}: the {split!r} split has no clips (see clips.parquet)")
            if not any(len(self.targets(c, t)[0]) for c in clips for t in range(self.n_slots)):
                raise ForesightError(f"{store.path}: the {split!r} split has no annotated object in its target frames")
        self.loaders = {s: SplitLoader.open(store, self.splits[s], budget, device, block_clips) for s in SPLITS}
        self.standardiser: Standardiser = train_statistics(self.loaders["train"], workers)
        for loader in self.loaders.values():
            loader.standardise(self.standardiser)
        self._permutations: dict[tuple[int, int], np.ndarray] = {}  # (clip, slot) -> [gh*gw]

    @property
    def channels(self) -> int:
        return self.store.channels

    @property
    def bytes_read(self) -> int:
        """Decompressed bytes read from the store so far, all splits."""
        return sum(loader.bytes_read for loader in self.loaders.values())

    def targets(self, clip: int, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """Ground truth of a sample's target frame: boxes ``[N, 4]`` xywh px and class indices ``[N]``."""
        return self.truth.frame(clip, self.slot_frames[slot])

    def box_targets(self, clips: np.ndarray, slots: np.ndarray) -> BoxTargets:
        """The :class:`BoxTargets` of samples ``(clips[b], slots[b])``, on the device."""
        truth = [self.targets(c, t) for c, t in zip(clips, slots)]
        return BoxTargets(
            boxes=[torch.tensor(b, dtype=torch.float32, device=self.device) for b, _ in truth],
            labels=[torch.tensor(l, dtype=torch.long, device=self.device) for _, l in truth],
            stride=self.stride,
        )

    def clip_grids(self, split: str, clips: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """``(clips [k], standardised float16 grids [k, T, gh, gw, C])`` of ``clips`` of ``split``, a block at a time."""
        yield from self.loaders[split].blocks(clips)

    def batches(self, split: str, control: bool, epoch: int | None = None) -> Iterator[Batch]:
        """Batches of ``batch_size`` samples of ``split``; ``epoch`` shuffles (module docstring), None keeps order.
        ``control``: also give each batch the shuffled control's grids."""
        clips = self.splits[split]
        rng = None if epoch is None else np.random.default_rng([self.seed, epoch])
        if rng is not None:
            clips = rng.permutation(clips)
        for block, grids in self.clip_grids(split, clips):  # grids [k, T, gh, gw, C] float16
            order = np.arange(len(block) * self.n_slots)  # sample index = clip position * T + slot
            if rng is not None:
                order = rng.permutation(order)
            for start in range(0, len(order), self.batch_size):
                pick = order[start : start + self.batch_size]
                pos, slots = pick // self.n_slots, pick % self.n_slots
                x = grids[torch.from_numpy(pos).to(grids.device), torch.from_numpy(slots).to(grids.device)]
                clips_b = block[pos]
                yield Batch(
                    x.float(),
                    self.shuffle(x, clips_b, slots).float() if control else None,
                    clips_b,
                    slots,
                    self.box_targets(clips_b, slots),
                )

    def shuffle(self, grids: torch.Tensor, clips: np.ndarray, slots: np.ndarray) -> torch.Tensor:
        """Grids ``[B, gh, gw, C]`` with the cells of sample ``b`` permuted by ``permutation(clips[b], slots[b])``."""
        perms = torch.from_numpy(np.stack([self.permutation(c, t) for c, t in zip(clips, slots)]))  # [B, gh*gw]
        flat = grids.reshape(len(grids), self.gh * self.gw, -1)  # [B, gh*gw, C]
        rows = torch.arange(len(grids), device=grids.device)[:, None]
        return flat[rows, perms.to(grids.device)].reshape(grids.shape)

    def permutation(self, clip: int, slot: int) -> np.ndarray:
        """The shuffled control's cell permutation ``[gh*gw]`` of one ``(clip, slot)`` grid (drawn once, then kept)."""
        key = (int(clip), int(slot))
        if key not in self._permutations:
            self._permutations[key] = np.random.default_rng([self.seed, *key]).permutation(self.gh * self.gw)
        return self._permutations[key]
