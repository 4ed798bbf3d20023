"""The one training loop of every probe: one data pass per epoch trains every trainee (DINOv2 linear-eval style).

A *trainee* is one model at one setting, :class:`TraineeKey` ``(name, shuffled, lr, seed)``: a spatial head or
temporal task, on the features or on the shuffled control, at one learning rate of ``probe.lrs`` and one
initialisation seed of ``probe.seeds``. Every trainee has its own AdamW optimiser (``lr``,
``probe.weight_decay``) and cosine schedule (per epoch, from ``lr`` towards 0). Each epoch draws the batches
once (read, standardised and, for the control, permuted once: :mod:`.data`) and every trainee takes one
optimiser step on each batch: the batch order is shared (``probe.seed``), the initial weights are the
trainee's own (``seed``, drawn in :func:`seeded` before any other trainee exists). No trainee reads another's
state, so training one beside others leaves its numbers unchanged (a test checks this bit for bit on CPU).

Selection (model selection never sees the test split): after each epoch every trainee is scored on the
validation split (:class:`Score`: a quality where higher is better, ties broken by the lower validation
loss, then by the earlier epoch) and its best epoch's weights are kept; then, per ``(name, shuffled, seed)``,
the learning rate whose best epoch scores best (the first of ``probe.lrs`` on a tie). Spatial heads are scored
on their validation bbox IoU (:func:`.evaluate.asserted_iou`, the project's one definition), not on the loss:
the class cross-entropy overfits within a few epochs while the boxes still improve. Temporal heads are
scored on their validation cross-entropy.

Parallelism (CPU): the trainees of a pass are independent, so :class:`~foresight_lib.workers.Workers` steps
them concurrently on ``probe.threads`` threads, each torch op single-threaded (``run_probes`` sets one intra-op
thread): the cores work on different trainees instead of splitting each small op, and every trainee runs exactly
the ops it runs alone, in the same order, so the numbers do not depend on the number of threads. On CUDA the
trainees step in turn (one stream).

Determinism: models are built inside :func:`seeded` and trained with deterministic algorithms on, and the data
order comes from seeded generators, so the same params give the same numbers on the same machine and device
kind, whatever ``probe.threads``. On CUDA, kernels differ from the CPU's (and a few have no deterministic
variant: they warn), so CPU and CUDA numbers agree only to float32 rounding, amplified by training: expect test
metrics to differ by well under their bootstrap interval's width, not bit for bit.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import torch
from dvclive import Live
from torch import nn

from ..progress import progress_bar
from ..workers import Workers

B = TypeVar("B")


@dataclass(frozen=True)
class TraineeKey:
    """Which model at which setting: a head (or temporal task), features or control, learning rate, init seed."""

    name: str
    shuffled: bool
    lr: float
    seed: int

    @property
    def run(self) -> str:
        """``lr<lr>_seed<seed>``: the sweep directory of its curves."""
        return f"lr{self.lr:g}_seed{self.seed}"


@dataclass(frozen=True)
class Score:
    """A validation score: higher ``quality`` wins, then lower ``loss``."""

    quality: float
    loss: float

    def beats(self, other: Score | None) -> bool:
        if other is None:
            return True
        mine, theirs = _finite(self.quality, -math.inf), _finite(other.quality, -math.inf)
        if mine != theirs:
            return mine > theirs
        return _finite(self.loss, math.inf) < _finite(other.loss, math.inf)


def _finite(x: float, default: float) -> float:
    return x if math.isfinite(x) else default


@dataclass
class Trainee:
    """One model being trained, its optimiser and schedule, and what selection kept."""

    key: TraineeKey
    model: nn.Module
    optimiser: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    best: Score | None = None
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    curve: list[dict[str, float]] = field(default_factory=list)  # per epoch: train/loss, val/loss, val/<quality>
    _total: torch.Tensor | float = 0.0
    _count: int = 0

    def step(self, loss: torch.Tensor, n: int) -> None:
        """One optimiser step on a batch's mean ``loss`` over ``n`` samples."""
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        self._total = self._total + loss.detach() * n  # summed on the device: no sync per step
        self._count += n

    def end_epoch(self, epoch: int, score: Score, quality_name: str) -> None:
        """Close an epoch: schedule step, curve point, keep the weights if the score is the best so far."""
        self.schedule.step()
        train_loss = float(self._total) / max(self._count, 1)
        self._total, self._count = 0.0, 0
        self.curve.append({"train/loss": train_loss, "val/loss": score.loss, f"val/{quality_name}": score.quality})
        if score.beats(self.best):
            self.best, self.best_epoch = score, epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore_best(self) -> nn.Module:
        """The model with its best epoch's weights, in eval mode."""
        self.model.load_state_dict(self.best_state)
        return self.model.eval()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run with torch's CPU RNG forked and seeded; restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic algorithms on (warn-only on CUDA, where some kernels have no deterministic variant)."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def make_trainees(
    keys: Sequence[TraineeKey],
    build: Callable[[TraineeKey], nn.Module],
    weight_decay: float,
    epochs: int,
    device: torch.device,
) -> list[Trainee]:
    """A fresh model per key, built by ``build`` inside :func:`seeded` ``(key.seed)``, with its own optimiser."""
    trainees = []
    for key in keys:
        with seeded(key.seed):
            model = build(key).to(device)
        # foreach: a few multi-tensor kernels per step instead of a loop over the parameters (the same numbers)
        optimiser = torch.optim.AdamW(model.parameters(), lr=key.lr, weight_decay=weight_decay, foreach=True)
        trainees.append(Trainee(key, model, optimiser, torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)))
    return trainees


class OnePass(Generic[B]):
    """Train ``trainees`` together for ``epochs``: per epoch one pass of ``train_batches(epoch)``, every trainee
    stepping on every batch (``loss(trainee, batch) -> (mean loss, n)``, the trainees spread over ``workers``),
    then ``validate(trainees)`` (in eval mode, without gradients) scoring each one; finally each trainee holds its
    best epoch's weights."""

    def __init__(
        self,
        trainees: Sequence[Trainee],
        train_batches: Callable[[int], Iterable[B]],
        loss: Callable[[Trainee, B], tuple[torch.Tensor, int]],
        validate: Callable[[Sequence[Trainee]], list[Score]],
        quality_name: str,
        workers: Workers | None = None,
    ) -> None:
        self.trainees, self.train_batches, self.loss, self.validate = list(trainees), train_batches, loss, validate
        self.quality_name, self.workers = quality_name, workers
        # the biggest first, so the threads finish a batch together (the order never changes a number)
        self._by_size = sorted(self.trainees, key=lambda t: -sum(p.numel() for p in t.model.parameters()))

    def run(self, epochs: int, device: torch.device, desc: str) -> None:
        workers = self.workers or Workers(1, device)
        with deterministic(device):
            for epoch in progress_bar(range(epochs), desc=desc, unit="epoch", leave=False):
                for t in self.trainees:
                    t.model.train()
                for batch in workers.ahead(self.train_batches(epoch)):
                    workers.map(functools.partial(self._step, batch=batch), self._by_size)
                for t in self.trainees:
                    t.model.eval()
                with torch.no_grad():
                    scores = self.validate(self.trainees)
                for t, score in zip(self.trainees, scores):
                    t.end_epoch(epoch, score, self.quality_name)
        for t in self.trainees:
            t.restore_best()

    def _step(self, trainee: Trainee, batch: B) -> None:
        trainee.step(*self.loss(trainee, batch))


def select(trainees: Iterable[Trainee]) -> dict[tuple[str, bool, int], Trainee]:
    """Per ``(name, shuffled, seed)``, the trainee (learning rate) whose best epoch scores best; the first on a tie."""
    chosen: dict[tuple[str, bool, int], Trainee] = {}
    for t in trainees:
        group = (t.key.name, t.key.shuffled, t.key.seed)
        if group not in chosen or t.best.beats(chosen[group].best):
            chosen[group] = t
    return chosen


def write_curves(
    trainees: Iterable[Trainee],
    chosen: dict[tuple[str, bool, int], Trainee],
    live_dir: Path,
    first_seed: int,
    group: str = "",
) -> None:
    """dvclive curves: every trainee under ``<live>/[shuffled/][<group>/]<name>/sweep/<lr..._seed...>``; the
    selected trainee of ``first_seed`` also at ``<live>/[shuffled/][<group>/]<name>`` (a copy: the curves the
    report shows)."""
    for t in trainees:
        root = live_dir / ("shuffled" if t.key.shuffled else "") / group / t.key.name
        sweep = root / "sweep" / t.key.run
        with Live(dir=str(sweep), dvcyaml=None, save_dvc_exp=False, report=None) as live:
            for point in t.curve:
                for name, value in point.items():
                    live.log_metric(name, value)
                live.next_step()
        if chosen[(t.key.name, t.key.shuffled, t.key.seed)] is t and t.key.seed == first_seed:
            shutil.rmtree(root / "plots", ignore_errors=True)  # as a Live of its own would start clean
            shutil.copytree(sweep, root, dirs_exist_ok=True)
