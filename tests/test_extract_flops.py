"""Model FLOPs per frame from the config, against torch's FLOP counter on the truncated forward itself.

Eager attention, so that the counter sees the attention products (it does not count the CPU SDPA kernel).
Tiny models at their real depths; 112x168 frames leave a partial attention window, so the window sum is exercised.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from foresight_lib.extract import encoders, qwen
from foresight_lib.extract.flops import encoder_flops_per_frame, peak_flops, qwen_flops_per_frame
from foresight_lib.params import EncoderPoint, LlmPoint, MergerPoint, VitBlockPoint, VitEmbedPoint

CASES = [
    (VitEmbedPoint(kind="vit_embed"), "image"),
    (VitBlockPoint(kind="vit_block", layer=7), "image"),
    (VitBlockPoint(kind="vit_block", layer=-1), "video"),
    (MergerPoint(kind="merger"), "video"),
    (LlmPoint(kind="llm", layer=3), "image"),
    (LlmPoint(kind="llm", layer=3), "video"),
]


@pytest.fixture(scope="module")
def model():
    return qwen.build_tiny_model("qwen2_5_vl", 0, attn_implementation="eager")


def _frames(height: int, width: int, n: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (n, height, width, 3), dtype=np.uint8))


def _counted(run) -> int:
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


@pytest.mark.parametrize(
    "point,mode", CASES, ids=lambda c: str(c) if isinstance(c, str) else f"{c.kind}{getattr(c, 'layer', '')}"
)
def test_qwen_formula_equals_the_counted_forward(model, point, mode):
    n, height, width = 3, 112, 168  # 4x6 merge units: windows of 4x4 and 4x2 units
    frames = _frames(height, width, n)
    counted = _counted(lambda: qwen.extract(model, frames, {"p": point}, mode, batch_frames=n))
    formula = qwen_flops_per_frame(point, model.config, height, width, n, mode) * n
    # The LLM's rotary embedding is one small matmul per forward (inv_freq x positions) the formula leaves out.
    assert formula == pytest.approx(counted, rel=2e-3 if isinstance(point, LlmPoint) else 1e-12)


@pytest.mark.parametrize("family", ["dinov2", "siglip", "owlvit"])
@pytest.mark.parametrize("layer", [0, -1])
def test_encoder_formula_equals_the_counted_forward(family, layer):
    loaded = encoders.load_encoder(EncoderPoint(kind="encoder", family=family, layer=layer), device="cpu")
    loaded.model.set_attn_implementation("eager")
    height, width = (56, 84) if family == "dinov2" else (64, 96)
    frames = _frames(height, width, 2)
    counted = _counted(lambda: encoders.extract_encoder(loaded, frames, layer, batch_frames=2))
    grid = (height // loaded.stride, width // loaded.stride)
    formula = encoder_flops_per_frame(loaded.model.config, layer, grid, len(loaded.dropped_tokens)) * 2
    assert formula == pytest.approx(counted, rel=1e-12)


def test_real_7b_vision_tower_matches_the_design_estimate():
    """docs/design.md section 7: ~2.1 TFLOP per frame for the 7B vision tower at 448x672 (2 x params x tokens)."""
    from transformers import Qwen2_5_VLConfig

    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "fullatt_block_indexes": [7, 15, 23, 31],
        }
    )
    tflop = qwen_flops_per_frame(MergerPoint(kind="merger"), config, 448, 672, 9, "image") / 1e12
    assert 2.0 < tflop < 2.6  # linear layers ~2.0, attention over 64-token windows and 4 whole-image blocks ~0.2


def test_no_peak_on_cpu_says_why():
    peak, why = peak_flops(torch.device("cpu"), torch.float32)
    assert peak is None and "cpu" in why and "FORESIGHT_PEAK_TFLOPS" in why
