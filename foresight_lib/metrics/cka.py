"""Linear centered kernel alignment (CKA) between two representations of the same n examples.

``linear_cka`` (Kornblith et al. 2019) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear
kernels K = X X^T, L = Y Y^T and the biased HSIC; in feature space it is
||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with Xc, Yc the column-centred features.

``debiased_linear_cka`` replaces HSIC by the unbiased estimator of Song et al. (2012), as in
Nguyen et al. (2021), "Do wide and deep networks learn the same things?":
HSIC_u = [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)), with K~, L~ the
Gram matrices with zeroed diagonals. It is computed in feature space in O(n d) memory (never an
n x n matrix), after centring the features, which leaves HSIC_u unchanged. Independent
representations give values near 0 instead of the biased estimator's positive offset.

Both are computed in float64 and are invariant to orthogonal transforms and isotropic scaling
of either representation.
"""

from __future__ import annotations

import numpy as np


def _centred_pair(x: np.ndarray, y: np.ndarray, min_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``x`` ``[n, d1]`` and ``y`` ``[n, d2]``; return them float64 and column-centred."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"CKA needs 2-D [n, d] features (got shapes {list(x.shape)} and {list(y.shape)})")
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same examples in both: x has n={len(x)}, y has n={len(y)}")
    if len(x) < min_n:
        raise ValueError(f"CKA needs n >= {min_n} examples (got {len(x)})")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("CKA features must be finite")
    return x - x.mean(axis=0), y - y.mean(axis=0)


def _ratio(xy: float, xx: float, yy: float) -> float:
    if xx <= 0 or yy <= 0:
        raise ValueError("CKA is undefined: a representation has no (estimated) variance")
    return float(xy / np.sqrt(xx * yy))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of ``x`` ``[n, d1]`` and ``y`` ``[n, d2]`` (biased HSIC), in [0, 1]."""
    xc, yc = _centred_pair(x, y, min_n=2)
    return _ratio(np.linalg.norm(yc.T @ xc) ** 2, np.linalg.norm(xc.T @ xc) ** 2, np.linalg.norm(yc.T @ yc) ** 2)


def _unbiased_hsic(a: np.ndarray, b: np.ndarray) -> float:
    """n(n-3) HSIC_u of centred features ``a`` ``[n, da]`` and ``b`` ``[n, db]`` (the scale cancels in CKA).

    With centred features 1'K1 = 0, so 1'K~1 = -tr K and K~1 = -diag K.
    """
    n = len(a)
    diag_a = np.einsum("ij,ij->i", a, a)  # [n] diag of K
    diag_b = np.einsum("ij,ij->i", b, b)  # [n] diag of L
    return float(
        np.linalg.norm(b.T @ a) ** 2 - n / (n - 2) * diag_a @ diag_b + diag_a.sum() * diag_b.sum() / ((n - 1) * (n - 2))
    )


def debiased_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of ``x`` ``[n, d1]`` and ``y`` ``[n, d2]`` with the unbiased HSIC; needs n >= 4, may be < 0."""
    xc, yc = _centred_pair(x, y, min_n=4)
    return _ratio(_unbiased_hsic(xc, yc), _unbiased_hsic(xc, xc), _unbiased_hsic(yc, yc))
