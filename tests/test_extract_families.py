"""Qwen2-VL and Qwen3-VL extraction against transformers' own outputs, on the tiny random models (real depths and
patch sizes): every kind's stored grid equals the model's full forward in raster order; geometry per family; the
refusals; the checkpoint checks. Qwen2.5-VL: tests/test_extract_qwen.py.

Geometries: 2x3 and 4x5 merge units (Qwen2-VL 56x84 and 112x140 px; Qwen3-VL 64x96 and 128x160 px). Video clips
have 3 frames (2 temporal slots, the last frame repeated).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from helpers import input_dims, input_keys, small_params
from transformers import Qwen2VLImageProcessor
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

from foresight_lib.check import checks, main
from foresight_lib.errors import ForesightError
from foresight_lib.extract import order
from foresight_lib.extract.base import ExtractContext
from foresight_lib.extract.qwen import (
    QWEN3_VIDEO_LLM,
    build_inputs,
    build_tiny_model,
    extract,
    load_config,
    load_model,
    point_geometry,
    qwen_point_extractor,
    tiny_config,
    validate_point,
)
from foresight_lib.families import FAMILIES
from foresight_lib.params import (
    DeepstackPoint,
    ExtractParams,
    LlmPoint,
    MergerPoint,
    ModelParams,
    VitBlockPoint,
    VitEmbedPoint,
)

FAMILY_NAMES = ["qwen2_vl", "qwen3_vl"]
UNIT = {"qwen2_vl": 28, "qwen3_vl": 32}  # merge unit in pixels: patch x 2
UNITS = [(2, 3), (4, 5)]  # merge units down, across
MODES = ["image", "video"]
EMBED = VitEmbedPoint(kind="vit_embed")
MERGER = MergerPoint(kind="merger")
N_FRAMES = 3


def vit(k: int) -> VitBlockPoint:
    return VitBlockPoint(kind="vit_block", layer=k)


def llm(layer: int) -> LlmPoint:
    return LlmPoint(kind="llm", layer=layer)


def deepstack(i: int) -> DeepstackPoint:
    return DeepstackPoint(kind="deepstack", layer=i)


def make_frames(height: int, width: int, n: int = N_FRAMES, seed: int = 0) -> torch.Tensor:
    """uint8 [n, H, W, 3] noise."""
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8))


def size(family: str, units: tuple[int, int]) -> tuple[int, int]:
    return units[0] * UNIT[family], units[1] * UNIT[family]


@pytest.fixture(scope="module")
def models():
    return {family: build_tiny_model(family, 0) for family in FAMILY_NAMES}


def _vision(model, inputs: dict[str, torch.Tensor], mode: str):
    """The model's own vision forward: hidden_states, pooler_output and (Qwen3-VL) deepstack_features."""
    pixel_key, grid_key = input_keys(mode)
    features = model.model.get_image_features if mode == "image" else model.model.get_video_features
    with torch.inference_mode():
        return features(inputs[pixel_key], inputs[grid_key], output_hidden_states=True)


# ------------------------------------------------------------------------------ the tiny models
def test_tiny_configs_have_the_real_depths_and_patches(models):
    expected = {"qwen2_vl": (32, 28, 14, []), "qwen3_vl": (27, 36, 16, [8, 16, 24])}  # ViT, LLM, patch, deepstack
    for family, model in models.items():
        vision, text = model.config.vision_config, model.config.text_config
        deepstack_blocks = list(getattr(vision, "deepstack_visual_indexes", []))
        assert (vision.depth, text.num_hidden_layers, vision.patch_size, deepstack_blocks) == expected[family]
        assert (vision.spatial_merge_size, vision.temporal_patch_size) == (2, 2)
        assert vision.depth == FAMILIES[family].reference["vision_config"]["depth"]
    assert len(models["qwen3_vl"].model.visual.deepstack_merger_list) == 3
    assert load_config("qwen3_vl", "tiny").to_dict() == tiny_config("qwen3_vl").to_dict()


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_tiny_model_is_seeded(family):
    rng = torch.get_rng_state()
    first, again, other = (build_tiny_model(family, seed).state_dict() for seed in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_qwen3_patchify_is_bit_exact_with_the_official_image_processor_at_patch_16():
    frames = make_frames(64, 96)
    norm = order.Normalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))  # Qwen3-VL's processor
    processor = Qwen2VLImageProcessor(
        min_pixels=1, max_pixels=10**8, patch_size=16, image_mean=norm.mean, image_std=norm.std
    )
    official = processor(images=list(frames.numpy()), return_tensors="pt")
    ours, grid = order.patchify(frames, "image", patch_size=16, temporal_patch_size=2, merge_size=2, norm=norm)
    assert torch.equal(grid, official["image_grid_thw"]) and grid.tolist() == [[1, 4, 6]] * 3
    assert torch.equal(ours, official["pixel_values"])


def test_qwen3_video_patchify_is_bit_exact_with_the_official_video_processor():
    frames = make_frames(64, 96, n=4)
    processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": 1, "longest_edge": 10**8}, do_sample_frames=False, cap_pixels_per_frame=False
    )
    official = processor(videos=[frames.numpy()], return_tensors="pt")
    norm = order.Normalization(mean=tuple(processor.image_mean), std=tuple(processor.image_std))
    ours, grid = order.patchify(frames, "video", patch_size=16, temporal_patch_size=2, merge_size=2, norm=norm)
    assert torch.equal(grid, official["video_grid_thw"]) and grid.tolist() == [[2, 4, 6]]
    assert torch.equal(ours, official["pixel_values_videos"])


# ------------------------------------------------------------------------------ extraction vs the model
@pytest.mark.parametrize("units", UNITS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_vit_points_equal_vision_hidden_states_in_raster_order(models, family, mode, units):
    """hidden_states[0] is block 0's input (Qwen3-VL: patch + position embedding), [k+1] block k's output; both in
    merge-unit order (no windows), stored raster; ``order: naive`` stores them reshaped as is."""
    model = models[family]
    frames = make_frames(*size(family, units))
    depth = model.config.vision_config.depth
    blocks = [0, depth // 2, depth - 1]
    points = {"e": EMBED, "en": EMBED.model_copy(update={"order": "naive"})} | {f"b{k}": vit(k) for k in blocks}
    points["bn"] = vit(blocks[1]).model_copy(update={"order": "naive"})
    ours = extract(model, frames, points, mode, batch_frames=2)
    inputs = build_inputs(frames, mode, model.config, text=False)
    reference = _vision(model, inputs, mode).hidden_states
    t, h, w = input_dims(inputs, mode)
    assert len(reference) == depth + 1

    def raster(x: torch.Tensor) -> torch.Tensor:
        return order.merge_order_to_raster(x, t, h, w, merge_size=2)

    torch.testing.assert_close(ours["e"], raster(reference[0]), atol=0, rtol=0)
    torch.testing.assert_close(ours["en"], reference[0].reshape(t, h, w, -1), atol=0, rtol=0)
    for k in blocks:
        torch.testing.assert_close(ours[f"b{k}"], raster(reference[k + 1]), atol=0, rtol=0)
        assert not torch.allclose(ours[f"b{k}"], reference[k + 1].reshape(t, h, w, -1), atol=1e-3)  # order matters
    torch.testing.assert_close(ours["bn"], reference[blocks[1] + 1].reshape(t, h, w, -1), atol=0, rtol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_merger_and_deepstack_equal_the_models_features(models, family, mode):
    model = models[family]
    frames = make_frames(*size(family, UNITS[1]))
    levels = range(len(getattr(model.config.vision_config, "deepstack_visual_indexes", ())))
    points = {"m": MERGER} | {f"d{i}": deepstack(i) for i in levels}
    ours = extract(model, frames, points, mode, batch_frames=3)
    inputs = build_inputs(frames, mode, model.config, text=False)
    features = _vision(model, inputs, mode)
    t, h, w = input_dims(inputs, mode)
    shape = (t, h // 2, w // 2, model.config.text_config.hidden_size)
    assert ours["m"].shape == shape
    torch.testing.assert_close(ours["m"], torch.cat(features.pooler_output).reshape(shape), atol=0, rtol=0)
    for i in levels:
        expected = torch.cat(features.deepstack_features[i]).reshape(shape)  # [T*Hb*Wb, C] raster over units
        torch.testing.assert_close(ours[f"d{i}"], expected, atol=0, rtol=0)
        assert not torch.allclose(ours[f"d{i}"], ours["m"], atol=1e-3)
    assert (family == "qwen3_vl") == (len(levels) == 3)


@pytest.mark.parametrize(
    "family,mode", [("qwen2_vl", "image"), ("qwen2_vl", "video"), ("qwen3_vl", "image")], ids=lambda x: x
)
def test_llm_layers_equal_output_hidden_states_at_vision_tokens(models, family, mode):
    """Qwen3-VL: layers 0-2 are those before the deepstack additions (what ``output_hidden_states`` reports)."""
    model = models[family]
    frames = make_frames(*size(family, UNITS[1]))
    n_layers = model.config.text_config.num_hidden_layers
    layers = [0, 1, 2, n_layers // 2, n_layers - 1]
    ours = extract(model, frames, {f"l{L}": llm(L) for L in layers}, mode, batch_frames=3)
    inputs = build_inputs(frames, mode, model.config)
    with torch.inference_mode():
        reference = model(**inputs, output_hidden_states=True, use_cache=False).hidden_states
    assert len(reference) == n_layers + 1
    token = model.config.image_token_id if mode == "image" else model.config.video_token_id
    t, h, w = input_dims(inputs, mode)
    for layer in layers:
        expected = reference[layer + 1][inputs["input_ids"] == token].reshape(t, h // 2, w // 2, -1)
        torch.testing.assert_close(ours[f"l{layer}"], expected, atol=1e-6, rtol=1e-5)


def test_qwen3_llm_point_is_the_layer_output_before_the_deepstack_addition(models):
    """What layer 1 receives at the vision tokens = the ``llm`` 0 point + deepstack level 0 (and the same for 1, 2);
    from layer 3 on, a layer's output is what the next one receives."""
    model = models["qwen3_vl"]
    frames = make_frames(64, 96)
    points = {f"l{L}": llm(L) for L in range(4)} | {f"d{i}": deepstack(i) for i in range(3)}
    ours = extract(model, frames, points, "image", batch_frames=3)
    inputs = build_inputs(frames, "image", model.config)
    received = {}
    layers = model.model.language_model.layers
    hooks = [
        layers[L + 1].register_forward_pre_hook(lambda m, a, L=L: received.__setitem__(L, a[0].clone()))
        for L in range(4)
    ]
    with torch.inference_mode():
        model(**inputs, use_cache=False)
    for hook in hooks:
        hook.remove()
    vision = inputs["input_ids"] == model.config.image_token_id
    for L in range(4):
        got = received[L][vision].reshape(ours[f"l{L}"].shape)
        expected = ours[f"l{L}"] + ours[f"d{L}"] if L < 3 else ours[f"l{L}"]
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_qwen3_vit_embed_adds_the_position_embedding_and_stays_local(models):
    model = models["qwen3_vl"]
    frames = make_frames(64, 96)
    grid = extract(model, frames, {"e": EMBED}, "image", batch_frames=3)["e"]  # [3, 4, 6, C]
    inputs = build_inputs(frames, "image", model.config, text=False)
    with torch.inference_mode():
        patches = model.model.visual.patch_embed(inputs["pixel_values"])  # [T*h*w, C] merge-unit order
    patches = order.merge_order_to_raster(patches, 3, 4, 6, merge_size=2)
    position = grid - patches  # the same learned, interpolated position embedding in every frame
    assert position.abs().amax() > 1e-3
    torch.testing.assert_close(position[1], position[0], atol=1e-6, rtol=0)
    changed = frames.clone()
    changed[2, 16:32, 80:96] ^= 0x55  # frame 2, patch row 1, column 5
    diff = (extract(model, changed, {"e": EMBED}, "image", batch_frames=3)["e"] - grid).abs().amax(dim=-1) > 0
    assert diff.nonzero().tolist() == [[2, 1, 5]]


# ------------------------------------------------------------------------------ truncation, geometry
def test_deepstack_forward_stops_after_its_blocks_merger(models):
    model = models["qwen3_vl"]
    visual = model.model.visual
    calls: dict[str, int] = {"block8": 0, "block9": 0, "merger": 0, "llm0": 0}
    watched = {
        "block8": visual.blocks[8],
        "block9": visual.blocks[9],
        "merger": visual.merger,
        "llm0": model.model.language_model.layers[0],
    }
    hooks = [
        module.register_forward_hook(lambda *_, key=key: calls.__setitem__(key, calls[key] + 1))
        for key, module in watched.items()
    ]
    frames = make_frames(64, 96)
    extract(model, frames, {"d0": deepstack(0)}, "image", batch_frames=3)
    assert calls == {"block8": 1, "block9": 0, "merger": 0, "llm0": 0}
    extract(model, frames, {"e": EMBED}, "image", batch_frames=3)  # block 0's input: no block runs
    assert calls == {"block8": 1, "block9": 0, "merger": 0, "llm0": 0}
    extract(model, frames, {"l0": llm(0)}, "image", batch_frames=3)
    assert calls == {"block8": 2, "block9": 1, "merger": 1, "llm0": 1}
    for hook in hooks:
        hook.remove()
    joint = extract(model, frames, {"d2": deepstack(-1), "b3": vit(3), "l5": llm(5)}, "image", batch_frames=3)
    torch.testing.assert_close(
        joint["d2"], extract(model, frames, {"d": deepstack(2)}, "image", batch_frames=3)["d"], atol=0, rtol=0
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_point_geometry_per_family(models, family, mode):
    model = models[family]
    height, width = size(family, UNITS[0])
    patch, cells = UNIT[family] // 2, {"vit_embed": "patch", "vit_block": "patch"}
    points = {"e": EMBED, "b": vit(4), "m": MERGER} | ({"d": deepstack(1)} if family == "qwen3_vl" else {})
    if mode == "image" or family != "qwen3_vl":
        points["l"] = llm(2)
    out = extract(model, make_frames(height, width), points, mode, batch_frames=2)
    slots = 3 if mode == "image" else 2
    for name, point in points.items():
        geometry = point_geometry(point, model.config, height, width, N_FRAMES, mode)
        pre = cells.get(point.kind) == "patch"
        assert geometry.stride == (patch if pre else 2 * patch)
        assert geometry.grid == ((slots, 4, 6) if pre else (slots, 2, 3))
        assert geometry.channels == (32 if pre else 64)  # tiny ViT width; merged = LLM width
        assert out[name].shape == (*geometry.grid, geometry.channels)
    with pytest.raises(ForesightError, match=f"multiple of {UNIT[family]}"):
        point_geometry(EMBED, model.config, height + patch, width, N_FRAMES, mode)


# ------------------------------------------------------------------------------ refusals
def test_deepstack_is_refused_by_families_without_it(models):
    qwen25 = build_tiny_model("qwen2_5_vl", 0)
    for model, title in ((models["qwen2_vl"], "Qwen2-VL"), (qwen25, "Qwen2.5-VL")):
        with pytest.raises(ForesightError, match=rf"'deepstack' points are not read from {title} .*Qwen3-VL"):
            validate_point(model.config, deepstack(0))
        with pytest.raises(ForesightError, match="'deepstack' points are not read"):
            extract(model, make_frames(56, 84), {"d": deepstack(0)}, "image", batch_frames=3)
    with pytest.raises(ForesightError, match=r"deepstack layer 3 out of range: 3 blocks"):
        validate_point(models["qwen3_vl"].config, deepstack(3))
    with pytest.raises(ForesightError, match=r"vit_block layer 27 out of range"):
        validate_point(models["qwen3_vl"].config, vit(27))
    validate_point(models["qwen3_vl"].config, deepstack(-3))


def test_qwen3_llm_refuses_video_mode_and_says_what_to_use(models):
    model = models["qwen3_vl"]
    frames = make_frames(64, 96)
    for call in (
        lambda: extract(model, frames, {"l": llm(0)}, "video", batch_frames=3),
        lambda: point_geometry(llm(0), model.config, 64, 96, N_FRAMES, "video"),
        lambda: build_inputs(frames, "video", model.config),
    ):
        with pytest.raises(ForesightError, match="timestamp") as err:
            call()
        assert str(err.value) == QWEN3_VIDEO_LLM and "extract.mode: image" in QWEN3_VIDEO_LLM
    assert extract(model, frames, {"d": deepstack(0)}, "video", batch_frames=3)["d"].shape == (2, 2, 3, 64)


# ------------------------------------------------------------------------------ loading, identity, check
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_checkpoint_loads_with_its_family_and_records_it(models, family, tmp_path):
    model = models[family]
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    tiny = load_model(ModelParams(family=family, source="tiny", seed=2, device="cpu"))
    assert tiny.identity["family"] == family and tiny.identity["weights"] == "tiny-random"
    assert tiny.identity["seed"] == 2 and tiny.identity["config"]["model_type"] == family
    loaded = load_model(ModelParams(family=family, source=str(tmp_path), device="cpu"))
    assert type(loaded.model) is type(model)
    assert loaded.identity["family"] == family and loaded.identity["weights"] == "checkpoint"
    assert loaded.identity["path"] == str(tmp_path.resolve()) and len(loaded.identity["sha256"]) == 64
    json.dumps(loaded.identity)
    frames = make_frames(*size(family, UNITS[0]))
    points = {"b": vit(-1), "m": MERGER, "l": llm(-1)}
    ours = extract(loaded.model, frames, points, "image", batch_frames=3)
    reference = extract(model, frames, points, "image", batch_frames=3)
    for name in points:
        torch.testing.assert_close(ours[name], reference[name], atol=0, rtol=0)
    control = load_model(ModelParams(family=family, source=str(tmp_path), device="cpu"), random_weights=True)
    assert control.identity["family"] == family and control.identity["weights"] == "random-init"
    other = next(f for f in FAMILY_NAMES if f != family)
    with pytest.raises(ForesightError, match=rf"model_type '{family}'.*set model.family: {family}"):
        load_model(ModelParams(family=other, source=str(tmp_path), device="cpu"))


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_point_extractor_records_family_and_geometry(family):
    height, width = size(family, UNITS[0])
    context = ExtractContext(
        model=ModelParams(family=family, device="cpu"),
        extract=ExtractParams(batch_frames=3),
        height=height,
        width=width,
        n_frames=N_FRAMES,
    )
    extractor = qwen_point_extractor("m", MERGER, context)
    assert extractor.weights["family"] == family
    assert (extractor.stride, extractor.grid, extractor.channels) == (UNIT[family], (3, 2, 3), 64)
    grids = extractor.run(make_frames(height, width).numpy()[None])  # [1, T, gh, gw, C]
    assert grids.shape == (1, 3, 2, 3, 64)
    assert extractor.flops_per_frame > 0


def test_check_names_the_family_a_checkpoint_belongs_to(models, tmp_path, capsys):
    ckpt = tmp_path / "qwen2vl"
    models["qwen2_vl"].save_pretrained(ckpt)
    params = small_params(model={"family": "qwen3_vl", "source": str(ckpt)}, points={"merger": {"kind": "merger"}})
    with pytest.raises(ForesightError, match=r"model_type 'qwen2_vl'.*set model.family: qwen2_vl"):
        dict((what, check) for what, check, _ in checks(params))["model.source"]()
    # the right family, but the processor's preprocessor_config.json missing; then everything there
    params = small_params(model={"family": "qwen2_vl", "source": str(ckpt)}, points={"merger": {"kind": "merger"}})
    model_checks = {what: (check, hint) for what, check, hint in checks(params)}
    check, hint = model_checks["model.source"]
    assert hint.startswith("get Qwen/Qwen2-VL-7B-Instruct: huggingface-cli download Qwen/Qwen2-VL-7B-Instruct")
    with pytest.raises(ForesightError, match=r"model.source: .* Qwen2-VL config.json but no preprocessor_config.json"):
        check()
    (ckpt / "preprocessor_config.json").write_text("{}")
    assert check() == f"{ckpt} (Qwen2-VL, 1 safetensors files)"


def test_check_covers_every_model_a_point_names(models, tmp_path, capsys):
    ckpt = tmp_path / "qwen3"
    models["qwen3_vl"].save_pretrained(ckpt)
    raw = yaml.safe_load(open("tests/profiles/small.yaml"))
    raw["models"] = {"big": {"family": "qwen2_vl", "source": str(ckpt)}, "unused": {"source": str(tmp_path / "x")}}
    raw["points"]["merger_big"] = {"kind": "merger", "model": "big"}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    assert main([str(tmp_path / "p.yaml")]) != 0
    out = capsys.readouterr().out
    assert "MISSING  models.big.source: " in out and "set models.big.family: qwen3_vl" in out
    assert "models.unused" not in out  # no point reads it
    assert "huggingface-cli download Qwen/Qwen2-VL-7B-Instruct --local-dir " + str(ckpt) in out
