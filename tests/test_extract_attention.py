"""The vision tower's window attention as one batched SDPA call, against transformers' own per-window loop.

Tiny random model (real depth 32, full attention at blocks 7/15/23/31). 112x168 frames: 4x6 merge units,
one full 4x4-unit window and a partial one per row, so the windows differ in length (the fallback);
224x224: 8x8 units, four equal windows (the batched call). Tolerance: float32 on CPU, absolute 1e-5
(measured here: 0.0, the same kernels on the same numbers).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from foresight_lib.extract.attention import WINDOWED, use_windowed_attention, windowed_sdpa
from foresight_lib.extract.qwen import build_inputs, build_tiny_model

TOLERANCE = {"atol": 1e-5, "rtol": 0.0}


@pytest.fixture(scope="module")
def models():
    reference = build_tiny_model("qwen2_5_vl", 0)  # transformers' sdpa: one call per window
    batched = copy.deepcopy(reference)
    assert use_windowed_attention(batched) == {"vision": WINDOWED, "text": "sdpa"}
    return reference, batched


def _frames(height: int, width: int, n: int = 3) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(1).integers(0, 256, (n, height, width, 3), dtype=np.uint8))


def _count_sdpa(monkeypatch) -> list[int]:
    calls = [0]
    sdpa = F.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls[0] += 1
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counted)
    return calls


@pytest.mark.parametrize("mode", ["image", "video"])
@pytest.mark.parametrize("size", [(224, 224), (112, 168)])
def test_every_block_equals_transformers(models, mode, size, monkeypatch):
    """Every block's output (window and full-attention blocks) and the merger, image and video mode."""
    reference, batched = models
    inputs = build_inputs(_frames(*size), mode, reference.config, text=False)
    pixels, grid = (
        (inputs["pixel_values"], inputs["image_grid_thw"])
        if mode == "image"
        else (inputs["pixel_values_videos"], inputs["video_grid_thw"])
    )
    with torch.inference_mode():
        expected = reference.model.visual(pixels, grid_thw=grid, output_hidden_states=True)
        calls = _count_sdpa(monkeypatch)
        ours = batched.model.visual(pixels, grid_thw=grid, output_hidden_states=True)
    assert len(ours.hidden_states) == 33
    for k, (a, b) in enumerate(zip(ours.hidden_states, expected.hidden_states, strict=True)):
        torch.testing.assert_close(a, b, **TOLERANCE, msg=lambda m, k=k: f"hidden_states[{k}]: {m}")
    torch.testing.assert_close(ours.pooler_output, expected.pooler_output, **TOLERANCE)
    if size == (224, 224):  # equal windows and equal images: one call per block
        assert calls[0] == 32
    else:  # unequal windows: transformers' path, one call per window in the 28 window blocks
        slots = int(grid[:, 0].sum())
        assert calls[0] == 28 * 2 * slots + 4


@pytest.mark.parametrize("mode", ["image", "video"])
def test_the_llm_keeps_its_own_attention(models, mode):
    """The LLM (causal, masked) runs under its own implementation: its hidden states are unchanged."""
    reference, batched = models
    assert batched.config.text_config._attn_implementation == "sdpa"
    inputs = build_inputs(_frames(224, 224, n=2), mode, reference.config)
    with torch.inference_mode():
        expected = reference.model(**inputs, output_hidden_states=True, use_cache=False).hidden_states
        ours = batched.model(**inputs, output_hidden_states=True, use_cache=False).hidden_states
    for a, b in zip(ours, expected, strict=True):
        torch.testing.assert_close(a, b, **TOLERANCE)


def test_the_function_refuses_what_it_does_not_serve():
    """Called without packed sequences (e.g. set on the LLM by mistake) it stops instead of attending across frames."""
    q = torch.zeros(1, 2, 8, 4)  # [1, H, S, D]
    with pytest.raises(ValueError, match="vision tower only"):
        windowed_sdpa(torch.nn.Module(), q, q, q, attention_mask=None, cu_seq_lens_q=None)
