"""The Qwen VL vision towers' attention over all windows (or images) in one ``scaled_dot_product_attention`` call.

transformers 5.23 (``Qwen2_5_VLVisionAttention.forward``, and Qwen2-VL's and Qwen3-VL's alike) hands the packed sequence's ``cu_seqlens`` to
the attention function only when the implementation's name contains "flash"; otherwise it splits the
sequence by window and calls the function once per window in a Python loop (about 5,400 calls per
forward of 18 frames at 448x672). :data:`WINDOWED` is registered in transformers' ``AttentionInterface``
under such a name: when every sequence of the packed batch has the same length (every window at
448x672; every image in full-attention blocks) it reshapes ``[1, heads, n*L, dim]`` to
``[n, heads, L, dim]`` and calls SDPA once; otherwise it runs transformers' own SDPA per sequence.
It is set on the vision tower only (:func:`use_windowed_attention`); the LLM keeps its own implementation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward

WINDOWED = "foresight_flash_windows_sdpa"
"""The registered name ("flash" makes the vision attention pass ``cu_seqlens``; it is SDPA underneath)."""


def windowed_sdpa(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    scaling: float | None = None,
    dropout: float = 0.0,
    cu_seq_lens_q: torch.Tensor | None = None,
    max_length_q: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention within each packed sequence: ``query/key/value`` ``[1, H, S, D]`` -> ``[1, S, H, D]``.

    Sequences are delimited by ``cu_seq_lens_q`` ``[n+1]``; ``max_length_q`` is the longest one.
    """
    if cu_seq_lens_q is None or attention_mask is not None or kwargs.get("is_causal"):
        raise ValueError(f"{WINDOWED} serves a Qwen VL vision tower only (packed, non-causal, unmasked)")
    _, heads, seq, dim = query.shape
    n = cu_seq_lens_q.numel() - 1
    if max_length_q is not None and n * max_length_q == seq:  # every sequence is max_length_q long
        q, k, v = (
            x[0].reshape(heads, n, max_length_q, dim).transpose(0, 1) for x in (query, key, value)
        )  # [n, H, L, D]
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling)  # [n, H, L, D]
        return out.transpose(1, 2).reshape(1, seq, heads, dim), None
    lengths = (cu_seq_lens_q[1:] - cu_seq_lens_q[:-1]).tolist()
    parts = [  # transformers' own path: one SDPA per sequence
        sdpa_attention_forward(module, q, k, v, None, dropout=dropout, scaling=scaling, is_causal=False)[0]
        for q, k, v in zip(*(torch.split(x, lengths, dim=2) for x in (query, key, value)), strict=True)
    ]
    return torch.cat(parts, dim=1), None


AttentionInterface.register(WINDOWED, windowed_sdpa)


def use_windowed_attention(model: PreTrainedModel) -> dict[str, str]:
    """Run the vision tower's attention through :data:`WINDOWED`, the rest as it was; return what is set."""
    text = model.config.text_config._attn_implementation
    model.set_attn_implementation({"vision_config": WINDOWED, "text_config": text})
    return {"vision": WINDOWED, "text": text}
