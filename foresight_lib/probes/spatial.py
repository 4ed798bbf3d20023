"""Train every spatial head of ``probe.heads``, on the features and the shuffled control, at every learning rate
and seed, on one data stream (:mod:`.engine`, within ``probe.steps`` / ``val_every`` / ``patience``), and select per
head, control and seed: the step, the learning rate and the operating point (:mod:`foresight_lib.metrics.operating`,
the grid ``probe.score_thresholds`` x ``probe.max_boxes``) with the highest validation bbox IoU. Each validation
decodes only the detections scoring at least the grid's lowest threshold (the same boxes as a full decode,
filtered) and reads bbox IoU at every point of the grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..metrics.operating import OperatingPoint, choose, grid
from ..params import ProbeParams
from ..workers import Workers
from .base import SpatialProbe
from .data import Batch, ProbeData
from .engine import Budget, OnePass, Score, Trainee, TraineeKey, make_trainees, select
from .evaluate import FramePrediction, evaluate_split, frame_boxes
from .heads import make_probe


@dataclass(frozen=True)
class SpatialSettings:
    """What the spatial trainees are: heads, learning rates, init seeds, controls."""

    heads: tuple[str, ...]
    lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    controls: tuple[bool, ...] = (False, True)  # False: the features, True: the shuffled control

    @classmethod
    def of(cls, params: ProbeParams) -> SpatialSettings:
        return cls(tuple(params.heads), tuple(params.lrs), tuple(params.seeds))

    def keys(self) -> list[TraineeKey]:
        return [
            TraineeKey(h, c, lr, s) for c in self.controls for h in self.heads for lr in self.lrs for s in self.seeds
        ]


def train_spatial(
    data: ProbeData, params: ProbeParams, settings: SpatialSettings, workers: Workers | None = None
) -> tuple[list[Trainee], dict]:
    """Every trainee of ``settings`` trained on ``data`` (spread over ``workers``); returns them and the selection
    (:func:`~.engine.select`: ``{(head, shuffled, seed): trainee}``)."""
    n_classes = len(data.truth.categories)

    def build(key: TraineeKey) -> SpatialProbe:
        return make_probe(key.name, data.channels, n_classes, params)

    trainees = make_trainees(settings.keys(), build, params.weight_decay, params.steps, data.device)
    control = any(settings.controls)
    points = operating_grid(params)

    def loss(t: Trainee, batch: Batch):
        return t.model.loss(t.model(batch.inputs(t.key.shuffled)), batch.targets), len(batch.clips)

    def validate(ts: Sequence[Trainee]) -> list[Score]:
        predictions, losses = evaluate_split(
            [(t.model, t.key.shuffled) for t in ts], data, "val", min(params.score_thresholds), workers
        )
        return [_score(data, p, l, points) for p, l in zip(predictions, losses)]

    budget = Budget(params.steps, params.val_every, params.patience)
    OnePass(trainees, lambda epoch: data.batches("train", control, epoch), loss, validate, "bbox_iou", workers).run(
        budget, data.device, f"{data.store.name} spatial x{len(trainees)}"
    )
    return trainees, select(trainees)


def operating_grid(params: ProbeParams) -> list[OperatingPoint]:
    """The operating points every spatial trainee (and the prior) is chosen from."""
    return grid(params.score_thresholds, params.max_boxes)


def _score(
    data: ProbeData, predictions: Sequence[FramePrediction], loss: float, points: Sequence[OperatingPoint]
) -> Score:
    """A validation :class:`Score`: bbox IoU at the best of ``points``, and that point; NaN for a diverged head."""
    if not _finite(predictions):
        return Score(float("nan"), loss, points[0])
    point, iou = choose(frame_boxes(data.truth, predictions), points)
    return Score(iou, loss, point)


def _finite(predictions: Sequence[FramePrediction]) -> bool:
    """Whether every decoded box is finite (a diverged trainee's are not: it scores NaN, which selection ranks last)."""
    return all(bool(np.isfinite(p.detections.boxes).all()) for p in predictions)
