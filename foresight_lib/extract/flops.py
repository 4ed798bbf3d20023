"""Model FLOPs per frame of a truncated forward, from the model config, and the model FLOPs utilisation (MFU).

Convention: matrix products only, 2 FLOPs per multiply-add (norms, activations, softmax, rotary
embeddings and the embedding lookup are left out, as in the usual MFU accounting); attention counts
every query-key pair of the computed score matrix (``4 * L**2 * d`` per sequence of ``L`` tokens:
``Q K^T`` and ``A V``), causal or not.

Qwen2.5-VL (vision ``d``, MLP ``I``, patch ``p``, temporal patch ``tp``, merge ``m``, merger output ``o``;
``n`` pre-merge tokens per temporal slot):

- patch embedding: ``2 * (3 tp p^2) * d`` per token;
- a ViT block: ``2 * (4 d^2 + 3 d I)`` per token (qkv, proj; gated MLP) plus ``4 d * sum(L_w^2)`` over its
  attention sequences (windows of 8x8 patches in window blocks; a whole slot in full-attention blocks);
- merger: ``2 * ((d m^2)^2 + d m^2 o)`` per merged token (``n / m^2`` per slot);
- an LLM layer (hidden ``D``, MLP ``J``, ``Hq`` query and ``Hk`` key/value heads of ``h`` dims), over a
  sequence of ``S`` tokens (image mode: ``2 + n/m^2`` per frame; video: ``2 + T n/m^2`` per clip):
  ``2 S * (D Hq h + 2 D Hk h + Hq h D + 3 D J) + 4 S^2 Hq h``.

A point costs everything its truncated forward runs: ``vit_block k`` = embedding + blocks 0..k; ``merger`` =
all blocks + merger; ``llm L`` = that + layers 0..L. Encoders (DINOv2, OWL-ViT, OWLv2, SigLIP; hidden ``d``,
MLP ``I``, patch ``p``, ``S`` tokens with the special ones): ``2 * 3 p^2 d`` per patch token, and per block
``2 S (4 d^2 + 2 d I) + 4 S^2 d`` (a SwiGLU DINOv2 MLP of hidden ``g``: ``6 d g`` in place of ``4 d I``).
Per frame = per clip / frames in the clip.
"""

from __future__ import annotations

import os

import torch
from transformers import PretrainedConfig, Qwen2_5_VLConfig

from ..params import LlmPoint, MergerPoint, PointParams, VitBlockPoint, VitEmbedPoint
from .base import resolve_layer

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


def qwen_flops_per_frame(
    point: PointParams, config: Qwen2_5_VLConfig, height: int, width: int, n_frames: int, mode: str
) -> float:
    """Model FLOPs per frame of the truncated forward to ``point`` (module docstring)."""
    v = config.vision_config
    d, p, tp, m = v.hidden_size, v.patch_size, v.temporal_patch_size, v.spatial_merge_size
    h, w = height // p, width // p
    n = h * w  # pre-merge tokens per slot
    slots = n_frames if mode == "image" else -(-n_frames // tp)
    per_slot = 2.0 * 3 * tp * p * p * d * n  # patch embedding
    if not isinstance(point, VitEmbedPoint):
        last = resolve_layer(point.layer, v.depth, "vit_block") if isinstance(point, VitBlockPoint) else v.depth - 1
        windows = window_lengths(h // m, w // m, v.window_size // (p * m), m)
        for block in range(last + 1):
            lengths = [n] if block in v.fullatt_block_indexes else windows
            per_slot += 2.0 * n * (4 * d * d + 3 * d * v.intermediate_size) + 4.0 * d * sum(ln * ln for ln in lengths)
    if isinstance(point, MergerPoint | LlmPoint):
        c = d * m * m
        per_slot += 2.0 * (n // (m * m)) * (c * c + c * v.out_hidden_size)
    total = per_slot * slots
    if isinstance(point, LlmPoint):
        t = config.text_config
        layers = resolve_layer(point.layer, t.num_hidden_layers, "llm") + 1
        hd = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
        dq, dkv = t.num_attention_heads * hd, t.num_key_value_heads * hd
        merged = n // (m * m)
        seqs = [2 + merged] * n_frames if mode == "image" else [2 + slots * merged]
        for s in seqs:
            linear = 2.0 * s * (t.hidden_size * (2 * dq + 2 * dkv) + 3 * t.hidden_size * t.intermediate_size)
            total += layers * (linear + 4.0 * s * s * dq)
    return total / n_frames


def encoder_flops_per_frame(config: PretrainedConfig, layer: int, grid: tuple[int, int], n_special: int) -> float:
    """Model FLOPs per frame of an encoder's truncated forward to block ``layer`` (module docstring)."""
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
