"""Qwen2.5-VL extraction: token order against the official processors and transformers' own outputs.

All on the tiny random model (real depths). Geometries: 56x84 (2x3 merge units, one partial window),
112x168 (4x6 units) and 140x196 (10x14 patches, 5x7 units: the 4x4-unit windows do not tile it).
Video clips have an odd frame count (3 frames -> 2 temporal slots, the last frame repeated).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import input_dims, input_keys
from transformers import BertConfig, Qwen2VLImageProcessor
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
from transformers.vision_utils import get_vision_window_index

from foresight_lib.errors import ForesightError
from foresight_lib.extract import order
from foresight_lib.extract.attention import WINDOWED
from foresight_lib.extract.qwen import (
    build_inputs,
    build_tiny_model,
    drop_llm,
    extract,
    load_model,
    point_geometry,
    validate_point,
)
from foresight_lib.params import LlmPoint, MergerPoint, ModelParams, VitBlockPoint, VitEmbedPoint

GEOMETRIES = [(56, 84), (112, 168), (140, 196)]
MODEL_GEOMETRIES = [(112, 168), (140, 196)]
MODES = ["image", "video"]
N_FRAMES = 3
EMBED = VitEmbedPoint(kind="vit_embed")
MERGER = MergerPoint(kind="merger")


def vit(k: int) -> VitBlockPoint:
    return VitBlockPoint(kind="vit_block", layer=k)


def llm(layer: int) -> LlmPoint:
    return LlmPoint(kind="llm", layer=layer)


def make_frames(height: int, width: int, n: int = N_FRAMES, seed: int = 0) -> torch.Tensor:
    """uint8 [n, H, W, 3] noise."""
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def model():
    return build_tiny_model("qwen2_5_vl", 0)


def _vision_tower(model, inputs: dict[str, torch.Tensor], mode: str):
    pixel_key, grid_key = input_keys(mode)
    with torch.inference_mode():
        return model.model.visual(inputs[pixel_key], grid_thw=inputs[grid_key], output_hidden_states=True)


def _window_to_raster(x: torch.Tensor, t: int, h: int, w: int, model) -> torch.Tensor:
    """The documented unpermutation of a pre-merge tensor in window order [T*h*w, C] -> [T, h, w, C]."""
    vision = model.config.vision_config
    index = order.window_index(t, h // 2, w // 2, window_size=vision.window_size, patch_size=14, merge_size=2)
    return order.merge_order_to_raster(order.unwindow(x, index), t, h, w, merge_size=2)


# ------------------------------------------------------------------------------ order.py alone
@pytest.mark.parametrize("height,width", GEOMETRIES)
def test_patchify_is_bit_exact_with_official_image_processor(height, width):
    frames = make_frames(height, width)
    custom = order.Normalization(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    for norm, processor in [
        (order.CLIP_NORMALIZATION, Qwen2VLImageProcessor(min_pixels=1, max_pixels=10**8)),
        (custom, Qwen2VLImageProcessor(min_pixels=1, max_pixels=10**8, image_mean=custom.mean, image_std=custom.std)),
    ]:
        official = processor(images=list(frames.numpy()), return_tensors="pt")
        ours, grid = order.patchify(frames, "image", patch_size=14, temporal_patch_size=2, merge_size=2, norm=norm)
        assert torch.equal(ours, official["pixel_values"])
        assert torch.equal(grid, official["image_grid_thw"])


@pytest.mark.parametrize("n_frames", [3, 4])
@pytest.mark.parametrize("height,width", GEOMETRIES)
def test_patchify_is_bit_exact_with_official_video_processor(height, width, n_frames):
    frames = make_frames(height, width, n_frames)
    processor = Qwen2VLVideoProcessor(min_pixels=1, max_pixels=10**8, cap_pixels_per_frame=False)
    official = processor(videos=[frames.numpy()], return_tensors="pt")
    ours, grid = order.patchify(frames, "video", patch_size=14, temporal_patch_size=2, merge_size=2)
    assert torch.equal(ours, official["pixel_values_videos"])
    assert torch.equal(grid, official["video_grid_thw"])
    assert grid.tolist() == [[2, height // 14, width // 14]]  # 3 frames: the last one repeated into slot 1
    assert order.slot_frames(n_frames, "video", 2) == ((0, 1), (2,) if n_frames == 3 else (2, 3))


def test_merge_unit_layout_formula():
    """Token ((t*Hb + bh)*Wb + bw)*4 + mh*2 + mw is raster cell (t, 2*bh + mh, 2*bw + mw); the inverse round-trips."""
    t, h, w = 2, 10, 14
    tt, rr, cc = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    raster = torch.stack([tt, rr, cc], dim=-1)  # [T, h, w, 3]: each cell holds its own coordinates
    tokens = order.raster_to_merge_order(raster, merge_size=2)  # [T*h*w, 3]
    hb, wb = h // 2, w // 2
    for index, (ti, r, c) in enumerate(tokens.tolist()):
        assert index == ((ti * hb + r // 2) * wb + c // 2) * 4 + (r % 2) * 2 + c % 2
    assert torch.equal(order.merge_order_to_raster(tokens, t, h, w, merge_size=2), raster)


@pytest.mark.parametrize("height,width", [*GEOMETRIES, (448, 672)])
def test_window_index_matches_transformers(height, width):
    hb, wb = height // 28, width // 28
    for grid in ([[1, 2 * hb, 2 * wb]] * 3, [[2, 2 * hb, 2 * wb]]):  # three images; one two-slot video
        theirs, _ = get_vision_window_index(torch.tensor(grid), spatial_merge_size=2, window_size=112, patch_size=14)
        t = sum(row[0] for row in grid)
        ours = order.window_index(t, hb, wb, window_size=112, patch_size=14, merge_size=2)
        assert torch.equal(ours, theirs)
        tokens = torch.randn(t * hb * wb * 4, 5)
        windowed = tokens.reshape(-1, 4, 5)[ours].reshape(-1, 5)  # what the vision tower does
        assert torch.equal(order.unwindow(windowed, ours), tokens)
        merged = torch.randn(t * hb * wb, 5)
        assert torch.equal(order.unwindow(merged[ours], ours), merged)  # groups of 1 after the merger


@pytest.mark.parametrize("height,width", MODEL_GEOMETRIES)
def test_window_index_is_the_permutation_the_model_applies(model, height, width):
    inputs = build_inputs(make_frames(height, width), "image", model.config, text=False)
    seen = {}
    hooks = [
        model.model.visual.patch_embed.register_forward_hook(lambda m, a, o: seen.__setitem__("embed", o)),
        model.model.visual.blocks[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("block0_in", a[0])),
    ]
    _vision_tower(model, inputs, "image")
    for hook in hooks:
        hook.remove()
    t, h, w = input_dims(inputs, "image")
    index = order.window_index(t, h // 2, w // 2, window_size=112, patch_size=14, merge_size=2)
    assert torch.equal(order.unwindow(seen["block0_in"], index), seen["embed"])
    assert not torch.equal(seen["block0_in"], seen["embed"])  # windows really do permute this geometry


# ------------------------------------------------------------------------------ extraction vs the model
@pytest.mark.parametrize("mode", MODES)
def test_vit_embed_cell_is_conv_of_its_pixel_patch(model, mode):
    frames = make_frames(140, 196)
    grid = extract(model, frames, {"e": EMBED}, mode, batch_frames=2)["e"]  # [T, 10, 14, C]
    mean = torch.tensor(order.CLIP_NORMALIZATION.mean)[:, None, None]
    std = torch.tensor(order.CLIP_NORMALIZATION.std)[:, None, None]
    x = (frames.permute(0, 3, 1, 2).double() / 255 - mean) / std  # [N, 3, H, W], normalised independently
    if mode == "image":
        clips = x[:, :, None].expand(-1, -1, 2, -1, -1)  # [N, 3, 2, H, W]: each frame repeated along T
    else:
        clips = torch.cat([x, x[-1:]]).reshape(2, 2, 3, 140, 196).transpose(1, 2)  # [2 slots, 3, 2, H, W]
    weight = model.model.visual.patch_embed.proj.weight.double()  # [C, 3, 2, 14, 14]
    for t, clip in enumerate(clips):
        for r in range(10):
            for c in range(14):
                patch = clip[:, :, 14 * r : 14 * r + 14, 14 * c : 14 * c + 14]  # [3, 2, 14, 14]
                expected = (weight * patch).sum(dim=(1, 2, 3, 4))
                torch.testing.assert_close(grid[t, r, c].double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_perturbing_one_patch_changes_only_its_cell(model, mode):
    frames = make_frames(140, 196)
    base = extract(model, frames, {"e": EMBED}, mode, batch_frames=3)["e"]
    for frame, r, c in [(0, 0, 0), (2, 9, 13), (1, 3, 12)]:
        changed = frames.clone()
        changed[frame, 14 * r : 14 * r + 14, 14 * c : 14 * c + 14] ^= 0x55
        grid = extract(model, changed, {"e": EMBED}, mode, batch_frames=3)["e"]
        diff = (grid - base).abs().amax(dim=-1) > 0  # [T, 10, 14]
        slot = frame if mode == "image" else frame // 2
        assert diff.nonzero().tolist() == [[slot, r, c]]


@pytest.mark.parametrize("height,width", MODEL_GEOMETRIES)
@pytest.mark.parametrize("mode", MODES)
def test_vit_blocks_equal_vision_hidden_states_unpermuted(model, mode, height, width):
    """Vision ``hidden_states[0]`` is block 0's input (window-ordered patch embedding); ``[k+1]`` is block k's output."""
    frames = make_frames(height, width)
    blocks = [0, 7, 31]
    ours = extract(model, frames, {"e": EMBED} | {f"b{k}": vit(k) for k in blocks}, mode, batch_frames=3)
    inputs = build_inputs(frames, mode, model.config, text=False)
    reference = _vision_tower(model, inputs, mode).hidden_states
    t, h, w = input_dims(inputs, mode)
    assert len(reference) == model.config.vision_config.depth + 1
    torch.testing.assert_close(_window_to_raster(reference[0], t, h, w, model), ours["e"], atol=0, rtol=0)
    index = order.window_index(t, h // 2, w // 2, window_size=112, patch_size=14, merge_size=2)
    for k in blocks:
        torch.testing.assert_close(_window_to_raster(reference[k + 1], t, h, w, model), ours[f"b{k}"], atol=0, rtol=0)
        # negative controls: a naive raster reshape scrambles space, and so does undoing the windows only
        assert not torch.allclose(reference[k + 1].reshape(t, h, w, -1), ours[f"b{k}"], atol=1e-3)
        assert not torch.allclose(
            order.unwindow(reference[k + 1], index).reshape(t, h, w, -1), ours[f"b{k}"], atol=1e-3
        )


@pytest.mark.parametrize("mode", MODES)
def test_naive_order_is_the_plain_reshape_of_hidden_states(model, mode):
    """The ``order: naive`` ablation stores transformers' hidden_states reshaped as is; the raster point differs."""
    height, width = MODEL_GEOMETRIES[0]
    frames = make_frames(height, width)
    points = {
        "e": EMBED,
        "en": EMBED.model_copy(update={"order": "naive"}),
        "b": vit(7),
        "bn": vit(7).model_copy(update={"order": "naive"}),
    }
    ours = extract(model, frames, points, mode, batch_frames=3)
    inputs = build_inputs(frames, mode, model.config, text=False)
    reference = _vision_tower(model, inputs, mode).hidden_states
    t, h, w = input_dims(inputs, mode)
    torch.testing.assert_close(ours["en"], reference[0].reshape(t, h, w, -1), atol=0, rtol=0)
    torch.testing.assert_close(ours["bn"], reference[8].reshape(t, h, w, -1), atol=0, rtol=0)
    assert not torch.allclose(ours["bn"], ours["b"], atol=1e-3) and not torch.allclose(ours["en"], ours["e"], atol=1e-3)
    torch.testing.assert_close(
        ours["bn"].sort(dim=-1).values.flatten().sort().values, ours["b"].sort(dim=-1).values.flatten().sort().values
    )  # the same tokens, moved


@pytest.mark.parametrize("height,width", MODEL_GEOMETRIES)
@pytest.mark.parametrize("mode", MODES)
def test_merger_equals_image_or_video_features(model, mode, height, width):
    frames = make_frames(height, width)
    ours = extract(model, frames, {"m": MERGER}, mode, batch_frames=3)["m"]
    inputs = build_inputs(frames, mode, model.config, text=False)
    pixel_key, grid_key = input_keys(mode)
    get_features = model.get_image_features if mode == "image" else model.get_video_features
    with torch.inference_mode():
        pooled = torch.cat(get_features(inputs[pixel_key], inputs[grid_key]).pooler_output)  # [T*Hb*Wb, C]
    t, h, w = input_dims(inputs, mode)
    assert ours.shape == (t, h // 2, w // 2, model.config.vision_config.out_hidden_size)
    torch.testing.assert_close(pooled.reshape(ours.shape), ours, atol=0, rtol=0)


@pytest.mark.parametrize("height,width", MODEL_GEOMETRIES)
@pytest.mark.parametrize("mode", MODES)
def test_llm_layers_equal_output_hidden_states_at_vision_tokens(model, mode, height, width):
    frames = make_frames(height, width)
    layers = [0, 13, 27]
    ours = extract(model, frames, {f"l{L}": llm(L) for L in layers}, mode, batch_frames=3)
    inputs = build_inputs(frames, mode, model.config)
    with torch.inference_mode():
        reference = model(**inputs, output_hidden_states=True, use_cache=False).hidden_states
    token = model.config.image_token_id if mode == "image" else model.config.video_token_id
    t, h, w = input_dims(inputs, mode)
    for layer in layers:
        expected = reference[layer + 1][inputs["input_ids"] == token].reshape(t, h // 2, w // 2, -1)
        torch.testing.assert_close(ours[f"l{layer}"], expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_mm_token_type_ids_give_3d_positions(model, mode):
    inputs = build_inputs(make_frames(140, 196), mode, model.config)
    pixel_key, grid_key = input_keys(mode)
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"],
        inputs["mm_token_type_ids"],
        **{grid_key: inputs[grid_key]},
        second_per_grid_ts=inputs.get("second_per_grid_ts"),
        attention_mask=inputs["attention_mask"],
    )  # [3, rows, seq]
    vision = inputs["mm_token_type_ids"] > 0
    t, h, w = input_dims(inputs, mode)
    rows, cols = torch.meshgrid(torch.arange(h // 2), torch.arange(w // 2), indexing="ij")
    expected_h = (1 + rows).flatten().repeat(t)  # raster order of merge units, offset by vision_start
    expected_w = (1 + cols).flatten().repeat(t)
    assert torch.equal(positions[1][vision], expected_h)
    assert torch.equal(positions[2][vision], expected_w)
    with torch.inference_mode():
        with_types = model(**inputs, output_hidden_states=True, use_cache=False).hidden_states
        without = {k: v for k, v in inputs.items() if k != "mm_token_type_ids"}
        without_types = model(**without, output_hidden_states=True, use_cache=False).hidden_states
    assert not torch.allclose(with_types[1], without_types[1], atol=1e-5)  # 1-D positions: a different model input


# ------------------------------------------------------------------------------ truncation, batching
def test_negative_layers_count_from_the_end(model):
    frames = make_frames(56, 84, n=1)
    got = extract(model, frames, {"a": vit(-1), "b": vit(31), "c": llm(-2), "d": llm(26)}, "image", 1)
    assert torch.equal(got["a"], got["b"]) and torch.equal(got["c"], got["d"])
    with pytest.raises(ForesightError, match=r"vit_block layer -33 out of range: .*-32\.\.-1 from the end"):
        validate_point(model.config, vit(-33))


def test_truncated_points_equal_joint_call_and_stop_early(model):
    frames = make_frames(140, 196)
    points = {"e": EMBED, "b3": vit(3), "b31": vit(31), "m": MERGER, "l5": llm(5), "l27": llm(27)}
    joint = extract(model, frames, points, "image", batch_frames=3)
    for name, point in points.items():
        alone = extract(model, frames, {name: point}, "image", batch_frames=3)[name]
        torch.testing.assert_close(alone, joint[name], atol=1e-6, rtol=1e-5)

    calls = {"block4": 0, "llm0": 0, "llm6": 0}
    hooks = [
        model.model.visual.blocks[4].register_forward_hook(lambda *_: calls.__setitem__("block4", calls["block4"] + 1)),
        model.model.language_model.layers[0].register_forward_hook(
            lambda *_: calls.__setitem__("llm0", calls["llm0"] + 1)
        ),
        model.model.language_model.layers[6].register_forward_hook(
            lambda *_: calls.__setitem__("llm6", calls["llm6"] + 1)
        ),
    ]
    extract(model, frames, {"b3": vit(3)}, "image", batch_frames=3)
    assert calls == {"block4": 0, "llm0": 0, "llm6": 0}  # a ViT point never reaches the LLM
    extract(model, frames, {"m": MERGER, "l5": llm(5)}, "video", batch_frames=3)
    assert calls == {"block4": 1, "llm0": 1, "llm6": 0}  # one forward, stopped after layer 5
    for hook in hooks:
        hook.remove()


def test_image_batches_are_independent_frames(model):
    frames = make_frames(112, 168, n=4)
    points = {"b7": vit(7), "l13": llm(13)}
    whole = extract(model, frames, points, "image", batch_frames=4)
    for batch in (1, 3):
        chunked = extract(model, frames, points, "image", batch_frames=batch)
        for name in points:
            torch.testing.assert_close(chunked[name], whole[name], atol=1e-5, rtol=1e-4)
    single = extract(model, frames[2:3], points, "image", batch_frames=1)
    for name in points:
        torch.testing.assert_close(single[name][0], whole[name][2], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_point_geometry_matches_extracted_shapes(model, mode):
    points = {"e": EMBED, "b9": vit(9), "m": MERGER, "l2": llm(2)}
    out = extract(model, make_frames(140, 196), points, mode, batch_frames=2)
    for name, point in points.items():
        geometry = point_geometry(point, model.config, 140, 196, N_FRAMES, mode)
        assert out[name].shape == (*geometry.grid, geometry.channels)
        assert len(geometry.slot_frames) == geometry.grid[0]
        assert geometry.stride * geometry.grid[1] == 140 and geometry.stride * geometry.grid[2] == 196
    vision, text = model.config.vision_config, model.config.text_config
    assert point_geometry(EMBED, model.config, 140, 196, 3, mode).channels == vision.hidden_size
    assert point_geometry(MERGER, model.config, 140, 196, 3, mode).channels == vision.out_hidden_size
    assert point_geometry(llm(0), model.config, 140, 196, 3, mode).channels == text.hidden_size
    expected_slots = ((0,), (1,), (2,)) if mode == "image" else ((0, 1), (2,))
    assert point_geometry(vit(0), model.config, 140, 196, 3, mode).slot_frames == expected_slots


# ------------------------------------------------------------------------------ errors, loading
def test_out_of_range_points_name_the_valid_range(model):
    validate_point(model.config, vit(31))
    validate_point(model.config, llm(27))
    with pytest.raises(ForesightError, match=r"vit_block layer 32 .*0\.\.31"):
        validate_point(model.config, vit(32))
    with pytest.raises(ForesightError, match=r"llm layer 28 .*0\.\.27"):
        extract(model, make_frames(56, 84), {"x": llm(28)}, "image", batch_frames=1)
    with pytest.raises(ForesightError, match="multiple of 28"):
        point_geometry(EMBED, model.config, 150, 196, 3, "image")
    with pytest.raises(ForesightError, match="'pixels' points are not read from Qwen2.5-VL"):
        point_geometry(SimpleNamespace(kind="pixels", patch=14), model.config, 140, 196, 3, "image")


def test_tiny_model_is_seeded():
    rng = torch.get_rng_state()
    first, again, other = (build_tiny_model("qwen2_5_vl", seed).state_dict() for seed in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is left alone
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    config = build_tiny_model("qwen2_5_vl", 0).config
    assert config.vision_config.depth == 32 and config.vision_config.fullatt_block_indexes == [7, 15, 23, 31]
    assert config.text_config.num_hidden_layers == 28


def test_load_model_tiny_identity():
    with pytest.warns(UserWarning, match="flash_attention_2 unavailable"):
        loaded = load_model(ModelParams(source="tiny", seed=3, device="cpu", attn_implementation="flash_attention_2"))
    assert loaded.dtype == torch.float32 and loaded.device.type == "cpu"
    assert loaded.identity["weights"] == "tiny-random" and loaded.identity["seed"] == 3
    assert loaded.identity["attn_implementation"] == {"vision": WINDOWED, "text": "sdpa"}  # sdpa, windows batched
    assert "flash_attention_2" in loaded.identity["warnings"][0]
    json.dumps(loaded.identity)


def test_bad_checkpoint_dirs_stop_with_one_clear_error(tmp_path):
    with pytest.raises(ForesightError, match="checkpoint directory not found"):
        load_model(ModelParams(source=str(tmp_path / "missing"), device="cpu"))
    BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=1).save_pretrained(
        tmp_path / "bert"
    )
    with pytest.raises(ForesightError, match=r"model_type 'bert'.*not a Qwen2.5-VL checkpoint"):
        load_model(ModelParams(source=str(tmp_path / "bert"), device="cpu"))


def test_saved_checkpoint_loads_and_extracts_identically(model, tmp_path):
    model.save_pretrained(tmp_path, safe_serialization=True)  # transformers 5 writes safetensors regardless
    assert (tmp_path / "model.safetensors").is_file()
    norm = order.Normalization(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": norm.mean, "image_std": norm.std}))
    loaded = load_model(ModelParams(source=str(tmp_path), device="cpu"))
    assert loaded.norm == norm
    assert loaded.identity["weights"] == "checkpoint" and len(loaded.identity["sha256"]) == 64
    frames = make_frames(56, 84)
    points = {"e": EMBED, "b31": vit(31), "m": MERGER, "l27": llm(27)}
    for mode in MODES:
        ours = extract(loaded.model, frames, points, mode, batch_frames=2, norm=loaded.norm)
        reference = extract(model, frames, points, mode, batch_frames=2, norm=norm)
        for name in points:
            torch.testing.assert_close(ours[name], reference[name], atol=0, rtol=0)


def test_video_fps_sets_temporal_spacing(model):
    frames = make_frames(56, 84)
    seconds = [
        build_inputs(frames, "video", model.config, fps=fps)["second_per_grid_ts"].item()
        for fps in (None, float("nan"), 2.0)
    ]
    assert seconds == pytest.approx([2 / 24, 2 / 24, 1.0])  # tp / fps; unknown fps: the processor's 24


def test_vision_points_survive_dropping_the_llm(model):
    frames = make_frames(112, 168)
    points = {"e": EMBED, "b7": vit(7), "m": MERGER}
    before = extract(model, frames, points, "image", batch_frames=3)
    loaded = load_model(ModelParams())
    llm_bytes = sum(p.numel() for p in loaded.model.model.language_model.parameters())
    drop_llm(loaded)
    assert all(p.device.type == "meta" for p in loaded.model.model.language_model.parameters()) and llm_bytes > 0
    after = extract(loaded.model, frames, points, "image", batch_frames=3)
    for name in points:
        torch.testing.assert_close(after[name], before[name], atol=0, rtol=0)


def test_random_weights_control_keeps_the_architecture_and_drops_the_weights(model, tmp_path):
    model.save_pretrained(tmp_path)
    trained = load_model(ModelParams(source=str(tmp_path), device="cpu"))
    random_a = load_model(ModelParams(source=str(tmp_path), device="cpu", seed=3), random_weights=True)
    random_b = load_model(ModelParams(source=str(tmp_path), device="cpu", seed=3), random_weights=True)
    assert random_a.identity["weights"] == "random-init" and random_a.identity["architecture_of"] == str(
        tmp_path.resolve()
    )
    config_a, config_ref = (m.model.config.to_dict() for m in (random_a, trained))
    assert {k: v for k, v in config_a.items() if k != "_name_or_path"} == {
        k: v for k, v in config_ref.items() if k != "_name_or_path"
    }
    ref, a, b = (m.model.state_dict() for m in (trained, random_a, random_b))
    assert ref.keys() == a.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "seeded: the same control every run"
    assert not torch.equal(
        a["model.visual.blocks.0.mlp.gate_proj.weight"], ref["model.visual.blocks.0.mlp.gate_proj.weight"]
    )
    grids = extract(random_a.model, make_frames(56, 84), {"b7": vit(7)}, "image", batch_frames=2)
    assert grids["b7"].shape == (N_FRAMES, 4, 6, model.config.vision_config.hidden_size)
