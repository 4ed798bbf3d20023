"""The one rule for ``device`` and ``dtype`` params (``model``, ``ltx``, ``adapter.train``)."""

from __future__ import annotations

import torch

from .errors import ForesightError


def resolve_device(requested: str, key: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cuda`` without a GPU is an error naming the params ``key``.

    CUDA means the current CUDA device (``cuda:<index>``; a data-parallel process sets its own first).
    """
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ForesightError(f"{key}: 'cuda' requested but no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device("cuda", torch.cuda.current_device()) if requested == "cuda" else torch.device(requested)


def resolve_dtype(requested: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on GPU, float32 on CPU; otherwise the named torch dtype."""
    if requested == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, requested)
