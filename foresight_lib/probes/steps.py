"""Step probes of a procedural dataset (``steps.parquet`` has rows, e.g. COIN): what a point keeps of the procedure.

- ``step`` (step recognition): which step label a clip shows (classes: the sorted step labels of all clips);
- ``position`` (procedure position): given two clips of one video from different steps, is the pair shown in
  procedure order (label 1) or reversed (0); per split, every such pair of each video, exactly half of them
  (rounded down, a seeded permutation) shown reversed;
- ``task`` (task recognition): the video's task (COIN ``class``, ``steps.parquet`` ``task``) from one clip.

Features: one vector per clip, each slot's grid averaged over its cells, slot after slot ``[T C]`` (read once, a
block of ``probe.block_clips`` clips at a time: at 600 videos x ~4 steps a few thousand vectors, never full grids
per step), standardised with the train clips' statistics. Keeping the slots keeps what happens during the clip (an
object appearing or leaving); the mean over slots too lost it (measured 2026-12-02 on the procedural profile's 24
synthetic videos, tiny random models, 16 test clips of 5 videos: step accuracy of the pixels point 0.19 with the
mean over slots, 0.63 [0.15, 0.93] per slot; of ``vit_l7`` 0.38 and 0.75 [0.56, 0.94]; chance 0.31). A position pair
is its two clips' vectors side by side ``[2 T C]``, gathered per batch.
Head: a linear classifier per task on ``probe.device``, trained with cross-entropy by :class:`~.engine.OnePass` as
the temporal probes are (every control, learning rate and seed of a task in one pass, ``probe.temporal_epochs``
epochs validated after each, epoch and learning rate selected by validation cross-entropy).

Control (``shuffled``): each split's clip vectors permuted over the split's clips (seeded by ``probe.seed`` and the
split): the labels then describe other clips, so the control reads the chance level whatever the features hold.
(The spatial probes' cell permutation would leave a vector averaged over the cells unchanged.)

Reported on the test split: accuracy over the seeds' predictions together, its chance level (the test accuracy of
always answering the train split's majority class: :func:`~foresight_lib.metrics.temporal.majority_chance`; about
0.5 for ``position``, balanced by construction) and a 95% interval over *videos*
(:func:`~foresight_lib.metrics.bootstrap.bootstrap_ci` with the video as the resampling unit: clips of one video are
not independent), each seed's accuracy, learning rate and epoch under ``seeds``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data.splits import SPLITS
from ..features import FeatureStore
from ..features_loader import read_float16
from ..metrics.bootstrap import UNIT, bootstrap_ci, clip_mean
from ..metrics.temporal import accuracy_with_chance, majority_chance
from ..params import ProbeParams
from .engine import Budget, OnePass, Score, Trainee, TraineeKey, make_trainees, select, write_curves

TASKS: tuple[str, ...] = ("step", "position", "task")


@dataclass(frozen=True)
class StepSamples:
    """Samples of one split: the clip rows of each sample in that split's clip table, the class and the video."""

    rows: np.ndarray  # [N, K] row in the split's clip table: K = 1 (step, task) or 2 (position, in the order shown)
    labels: np.ndarray  # [N] class id
    videos: np.ndarray  # [N] the source video: the unit the interval resamples


def split_steps(steps: pd.DataFrame, clips: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The step rows of each split's clips (``clips.parquet``'s ``split``), sorted by clip."""
    table = steps.merge(clips[["clip", "split"]], on="clip", how="inner").sort_values("clip")
    return {s: table[table["split"] == s].reset_index(drop=True) for s in SPLITS}


def label_samples(table: pd.DataFrame, column: str, classes: Sequence[str]) -> StepSamples:
    """One sample per clip of ``table``: its ``column`` (``step`` or ``task``) as an index into ``classes``."""
    index = {c: i for i, c in enumerate(classes)}
    return StepSamples(
        rows=np.arange(len(table), dtype=np.int64)[:, None],
        labels=table[column].map(index).to_numpy(np.int64),
        videos=table["video"].to_numpy(str),
    )


def position_samples(table: pd.DataFrame, seed: int, split: str) -> StepSamples:
    """Every pair of clips of one video with different ``step_index`` (earlier first), half shown reversed (module
    docstring)."""
    pairs, videos = [], []
    for video, group in table.groupby("video", sort=True):
        rows, index = group.index.to_numpy(np.int64), group["step_index"].to_numpy(np.int64)
        for a in range(len(rows)):
            for b in range(len(rows)):
                if index[a] < index[b]:
                    pairs.append((rows[a], rows[b]))
                    videos.append(video)
    total = len(pairs)
    in_order = np.random.default_rng([seed, SPLITS.index(split)]).permutation(total) >= total // 2
    shown = np.array(pairs, dtype=np.int64).reshape(total, 2)  # [N, 2]
    return StepSamples(
        rows=np.where(in_order[:, None], shown, shown[:, ::-1]),
        labels=in_order.astype(np.int64),
        videos=np.asarray(videos, dtype=str),
    )


def pooled_features(store: FeatureStore, clips: np.ndarray, block_clips: int) -> torch.Tensor:
    """Each clip's slots averaged over their cells, slot after slot: ``[n, T * C]`` float32, a block of clips read at a
    time."""
    n_slots = store.grid[0]
    out = torch.empty(len(clips), n_slots * store.channels)
    for start in range(0, len(clips), block_clips):
        grids = torch.from_numpy(read_float16(store, clips[start : start + block_clips]))  # [k, T, gh, gw, C]
        out[start : start + len(grids)] = grids.float().mean(dim=(2, 3)).flatten(1)  # [k, T*C]
    return out


def step_metrics(
    store: FeatureStore,
    steps: pd.DataFrame,
    clips: pd.DataFrame,
    params: ProbeParams,
    live_dir: Path,
    device: torch.device | None = None,
) -> dict[bool, dict[str, Any]]:
    """``{shuffled: {task: metrics}}`` of the step probes of one point (module docstring), trained on ``device``
    (default: the CPU); a task the data cannot pose is ``{"available": False, "reason": ...}``."""
    device = device or torch.device("cpu")
    tables = split_steps(steps, clips)
    raw = {s: pooled_features(store, t["clip"].to_numpy(np.int64), params.block_clips) for s, t in tables.items()}
    mean, std = raw["train"].mean(0), raw["train"].std(0).clamp(min=1e-6)
    features: dict[bool, dict[str, torch.Tensor]] = {False: {}, True: {}}  # {shuffled: {split: [n, T*C]}}
    for s in SPLITS:
        features[False][s] = ((raw[s] - mean) / std).to(device)
        perm = np.random.default_rng([params.seed, SPLITS.index(s), 1]).permutation(len(raw[s]))
        features[True][s] = features[False][s][torch.from_numpy(perm).to(device)]
    result: dict[bool, dict[str, Any]] = {False: {}, True: {}}
    for task in TASKS:
        if task == "position":
            samples = {s: position_samples(t, params.seed, s) for s, t in tables.items()}
            classes: Sequence[str] = ("reversed", "in order")
        else:
            column = "step" if task == "step" else "task"
            classes = sorted(steps[column].unique())
            samples = {s: label_samples(t, column, classes) for s, t in tables.items()}
        reason = _unavailable(task, samples, len(classes))
        if reason is not None:
            for control in (False, True):
                result[control][task] = {"available": False, "reason": reason}
            continue
        for control, metrics in _probe_task(task, samples, features, len(classes), params, live_dir, device).items():
            result[control][task] = metrics
    return result


def _unavailable(task: str, samples: dict[str, StepSamples], n_classes: int) -> str | None:
    """Why the data cannot pose ``task`` (None: it can)."""
    if n_classes < 2:
        return f"{task}: one class in the data; a classifier needs at least 2"
    empty = [s for s, x in samples.items() if len(x.labels) == 0]
    if empty:
        what = "pair of clips of one video from different steps" if task == "position" else "clip"
        return f"{task}: no {what} in the {', '.join(empty)} split"
    return None


def _probe_task(
    task: str,
    samples: dict[str, StepSamples],
    features: dict[bool, dict[str, torch.Tensor]],
    n_classes: int,
    params: ProbeParams,
    live_dir: Path,
    device: torch.device,
) -> dict[bool, dict[str, Any]]:
    """Train and test one task on the features and the control (module docstring), on ``device``: a head is a
    ``T C`` x classes matrix (at real size 9 x 3584 channels x hundreds of COIN steps, ~20 M weights per trainee),
    which the GPU steps far faster than the CPU."""
    rows = {s: torch.from_numpy(x.rows.copy()).to(device) for s, x in samples.items()}  # [N, K]

    def inputs(control: bool, split: str, pick: torch.Tensor | None = None) -> torch.Tensor:
        """``[N, K*F]``: the clip vectors of samples ``pick`` (default: all) of ``split``, side by side."""
        index = rows[split] if pick is None else rows[split][pick.to(device)]
        return features[control][split][index].flatten(1)

    evaluated = {(c, s): inputs(c, s) for c in (False, True) for s in ("val", "test")}  # read at every validation
    labels = {s: torch.from_numpy(x.labels.copy()).to(device) for s, x in samples.items()}
    dim = rows["train"].shape[1] * features[False]["train"].shape[1]
    keys = [TraineeKey(task, c, lr, s) for c in (False, True) for lr in params.lrs for s in params.seeds]
    per_epoch = math.ceil(len(labels["train"]) / params.batch_size)  # optimiser steps per epoch
    budget = Budget(params.temporal_epochs * per_epoch, per_epoch)  # validated once an epoch, no early stop
    trainees = make_trainees(keys, lambda key: nn.Linear(dim, n_classes), params.weight_decay, budget.steps, device)

    def batches(epoch: int):
        order = torch.from_numpy(np.random.default_rng([params.seed, epoch]).permutation(len(labels["train"])))
        return order.split(params.batch_size)

    def loss(t: Trainee, pick: torch.Tensor):
        target = labels["train"][pick.to(device)]
        return F.cross_entropy(t.model(inputs(t.key.shuffled, "train", pick)), target), len(pick)

    def validate(ts: Sequence[Trainee]) -> list[Score]:
        out = []
        for t in ts:
            val = F.cross_entropy(t.model(evaluated[(t.key.shuffled, "val")]), labels["val"]).item()
            out.append(Score(-val, val))
        return out

    OnePass(trainees, batches, loss, validate, "neg_loss").run(budget, device, f"steps {task}")
    chosen = select(trainees)
    write_curves(trainees, chosen, live_dir, params.seeds[0], "steps")
    test = samples["test"]
    result = {}
    for control in (False, True):
        per_seed, all_pred = {}, []
        for s in params.seeds:
            t = chosen[(task, control, s)]
            with torch.no_grad():
                pred = t.model(evaluated[(control, "test")]).argmax(-1).cpu().numpy()
            all_pred.append(pred)
            per_seed[str(s)] = {
                "accuracy": float((pred == test.labels).mean()),
                "lr": t.key.lr,
                "best_epoch": t.best_step // per_epoch - 1,  # validated at the end of each epoch
                "val_loss": t.best.loss,
            }
        pred, truth = np.concatenate(all_pred), np.tile(test.labels, len(all_pred))
        correct = (pred == truth).astype(np.float64)  # [S*N]
        owners = np.tile(test.videos, len(all_pred))
        result[control] = {
            "accuracy": accuracy_with_chance(pred, truth, n_classes)["accuracy"],
            "accuracy_ci": list(
                bootstrap_ci(test.videos, clip_mean(correct, owners), params.bootstrap, params.seed, support=UNIT)
            ),
            "chance": majority_chance(samples["train"].labels, test.labels),
            "n_classes": n_classes,
            "n_test": len(test.labels),
            "n_videos": len(set(test.videos)),
            "seeds": per_seed,
        }
    return result
