"""Linear CKA and debiased linear CKA."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from foresight_lib.metrics.cka import debiased_linear_cka, linear_cka

Cka = Callable[[np.ndarray, np.ndarray], float]
Features = tuple[np.ndarray, np.ndarray]
ESTIMATORS = [linear_cka, debiased_linear_cka]


def gram_hsic_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Song et al. (2012) unbiased HSIC, straight from the n x n Gram matrices of the raw features."""
    n = len(x)
    kx, ky = x @ x.T, y @ y.T  # [n, n]
    np.fill_diagonal(kx, 0.0)
    np.fill_diagonal(ky, 0.0)
    one = np.ones(n)  # [n]
    return float(
        (
            np.trace(kx @ ky)
            + (one @ kx @ one) * (one @ ky @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * one @ kx @ ky @ one
        )
        / (n * (n - 3))
    )


@pytest.fixture
def features() -> Features:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8))
    y = x @ rng.normal(size=(8, 5)) + 0.5 * rng.normal(size=(60, 5))
    return x, y


@pytest.mark.parametrize("cka", ESTIMATORS)
def test_self_similarity_is_one(cka: Cka, features: Features) -> None:
    x, _ = features
    assert cka(x, x) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("cka", ESTIMATORS)
def test_orthogonal_and_scale_invariance(cka: Cka, features: Features) -> None:
    x, y = features
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(8, 8)))
    reference = cka(x, y)
    assert 0.2 < reference < 1.0
    assert cka(x @ q, y) == pytest.approx(reference, rel=1e-10)
    assert cka(x, 3.7 * y) == pytest.approx(reference, rel=1e-10)


def test_linear_cka_matches_hand_formula() -> None:
    x = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0], [1.0, 1.0]])
    y = np.array([[2.0], [0.0], [1.0], [4.0]])
    h = np.eye(4) - 1.0 / 4.0  # centring matrix
    kx, ky = h @ x @ x.T @ h, h @ y @ y.T @ h  # [4, 4] centred Gram matrices
    expected = np.sum(kx * ky) / np.sqrt(np.sum(kx * kx) * np.sum(ky * ky))
    assert linear_cka(x, y) == pytest.approx(expected, rel=1e-12)


def test_debiased_matches_gram_formula_on_uncentred_features(features: Features) -> None:
    x, y = features
    x, y = x + 5.0, y - 2.0  # the unbiased HSIC does not depend on the feature means
    expected = gram_hsic_unbiased(x, y) / np.sqrt(gram_hsic_unbiased(x, x) * gram_hsic_unbiased(y, y))
    assert debiased_linear_cka(x, y) == pytest.approx(expected, rel=1e-9)


def test_independent_features_debiased_near_zero_biased_not() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(400, 100)), rng.normal(size=(400, 100))
    assert abs(debiased_linear_cka(x, y)) < 0.02
    assert linear_cka(x, y) > 0.15  # the biased estimator's offset at d/n = 0.25


def test_errors() -> None:
    x = np.zeros((5, 3)) + np.arange(5)[:, None]
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(x, x[:4])
    with pytest.raises(ValueError, match="n >= 4"):
        debiased_linear_cka(x[:3], x[:3])
    with pytest.raises(ValueError, match="variance"):
        linear_cka(x, np.ones((5, 2)))
