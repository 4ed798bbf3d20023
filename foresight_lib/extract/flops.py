"""Model FLOPs per frame of a truncated forward, from the model config, and the model FLOPs utilisation (MFU).

The one count of a point's model FLOPs: extraction (MFU), the cost model and the benchmark read it through
:data:`foresight_lib.kinds.KINDS` (``flops``: :func:`qwen_flops_per_frame` for the VLM kinds,
:func:`encoder_point_flops` for ``encoder``).

Convention: matrix products only, 2 FLOPs per multiply-add (norms, activations, softmax, rotary
embeddings, additions such as Qwen3-VL's position embedding and deepstack injection, and the embedding lookup
are left out, as in the usual MFU accounting); attention counts every query-key pair of the computed score matrix
(``4 * L**2 * d`` per sequence of ``L`` tokens: ``Q K^T`` and ``A V``), causal or not.

VLMs (every family, read through :class:`foresight_lib.families.VlmShape`: vision ``d``, MLP ``I``, patch ``p``,
temporal patch ``tp``, merge ``m``, merger output ``o``; ``n`` pre-merge tokens per temporal slot):

- patch embedding: ``2 * (3 tp p^2) * d`` per token (Qwen3-VL's learned position embedding adds no product);
- a ViT block: ``2 * (4 d^2 + k d I)`` per token (qkv, proj; ``k`` = 3 for Qwen2.5-VL's gated MLP, 2 for the plain
  MLP of Qwen2-VL and Qwen3-VL) plus ``4 d * sum(L_w^2)`` over its attention sequences: Qwen2.5-VL windows of
  ``window`` x ``window`` patches in window blocks (edge windows partial) and a whole slot in its full-attention
  blocks; Qwen2-VL and Qwen3-VL a whole slot in every block;
- a merger (the final one, and each of Qwen3-VL's deepstack mergers, of the same shape):
  ``2 * ((d m^2)^2 + d m^2 o)`` per merged token (``n / m^2`` per slot);
- an LLM layer (hidden ``D``, MLP ``J`` (gated), ``Hq`` query and ``Hk`` key/value heads of ``h`` dims: Qwen3-VL's
  explicit ``head_dim``, else ``D / Hq``), over a sequence of ``S`` tokens (image mode: ``2 + n/m^2`` per frame;
  video: ``2 + T n/m^2`` per clip): ``2 S * (D Hq h + 2 D Hk h + Hq h D + 3 D J) + 4 S^2 Hq h``.

A point costs everything its truncated forward runs: ``vit_embed`` = the embedding; ``vit_block k`` = embedding +
blocks 0..k, and on Qwen3-VL the deepstack mergers of the blocks before ``k`` (the forward runs level j's merger
right after block ``deepstack_blocks[j]``; the merger of block ``k`` itself comes after the point's output);
``deepstack i`` (Qwen3-VL) = embedding + blocks 0..``deepstack_blocks[i]`` + deepstack mergers 0..i; ``merger`` =
all blocks + every deepstack merger + the merger; ``llm L`` = that + layers 0..L (no ``lm_head``).

Encoders (DINOv2, OWL-ViT, OWLv2, SigLIP; hidden ``d``, MLP ``I``, patch ``p``, ``S`` tokens with the special ones
of :func:`.encoders.encoder_geometry`): ``2 * 3 p^2 d`` per patch token, and per block
``2 S (4 d^2 + 2 d I) + 4 S^2 d`` (a SwiGLU DINOv2 MLP of hidden ``g``: ``6 d g`` in place of ``4 d I``); block
``k`` = blocks 0..k. Per frame = per clip / frames in the clip.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import PretrainedConfig

from ..families import VlmShape, family_of, shape_of
from ..params import DeepstackPoint, EncoderPoint, LlmPoint, PointParams, VitBlockPoint, VitEmbedPoint
from .base import resolve_layer
from .order import Mode, n_slots

PEAK_ENV = "FORESIGHT_PEAK_TFLOPS"
"""Environment variable: the device's dense peak in TFLOPS for the compute dtype, for a device not in :data:`PEAKS`."""
PEAKS = {
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
}
"""Dense bfloat16/float16 tensor-core peaks (TFLOPS, without sparsity), matched against the CUDA device name."""


def window_lengths(hb: int, wb: int, units: int, merge: int) -> list[int]:
    """Token counts of the attention windows of one slot: ``units`` x ``units`` merge units, edge windows partial."""
    rows = [min(units, hb - r) for r in range(0, hb, units)]
    cols = [min(units, wb - c) for c in range(0, wb, units)]
    return [r * c * merge * merge for r in rows for c in cols]


def _vision_run(point: PointParams, s: VlmShape) -> tuple[int, int, bool]:
    """What the vision tower runs for ``point``: ``(blocks, deepstack mergers, merger)``."""
    if isinstance(point, VitEmbedPoint):
        return 0, 0, False
    if isinstance(point, VitBlockPoint):
        last = resolve_layer(point.layer, s.vit_depth, "vit_block")
        return last + 1, sum(b < last for b in s.deepstack_blocks), False
    if isinstance(point, DeepstackPoint):
        block = s.deepstack_blocks[resolve_layer(point.layer, len(s.deepstack_blocks), "deepstack")]
        return block + 1, sum(b <= block for b in s.deepstack_blocks), False
    return s.vit_depth, len(s.deepstack_blocks), True


def vlm_flops_per_frame(point: PointParams, s: VlmShape, height: int, width: int, n_frames: int, mode: Mode) -> float:
    """Model FLOPs per frame of the truncated forward to a VLM ``point`` of shape ``s`` (module docstring)."""
    d, p, m = s.vit_width, s.patch, s.merge
    h, w = height // p, width // p
    n = h * w  # pre-merge tokens per slot
    merged = n // (m * m)
    slots = n_slots(n_frames, mode, s.temporal_patch)
    blocks, deepstack, merger = _vision_run(point, s)
    windows = window_lengths(h // m, w // m, s.window // m, m) if s.window else [n]
    mlp = (3 if s.vit_mlp_gated else 2) * d * s.vit_mlp  # MACs per token
    per_slot = 2.0 * 3 * s.temporal_patch * p * p * d * n  # patch embedding
    for block in range(blocks):
        lengths = [n] if block in s.full_attention_blocks else windows
        per_slot += 2.0 * n * (4 * d * d + mlp) + 4.0 * d * sum(ln * ln for ln in lengths)
    c = d * m * m
    per_slot += (deepstack + merger) * 2.0 * merged * (c * c + c * s.merged_width)
    total = per_slot * slots
    if isinstance(point, LlmPoint):
        layers = resolve_layer(point.layer, s.llm_layers, "llm") + 1
        dq, dkv = s.llm_heads * s.llm_head_dim, s.llm_kv_heads * s.llm_head_dim
        for seq in [2 + merged] * n_frames if mode == "image" else [2 + slots * merged]:
            linear = 2.0 * seq * (s.llm_width * (2 * dq + 2 * dkv) + 3 * s.llm_width * s.llm_mlp)
            total += layers * (linear + 4.0 * seq * seq * dq)
    return total / n_frames


def qwen_flops_per_frame(point: PointParams, config: Any, height: int, width: int, n_frames: int, mode: Mode) -> float:
    """Model FLOPs per frame of the truncated forward to a VLM ``point`` of a model ``config`` of any family (a
    transformers config or a config.json's dict)."""
    return vlm_flops_per_frame(point, shape_of(family_of(config), config), height, width, n_frames, mode)


def encoder_flops_per_frame(config: PretrainedConfig, layer: int, grid: tuple[int, int], n_special: int) -> float:
    """Model FLOPs per frame of an encoder's truncated forward to block ``layer`` over a ``grid`` of patches and
    ``n_special`` special tokens (module docstring)."""
    d, p = config.hidden_size, config.patch_size
    patches = grid[0] * grid[1]
    s = patches + n_special
    if getattr(config, "use_swiglu_ffn", False):  # DINOv2's SwiGLU: hidden rounded as transformers does
        g = (int(int(d * config.mlp_ratio) * 2 / 3) + 7) // 8 * 8
        mlp = 6 * d * g  # FLOPs per token
    else:
        mlp = 4 * d * (getattr(config, "intermediate_size", None) or int(d * config.mlp_ratio))
    per_block = 2.0 * s * 4 * d * d + s * mlp + 4.0 * s * s * d
    return 2.0 * 3 * p * p * d * patches + (resolve_layer(layer, config.num_hidden_layers, "encoder") + 1) * per_block


def encoder_point_flops(
    point: EncoderPoint, config: PretrainedConfig, height: int, width: int, n_frames: int, mode: Mode
) -> float:
    """Model FLOPs per frame of an ``encoder`` point on ``height x width`` frames, its vision ``config`` given (the
    :data:`foresight_lib.kinds.KINDS` signature; every frame is its own image, whatever ``n_frames`` and ``mode``)."""
    from .encoders import encoder_geometry  # encoders imports this module

    geometry = encoder_geometry(config, height, width)
    return encoder_flops_per_frame(config, point.layer, geometry.grid, len(geometry.special_tokens))


def peak_flops(device: torch.device, dtype: torch.dtype) -> tuple[float | None, str]:
    """The device's dense peak FLOP/s for ``dtype`` and where the figure comes from; None with the reason."""
    if os.environ.get(PEAK_ENV):
        return float(os.environ[PEAK_ENV]) * 1e12, f"{PEAK_ENV}={os.environ[PEAK_ENV]}"
    if device.type != "cuda":
        return None, f"no peak figure for a {device.type} device (set {PEAK_ENV} to compute MFU)"
    if dtype not in (torch.bfloat16, torch.float16):
        return None, f"no peak figure for {str(dtype).removeprefix('torch.')} (table: bfloat16/float16)"
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAKS.items():
        if key in name:
            return tflops * 1e12, f"{key} dense bf16 peak {tflops:g} TFLOPS (table in foresight_lib/extract/flops.py)"
    return None, f"{name} is not in the peak table (set {PEAK_ENV})"
