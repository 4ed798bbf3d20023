"""Accuracy of a classification probe (motion direction, frame order, steps) with its chance levels."""

from __future__ import annotations

import numpy as np


def accuracy_with_chance(pred: np.ndarray, target: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy of ``pred`` ``[N]`` against ``target`` ``[N]`` (class ids in ``[0, n_classes)``) and two chance levels.

    ``chance`` = the majority-class rate of ``target``: the accuracy of always predicting the most
    frequent class, the bar a probe must beat. ``uniform_chance`` = 1 / n_classes (random guessing).
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.ndim != 1 or pred.shape != target.shape or len(target) == 0:
        raise ValueError(f"pred {pred.shape} and target {target.shape} must be non-empty matching 1-D arrays")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2 (got {n_classes})")
    for name, arr in (("pred", pred), ("target", target)):
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= n_classes:
            raise ValueError(f"{name} must hold integer class ids in [0, {n_classes})")
    return {
        "accuracy": float(np.mean(pred == target)),
        "chance": float(np.bincount(target, minlength=n_classes).max() / len(target)),
        "uniform_chance": 1.0 / n_classes,
    }


def majority_chance(train: np.ndarray, test: np.ndarray) -> float:
    """The accuracy on ``test`` ``[N]`` of always answering the most frequent class of ``train`` ``[M]`` (class ids;
    the smallest id on a tie): the bar a classifier trained on ``train`` must beat."""
    train, test = np.asarray(train), np.asarray(test)
    if train.ndim != 1 or test.ndim != 1 or len(train) == 0 or len(test) == 0:
        raise ValueError(f"train {train.shape} and test {test.shape} must be non-empty 1-D arrays of class ids")
    majority = np.bincount(train).argmax()
    return float(np.mean(test == majority))
