"""The one training loop of every probe (spatial heads and temporal heads).

AdamW (``probe.lr``, ``probe.weight_decay``) with a cosine learning-rate decay (per epoch, from ``probe.lr``
towards 0) for a fixed number of epochs; after each epoch the model is scored on the validation split and the
epoch with the lowest validation loss (the head's own training loss) is kept (the first on a tie): model
selection never sees the test split. The loss, not a metric, selects:
it needs no decoding or COCOeval per epoch, it is smooth where accuracy on a few validation clips moves in
steps, and it cannot be gamed the way bbox IoU can (bbox IoU ignores extra boxes, so selecting on it rewards
a head that asserts many boxes: exactly how a control without spatial information scores above zero).
Curves go to dvclive, one directory per head: ``train/loss`` and ``val/loss`` per epoch (plus
``val/accuracy`` for the temporal heads).

Determinism: the model is built and trained inside :func:`seeded` (torch's RNG forked and seeded with
``probe.seed``, deterministic algorithms on), and the data order comes from seeded numpy generators
(:mod:`.data`), so the same params give the same numbers on the same machine and thread count.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from dvclive import Live
from torch import nn
from tqdm import tqdm

from ..params import ProbeParams
from .base import SpatialProbe
from .data import ProbeData


@dataclass(frozen=True)
class FitResult:
    """What training chose: the best epoch (0-based), its validation loss, the loop's wall time."""

    best_epoch: int
    best_val_loss: float
    seconds: float


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run with torch's RNG forked and seeded and deterministic algorithms on; both restored afterwards."""
    previous = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous)


def fit(model: nn.Module, params: ProbeParams, epochs: int,
        train_losses: Callable[[int], Iterable[tuple[torch.Tensor, int]]], validate: Callable[[], dict[str, float]],
        live_dir: str | Path, desc: str) -> FitResult:
    """Train ``model`` and load its best validation epoch.

    ``train_losses(epoch)`` yields ``(mean loss of a batch, batch size)`` with the model in train mode;
    ``validate()`` returns validation numbers with at least ``loss`` (in eval mode, without gradients), all
    logged; the epoch with the lowest ``loss`` wins.
    """
    started = time.perf_counter()
    optimiser = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    best_val_loss, best_epoch, best_state = float("inf"), -1, None
    with Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        for epoch in tqdm(range(epochs), desc=desc, unit="epoch", leave=False):
            model.train()
            total, count = 0.0, 0
            for loss, n in train_losses(epoch):
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total, count = total + loss.item() * n, count + n
            schedule.step()
            model.eval()
            with torch.no_grad():
                scores = validate()
            live.log_metric("train/loss", total / max(count, 1))
            for name, value in scores.items():
                live.log_metric(f"val/{name}", value)
            live.next_step()
            val = scores["loss"]
            if val < best_val_loss:
                best_val_loss, best_epoch, best_state = val, epoch, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch=best_epoch, best_val_loss=best_val_loss, seconds=time.perf_counter() - started)


def spatial_losses(probe: SpatialProbe, data: ProbeData,
                   shuffled: bool) -> Callable[[int], Iterator[tuple[torch.Tensor, int]]]:
    """``train_losses`` for :func:`fit`: the probe's loss on each shuffled train batch of an epoch."""

    def losses(epoch: int) -> Iterator[tuple[torch.Tensor, int]]:
        for batch in data.batches("train", shuffled, epoch=epoch):
            yield probe.loss(probe(batch.grids), data.box_targets(batch)), len(batch.clips)

    return losses
