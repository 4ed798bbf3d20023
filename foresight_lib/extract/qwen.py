"""Qwen2.5-VL: model loading, extraction-point geometry and truncated feature extraction.

Extraction points and the module whose output each one reads (token order: :mod:`.order`):

- ``vit_embed``: ``visual.patch_embed`` (merge-unit order), stride 14 px, ViT width.
- ``vit_block`` k: ``visual.blocks[k]`` (window order) = the vision tower's ``hidden_states[k+1]``
  (k < 0 counts from the end: -1 is the last block).
- ``merger``: ``visual.merger`` (window order of merge units) = the tower's ``pooler_output``, stride 28 px.
- ``llm`` L: ``language_model.layers[L]`` (L < 0 from the end) at the vision-token positions = ``hidden_states[L+1]`` of
  ``model(..., output_hidden_states=True)``. For the last layer transformers reports the output of
  the final RMSNorm there, and so does this point (``language_model.norm``).

One forward serves every requested point (:func:`.truncate.truncated_forward`): nothing past the
deepest point runs (ViT-only points never run the LLM). With ``attn_implementation: sdpa`` the vision
tower's window attention runs as one batched call per block (:mod:`.attention`). Image mode: every frame is its own image (one temporal slot, frame repeated along T);
the vision tower takes a batch of frames as one packed sequence (its attention is per image), and
the LLM gets one sequence per frame, stacked along the batch dimension, so no frame sees another.
Video mode: one video per call, the whole clip in one forward.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.utils import is_flash_attn_2_available

from ..device import resolve_device, resolve_dtype
from ..errors import ForesightError
from ..families import FAMILIES
from ..params import ExtractParams, LlmPoint, MergerPoint, ModelParams, PointParams, VitBlockPoint, VitEmbedPoint
from .attention import use_windowed_attention
from .base import ExtractContext, Extractor, resolve_layer
from .checkpoints import CLIP_NORMALIZATION, Normalization, read_json, read_normalization, weights_identity
from .flops import qwen_flops_per_frame
from .order import (
    Mode,
    merge_order_to_raster,
    merged_to_raster,
    n_slots,
    naive_grid,
    patchify,
    slot_frames,
    to_window_order,
    unwindow,
    window_index,
)
from .truncate import truncated_forward

MODEL_TYPE = "qwen2_5_vl"
DEFAULT_VIDEO_FPS = 24.0
"""Frame rate assumed when none is given: what the processor assumes for frames without metadata."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for :func:`extract`, with what produced it."""

    model: Qwen2_5_VLForConditionalGeneration
    device: torch.device
    dtype: torch.dtype
    identity: dict[str, Any]  # JSON-serialisable
    norm: Normalization  # pixel normalisation of the checkpoint's processor


@dataclass(frozen=True)
class PointGeometry:
    """Shape of one point's feature grid ``[T, gh, gw, C]`` and where it sits in pixels and frames."""

    stride: int  # pixels per grid cell, both axes
    grid: tuple[int, int, int]  # (T, gh, gw)
    slot_frames: tuple[tuple[int, ...], ...]  # per temporal slot, the frame indices it covers
    channels: int  # C


# ------------------------------------------------------------------------------------ models
def tiny_config() -> Qwen2_5_VLConfig:
    """Real Qwen2.5-VL depths and geometry with small widths (ViT 32, LLM 64) and a 128-token vocab."""
    vocab = 128
    return Qwen2_5_VLConfig(
        vision_config={
            "depth": FAMILIES["qwen2_5_vl"].reference["vision_config"]["depth"],
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,  # = text hidden_size
            "patch_size": 14,
            "temporal_patch_size": 2,
            "spatial_merge_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2,
        },
        text_config={
            "vocab_size": vocab,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": FAMILIES["qwen2_5_vl"].reference["text_config"]["num_hidden_layers"],
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "rope_parameters": {
                "rope_type": "default",
                "mrope_section": [2, 3, 3],
                "rope_theta": 1e6,
            },  # sum = head_dim/2
            "bos_token_id": 0,
            "eos_token_id": 1,
        },
        vision_start_token_id=vocab - 5,
        vision_end_token_id=vocab - 4,
        image_token_id=vocab - 2,
        video_token_id=vocab - 1,
    )


def build_tiny_model(seed: int, attn_implementation: str = "sdpa") -> Qwen2_5_VLForConditionalGeneration:
    """Randomly initialised tiny model (float32, CPU, eval); the same seed gives the same weights.

    Initialisation draws from a forked, seeded CPU generator, so the global RNG is left as it was.
    """
    config = tiny_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.set_attn_implementation(attn_implementation)
    return model.eval()


def _attn_implementation(requested: str, device: torch.device) -> tuple[str, list[str]]:
    """The attention implementation to use, and warnings about a fallback."""
    if requested == "flash_attention_2" and not (device.type == "cuda" and is_flash_attn_2_available()):
        why = "flash-attn is not installed" if device.type == "cuda" else f"the device is {device.type}"
        return "sdpa", [f"attn_implementation flash_attention_2 unavailable ({why}); using sdpa"]
    return requested, []


def check_checkpoint_dir(path: Path) -> None:
    """Stop with a :class:`ForesightError` unless ``path`` holds a Qwen2.5-VL ``config.json`` (weights unread)."""
    if not path.is_dir():
        raise ForesightError(
            f"model.source: checkpoint directory not found: {path} (use 'tiny' or a local Qwen2.5-VL directory)"
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ForesightError(f"model.source: {path} has no config.json, so it is not a transformers checkpoint")
    config = read_json(config_file)
    if config.get("model_type") != MODEL_TYPE:
        raise ForesightError(
            f"model.source: {config_file} declares model_type {config.get('model_type')!r} "
            f"(architectures {config.get('architectures')}), not a Qwen2.5-VL checkpoint "
            f"(model_type {MODEL_TYPE!r}, Qwen2_5_VLForConditionalGeneration)"
        )


def load_model(params: ModelParams, random_weights: bool = False) -> LoadedModel:
    """Load the tiny random model or a local checkpoint directory (config checked before any weight is read).

    ``random_weights``: the checkpoint's architecture (its config.json) with a seeded random initialisation
    (``model.seed``) instead of its weights: the control that tells learned structure from architecture.
    """
    device = resolve_device(params.device, "model.device")
    dtype = resolve_dtype(params.dtype, device)
    attn, notes = _attn_implementation(params.attn_implementation, device)
    path = Path(params.source)
    if params.source != "tiny" and random_weights:
        check_checkpoint_dir(path)
        config = Qwen2_5_VLConfig.from_pretrained(path, local_files_only=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
        model.set_attn_implementation(attn)
        model = model.to(device).eval()
        norm = read_normalization(path)
        weights, extra = "random-init", {"architecture_of": str(path.resolve()), "seed": params.seed}
    elif params.source == "tiny":
        model = build_tiny_model(params.seed, attn_implementation=attn).to(device=device, dtype=dtype)
        norm = CLIP_NORMALIZATION
        weights, extra = (
            "tiny-random",
            {"seed": params.seed, "config": json.loads(model.config.to_json_string(use_diff=False))},
        )
    else:
        check_checkpoint_dir(path)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            path, local_files_only=True, dtype=dtype, attn_implementation=attn, device_map=str(device)
        ).eval()
        norm = read_normalization(path)
        weights, extra = "checkpoint", {}
    implementation: Any = use_windowed_attention(model) if attn == "sdpa" else attn
    identity = weights_identity(
        weights,
        dtype=dtype,
        device=device,
        attn_implementation=implementation,
        norm=norm,
        path=path if weights == "checkpoint" else None,
        **extra,
    )
    if notes:
        identity["warnings"] = notes
        for note in notes:
            warnings.warn(note, stacklevel=2)
    return LoadedModel(model=model, device=device, dtype=dtype, identity=identity, norm=norm)


def drop_llm(loaded: LoadedModel) -> None:
    """Free the language model's weights (moved to the meta device): vision-only points never use them.

    Afterwards only ``vit_embed``, ``vit_block`` and ``merger`` points can be extracted; the peak memory
    measured for them is the vision tower's, as in a deployment that keeps only the ViT.
    """
    loaded.model.model.language_model.to("meta")
    loaded.model.lm_head.to("meta")
    if loaded.device.type == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------ points
def validate_point(model_config: Qwen2_5_VLConfig, point: PointParams) -> None:
    """Stop with a :class:`ForesightError` if the point is not read from this model or its layer does not exist."""
    if not isinstance(point, VitEmbedPoint | VitBlockPoint | MergerPoint | LlmPoint):
        raise ForesightError(
            f"{point.kind!r} points are not read from Qwen2.5-VL (model points: vit_embed, vit_block, merger, llm)"
        )
    if isinstance(point, VitBlockPoint):
        resolve_layer(point.layer, model_config.vision_config.depth, "vit_block")
    elif isinstance(point, LlmPoint):
        resolve_layer(point.layer, model_config.text_config.num_hidden_layers, "llm")


def point_geometry(
    point: PointParams, model_config: Qwen2_5_VLConfig, height: int, width: int, n_frames: int, mode: Mode
) -> PointGeometry:
    """Grid, stride, frames per slot and feature width of ``point`` for ``n_frames`` frames of ``height x width``."""
    validate_point(model_config, point)
    vision = model_config.vision_config
    unit = vision.patch_size * vision.spatial_merge_size
    if height % unit or width % unit:
        raise ForesightError(f"frame size {height}x{width} must be a multiple of {unit} (patch x merge size)")
    if isinstance(point, VitEmbedPoint | VitBlockPoint):
        stride, channels = vision.patch_size, vision.hidden_size
    elif isinstance(point, MergerPoint):
        stride, channels = unit, vision.out_hidden_size
    else:
        stride, channels = unit, model_config.text_config.hidden_size
    return PointGeometry(
        stride=stride,
        grid=(n_slots(n_frames, mode, vision.temporal_patch_size), height // stride, width // stride),
        slot_frames=slot_frames(n_frames, mode, vision.temporal_patch_size),
        channels=channels,
    )


# ------------------------------------------------------------------------------------ inputs
def build_inputs(
    frames: torch.Tensor | np.ndarray,
    mode: Mode,
    model_config: Qwen2_5_VLConfig,
    *,
    norm: Normalization = CLIP_NORMALIZATION,
    fps: float | None = None,
    text: bool = True,
) -> dict[str, torch.Tensor]:
    """Model inputs for uint8 frames ``[N, H, W, 3]``, as the official processor would make them.

    Pixel values are on the frames' device, everything else on the CPU.

    Image mode: ``pixel_values`` ``[N*h*w, 3*tp*p*p]``, ``image_grid_thw`` ``[N, 3]``, and with ``text``
    one prompt per frame: ``input_ids``/``attention_mask``/``mm_token_type_ids`` ``[N, 2 + Hb*Wb]``.
    Video mode: ``pixel_values_videos``, ``video_grid_thw`` ``[1, 3]``, ``second_per_grid_ts`` ``[1]``
    (``tp / fps``; fps None or NaN: :data:`DEFAULT_VIDEO_FPS`) and one prompt ``[1, 2 + T*Hb*Wb]``.
    A prompt is ``vision_start, placeholder * n_merged, vision_end``; ``mm_token_type_ids`` is 1 (image)
    or 2 (video) at the placeholders and 0 elsewhere: without it transformers falls back to 1-D positions.
    """
    vision = model_config.vision_config
    pixel_values, grid_thw = patchify(
        torch.as_tensor(frames),
        mode,
        patch_size=vision.patch_size,
        temporal_patch_size=vision.temporal_patch_size,
        merge_size=vision.spatial_merge_size,
        norm=norm,
    )
    if mode == "image":
        inputs = {"pixel_values": pixel_values, "image_grid_thw": grid_thw}
        token_id, token_type = model_config.image_token_id, 1
    else:
        seconds = vision.temporal_patch_size / (DEFAULT_VIDEO_FPS if fps is None or math.isnan(fps) else fps)
        inputs = {
            "pixel_values_videos": pixel_values,
            "video_grid_thw": grid_thw,
            "second_per_grid_ts": torch.tensor([seconds]),
        }
        token_id, token_type = model_config.video_token_id, 2
    if text:
        n_rows = grid_thw.shape[0]
        n_tokens = int(grid_thw[0].prod()) // vision.spatial_merge_size**2  # merged tokens per row
        placeholders = torch.full((n_rows, n_tokens), token_id)
        input_ids = torch.cat(
            [
                torch.full((n_rows, 1), model_config.vision_start_token_id),
                placeholders,
                torch.full((n_rows, 1), model_config.vision_end_token_id),
            ],
            dim=1,
        )  # [rows, 2 + n_tokens]
        inputs |= {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "mm_token_type_ids": (input_ids == token_id).long() * token_type,
        }
    return inputs


# ------------------------------------------------------------------------------------ extraction
def _module(model: Qwen2_5_VLForConditionalGeneration, point: PointParams) -> nn.Module:
    """The module whose forward output is the point (see the module docstring)."""
    visual, llm = model.model.visual, model.model.language_model
    if isinstance(point, VitEmbedPoint):
        return visual.patch_embed
    if isinstance(point, VitBlockPoint):
        return visual.blocks[resolve_layer(point.layer, len(visual.blocks), "vit_block")]
    if isinstance(point, MergerPoint):
        return visual.merger
    layer = resolve_layer(point.layer, len(llm.layers), "llm")
    return llm.norm if layer == len(llm.layers) - 1 else llm.layers[layer]


def _forward(
    model: Qwen2_5_VLForConditionalGeneration,
    frames: torch.Tensor,
    points: Mapping[str, PointParams],
    mode: Mode,
    norm: Normalization,
    fps: float | None,
) -> dict[str, torch.Tensor]:
    """One truncated forward of frames ``[n, H, W, 3]`` -> ``{name: [T, gh, gw, C]}`` (model dtype, model device)."""
    config = model.config
    vision = config.vision_config
    needs_llm = any(isinstance(p, LlmPoint) for p in points.values())
    device = next(model.parameters()).device
    inputs = build_inputs(frames.to(device), mode, config, norm=norm, fps=fps, text=needs_llm)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    pixel_key, grid_key = (
        ("pixel_values", "image_grid_thw") if mode == "image" else ("pixel_values_videos", "video_grid_thw")
    )

    modules = {name: _module(model, point) for name, point in points.items()}
    if needs_llm:
        outputs = truncated_forward(lambda: model.model(**inputs, use_cache=False), modules.values())
    else:
        visual = model.model.visual
        outputs = truncated_forward(
            lambda: visual(inputs[pixel_key].to(visual.dtype), grid_thw=inputs[grid_key]), modules.values()
        )

    grid_thw = inputs[grid_key]  # [rows, 3]
    m = vision.spatial_merge_size
    t, h, w = int(grid_thw[:, 0].sum()), int(grid_thw[0, 1]), int(grid_thw[0, 2])
    hb, wb = h // m, w // m
    windows = window_index(t, hb, wb, window_size=vision.window_size, patch_size=vision.patch_size, merge_size=m)
    token_id = config.image_token_id if mode == "image" else config.video_token_id
    result = {}
    for name, point in points.items():
        out = outputs[modules[name]]
        if isinstance(point, VitEmbedPoint) and point.order == "naive":
            grid = naive_grid(to_window_order(out, windows), t, h, w)  # as hidden_states[0], reshaped as is
        elif isinstance(point, VitEmbedPoint):
            grid = merge_order_to_raster(out, t, h, w, merge_size=m)  # out: [T*h*w, Cv] merge-unit order
        elif isinstance(point, VitBlockPoint) and point.order == "naive":
            grid = naive_grid(out, t, h, w)  # out: [T*h*w, Cv] window order, reshaped as is (the ablation)
        elif isinstance(point, VitBlockPoint):
            grid = merge_order_to_raster(unwindow(out, windows), t, h, w, merge_size=m)  # out: [T*h*w, Cv] window order
        elif isinstance(point, MergerPoint):
            grid = merged_to_raster(unwindow(out, windows), t, hb, wb)  # out: [T*Hb*Wb, Co] window order
        else:
            grid = merged_to_raster(out[inputs["input_ids"] == token_id], t, hb, wb)  # out: [rows, seq, Ct]
        result[name] = grid
    return result


def extract(
    model: Qwen2_5_VLForConditionalGeneration,
    frames: torch.Tensor | np.ndarray,
    points: Mapping[str, PointParams],
    mode: Mode,
    batch_frames: int,
    *,
    norm: Normalization = CLIP_NORMALIZATION,
    fps: float | None = None,
    on_device: bool = False,
) -> dict[str, torch.Tensor]:
    """Features of one clip at every point, in true raster order: ``{name: [T, gh, gw, C]}``.

    Args:
        frames: uint8 ``[N, H, W, 3]``, H and W multiples of 28 (patch x merge).
        points: name -> point; validated against the model config first.
        mode: ``"image"``: T = N, forwards of ``batch_frames`` frames; ``"video"``: T = ceil(N/tp), one
            forward for the whole clip (``batch_frames`` unused: the LLM must see the clip at once).
        norm: the checkpoint's pixel normalisation (``LoadedModel.norm``).
        fps: frame rate of ``frames`` (video mode: temporal M-RoPE spacing); None or NaN: :data:`DEFAULT_VIDEO_FPS`.
        on_device: keep the grids on the model's device in its dtype (the stage's path: its writer casts them
            to the storage dtype there, before the copy); else float32 on the CPU.

    Grid shapes and strides: :func:`point_geometry`.
    """
    if not points:
        return {}
    for point in points.values():
        validate_point(model.config, point)
    frames = torch.as_tensor(frames)  # [N, H, W, 3] uint8
    step = batch_frames if mode == "image" else frames.shape[0]
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in points}
    with torch.inference_mode():
        for start in range(0, frames.shape[0], step):
            for name, grid in _forward(model, frames[start : start + step], points, mode, norm, fps).items():
                parts[name].append(grid if on_device else grid.to(device="cpu", dtype=torch.float32))
    return {name: torch.cat(grids) for name, grids in parts.items()}


# ------------------------------------------------------------------------------------ the stage's extractor
@dataclass(kw_only=True)
class QwenExtractor(Extractor):
    """A Qwen2.5-VL point: a truncated forward to exactly this point, in true raster order."""

    loaded: LoadedModel
    point: PointParams
    batch_frames: int

    def run(self, clips: np.ndarray) -> torch.Tensor:  # [k, F, H, W, 3] -> [k, T, gh, gw, C]
        k, _, height, width, _ = clips.shape
        points, model, norm = {self.name: self.point}, self.loaded.model, self.loaded.norm
        if self.mode == "image":  # every frame is its own image: one call over all k clips' frames
            grid = extract(
                model,
                clips.reshape(-1, height, width, 3),
                points,
                "image",
                self.batch_frames,
                norm=norm,
                on_device=True,
            )[self.name]
            return grid.reshape(k, -1, *grid.shape[1:])
        return torch.stack(
            [extract(model, c, points, "video", self.batch_frames, norm=norm, on_device=True)[self.name] for c in clips]
        )


def qwen_extractor(
    name: str,
    point: PointParams,
    model: ModelParams,
    extract: ExtractParams,
    height: int,
    width: int,
    n_frames: int,
    loaded: LoadedModel | None = None,
) -> QwenExtractor:
    """The extractor of a Qwen2.5-VL point; a model loaded here for a vision-only point keeps only its vision tower."""
    if loaded is None:
        loaded = load_model(model, random_weights=point.weights == "random")
        if not isinstance(point, LlmPoint):
            drop_llm(loaded)
    config = loaded.model.config
    geometry = point_geometry(point, config, height, width, n_frames, extract.mode)
    merger = point_geometry(MergerPoint(kind="merger"), config, height, width, n_frames, extract.mode)
    itemsize = np.dtype(extract.dtype).itemsize
    return QwenExtractor(
        name=name,
        definition=point.model_dump(),
        stride=geometry.stride,
        grid=geometry.grid,
        channels=geometry.channels,
        slot_frames=[list(s) for s in geometry.slot_frames],
        mode=extract.mode,
        weights=loaded.identity,
        clips_per_batch=max(1, extract.batch_frames // n_frames) if extract.mode == "image" else 1,
        device=loaded.device,
        reference_bytes_per_frame=float(np.prod(merger.grid)) * merger.channels * itemsize / n_frames,
        flops_per_frame=qwen_flops_per_frame(point, config, height, width, n_frames, extract.mode),
        loaded=loaded,
        point=point,
        batch_frames=extract.batch_frames,
    )


def qwen_point_extractor(name: str, point: PointParams, context: ExtractContext) -> QwenExtractor:
    """The VLM kinds' entry point (:data:`foresight_lib.kinds.KINDS`)."""
    c = context
    return qwen_extractor(name, point, c.model, c.extract, c.height, c.width, c.n_frames)
