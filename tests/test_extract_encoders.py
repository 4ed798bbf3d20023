"""Encoder points (DINOv2, OWL-ViT, OWLv2, SigLIP): token-to-pixel mapping against an independent reference
and transformers' own ``hidden_states``, position-embedding interpolation, truncation, stores, errors.

All on tiny random encoders (real patch sizes 14/32/16/16 and depth 12). Geometries: 448x672 (the
stored default: non-square, off every pre-training size) and a small one per stride (56x84 for 14,
64x96 for 16 and 32); the pre-training sizes 518, 768, 960 and 224 (square) for the identity check.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import zarr
from helpers import small_params
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    BitImageProcessor,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
    Owlv2Config,
    Owlv2ForObjectDetection,
    Owlv2ImageProcessor,
    OwlViTConfig,
    OwlViTForObjectDetection,
    OwlViTImageProcessor,
    SiglipConfig,
    SiglipImageProcessor,
    SiglipModel,
)
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from foresight_lib.data.frames import write_frames
from foresight_lib.errors import ForesightError
from foresight_lib.extract.encoders import (
    build_tiny_encoder,
    encoder_extractor,
    extract_encoder,
    load_encoder,
    patch_grid,
    tiny_config,
)
from foresight_lib.extract.order import Normalization, normalize
from foresight_lib.extract.points import make_extractor
from foresight_lib.extract.writer import write_point
from foresight_lib.features import open_features
from foresight_lib.params import EncoderPoint, ExtractParams, ModelParams, parse_params

FAMILIES = ["dinov2", "owlvit", "owlv2", "siglip"]
REAL = {  # family: (patch size, pre-training image size, tokens before the patches)
    "dinov2": (14, 518, ["cls"]),
    "owlvit": (32, 768, ["cls"]),
    "owlv2": (16, 960, ["cls"]),
    "siglip": (16, 224, []),
}
STORED = (448, 672)
SMALL = {"dinov2": (56, 84), "owlvit": (64, 96), "owlv2": (64, 96), "siglip": (64, 96)}
TEXT = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1, "vocab_size": 64}


def point(family: str, layer: int = 0, source: str = "tiny", seed: int = 0) -> EncoderPoint:
    return EncoderPoint(kind="encoder", family=family, layer=layer, source=source, seed=seed)


def make_frames(height: int, width: int, n: int = 2, seed: int = 0) -> torch.Tensor:
    """uint8 [n, H, W, 3] noise."""
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def encoders():
    return {family: load_encoder(point(family), device="cpu") for family in FAMILIES}


def embeddings(loaded, frames: torch.Tensor) -> torch.Tensor:
    """``hidden_states[0]`` (the input of block 0) through the extraction's own token-to-grid map: ``[n, gh, gw, C]``."""
    flag = {} if loaded.family == "dinov2" else {"interpolate_pos_encoding": True}
    with torch.inference_mode():
        states = loaded.model(
            pixel_values=normalize(frames, loaded.norm), output_hidden_states=True, **flag
        ).hidden_states
    return patch_grid(loaded, states[0], frames.shape[1] // loaded.stride, frames.shape[2] // loaded.stride)


def _embedding_parts(model: nn.Module, family: str) -> tuple[nn.Conv2d, torch.Tensor, nn.Module]:
    """The model's own patch conv, patch position table ``[P, C]`` and the per-token map before block 0."""
    if family == "dinov2":
        emb = model.embeddings
        return emb.patch_embeddings.projection, emb.position_embeddings[0, 1:], nn.Identity()
    if family == "siglip":
        emb = model.embeddings
        return emb.patch_embedding, emb.position_embedding.weight, nn.Identity()
    tower = model.vision_model
    return tower.embeddings.patch_embedding, tower.embeddings.position_embedding.weight[1:], tower.pre_layernorm


def _square(table: torch.Tensor) -> torch.Tensor:
    """Position table ``[P, C]`` -> ``[C, sqrt P, sqrt P]`` (row-major, as trained)."""
    side = math.isqrt(table.shape[0])
    return table.double().T.reshape(-1, side, side)


def _bicubic(table: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """Independent resampling of the position table to ``[gh, gw, C]`` (bicubic, half-pixel centres)."""
    grid = torch.nn.functional.interpolate(_square(table)[None], size=(gh, gw), mode="bicubic", align_corners=False)
    return grid[0].permute(1, 2, 0)


def _expected_layer0(
    model: nn.Module, family: str, frames: torch.Tensor, norm: Normalization, positions: torch.Tensor
) -> torch.Tensor:
    """hidden_states[0] as a grid ``[n, gh, gw, C]``, from pixels: cell (r, c) = conv of pixels
    [s*r : s*r+s, s*c : s*c+s] + positions[r, c], then the family's per-token map (float64 arithmetic)."""
    conv, _, pre = _embedding_parts(model, family)
    s = conv.kernel_size[0]
    mean = torch.tensor(norm.mean, dtype=torch.float64)[:, None, None]
    std = torch.tensor(norm.std, dtype=torch.float64)[:, None, None]
    x = (frames.permute(0, 3, 1, 2).double() / 255 - mean) / std  # [n, 3, H, W]
    n, _, h, w = x.shape
    patches = x.reshape(n, 3, h // s, s, w // s, s)  # [n, 3, gh, s, gw, s]: pixel (s*r + i, s*c + j)
    cells = torch.einsum("nkricj,dkij->nrcd", patches, conv.weight.double())  # [n, gh, gw, C]
    if conv.bias is not None:
        cells = cells + conv.bias.double()
    with torch.inference_mode():
        return pre((cells + positions).float())


# ------------------------------------------------------------------------------ tiny models
def test_tiny_encoders_have_real_geometry_and_are_seeded(encoders):
    for family, (patch, image_size, dropped) in REAL.items():
        config = tiny_config(family)
        assert (config.patch_size, config.image_size, config.num_hidden_layers) == (patch, image_size, 12)
        assert config.hidden_size == 32 and config.num_attention_heads == 2
        loaded = encoders[family]
        assert (loaded.stride, loaded.depth, loaded.channels, loaded.dropped_tokens) == (patch, 12, 32, dropped)
        assert loaded.identity["weights"] == "tiny-random" and loaded.identity["family"] == family
        json.dumps(loaded.identity)
    rng = torch.get_rng_state()
    first, again, other = (build_tiny_encoder("owlv2", seed).state_dict() for seed in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is left alone
    assert all(torch.equal(first[k], again[k]) for k in first)
    conv = "vision_model.embeddings.patch_embedding.weight"
    assert not torch.equal(first[conv], other[conv])


def test_normalisation_is_the_family_processors(encoders):
    frames = make_frames(64, 96)
    official = {
        "dinov2": BitImageProcessor(
            do_resize=False, do_center_crop=False, image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD
        ),  # facebook/dinov2-* preprocessor_config.json
        "owlvit": OwlViTImageProcessor(do_resize=False, do_center_crop=False),
        "siglip": SiglipImageProcessor(do_resize=False),
    }
    for family, processor in official.items():
        norm = encoders[family].norm
        assert (norm.mean, norm.std) == (tuple(processor.image_mean), tuple(processor.image_std))
        expected = processor(images=list(frames.numpy()), return_tensors="pt")["pixel_values"]
        assert torch.equal(normalize(frames, norm), expected)
    owlv2 = Owlv2ImageProcessor()  # its do_resize=False path fails in transformers 5.23: compare the constants
    assert (encoders["owlv2"].norm.mean, encoders["owlv2"].norm.std) == (
        tuple(owlv2.image_mean),
        tuple(owlv2.image_std),
    )


# ------------------------------------------------------------------------------ token-to-pixel mapping
@pytest.mark.parametrize("family", FAMILIES)
def test_layer0_cell_is_its_patch_conv_plus_resampled_position(encoders, family):
    """At 448x672 and a small geometry: every cell is its own pixel patch, position embeddings resampled bicubically."""
    loaded = encoders[family]
    _, table, _ = _embedding_parts(loaded.model, family)
    side = math.isqrt(table.shape[0])
    assert torch.allclose(
        _bicubic(table, side, side), _square(table).permute(1, 2, 0), atol=1e-12
    )  # same size: identity
    for height, width in (STORED, SMALL[family]):
        frames = make_frames(height, width)
        grid = embeddings(loaded, frames)
        gh, gw = height // loaded.stride, width // loaded.stride
        assert grid.shape == (2, gh, gw, loaded.channels)
        expected = _expected_layer0(loaded.model, family, frames, loaded.norm, _bicubic(table, gh, gw))
        torch.testing.assert_close(grid, expected, atol=1e-4, rtol=1e-4)
        # negative control: the raster transposed (column-major tokens) does not match
        assert not torch.allclose(grid, expected.transpose(1, 2).reshape(grid.shape), atol=1e-2)


@pytest.mark.parametrize("family", FAMILIES)
def test_pretraining_size_uses_the_original_position_embeddings(encoders, family):
    """Interpolation is the identity at the pre-training size; off it, OWL/SigLIP need the flag extraction passes."""
    loaded = encoders[family]
    _, table, _ = _embedding_parts(loaded.model, family)
    size = REAL[family][1]
    frames = make_frames(size, size, n=1)
    grid = embeddings(loaded, frames)
    expected = _expected_layer0(loaded.model, family, frames, loaded.norm, _square(table).permute(1, 2, 0))
    torch.testing.assert_close(grid, expected, atol=1e-4, rtol=1e-4)
    if family != "dinov2":  # DINOv2 always interpolates; the others break off their pre-training size without it
        with torch.inference_mode(), pytest.raises(RuntimeError, match="size of tensor"):
            loaded.model(pixel_values=normalize(make_frames(*STORED, n=1), loaded.norm), interpolate_pos_encoding=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_perturbing_one_patch_changes_only_its_cell(encoders, family):
    loaded = encoders[family]
    s, (gh, gw) = loaded.stride, (STORED[0] // loaded.stride, STORED[1] // loaded.stride)
    frames = make_frames(*STORED)
    base = embeddings(loaded, frames)
    for frame, r, c in [(0, 0, 0), (1, gh - 1, gw - 1), (1, 3, gw - 2)]:
        changed = frames.clone()
        changed[frame, s * r : s * r + s, s * c : s * c + s] ^= 0x55
        diff = (embeddings(loaded, changed) - base).abs().amax(dim=-1) > 0  # [2, gh, gw]
        assert diff.nonzero().tolist() == [[frame, r, c]]


@pytest.mark.parametrize("family", FAMILIES)
def test_layers_equal_hidden_states_without_special_tokens(encoders, family):
    """Layer k (block k's output) equals the full forward's hidden_states[k+1], special tokens dropped, raster-reshaped."""
    loaded = encoders[family]
    frames = make_frames(*STORED, n=1)
    flag = {} if family == "dinov2" else {"interpolate_pos_encoding": True}
    with torch.inference_mode():
        reference = loaded.model(
            pixel_values=normalize(frames, loaded.norm), output_hidden_states=True, **flag
        ).hidden_states
    assert len(reference) == loaded.depth + 1
    n_special = len(loaded.dropped_tokens)
    gh, gw = STORED[0] // loaded.stride, STORED[1] // loaded.stride
    for k, block in (
        (0, 0),
        (2, 2),
        (loaded.depth - 1, loaded.depth - 1),
        (-1, loaded.depth - 1),
        (-3, loaded.depth - 3),
    ):
        ours = extract_encoder(loaded, frames, layer=k, batch_frames=1)
        torch.testing.assert_close(ours, reference[block + 1][:, n_special:].reshape(1, gh, gw, -1), atol=0, rtol=0)


def _block_path(family: str, i: int) -> str:
    """Module path of block ``i`` in the family's transformers class."""
    return {"dinov2": "encoder.layer", "siglip": "encoder.layers"}.get(family, "vision_model.encoder.layers") + f".{i}"


@pytest.mark.parametrize("family", FAMILIES)
def test_truncated_forward_runs_no_later_block(encoders, family):
    loaded = encoders[family]
    blocks = {i: loaded.model.get_submodule(_block_path(family, i)) for i in (0, 5, 6)}
    calls = dict.fromkeys(blocks, 0)
    hooks = [b.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1)) for i, b in blocks.items()]
    try:
        frames = make_frames(*SMALL[family], n=3)
        extract_encoder(loaded, frames, layer=0, batch_frames=2)
        assert calls == {0: 2, 5: 0, 6: 0}  # two batches, each stopped after block 0
        extract_encoder(loaded, frames, layer=5, batch_frames=2)
        assert calls == {0: 4, 5: 2, 6: 0}  # two more, each stopped after block 5
    finally:
        for hook in hooks:
            hook.remove()


@pytest.mark.parametrize("family", FAMILIES)
def test_image_batches_are_independent_frames(encoders, family):
    loaded = encoders[family]
    frames = make_frames(*SMALL[family], n=4)
    whole = extract_encoder(loaded, frames, layer=3, batch_frames=4)
    for batch in (1, 3):
        torch.testing.assert_close(
            extract_encoder(loaded, frames, layer=3, batch_frames=batch), whole, atol=1e-5, rtol=1e-4
        )


# ------------------------------------------------------------------------------ feature stores
@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    write_frames(small_params(data={"synthetic": {"n_clips": 3}}).data, out, progress=False)  # 3 clips x 9 x 224x448
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_writes_a_feature_store(encoders, frames_dir, tmp_path, family):
    frames = zarr.open_array(frames_dir / "frames.zarr")
    _, n_frames, height, width, _ = frames.shape
    extractor = make_extractor(
        f"enc_{family}",
        point(family, layer=3),
        ModelParams(device="cpu"),
        ExtractParams(batch_frames=9),
        height,
        width,
        n_frames,
    )
    write_point(extractor, frames_dir / "frames.zarr", tmp_path / "f.zarr", None, dtype="float32", progress=False)
    store = open_features(tmp_path / "f.zarr")
    s = REAL[family][0]
    assert store.stride == s and store.grid == (n_frames, height // s, width // s) and store.channels == 32
    assert store.slot_frames == [[f] for f in range(n_frames)]
    assert store.attrs["definition"] == {**point(family, layer=3).model_dump(), "dropped_tokens": REAL[family][2]}
    assert store.attrs["weights"]["weights"] == "tiny-random" and store.attrs["weights"]["family"] == family
    direct = extract_encoder(encoders[family], frames[2, 4:6], layer=3, batch_frames=2)  # same seed, same weights
    torch.testing.assert_close(torch.from_numpy(store.read(2)[4:6]), direct, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("family", FAMILIES)
def test_saved_checkpoint_loads_with_its_normalisation(encoders, family, tmp_path):
    encoders[family].model.save_pretrained(tmp_path)
    norm = Normalization(mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": norm.mean, "image_std": norm.std}))
    loaded = load_encoder(point(family, source=str(tmp_path)), device="cpu")
    assert loaded.norm == norm and type(loaded.model) is type(encoders[family].model)
    assert loaded.identity["weights"] == "checkpoint" and len(loaded.identity["sha256"]) == 64
    frames = make_frames(*SMALL[family])
    tiny_with_norm = dataclasses.replace(encoders[family], norm=norm)
    torch.testing.assert_close(
        extract_encoder(loaded, frames, 3, 2), extract_encoder(tiny_with_norm, frames, 3, 2), atol=0, rtol=0
    )


@pytest.mark.parametrize(
    "family,config_class,model_class",
    [
        ("owlvit", OwlViTConfig, OwlViTForObjectDetection),
        ("owlv2", Owlv2Config, Owlv2ForObjectDetection),
        ("siglip", SiglipConfig, SiglipModel),
    ],
)
def test_full_checkpoints_load_their_vision_tower(encoders, family, config_class, model_class, tmp_path):
    """What the hub holds (detection models, dual encoders): only the vision tower is loaded, weights intact."""
    tiny = encoders[family]
    full = model_class(config_class(text_config=TEXT, vision_config=tiny.model.config.to_dict()))
    tower = full.base_model.vision_model
    tower.load_state_dict((tiny.model if family == "siglip" else tiny.model.vision_model).state_dict())
    full.save_pretrained(tmp_path)
    loaded = load_encoder(point(family, source=str(tmp_path)), device="cpu")
    assert type(loaded.model) is type(tiny.model)
    frames = make_frames(*SMALL[family])
    for layer in (0, 11):
        torch.testing.assert_close(
            extract_encoder(loaded, frames, layer, 2), extract_encoder(tiny, frames, layer, 2), atol=0, rtol=0
        )


def test_dinov2_with_registers_drops_cls_and_registers(tmp_path):
    config = Dinov2WithRegistersConfig(
        hidden_size=32,
        num_attention_heads=2,
        num_hidden_layers=3,
        mlp_ratio=2,
        patch_size=14,
        image_size=518,
        num_register_tokens=4,
    )
    Dinov2WithRegistersModel(config).save_pretrained(tmp_path)
    loaded = load_encoder(point("dinov2", source=str(tmp_path)), device="cpu")
    assert loaded.dropped_tokens == ["cls", "register0", "register1", "register2", "register3"]
    frames = make_frames(56, 84)
    with torch.inference_mode():
        reference = loaded.model(pixel_values=normalize(frames, loaded.norm), output_hidden_states=True).hidden_states
    for k in range(3):
        torch.testing.assert_close(
            extract_encoder(loaded, frames, k, 2), reference[k + 1][:, 5:].reshape(2, 4, 6, 32), atol=0, rtol=0
        )
    changed = frames.clone()
    changed[1, 14:28, 42:56] ^= 0x55
    diff = (embeddings(loaded, changed) - embeddings(loaded, frames)).abs().amax(dim=-1) > 0
    assert diff.nonzero().tolist() == [[1, 1, 3]]


# ------------------------------------------------------------------------------ errors
def test_bad_family_is_one_clear_params_error():
    with pytest.raises(
        ForesightError, match=r"points\.e\.family: .*'dinov2', 'owlvit', 'owlv2' or 'siglip' \(got 'clip'\)"
    ):
        parse_params({"points": {"e": {"kind": "encoder", "family": "clip", "layer": 0}}})


def test_bad_layer_or_geometry_names_what_is_valid(encoders):
    with pytest.raises(
        ForesightError, match=r"SigLIP encoder's layer 12 out of range: 12 blocks, valid layers 0\.\.11"
    ):
        encoder_extractor("e", point("siglip", layer=12), 64, 96, 1, batch_frames=1, device="cpu")
    with pytest.raises(ForesightError, match=r"layer -13 out of range: .*-12\.\.-1 from the end"):
        encoder_extractor("e", point("siglip", layer=-13), 64, 96, 1, batch_frames=1, device="cpu")
    with pytest.raises(ForesightError, match=r"frame size 448x680 is not a multiple of the DINOv2 patch size 14"):
        encoder_extractor("e", point("dinov2", layer=1), 448, 680, 1, batch_frames=1, device="cpu")
    with pytest.raises(ForesightError, match="multiple of the OWL-ViT patch size 32"):
        extract_encoder(encoders["owlvit"], make_frames(64, 80), layer=0, batch_frames=1)


def test_bad_checkpoint_dirs_stop_with_one_clear_error(encoders, tmp_path):
    with pytest.raises(ForesightError, match="checkpoint directory not found: .*missing"):
        load_encoder(point("dinov2", source=str(tmp_path / "missing")), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ForesightError, match="has no config.json"):
        load_encoder(point("dinov2", source=str(tmp_path / "empty")), device="cpu")

    encoders["siglip"].model.save_pretrained(tmp_path / "siglip")
    with pytest.raises(
        ForesightError,
        match=r"siglip/config\.json declares model_type 'siglip_vision_model' "
        r"\(architectures \['SiglipVisionModel'\]\), but family 'dinov2' needs a DINOv2 "
        r"checkpoint \(model_type 'dinov2' or 'dinov2_with_registers'\)",
    ):
        load_encoder(point("dinov2", source=str(tmp_path / "siglip")), device="cpu")

    encoders["owlvit"].model.config.save_pretrained(tmp_path / "no_weights")
    with pytest.raises(ForesightError, match="cannot load a OwlViTVisionModel: .*no file named model.safetensors"):
        load_encoder(point("owlvit", source=str(tmp_path / "no_weights")), device="cpu")

    encoders["owlvit"].model.save_pretrained(tmp_path / "partial")
    weights = load_file(tmp_path / "partial" / "model.safetensors")
    del weights["vision_model.embeddings.patch_embedding.weight"]
    save_file(weights, tmp_path / "partial" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ForesightError, match="lacks 1 OwlViTVisionModel weights .*patch_embedding.weight"):
        load_encoder(point("owlvit", source=str(tmp_path / "partial")), device="cpu")
