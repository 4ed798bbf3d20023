"""Temporal probes: do a point's grids carry motion direction and frame order? Slot pairs and triplets of a clip.

- ``direction`` (4 classes, :data:`~foresight_lib.data.clip.DIRECTIONS`), for each clip with a known direction
  (``clips.parquet`` ``direction >= 0``): tested on the pair (first slot, last slot); trained on every pair
  ``i < j`` at least three quarters of the clip apart (``j - i >= ceil(3 (T - 1) / 4)``: 6 pairs for 9 slots),
  which share the clip's direction. Needs at least 2 slots.
- ``order`` (2 classes): per clip, ``probe.order_triplets`` distinct evenly spaced slot triplets
  ``(i, i + g, i + 2g)`` with a gap of at least a quarter of the clip (``g >= max(1, ceil((T - 1) / 4))``: 9
  triplets for 9 slots, 4 for 5), drawn from ``(probe.seed, clip)``; over each split exactly half of the
  triplets (rounded down, chosen by a seeded permutation) are shown reversed ``(k, j, i)``: label 1 = in order,
  0 = reversed. Equal gaps leave only the motion to tell the order (unequal ones would differ in displacement
  even at constant speed); wide gaps move content by whole cells (measured 2026-11-28 on the pixels point of 160
  synthetic clips at 224x448, stride 14: order accuracy 0.68 [0.62, 0.73] with every gap from 1, 0.77 [0.71,
  0.84] from 2).
  Needs at least 3 slots.

Features (motion energy, parameter-free): for a pair of standardised grids ``(a, b)``, ``C(s)`` is the mean
cosine similarity of ``a``'s cells with ``b``'s cells ``s`` cells further along x (``|s| <= gw // 2``) or y
(``|s| <= gh // 2``), over the overlapping cells; content that moves by ``s`` cells between the two slots
raises ``C(s)``. A pair's motion features are the antisymmetric parts ``C(s) - C(-s)``, ``s >= 1``, along x
then y (``gw // 2 + gh // 2`` numbers: the static background cancels). ``direction`` reads them signed.
``order`` reads a triplet ``(a, b, c)`` as ``|motion(a, b)|`` then ``|motion(b, c)|`` (elementwise absolute
values: twice as many numbers): forward accelerating motion moves content further in the second pair than in
the first, reversed motion the opposite. Signed profiles flip with the direction (a reversed right-moving
triplet is a decelerating left-moving one), so no linear function of them separates forward from reversed
when directions are balanced; the absolute profiles drop the direction and keep how far content moved, which
a linear rule compares between the two pairs. Features are standardised with the train split's statistics.
Head: a linear classifier on them (a linear probe of where content moved), trained with cross-entropy by
:class:`~.engine.OnePass`: every control, learning rate and seed of a task in one pass per epoch, epoch and
learning rate selected by validation cross-entropy. With the cells shuffled per frame the similarities carry
no displacement.

Note: order is measurable only where motion is time-asymmetric. The synthetic benchmark's objects accelerate
uniformly (:mod:`foresight_lib.data.synthetic`), so order is learnable from pixels there; on time-symmetric
motion (constant speed, balanced directions) order accuracy near chance is expected.
Reported on the test split as accuracy with its chance levels
(:func:`~foresight_lib.metrics.temporal.accuracy_with_chance`) over the seeds' predictions together (the mean
over seeds: every seed answers the same samples) and a bootstrap interval over clips (a drawn clip brings every
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
class SlotSamples:
    """Samples of one split: clip, the slots in the order shown (a pair or a triplet) and the class."""

    clips: np.ndarray  # [N]
    slots: np.ndarray  # [N, K] slot, in the order shown: K = 2 (direction) or 3 (order)
    labels: np.ndarray  # [N] class id


def direction_samples(data: ProbeData, split: str) -> SlotSamples:
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
    return SlotSamples(
        clips=np.repeat(known.index.to_numpy(np.int64), len(pairs_arr)),
        slots=np.tile(pairs_arr, (len(known), 1)),
        labels=np.repeat(known.to_numpy(np.int64), len(pairs_arr)),
    )


def order_samples(data: ProbeData, split: str, order_triplets: int) -> SlotSamples:
    """``order_triplets`` evenly spaced slot triplets per clip of ``split``, half of them reversed (module
    docstring)."""
    n = data.n_slots
    min_gap = max(1, math.ceil((n - 1) / 4))
    triplets = np.array(
        [(i, i + g, i + 2 * g) for g in range(min_gap, (n - 1) // 2 + 1) for i in range(n - 2 * g)], dtype=np.int64
    )  # [P, 3]
    seed = data.seed
    clips, slots = [], []
    for clip in data.splits[split]:
        pick = np.random.default_rng([seed, int(clip)]).permutation(len(triplets))[:order_triplets]
        clips.extend([clip] * len(pick))
        slots.append(triplets[pick])
    total = len(clips)
    in_order = np.random.default_rng([seed, SPLITS.index(split)]).permutation(total) >= total // 2
    shown = np.concatenate(slots) if slots else np.empty((0, 3), dtype=np.int64)  # [N, 3]
    return SlotSamples(
        clips=np.asarray(clips, dtype=np.int64),
        slots=np.where(in_order[:, None], shown, shown[:, ::-1]),
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


def order_features(first: torch.Tensor, second: torch.Tensor, third: torch.Tensor) -> torch.Tensor:
    """Absolute motion features of the two consecutive pairs of a triplet of grids ``[B, gh, gw, C]`` ->
    ``[B, 2 * (gw // 2 + gh // 2)]``: sign-invariant, so a linear rule can compare how far content moved in each
    pair whatever the direction (module docstring)."""
    return torch.cat([motion_features(first, second).abs(), motion_features(second, third).abs()], dim=1)


def sample_features(data: ProbeData, split: str, samples: SlotSamples) -> dict[bool, torch.Tensor]:
    """Features ``[N, F]`` of every sample (pairs: :func:`motion_features`, triplets: :func:`order_features`), of
    the features (``False``) and the shuffled control (``True``), from one read of the split's clips."""
    shown_count = samples.slots.shape[1]  # 2 or 3
    featurize = motion_features if shown_count == 2 else order_features
    dim = (shown_count - 1) * (data.gw // 2 + data.gh // 2)
    out = {c: torch.empty(len(samples.labels), dim) for c in (False, True)}
    for block, grids in data.clip_grids(split, np.unique(samples.clips)):  # grids [k, T, gh, gw, C]
        index = np.flatnonzero(np.isin(samples.clips, block))  # samples of this block
        position = {int(c): k for k, c in enumerate(block)}
        for start in range(0, len(index), data.batch_size):
            pick = index[start : start + data.batch_size]
            rows = torch.as_tensor([position[int(c)] for c in samples.clips[pick]], device=grids.device)
            clips = samples.clips[pick]
            shown = [samples.slots[pick, m] for m in range(shown_count)]  # K x [B] slot
            slot_grids = [
                grids[rows, torch.as_tensor(slots, device=grids.device)] for slots in shown
            ]  # K x [B, gh, gw, C] float16
            out[False][torch.from_numpy(pick)] = featurize(*(x.float() for x in slot_grids)).cpu()
            shuffled = [data.shuffle(x, clips, slots).float() for x, slots in zip(slot_grids, shown)]
            out[True][torch.from_numpy(pick)] = featurize(*shuffled).cpu()
    return out


def probe_task(data: ProbeData, params: ProbeParams, task: str, live_dir: Path) -> dict[bool, dict[str, Any]]:
    """Train and test one temporal task on the features and the shuffled control: ``{shuffled: metrics}``;
    ``{"available": False, "reason": ...}`` when the data cannot pose it."""
    n_classes = len(DIRECTIONS) if task == "direction" else 2
    min_slots = 2 if task == "direction" else 3
    if data.n_slots < min_slots:
        reason = f"the grid has {data.n_slots} slot(s); {task} needs at least {min_slots}"
        return dict.fromkeys((False, True), {"available": False, "reason": reason})
    samples = {
        split: direction_samples(data, split)
        if task == "direction"
        else order_samples(data, split, params.order_triplets)
        for split in SPLITS
    }
    empty = [split for split, s in samples.items() if len(s.labels) == 0]
    if empty:
        return dict.fromkeys(
            (False, True), {"available": False, "reason": f"no {task} labels in the {', '.join(empty)} split"}
        )
    raw = {split: sample_features(data, split, s) for split, s in samples.items()}  # {split: {shuffled: [N, F]}}
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
