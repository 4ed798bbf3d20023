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
a linear rule compares between the two pairs. A clip's features are computed once for every ordered slot pair
(:func:`motion_table`, through the Fourier transform: :func:`odd_profiles`), for the grids and for the control,
and both tasks read their samples' pairs from them. Features are standardised with the train split's statistics.
Head: a linear classifier on them (a linear probe of where content moved), trained with cross-entropy by
:class:`~.engine.OnePass`: every control, learning rate and seed of a task in one pass per epoch
(``probe.temporal_epochs`` epochs, validated after each), epoch and learning rate selected by validation
cross-entropy. With the cells shuffled per frame the similarities carry
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

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.clip import DIRECTIONS
from ..data.splits import SPLITS
from ..metrics.bootstrap import UNIT, bootstrap_ci, clip_mean
from ..metrics.temporal import accuracy_with_chance
from ..params import ProbeParams
from ..workers import Workers
from .data import ProbeData
from .engine import Budget, OnePass, Score, Trainee, TraineeKey, make_trainees, select, write_curves

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


def motion_table(grids: torch.Tensor) -> torch.Tensor:
    """Motion features of every ordered slot pair of one clip's grids ``[T, gh, gw, C]`` -> ``[T, T, gw // 2 + gh //
    2]``: entry ``[i, j]`` is the pair ``(grids[i], grids[j])``'s ``C(s) - C(-s)``, ``s >= 1``, along x then y
    (module docstring), so ``[j, i] = -[i, j]``. Each grid is normalised per cell once."""
    cells = F.normalize(grids.float(), dim=-1)  # [T, gh, gw, C]
    n_slots, gh, gw, channels = cells.shape
    along_x = cells.transpose(1, 2).reshape(n_slots, gw, gh * channels)  # [T, gw, gh*C]: a signal along x per (y, c)
    along_y = cells.reshape(n_slots, gh, gw * channels)  # [T, gh, gw*C]: a signal along y per (x, c)
    return torch.cat([odd_profiles(along_x, gh), odd_profiles(along_y, gw)], dim=-1)


def odd_profiles(signals: torch.Tensor, rows: int) -> torch.Tensor:
    """``C(s) - C(-s)``, ``s = 1..L // 2``, of every ordered pair of ``T`` signals ``[T, L, F]`` -> ``[T, T, L //
    2]``, where ``C(s)`` is ``sum_x <signals[i, x], signals[j, x + s]>`` over the overlapping ``x`` divided by
    ``rows * (L - s)`` (``F`` = ``rows`` lines of the grid times the channels: the mean over the overlapping cells).

    Through the discrete Fourier transform of length ``n = L + L // 2`` (the signals zero-padded, so no shift up to
    ``L // 2`` wraps around): with ``A_i[k]`` the transform of signal ``i`` at frequency ``k``, the circular
    cross-correlation is the inverse transform of ``conj(A_i) A_j``, and its antisymmetric part only needs the
    imaginary part, ``Re(A_i) Im(A_j) - Im(A_i) Re(A_j)``, at ``k = 1..(n - 1) // 2``:
    ``sum_x <a[x], b[x + s]> - <a[x + s], b[x]> = -(4 / n) sum_k Im(conj(A_i[k]) A_j[k]) sin(2 pi k s / n)``.
    Every signal is transformed once (a matrix product over ``L``) and each frequency pairs all signals in one
    matrix product, instead of one ``L x L`` gram per pair."""
    length = signals.shape[1]
    shifts = length // 2
    n = length + shifts
    bins = (n - 1) // 2
    kwargs = {"dtype": torch.float64, "device": signals.device}
    angle = 2 * math.pi / n * torch.arange(1, bins + 1, **kwargs)[:, None]  # [K, 1]
    x, s = torch.arange(length, **kwargs), torch.arange(1, shifts + 1, **kwargs)
    transform = torch.cat([torch.cos(angle * x), -torch.sin(angle * x)])  # [2K, L]: Re then Im of the DFT
    weights = -4 / n * torch.sin(angle * s) / (rows * (length - s))  # [K, S]: back to C(s) - C(-s), as means
    spectra = torch.matmul(transform.to(signals.dtype), signals)  # [T, 2K, F]
    real, imag = spectra[:, :bins].transpose(0, 1), spectra[:, bins:].transpose(0, 1)  # [K, T, F] each
    cross = torch.bmm(real, imag.transpose(1, 2))  # [K, T, T]: Re(A_i) . Im(A_j)
    odd = cross - cross.transpose(1, 2)  # [K, T, T]: Im(conj(A_i) A_j)
    return torch.einsum("kij,ks->ijs", odd, weights.to(signals.dtype))  # [T, T, S]


def motion_tables(data: ProbeData, split: str, workers: Workers | None = None) -> dict[bool, torch.Tensor]:
    """:func:`motion_table` of every clip of ``split`` (``data.splits[split]`` order) ``[n, T, T, D]``, of the
    features (``False``) and the shuffled control (``True``, the cells of each slot permuted by
    :meth:`~.data.ProbeData.shuffle`), from one read of the split, the tables of a block spread over ``workers``:
    both tasks assemble their samples from them."""
    workers = workers or Workers(1, data.device)
    clips = data.splits[split]
    dim = data.gw // 2 + data.gh // 2
    out = {c: torch.empty(len(clips), data.n_slots, data.n_slots, dim) for c in (False, True)}
    row = {int(c): k for k, c in enumerate(clips)}
    every = np.arange(data.n_slots)
    for block, grids in data.clip_grids(split):  # grids [k, T, gh, gw, C] float16
        shown = [  # (row, control, [T, gh, gw, C])
            (row[int(clip)], control, data.shuffle(held, np.full(data.n_slots, clip), every) if control else held)
            for clip, held in zip(block, grids)
            for control in (False, True)
        ]
        for (k, control, _), table in zip(shown, workers.map(motion_table, [x for _, _, x in shown])):
            out[control][k] = table.cpu()
    return out


def sample_features(tables: torch.Tensor, clips: np.ndarray, samples: SlotSamples) -> torch.Tensor:
    """Features ``[N, F]`` of every sample from the :func:`motion_tables` ``[n, T, T, D]`` of ``clips`` ``[n]``: a
    pair's signed motion features (direction, ``F = D``); a triplet's absolute motion features of its two
    consecutive pairs (order, ``F = 2 D``: sign-invariant, so a linear rule can compare how far content moved in
    each pair whatever the direction, module docstring)."""
    row = {int(c): k for k, c in enumerate(clips)}
    rows = torch.as_tensor([row[int(c)] for c in samples.clips], dtype=torch.long)  # [N]
    slots = torch.from_numpy(samples.slots)  # [N, K]
    pairs = [tables[rows, slots[:, m], slots[:, m + 1]] for m in range(slots.shape[1] - 1)]  # K - 1 x [N, D]
    return pairs[0] if len(pairs) == 1 else torch.cat([p.abs() for p in pairs], dim=1)


def probe_task(
    data: ProbeData,
    params: ProbeParams,
    task: str,
    tables: Callable[[str], dict[bool, torch.Tensor]],
    live_dir: Path,
) -> dict[bool, dict[str, Any]]:
    """Train and test one temporal task on the features and the shuffled control: ``{shuffled: metrics}``;
    ``{"available": False, "reason": ...}`` when the data cannot pose it. ``tables(split)``: the split's
    :func:`motion_tables`. The trainees step in turn: a step of a linear head on a few dozen numbers is too short
    to gain from a thread of its own (measured 2026-11-28: 2 threads slower than 1)."""
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
    raw = {  # {split: {shuffled: [N, F]}}
        split: {c: sample_features(tables(split)[c], data.splits[split], s) for c in (False, True)}
        for split, s in samples.items()
    }
    features: dict[bool, dict[str, torch.Tensor]] = {}
    for control in (False, True):
        mean, std = raw["train"][control].mean(0), raw["train"][control].std(0).clamp(min=1e-6)
        features[control] = {split: (raw[split][control] - mean) / std for split in SPLITS}
    labels = {split: torch.from_numpy(s.labels) for split, s in samples.items()}
    dim = features[False]["train"].shape[1]
    keys = [TraineeKey(task, c, lr, s) for c in (False, True) for lr in params.lrs for s in params.seeds]
    device = torch.device("cpu")  # a few thousand vectors of a few numbers: the CPU is faster than a transfer
    per_epoch = math.ceil(len(labels["train"]) / params.batch_size)  # optimiser steps per epoch
    budget = Budget(params.temporal_epochs * per_epoch, per_epoch)  # validated once an epoch, no early stop
    trainees = make_trainees(keys, lambda key: nn.Linear(dim, n_classes), params.weight_decay, budget.steps, device)

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

    OnePass(trainees, batches, loss, validate, "neg_loss").run(budget, device, f"temporal {task}")
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
                "best_epoch": t.best_step // per_epoch - 1,  # validated at the end of each epoch
                "val_loss": t.best.loss,
            }
        pred, truth = np.concatenate(all_pred), np.tile(test.labels, len(all_pred))
        correct = (pred == truth).astype(np.float64)  # [S*N]
        result[control] = {
            **accuracy_with_chance(pred, truth, n_classes),
            "accuracy_ci": list(
                bootstrap_ci(
                    owners,
                    clip_mean(correct, np.tile(owners, len(all_pred))),
                    params.bootstrap,
                    params.seed,
                    support=UNIT,
                )
            ),
            "n_test": len(test.labels),
            "seeds": per_seed,
        }
    return result


def temporal_metrics(
    data: ProbeData, params: ProbeParams, live_dir: Path, workers: Workers | None = None
) -> dict[bool, dict[str, Any]]:
    """``{shuffled: {"direction": {...}, "order": {...}}}`` for one point and its shuffled control (the motion
    tables spread over ``workers``)."""

    @functools.cache
    def tables(split: str) -> dict[bool, torch.Tensor]:  # computed for the first task that needs them
        return motion_tables(data, split, workers)

    tasks = {task: probe_task(data, params, task, tables, live_dir) for task in TASKS}
    return {control: {task: tasks[task][control] for task in TASKS} for control in (False, True)}
