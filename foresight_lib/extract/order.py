"""Token-order rules of the Qwen VL families: the one place that knows how frames become tokens and back.

Pure tensor functions, no model. Notation (all sizes from the model config, never constants):
``p`` patch size (14; Qwen3-VL 16), ``tp`` temporal patch size (2), ``m`` spatial merge size (2), ``T`` temporal
slots, ``h, w`` patch grid, ``Hb = h/m, Wb = w/m`` merge-unit grid, ``U = m*m`` tokens per merge unit.

1. Merge-unit order (processor, ``patch_embed``; every ViT block output of Qwen2-VL and Qwen3-VL): token
   ``((t*Hb + bh)*Wb + bw)*U + mh*m + mw`` is patch row ``bh*m + mh``, column ``bw*m + mw`` of slot ``t``; its
   values are laid out ``(3, tp, p, p)``.
2. Window order (Qwen2.5-VL only: block 0's input and every ViT block output): whole merge units permuted by
   :func:`window_index`.
3. Merged tokens (merger and deepstack merger outputs once un-windowed, LLM vision tokens): raster order of merge
   units ``(t, bh, bw)``.

The ``order: naive`` ablation (:func:`naive_grid`) skips rules 1-2: it reshapes the sequence of the vision tower's
``hidden_states`` (window or merge-unit order) straight to ``[T, h, w, C]``, as the research proposal's sketch did.

Image mode: each frame is one image with one temporal slot, the frame repeated ``tp`` times.
Video mode: slot ``t`` covers frames ``tp*t .. tp*t + tp - 1``; a frame count that is not a multiple
of ``tp`` is padded by repeating the last frame, as ``Qwen2VLVideoProcessor.patchify`` does.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..errors import ForesightError
from .checkpoints import CLIP_NORMALIZATION, Normalization, normalize

Mode = Literal["image", "video"]


def n_slots(n_frames: int, mode: Mode, temporal_patch_size: int) -> int:
    """Temporal slots for ``n_frames`` frames: one per frame (image), ``ceil(n/tp)`` (video)."""
    return n_frames if mode == "image" else -(-n_frames // temporal_patch_size)


def slot_frames(n_frames: int, mode: Mode, temporal_patch_size: int) -> tuple[tuple[int, ...], ...]:
    """For each temporal slot, the indices of the real frames it covers (a padding repeat is not listed)."""
    if mode == "image":
        return tuple((i,) for i in range(n_frames))
    return tuple(
        tuple(range(t * temporal_patch_size, min((t + 1) * temporal_patch_size, n_frames)))
        for t in range(n_slots(n_frames, mode, temporal_patch_size))
    )


def patchify(
    frames: torch.Tensor,
    mode: Mode,
    *,
    patch_size: int,
    temporal_patch_size: int,
    merge_size: int,
    norm: Normalization = CLIP_NORMALIZATION,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames -> Qwen VL ``pixel_values`` in merge-unit order, and ``grid_thw``.

    Args:
        frames: uint8 ``[N, H, W, 3]``; H and W multiples of ``patch_size * merge_size``.
        mode: ``"image"``: N images, each ``grid_thw`` row ``[1, h, w]``; ``"video"``: one video,
            one row ``[ceil(N/tp), h, w]``.

    Returns:
        ``pixel_values`` float32 ``[T*h*w, 3*tp*p*p]`` (T slots in total) and ``grid_thw`` int64 ``[n_items, 3]``.
    """
    n, height, width, _ = frames.shape
    p, tp, m = patch_size, temporal_patch_size, merge_size
    if height % (p * m) or width % (p * m):
        raise ForesightError(f"frame size {height}x{width} must be a multiple of {p * m} (patch {p} x merge {m})")
    h, w = height // p, width // p
    x = normalize(frames, norm)  # [N, 3, H, W]
    if mode == "image":
        x = x[:, None].expand(n, tp, *x.shape[1:])  # [N, tp, 3, H, W]: a still frame repeated along T
    else:
        if pad := -n % tp:
            x = torch.cat([x, x[-1:].expand(pad, *x.shape[1:])])  # repeat the last frame
        x = x.reshape(-1, tp, *x.shape[1:])  # [T, tp, 3, H, W]
    t = x.shape[0]
    x = x.reshape(t, tp, 3, h // m, m, p, w // m, m, p)  # [T, tp, 3, Hb, mh, p, Wb, mw, p]
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # [T, Hb, Wb, mh, mw, 3, tp, p, p]
    pixel_values = x.reshape(t * h * w, 3 * tp * p * p)
    rows = [[1, h, w]] * n if mode == "image" else [[t, h, w]]
    return pixel_values, torch.tensor(rows, dtype=torch.long)


def merge_order_to_raster(x: torch.Tensor, t: int, h: int, w: int, *, merge_size: int) -> torch.Tensor:
    """Pre-merge tokens in merge-unit order ``[T*h*w, C]`` -> raster grid ``[T, h, w, C]`` (h, w in patches)."""
    m = merge_size
    x = x.reshape(t, h // m, w // m, m, m, -1)  # [T, Hb, Wb, mh, mw, C]
    return x.permute(0, 1, 3, 2, 4, 5).reshape(t, h, w, -1)


def raster_to_merge_order(x: torch.Tensor, *, merge_size: int) -> torch.Tensor:
    """Inverse of :func:`merge_order_to_raster`: ``[T, h, w, C]`` -> ``[T*h*w, C]``."""
    t, h, w, c = x.shape
    m = merge_size
    x = x.reshape(t, h // m, m, w // m, m, c)  # [T, Hb, mh, Wb, mw, C]
    return x.permute(0, 1, 3, 2, 4, 5).reshape(t * h * w, c)


def window_index(t: int, hb: int, wb: int, *, window_size: int, patch_size: int, merge_size: int) -> torch.Tensor:
    """Window order of merge units, as the vision tower applies it before its blocks.

    Windows are ``window_size/(patch*merge)`` merge units square, tiled from the top-left of each
    slot (edge windows are partial); order is (slot, window row, window column, row, column inside
    the window). Returns int64 ``[T*Hb*Wb]``: position ``j`` of the windowed sequence holds merge
    unit ``window_index[j]`` of the merge-unit-order sequence.
    """
    units = window_size // (patch_size * merge_size)
    tt, bh, bw = torch.meshgrid(torch.arange(t), torch.arange(hb), torch.arange(wb), indexing="ij")  # [T, Hb, Wb]
    n_wh, n_ww = -(-hb // units), -(-wb // units)
    key = (((tt * n_wh + bh // units) * n_ww + bw // units) * units + bh % units) * units + bw % units
    return torch.argsort(key.flatten())


def unwindow(x: torch.Tensor, window_index: torch.Tensor) -> torch.Tensor:
    """Undo the window permutation: window-order tokens ``[S, C]`` -> merge-unit order ``[S, C]``.

    ``window_index`` is ``[S/U]`` (one entry per merge unit, see :func:`window_index`); the group size
    U = S / len(window_index) follows from the shapes (4 pre-merge tokens per unit, 1 after the merger).
    """
    s, c = x.shape
    units = window_index.numel()
    inverse = torch.argsort(window_index.to(x.device))  # [S/U]
    return x.reshape(units, s // units, c)[inverse].reshape(s, c)


def to_window_order(x: torch.Tensor, window_index: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`unwindow`: merge-unit-order tokens ``[S, C]`` -> window order ``[S, C]``, as the vision
    tower's ``hidden_states`` hold them."""
    s, c = x.shape
    units = window_index.numel()
    return x.reshape(units, s // units, c)[window_index.to(x.device)].reshape(s, c)


def naive_grid(x: torch.Tensor, t: int, h: int, w: int) -> torch.Tensor:
    """The proposal's reshape, an ablation: pre-merge tokens as the tower holds them ``[T*h*w, C]`` -> ``[T, h, w, C]``
    as is, not un-permuted (space scrambled inside every merge unit, and every window of Qwen2.5-VL)."""
    return x.reshape(t, h, w, -1)


def merged_to_raster(x: torch.Tensor, t: int, hb: int, wb: int) -> torch.Tensor:
    """Merged tokens in raster order of merge units ``[T*Hb*Wb, C]`` -> ``[T, Hb, Wb, C]``."""
    return x.reshape(t, hb, wb, -1)
