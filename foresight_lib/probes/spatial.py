"""Train every spatial head of ``probe.heads``, on the features and the shuffled control, at every learning rate
and seed, in one pass per epoch (:mod:`.engine`), and select per head, control and seed (epoch and learning rate on
the validation bbox IoU: each epoch decodes only the validation detections that count, those scoring at least
``probe.score_threshold``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..params import ProbeParams
from .base import SpatialProbe
from .data import Batch, ProbeData
from .engine import OnePass, Score, Trainee, TraineeKey, Workers, make_trainees, select
from .evaluate import FramePrediction, asserted_iou, evaluate_split
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

    trainees = make_trainees(settings.keys(), build, params.weight_decay, params.epochs, data.device)
    control = any(settings.controls)

    def loss(t: Trainee, batch: Batch):
        return t.model.loss(t.model(batch.inputs(t.key.shuffled)), batch.targets), len(batch.clips)

    def validate(ts: Sequence[Trainee]) -> list[Score]:
        predictions, losses = evaluate_split(
            [(t.model, t.key.shuffled) for t in ts], data, "val", params.score_threshold, workers
        )
        return [
            Score(asserted_iou(data.truth, p, params.score_threshold) if _finite(p) else float("nan"), l)
            for p, l in zip(predictions, losses)
        ]

    OnePass(trainees, lambda epoch: data.batches("train", control, epoch), loss, validate, "bbox_iou", workers).run(
        params.epochs, data.device, f"{data.store.name} spatial x{len(trainees)}"
    )
    return trainees, select(trainees)


def _finite(predictions: Sequence[FramePrediction]) -> bool:
    """Whether every decoded box is finite (a diverged trainee's are not: it scores NaN, which selection ranks last)."""
    return all(bool(np.isfinite(p.detections.boxes).all()) for p in predictions)
