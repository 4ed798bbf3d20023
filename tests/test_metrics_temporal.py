"""Classification accuracy with its chance levels."""

from __future__ import annotations

import numpy as np
import pytest

from foresight_lib.metrics.temporal import accuracy_with_chance


def test_accuracy_and_majority_chance() -> None:
    target = np.array([0, 0, 0, 1, 2, 3, 0, 1])  # class 0 holds 4 of 8
    pred = np.array([0, 1, 0, 1, 2, 0, 0, 3])
    result = accuracy_with_chance(pred, target, n_classes=4)
    assert result == {"accuracy": pytest.approx(5 / 8), "chance": pytest.approx(0.5), "uniform_chance": 0.25}


def test_rejects_bad_class_ids() -> None:
    with pytest.raises(ValueError, match="class ids"):
        accuracy_with_chance(np.array([0, 2]), np.array([0, 1]), n_classes=2)
    with pytest.raises(ValueError, match="matching"):
        accuracy_with_chance(np.array([0]), np.array([0, 1]), n_classes=2)
