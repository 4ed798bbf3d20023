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
from foresight_lib.extract.flops import (
    encoder_flops_per_frame,
    encoder_point_flops,
    peak_flops,
    qwen_flops_per_frame,
)
from foresight_lib.extract.order import patchify
from foresight_lib.extract.truncate import truncated_forward
from foresight_lib.families import FAMILIES
from foresight_lib.kinds import KINDS, load
from foresight_lib.params import DeepstackPoint, EncoderPoint, LlmPoint, MergerPoint, VitBlockPoint, VitEmbedPoint

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


# ------------------------------------------------------------------------------------ every VLM family
GEOMETRY = (
    "depth",
    "patch_size",
    "temporal_patch_size",
    "spatial_merge_size",
    "window_size",
    "fullatt_block_indexes",
    "num_position_embeddings",
    "deepstack_visual_indexes",
)


def _tiny_family_model(family: str) -> torch.nn.Module:
    """A tiny ``family`` model built here (independent of extract/qwen.py): the reference's depths, patch, merge,
    windows and deepstack blocks with small widths; Qwen3-VL's head_dim (24) is not hidden / heads (16)."""
    reference = FAMILIES[family].reference
    vision = {k: v for k, v in reference["vision_config"].items() if k in GEOMETRY} | {"num_heads": 2}
    if family == "qwen2_vl":
        vision |= {"embed_dim": 32, "hidden_size": 64, "mlp_ratio": 2}
    else:
        vision |= {"hidden_size": 32, "intermediate_size": 48, "out_hidden_size": 64}
    head_dim = 24 if family == "qwen3_vl" else 16
    text = {
        "vocab_size": 128,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": reference["text_config"]["num_hidden_layers"],
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": head_dim,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1e6,
            "mrope_section": [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16],
        },
    }
    config_class, model_class = FAMILIES[family].classes()
    config = config_class(
        vision_config=vision,
        text_config=text,
        vision_start_token_id=123,
        vision_end_token_id=124,
        image_token_id=126,
        video_token_id=127,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = model_class(config)
    model.set_attn_implementation("eager")
    return model.eval()


GEOMETRY = {
    "depth",
    "patch_size",
    "temporal_patch_size",
    "spatial_merge_size",
    "window_size",
    "num_position_embeddings",
}


def _tap(model: torch.nn.Module, point) -> torch.nn.Module:
    """The module whose output is the point (the patch embedding for vit_embed: Qwen3-VL's position embedding that
    follows it is an addition)."""
    visual, llm = model.model.visual, model.model.language_model
    if isinstance(point, VitEmbedPoint):
        return visual.patch_embed
    if isinstance(point, VitBlockPoint):
        return visual.blocks[point.layer]
    if isinstance(point, DeepstackPoint):
        return visual.deepstack_merger_list[point.layer]
    if isinstance(point, MergerPoint):
        return visual.merger
    return llm.layers[point.layer]


def _counted_family(model, point, frames: torch.Tensor, mode: str) -> int:
    """FLOPs torch counts on the truncated forward of ``frames`` to ``point`` (image mode: one prompt per frame)."""
    config = model.config
    v = config.vision_config
    pixels, grid = patchify(
        frames,
        mode,
        patch_size=v.patch_size,
        temporal_patch_size=v.temporal_patch_size,
        merge_size=v.spatial_merge_size,
    )
    module = _tap(model, point)
    if not isinstance(point, LlmPoint):
        return _counted(lambda: truncated_forward(lambda: model.model.visual(pixels, grid_thw=grid), [module]))
    token = config.image_token_id if mode == "image" else config.video_token_id
    per_row = int(grid[0].prod()) // v.spatial_merge_size**2
    ids = torch.cat(
        [
            torch.full((len(grid), 1), config.vision_start_token_id),
            torch.full((len(grid), per_row), token),
            torch.full((len(grid), 1), config.vision_end_token_id),
        ],
        dim=1,
    )
    key = "" if mode == "image" else "_videos"
    inputs = {f"pixel_values{key}": pixels, f"{mode}_grid_thw": grid, "input_ids": ids, "attention_mask": ids * 0 + 1}
    inputs["mm_token_type_ids"] = (ids == token).long() * (1 if mode == "image" else 2)
    return _counted(lambda: truncated_forward(lambda: model.model(**inputs, use_cache=False), [module]))


FAMILY_CASES = [
    ("qwen2_vl", VitEmbedPoint(kind="vit_embed"), "image"),
    ("qwen2_vl", VitBlockPoint(kind="vit_block", layer=7), "video"),
    ("qwen2_vl", MergerPoint(kind="merger"), "image"),
    ("qwen2_vl", LlmPoint(kind="llm", layer=2), "image"),
    ("qwen3_vl", VitEmbedPoint(kind="vit_embed"), "image"),
    ("qwen3_vl", VitBlockPoint(kind="vit_block", layer=8), "image"),  # before its deepstack merger runs
    ("qwen3_vl", VitBlockPoint(kind="vit_block", layer=17), "video"),  # after levels 0 and 1
    ("qwen3_vl", DeepstackPoint(kind="deepstack", layer=0), "image"),
    ("qwen3_vl", DeepstackPoint(kind="deepstack", layer=2), "video"),
    ("qwen3_vl", MergerPoint(kind="merger"), "video"),
    ("qwen3_vl", LlmPoint(kind="llm", layer=2), "image"),
]


@pytest.fixture(scope="module")
def family_models():
    return {family: _tiny_family_model(family) for family in ("qwen2_vl", "qwen3_vl")}


@pytest.mark.parametrize(
    "family,point,mode", FAMILY_CASES, ids=lambda c: c if isinstance(c, str) else f"{c.kind}{getattr(c, 'layer', '')}"
)
def test_every_family_formula_equals_the_counted_forward(family_models, family, point, mode):
    """Qwen2-VL (plain MLP, full attention) and Qwen3-VL (patch 16, deepstack mergers, explicit head_dim, GQA)."""
    model = family_models[family]
    n, unit = 3, model.config.vision_config.patch_size * 2
    height, width = 4 * unit, 6 * unit
    counted = _counted_family(model, point, _frames(height, width, n), mode)
    formula = load(KINDS[point.kind].flops)(point, model.config, height, width, n, mode) * n
    # Qwen2-VL's LLM rotary embedding is one small matmul per forward (inv_freq x positions), left out.
    assert formula == pytest.approx(counted, rel=2e-3 if family == "qwen2_vl" and point.kind == "llm" else 1e-12)


def test_a_deepstack_level_is_its_block_plus_one_merger_at_the_reference_size():
    """Qwen3-VL-8B: deepstack level i runs what vit_block deepstack_visual_indexes[i] runs plus its own merger, which
    has the final merger's shape (merger - last block: the final merger alone, every level's merger having run)."""
    config = FAMILIES["qwen3_vl"].reference_config()

    def flops(point) -> float:
        return qwen_flops_per_frame(point, config, 448, 672, 9, "video")

    merger = flops(MergerPoint(kind="merger")) - flops(VitBlockPoint(kind="vit_block", layer=-1))
    for level, block in enumerate(config.vision_config.deepstack_visual_indexes):
        deepstack = flops(DeepstackPoint(kind="deepstack", layer=level))
        assert deepstack == pytest.approx(flops(VitBlockPoint(kind="vit_block", layer=block)) + merger, rel=1e-12)


def test_the_encoder_kind_names_the_encoder_point_flops():
    assert load(KINDS["encoder"].flops) is encoder_point_flops
    config = encoders.tiny_config("dinov2")
    point = EncoderPoint(kind="encoder", family="dinov2", layer=-1)
    assert encoder_point_flops(point, config, 56, 84, 9, "image") == encoder_flops_per_frame(config, 11, (4, 6), 1)
