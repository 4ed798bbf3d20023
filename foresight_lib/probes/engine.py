"""The one training loop of every probe: one data stream trains every trainee (DINOv2 linear-eval style).

A *trainee* is one model at one setting, :class:`TraineeKey` ``(name, shuffled, lr, seed)``: a spatial head or
temporal task, on the features or on the shuffled control, at one learning rate of ``probe.lrs`` and one
initialisation seed of ``probe.seeds``. Every trainee has its own AdamW optimiser (``lr``,
``probe.weight_decay``) and cosine schedule (per optimiser step, from ``lr`` towards 0 over the :class:`Budget`'s
steps). The batches are drawn once (read, standardised and, for the control, permuted once: :mod:`.data`; epoch
after epoch, as many as the budget needs) and every active trainee takes one optimiser step on each: the batch
order is shared (``probe.seed``), the initial weights are the trainee's own (``seed``, drawn in :func:`seeded`
before any other trainee exists). No trainee reads another's state, so training one beside others leaves its
numbers unchanged (a test checks this bit for bit on CPU).

Training to convergence, not to an epoch count: the budget is in optimiser steps (``probe.steps``), the same
whether the train split holds 7 clips or 600; every ``val_every`` steps (and at the last) each active trainee is
scored on the validation split and keeps its best weights so far; with ``patience`` > 0 a trainee that has not
improved for that many validations stops stepping (early stopping), and the stream ends when every trainee has
stopped or the budget is spent. A trainee's stop depends only on its own scores, so alone and beside others it
takes the same steps.

Selection (model selection never sees the test split): :class:`Score` is a quality where higher is better, ties
broken by the lower validation loss, then by the earlier step; it may carry the operating point at which the quality
was read. Per ``(name, shuffled, seed)``, the learning rate whose best step scores best (the first of
``probe.lrs`` on a tie). Spatial heads are scored on their validation bbox IoU at their best operating point
(:mod:`.spatial`), not on the loss: the class cross-entropy overfits while the boxes still improve. Temporal heads
are scored on their validation cross-entropy.

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

from ..metrics.operating import OperatingPoint
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
    """A validation score: higher ``quality`` wins, then lower ``loss``; ``point``: the operating point it was read at
    (spatial heads), never compared."""

    quality: float
    loss: float
    point: OperatingPoint | None = None

    def beats(self, other: Score | None) -> bool:
        if other is None:
            return True
        mine, theirs = _finite(self.quality, -math.inf), _finite(other.quality, -math.inf)
        if mine != theirs:
            return mine > theirs
        return _finite(self.loss, math.inf) < _finite(other.loss, math.inf)


@dataclass(frozen=True)
class Budget:
    """How long trainees train: at most ``steps`` optimiser steps, validated every ``val_every`` steps (and at the
    last); a trainee stops after ``patience`` validations without a better score (0: never)."""

    steps: int
    val_every: int
    patience: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.val_every < 1 or self.patience < 0:
            raise ValueError(f"a budget needs steps >= 1, val_every >= 1 and patience >= 0 (got {self})")


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
    best_step: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    steps: int = 0  # optimiser steps taken
    stalled: int = 0  # validations since the best one
    curve: list[dict[str, float]] = field(default_factory=list)  # per validation: step, train/loss, val/loss, val/<q>
    _total: torch.Tensor | float = 0.0
    _count: int = 0

    def step(self, loss: torch.Tensor, n: int) -> None:
        """One optimiser step (and schedule step) on a batch's mean ``loss`` over ``n`` samples."""
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        self.schedule.step()
        self.steps += 1
        self._total = self._total + loss.detach() * n  # summed on the device: no sync per step
        self._count += n

    def validated(self, score: Score, quality_name: str) -> None:
        """Record a validation: curve point (train loss since the last one), keep the weights if the score is the
        best so far, else count a stall."""
        train_loss = float(self._total) / max(self._count, 1)
        self._total, self._count = 0.0, 0
        self.curve.append(
            {"step": self.steps, "train/loss": train_loss, "val/loss": score.loss, f"val/{quality_name}": score.quality}
        )
        if score.beats(self.best):
            self.best, self.best_step, self.stalled = score, self.steps, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.stalled += 1

    def restore_best(self) -> nn.Module:
        """The model with its best validated weights, in eval mode."""
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
    steps: int,
    device: torch.device,
) -> list[Trainee]:
    """A fresh model per key, built by ``build`` inside :func:`seeded` ``(key.seed)``, with its own optimiser and a
    cosine schedule over ``steps`` optimiser steps."""
    trainees = []
    for key in keys:
        with seeded(key.seed):
            model = build(key).to(device)
        # foreach: a few multi-tensor kernels per step instead of a loop over the parameters (the same numbers)
        optimiser = torch.optim.AdamW(model.parameters(), lr=key.lr, weight_decay=weight_decay, foreach=True)
        trainees.append(Trainee(key, model, optimiser, torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)))
    return trainees


class OnePass(Generic[B]):
    """Train ``trainees`` together within a :class:`Budget`: the batches of ``train_batches(epoch)``, epoch after
    epoch, every active trainee stepping on every batch (``loss(trainee, batch) -> (mean loss, n)``, the trainees
    spread over ``workers``); at each validation ``validate(trainees)`` (in eval mode, without gradients) scores the
    active ones; finally each trainee holds its best validated weights."""

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

    def run(self, budget: Budget, device: torch.device, desc: str) -> None:
        workers = self.workers or Workers(1, device)
        active, step, epoch = list(self._by_size), 0, 0
        with deterministic(device), progress_bar(total=budget.steps, desc=desc, unit="step", leave=False) as progress:
            while active and step < budget.steps:
                drawn = False
                for t in active:
                    t.model.train()
                for batch in workers.ahead(self.train_batches(epoch)):
                    drawn = True
                    workers.map(functools.partial(self._step, batch=batch), active)
                    step += 1
                    progress.update()
                    if step % budget.val_every == 0 or step == budget.steps:
                        active = self._validated(active, budget.patience)
                        if not active or step == budget.steps:
                            break
                if not drawn:
                    raise ValueError(f"{desc}: an epoch drew no training batch")
                epoch += 1
        for t in self.trainees:
            t.restore_best()

    def _validated(self, active: list[Trainee], patience: int) -> list[Trainee]:
        """Score the active trainees on validation; those still improving (within ``patience``), back in train mode."""
        for t in active:
            t.model.eval()
        with torch.no_grad():
            scores = self.validate(active)
        for t, score in zip(active, scores):
            t.validated(score, self.quality_name)
        active = [t for t in active if not patience or t.stalled < patience]
        for t in active:
            t.model.train()
        return active

    def _step(self, trainee: Trainee, batch: B) -> None:
        trainee.step(*self.loss(trainee, batch))


def select(trainees: Iterable[Trainee]) -> dict[tuple[str, bool, int], Trainee]:
    """Per ``(name, shuffled, seed)``, the trainee (learning rate) whose best step scores best; the first on a tie."""
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
                live.step = int(point["step"])  # the optimiser step of the validation
                for name, value in point.items():
                    if name != "step":
                        live.log_metric(name, value)
                live.next_step()
        if chosen[(t.key.name, t.key.shuffled, t.key.seed)] is t and t.key.seed == first_seed:
            shutil.rmtree(root / "plots", ignore_errors=True)  # as a Live of its own would start clean
            shutil.copytree(sweep, root, dirs_exist_ok=True)
