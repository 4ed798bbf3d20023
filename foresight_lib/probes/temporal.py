"""Temporal probes: do a point's grids carry motion direction and frame order? Pairs of slots of one clip.

- ``direction`` (4 classes, :data:`~foresight_lib.data.clip.DIRECTIONS`), for each clip with a known direction
  (``clips.parquet`` ``direction >= 0``): tested on the pair (first slot, last slot); trained on every pair
  ``i < j`` at least three quarters of the clip apart (``j - i >= ceil(3 (T - 1) / 4)``: 6 pairs for 9 slots),
  which share the clip's direction.
- ``order`` (2 classes): per clip, ``probe.order_pairs`` distinct slot pairs ``i < j`` drawn from
  ``(probe.seed, clip)``; over each split exactly half of the pairs (rounded down, chosen by a seeded
  permutation) are shown reversed ``(j, i)``: label 1 = in order, 0 = reversed.
  Both need at least 2 slots.

Features (motion energy, parameter-free): for a pair of standardised grids ``(a, b)``, ``C(s)`` is the mean
cosine similarity of ``a``'s cells with ``b``'s cells ``s`` cells further along x (``|s| <= gw // 2``) or y
(``|s| <= gh // 2``), over the overlapping cells; content that moves by ``s`` cells between the two slots
raises ``C(s)``. The features are the antisymmetric parts ``C(s) - C(-s)``, ``s >= 1``, along x then y
(``gw // 2 + gh // 2`` numbers: the static background cancels), standardised with the train split's
statistics. Head: a linear classifier on them (a linear probe of where content moved), trained with
cross-entropy by :class:`~.engine.OnePass`: every control, learning rate and seed of a task in one pass per
epoch, epoch and learning rate selected by validation cross-entropy. With the cells shuffled per frame the
similarities carry no displacement.

Note: a pair alone cannot tell order on data whose directions are balanced (a reversed right-moving pair looks
like an in-order left-moving one), so order accuracy near chance is expected on the synthetic benchmark.
Reported on the test split as accuracy with its chance levels
(:func:`~foresight_lib.metrics.temporal.accuracy_with_chance`) over the seeds' predictions together (the mean
over seeds: every seed answers the same pairs) and a bootstrap interval over clips (a drawn clip brings every
seed's answers), each seed's accuracy, learning rate and epoch under ``seeds``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.clip import DIRECTIONS
from ..data.splits import SPLITS
from ..metrics.bootstrap import bootstrap_ci, clip_mean
from ..metrics.temporal import accuracy_with_chance
from ..params import ProbeParams
from .data import ProbeData
from .engine import OnePass, Score, Trainee, TraineeKey, make_trainees, select, write_curves

TASKS: tuple[str, ...] = ("direction", "order")


@dataclass(frozen=True)
class PairSamples:
    """Slot pairs of one split: clip, the slot shown first and second, and the class."""

    clips: np.ndarray  # [N]
    first: np.ndarray  # [N] slot
    second: np.ndarray  # [N] slot
    labels: np.ndarray  # [N] class id


def direction_samples(data: ProbeData, split: str) -> PairSamples:
    """Direction pairs of the clips of ``split`` with a known direction (module docstring)."""
    clips = data.truth.clips.set_index("clip").loc[data.splits[split], "direction"]
    known = clips[clips >= 0]
    last = data.n_slots - 1
    if split == "train":
        gap = max(1, math.ceil(3 * last / 4))
        pairs = [(i, j) for i in range(last) for j in range(i + gap, last + 1)]
    else:
        pairs = [(0, last)]
    pairs_arr = np.array(pairs, dtype=np.int64)  # [P, 2]
    n = len(pairs_arr)
    return PairSamples(
        clips=np.repeat(known.index.to_numpy(np.int64), n),
        first=np.tile(pairs_arr[:, 0], len(known)),
        second=np.tile(pairs_arr[:, 1], len(known)),
        labels=np.repeat(known.to_numpy(np.int64), n),
    )


def order_samples(data: ProbeData, split: str, order_pairs: int) -> PairSamples:
    """``order_pairs`` slot pairs per clip of ``split``, half of them reversed (module docstring)."""
    pairs = np.array([(i, j) for i in range(data.n_slots) for j in range(i + 1, data.n_slots)], dtype=np.int64)
    seed = data.seed
    clips, first, second = [], [], []
    for clip in data.splits[split]:
        pick = np.random.default_rng([seed, int(clip)]).permutation(len(pairs))[:order_pairs]
        clips.extend([clip] * len(pick))
        first.extend(pairs[pick, 0])
        second.extend(pairs[pick, 1])
    n = len(clips)
    in_order = np.random.default_rng([seed, SPLITS.index(split)]).permutation(n) >= n // 2
    first_arr, second_arr = np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)
    return PairSamples(
        clips=np.asarray(clips, dtype=np.int64),
        first=np.where(in_order, first_arr, second_arr),
        second=np.where(in_order, second_arr, first_arr),
        labels=in_order.astype(np.int64),
    )


def shift_profile(a: torch.Tensor, b: torch.Tensor, shifts: int) -> torch.Tensor:
    """``[B, 2 * shifts + 1]``: for ``s = -shifts..shifts``, the mean over the overlapping cells of
    ``<a[r, x], b[r, x + s]>`` for maps ``[B, rows, cols, C]`` (shifts along the columns)."""
    gram = torch.einsum("brxc,bryc->bxy", a, b) / a.shape[1]  # [B, cols, cols]: row-mean of <a[., x], b[., y]>
    return torch.stack(
        [torch.diagonal(gram, offset=s, dim1=1, dim2=2).mean(-1) for s in range(-shifts, shifts + 1)], dim=1
    )


def motion_features(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Antisymmetric shifted cosine similarities of two grids ``[B, gh, gw, C]`` -> ``[B, gw // 2 + gh // 2]``."""
    a, b = F.normalize(first, dim=-1), F.normalize(second, dim=-1)
    _, gh, gw, _ = a.shape
    features = []
    for x, y, shifts in ((a, b, gw // 2), (a.transpose(1, 2), b.transpose(1, 2), gh // 2)):
        profile = shift_profile(x, y, shifts)  # [B, 2 * shifts + 1], shift -shifts..shifts
        features.append(profile[:, shifts + 1 :] - profile[:, :shifts].flip(1))  # C(s) - C(-s), s = 1..shifts
    return torch.cat(features, dim=1)


def pair_features(data: ProbeData, split: str, samples: PairSamples) -> dict[bool, torch.Tensor]:
    """Motion features ``[N, F]`` of every sample, of the features (``False``) and the shuffled control (``True``),
    from one read of the split's clips."""
    out = {c: torch.empty(len(samples.labels), data.gw // 2 + data.gh // 2) for c in (False, True)}
    for block, grids in data.clip_grids(split, np.unique(samples.clips)):  # grids [k, T, gh, gw, C]
        index = np.flatnonzero(np.isin(samples.clips, block))  # samples of this block
        position = {int(c): k for k, c in enumerate(block)}
        for start in range(0, len(index), data.batch_size):
            pick = index[start : start + data.batch_size]
            rows = torch.as_tensor([position[int(c)] for c in samples.clips[pick]], device=grids.device)
            clips = samples.clips[pick]
            pair = [
                grids[rows, torch.as_tensor(slots, device=grids.device)]
                for slots in (samples.first[pick], samples.second[pick])
            ]  # [B, gh, gw, C] float16 each
            out[False][torch.from_numpy(pick)] = motion_features(*(x.float() for x in pair)).cpu()
            shuffled = [
                data.shuffle(x, clips, slots).float()
                for x, slots in zip(pair, (samples.first[pick], samples.second[pick]))
            ]
            out[True][torch.from_numpy(pick)] = motion_features(*shuffled).cpu()
    return out


def probe_task(data: ProbeData, params: ProbeParams, task: str, live_dir: Path) -> dict[bool, dict[str, Any]]:
    """Train and test one temporal task on the features and the shuffled control: ``{shuffled: metrics}``;
    ``{"available": False, "reason": ...}`` when the data cannot pose it."""
    n_classes = len(DIRECTIONS) if task == "direction" else 2
    if data.n_slots < 2:
        return dict.fromkeys((False, True), {"available": False, "reason": "the grid has a single slot"})
    samples = {
        split: direction_samples(data, split) if task == "direction" else order_samples(data, split, params.order_pairs)
        for split in SPLITS
    }
    empty = [split for split, s in samples.items() if len(s.labels) == 0]
    if empty:
        return dict.fromkeys(
            (False, True), {"available": False, "reason": f"no {task} labels in the {', '.join(empty)} split"}
        )
    raw = {split: pair_features(data, split, s) for split, s in samples.items()}  # {split: {shuffled: [N, F]}}
    features: dict[bool, dict[str, torch.Tensor]] = {}
    for control in (False, True):
        mean, std = raw["train"][control].mean(0), raw["train"][control].std(0).clamp(min=1e-6)
        features[control] = {split: (raw[split][control] - mean) / std for split in SPLITS}
    labels = {split: torch.from_numpy(s.labels) for split, s in samples.items()}
    dim = features[False]["train"].shape[1]
    keys = [TraineeKey(task, c, lr, s) for c in (False, True) for lr in params.lrs for s in params.seeds]
    device = torch.device("cpu")  # a few thousand vectors of a few numbers: the CPU is faster than a transfer
    trainees = make_trainees(
        keys, lambda key: nn.Linear(dim, n_classes), params.weight_decay, params.temporal_epochs, device
    )

    def batches(epoch: int):
        order = torch.from_numpy(np.random.default_rng([params.seed, epoch]).permutation(len(labels["train"])))
        return order.split(params.batch_size)

    def loss(t: Trainee, pick: torch.Tensor):
        x = features[t.key.shuffled]["train"][pick]
        return F.cross_entropy(t.model(x), labels["train"][pick]), len(pick)

    def validate(ts: Sequence[Trainee]) -> list[Score]:
        out = []
        for t in ts:
            val = F.cross_entropy(t.model(features[t.key.shuffled]["val"]), labels["val"]).item()
            out.append(Score(-val, val))
        return out

    OnePass(trainees, batches, loss, validate, "neg_loss").run(params.temporal_epochs, device, f"temporal {task}")
    chosen = select(trainees)
    write_curves(trainees, chosen, live_dir, params.seeds[0], "temporal")
    test = samples["test"]
    owners = test.clips.astype(str)
    result = {}
    for control in (False, True):
        per_seed, all_pred = {}, []
        for s in params.seeds:
            t = chosen[(task, control, s)]
            with torch.no_grad():
                pred = t.model(features[control]["test"]).argmax(-1).numpy()
            all_pred.append(pred)
            per_seed[s] = {
                "accuracy": float((pred == test.labels).mean()),
                "lr": t.key.lr,
                "best_epoch": t.best_epoch,
                "val_loss": t.best.loss,
            }
        pred, truth = np.concatenate(all_pred), np.tile(test.labels, len(all_pred))
        correct = (pred == truth).astype(np.float64)  # [S*N]
        result[control] = {
            **accuracy_with_chance(pred, truth, n_classes),
            "accuracy_ci": list(
                bootstrap_ci(owners, clip_mean(correct, np.tile(owners, len(all_pred))), params.bootstrap, params.seed)
            ),
            "n_test": len(test.labels),
            "seeds": per_seed,
        }
    return result


def temporal_metrics(data: ProbeData, params: ProbeParams, live_dir: Path) -> dict[bool, dict[str, Any]]:
    """``{shuffled: {"direction": {...}, "order": {...}}}`` for one point and its shuffled control."""
    tasks = {task: probe_task(data, params, task, live_dir) for task in TASKS}
    return {control: {task: tasks[task][control] for task in TASKS} for control in (False, True)}
