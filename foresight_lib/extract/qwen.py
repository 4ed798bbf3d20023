"""Qwen2.5-VL, Qwen2-VL and Qwen3-VL (``model.family``): model loading, extraction-point geometry and truncated
feature extraction.

Extraction points and what each one reads (token order: :mod:`.order`; every stored grid is raster):

- ``vit_embed``: the input of ``visual.blocks[0]`` = the vision tower's ``hidden_states[0]``: the patch embedding
  (Qwen3-VL: plus its interpolated learned position embedding), stride one patch (14 px; Qwen3-VL 16 px), ViT width.
- ``vit_block`` k: ``visual.blocks[k]`` = the tower's ``hidden_states[k+1]`` (k < 0 counts from the end).
- ``merger``: ``visual.merger`` = the tower's ``pooler_output``, one merge unit (28 px; Qwen3-VL 32 px), LLM width.
- ``deepstack`` i (Qwen3-VL): ``visual.deepstack_merger_list[i]``, the merger of ViT block
  ``deepstack_visual_indexes[i]`` = the tower's ``deepstack_features[i]``; merge-unit stride, LLM width.
- ``llm`` L: ``language_model.layers[L]`` (L < 0 from the end) at the vision-token positions = ``hidden_states[L+1]``
  of ``model(..., output_hidden_states=True)``. For the last layer transformers reports the output of the final
  RMSNorm there, and so does this point (``language_model.norm``). Qwen3-VL adds deepstack level i to the vision
  tokens after layer i (i < 3); ``hidden_states`` (and this point) hold layer L's output before that addition.

Token order inside the tower: Qwen2.5-VL's blocks run in window order (merge units permuted, undone with
:func:`.order.unwindow`); Qwen2-VL and Qwen3-VL keep merge-unit order throughout. Merged tokens are in raster
order of merge units once un-windowed.

One forward serves every requested point (:func:`.truncate.truncated_forward`): nothing past the deepest point runs
(ViT-only points never run the LLM; a deepstack level stops after its block's merger). With ``attn_implementation:
sdpa`` the vision tower's packed attention runs as one batched call per block (:mod:`.attention`). Image mode: every
frame is its own image (one temporal slot, frame repeated along T); the vision tower takes a batch of frames as one
packed sequence (its attention is per image), and the LLM gets one sequence per frame, stacked along the batch
dimension, so no frame sees another. Video mode: one video per call, the whole clip in one forward. Qwen3-VL's
``llm`` points refuse video mode: its processor interleaves a timestamp text before every temporal slot, which needs
the tokenizer this code does not build (see :func:`check_mode`).
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
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import is_flash_attn_2_available

from ..device import resolve_device, resolve_dtype
from ..errors import ForesightError
from ..families import FAMILIES, VlmShape, check_checkpoint_dir, family_of, shape_of
from ..kinds import KINDS, Family
from ..params import (
    DeepstackPoint,
    ExtractParams,
    LlmPoint,
    MergerPoint,
    ModelParams,
    PointParams,
    VitBlockPoint,
    VitEmbedPoint,
)
from .attention import use_windowed_attention
from .base import ExtractContext, Extractor, resolve_layer
from .checkpoints import CLIP_NORMALIZATION, Normalization, read_normalization, weights_identity
from .flops import qwen_flops_per_frame
from .order import (
    Mode,
    merge_order_to_raster,
    merged_to_raster,
    n_slots,
    naive_grid,
    patchify,
    slot_frames,
    unwindow,
    window_index,
)
from .truncate import Input, truncated_forward

DEFAULT_VIDEO_FPS = 24.0
"""Frame rate assumed when none is given: what the processor assumes for frames without metadata."""
QWEN3_VIDEO_LLM = (
    "extract.mode: video with a Qwen3-VL llm point: Qwen3-VL's video prompt puts a timestamp text before every frame "
    "pair, which needs its tokenizer (not built here); use extract.mode: image for llm points, or the vision points "
    "(vit_embed, vit_block, deepstack, merger) in video mode"
)
"""Why Qwen3-VL's ``llm`` points refuse video mode (:func:`check_mode`)."""
_TINY_VOCAB = 128
_TINY_TEXT = {  # LLM widths of every tiny model (depth: the family's reference)
    "vocab_size": _TINY_VOCAB,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "bos_token_id": 0,
    "eos_token_id": 1,
}
_TINY_ROPE = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e6}  # sum = head_dim/2 = 8
_TINY_VISION: dict[Family, dict[str, Any]] = {  # ViT width 32, merged width 64 (= the LLM's)
    "qwen2_5_vl": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "out_hidden_size": 64,
        "window_size": 112,
        "tokens_per_second": 2,
    },
    "qwen2_vl": {"embed_dim": 32, "hidden_size": 64, "mlp_ratio": 2},
    "qwen3_vl": {"hidden_size": 32, "intermediate_size": 64, "out_hidden_size": 64},
}


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for :func:`extract`, with what produced it."""

    model: PreTrainedModel  # a family's ...ForConditionalGeneration
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
def tiny_config(family: Family) -> PretrainedConfig:
    """The family's real ViT and LLM depths, patch, merge and temporal patch (and Qwen2.5-VL's windows, Qwen3-VL's
    deepstack blocks and position-embedding grid) with small widths (ViT 32, LLM 64) and a 128-token vocab."""
    info = FAMILIES[family]
    reference = info.reference["vision_config"]
    geometry = {
        key: reference[key]
        for key in (
            "depth",
            "patch_size",
            "temporal_patch_size",
            "spatial_merge_size",
            "fullatt_block_indexes",
            "num_position_embeddings",
            "deepstack_visual_indexes",
        )
        if key in reference
    }
    text = _TINY_TEXT | {
        "num_hidden_layers": info.reference["text_config"]["num_hidden_layers"],
        "rope_parameters": _TINY_ROPE | ({"mrope_interleaved": True} if family == "qwen3_vl" else {}),
    }
    if family == "qwen3_vl":
        text["head_dim"] = 16
    return info.classes()[0](
        vision_config=geometry | {"num_heads": 2} | _TINY_VISION[family],
        text_config=text,
        vision_start_token_id=_TINY_VOCAB - 5,
        vision_end_token_id=_TINY_VOCAB - 4,
        image_token_id=_TINY_VOCAB - 2,
        video_token_id=_TINY_VOCAB - 1,
    )


def build_tiny_model(family: Family, seed: int = 0, attn_implementation: str = "sdpa") -> PreTrainedModel:
    """Randomly initialised tiny model of ``family`` (float32, CPU, eval); the same seed gives the same weights.

    Initialisation draws from a forked, seeded CPU generator, so the global RNG is left as it was.
    """
    config = tiny_config(family)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FAMILIES[family].classes()[1](config)
    model.set_attn_implementation(attn_implementation)
    return model.eval()


def load_config(family: Family, source: str) -> PretrainedConfig:
    """The config of ``source``: 'tiny' (:func:`tiny_config`) or a local ``family`` checkpoint's (weights unread)."""
    if source == "tiny":
        return tiny_config(family)
    path = Path(source)
    check_checkpoint_dir(path, family)
    return FAMILIES[family].classes()[0].from_pretrained(path, local_files_only=True)


def _attn_implementation(requested: str, device: torch.device) -> tuple[str, list[str]]:
    """The attention implementation to use, and warnings about a fallback."""
    if requested == "flash_attention_2" and not (device.type == "cuda" and is_flash_attn_2_available()):
        why = "flash-attn is not installed" if device.type == "cuda" else f"the device is {device.type}"
        return "sdpa", [f"attn_implementation flash_attention_2 unavailable ({why}); using sdpa"]
    return requested, []


def load_model(params: ModelParams, random_weights: bool = False) -> LoadedModel:
    """Load the tiny random model or a local checkpoint directory of ``params.family`` (config checked before any
    weight is read; safetensors only, no remote code).

    ``random_weights``: the checkpoint's architecture (its config.json) with a seeded random initialisation
    (``model.seed``) instead of its weights: the control that tells learned structure from architecture.
    """
    family = params.family
    model_class = FAMILIES[family].classes()[1]
    device = resolve_device(params.device, "model.device")
    dtype = resolve_dtype(params.dtype, device)
    attn, notes = _attn_implementation(params.attn_implementation, device)
    path = Path(params.source)
    if params.source != "tiny" and random_weights:
        config = load_config(family, params.source)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            model = model_class._from_config(config, dtype=dtype)
        model.set_attn_implementation(attn)
        model = model.to(device).eval()
        norm = read_normalization(path)
        weights, extra = "random-init", {"architecture_of": str(path.resolve()), "seed": params.seed}
    elif params.source == "tiny":
        model = build_tiny_model(family, params.seed, attn_implementation=attn).to(device=device, dtype=dtype)
        norm = CLIP_NORMALIZATION
        weights, extra = (
            "tiny-random",
            {"seed": params.seed, "config": json.loads(model.config.to_json_string(use_diff=False))},
        )
    else:
        check_checkpoint_dir(path, family)
        model = model_class.from_pretrained(
            path,
            local_files_only=True,
            use_safetensors=True,
            dtype=dtype,
            attn_implementation=attn,
            device_map=str(device),
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
        family=family,
        **extra,
    )
    if notes:
        identity["warnings"] = notes
        for note in notes:
            warnings.warn(note, stacklevel=2)
    return LoadedModel(model=model, device=device, dtype=dtype, identity=identity, norm=norm)


def drop_llm(loaded: LoadedModel) -> None:
    """Free the language model's weights (moved to the meta device): vision-only points never use them.

    Afterwards only ``vit_embed``, ``vit_block``, ``merger`` and ``deepstack`` points can be extracted; the peak
    memory measured for them is the vision tower's, as in a deployment that keeps only the ViT.
    """
    loaded.model.model.language_model.to("meta")
    loaded.model.lm_head.to("meta")
    if loaded.device.type == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------ points
def validate_point(model_config: PretrainedConfig, point: PointParams) -> None:
    """Stop with a :class:`ForesightError` if the point is not read from this model or its layer does not exist."""
    family = family_of(model_config)
    info = FAMILIES[family]
    if family not in KINDS[point.kind].families:
        kinds = ", ".join(k for k, kind in KINDS.items() if family in kind.families)
        owners = ", ".join(FAMILIES[f].title for f in KINDS[point.kind].families)
        why = f"; {point.kind} is {owners}'s (model.family)" if owners else ""
        raise ForesightError(f"{point.kind!r} points are not read from {info.title} (its points: {kinds}){why}")
    label = KINDS[point.kind].layer
    if label is not None:
        resolve_layer(point.layer, shape_of(family, model_config).depths[label], point.kind)


def check_mode(model_config: PretrainedConfig, point: PointParams, mode: Mode) -> None:
    """Stop with a :class:`ForesightError` for a point this code cannot make faithfully in ``mode``.

    Qwen3-VL's ``llm`` in video mode: its processor writes a timestamp text (``<t seconds>``) before every temporal
    slot's ``vision_start``, and the model's M-RoPE positions expect that split (``get_rope_index`` takes one video
    grid row per slot); a prompt without the tokenizer's timestamps would be a different model input.
    """
    if mode == "video" and isinstance(point, LlmPoint) and family_of(model_config) == "qwen3_vl":
        raise ForesightError(QWEN3_VIDEO_LLM)


def point_geometry(
    point: PointParams, model_config: PretrainedConfig, height: int, width: int, n_frames: int, mode: Mode
) -> PointGeometry:
    """Grid, stride, frames per slot and feature width of ``point`` for ``n_frames`` frames of ``height x width``."""
    validate_point(model_config, point)
    check_mode(model_config, point, mode)
    shape = shape_of(family_of(model_config), model_config)
    unit = shape.patch * shape.merge
    if height % unit or width % unit:
        raise ForesightError(f"frame size {height}x{width} must be a multiple of {unit} (patch x merge size)")
    stride, channels = shape.cell(point.kind)
    return PointGeometry(
        stride=stride,
        grid=(n_slots(n_frames, mode, shape.temporal_patch), height // stride, width // stride),
        slot_frames=slot_frames(n_frames, mode, shape.temporal_patch),
        channels=channels,
    )


# ------------------------------------------------------------------------------------ inputs
def build_inputs(
    frames: torch.Tensor | np.ndarray,
    mode: Mode,
    model_config: PretrainedConfig,
    *,
    norm: Normalization = CLIP_NORMALIZATION,
    fps: float | None = None,
    text: bool = True,
) -> dict[str, torch.Tensor]:
    """Model inputs for uint8 frames ``[N, H, W, 3]``, as the official processor would make them.

    Pixel values are on the frames' device, everything else on the CPU.

    Image mode: ``pixel_values`` ``[N*h*w, 3*tp*p*p]``, ``image_grid_thw`` ``[N, 3]``, and with ``text``
    one prompt per frame: ``input_ids``/``attention_mask``/``mm_token_type_ids`` ``[N, 2 + Hb*Wb]``.
    Video mode: ``pixel_values_videos``, ``video_grid_thw`` ``[1, 3]``, for Qwen2.5-VL ``second_per_grid_ts`` ``[1]``
    (``tp / fps``; fps None or NaN: :data:`DEFAULT_VIDEO_FPS`) and one prompt ``[1, 2 + T*Hb*Wb]`` (not for Qwen3-VL:
    :func:`check_mode`).
    A prompt is ``vision_start, placeholder * n_merged, vision_end``; ``mm_token_type_ids`` is 1 (image)
    or 2 (video) at the placeholders and 0 elsewhere: without it transformers falls back to 1-D positions.
    """
    family = family_of(model_config)
    shape = shape_of(family, model_config)
    pixel_values, grid_thw = patchify(
        torch.as_tensor(frames),
        mode,
        patch_size=shape.patch,
        temporal_patch_size=shape.temporal_patch,
        merge_size=shape.merge,
        norm=norm,
    )
    if mode == "image":
        inputs = {"pixel_values": pixel_values, "image_grid_thw": grid_thw}
        token_id, token_type = model_config.image_token_id, 1
    else:
        inputs = {"pixel_values_videos": pixel_values, "video_grid_thw": grid_thw}
        if family == "qwen2_5_vl":
            seconds = shape.temporal_patch / (DEFAULT_VIDEO_FPS if fps is None or math.isnan(fps) else fps)
            inputs["second_per_grid_ts"] = torch.tensor([seconds])
        token_id, token_type = model_config.video_token_id, 2
    if text:
        if mode == "video" and family == "qwen3_vl":
            raise ForesightError(QWEN3_VIDEO_LLM)
        n_rows = grid_thw.shape[0]
        n_tokens = int(grid_thw[0].prod()) // shape.merge**2  # merged tokens per row
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
def _tap(model: PreTrainedModel, point: PointParams) -> nn.Module | Input:
    """Where the forward yields the point (see the module docstring): a module's output, or block 0's input."""
    visual, llm = model.model.visual, model.model.language_model
    if isinstance(point, VitEmbedPoint):
        return Input(visual.blocks[0])
    if isinstance(point, VitBlockPoint):
        return visual.blocks[resolve_layer(point.layer, len(visual.blocks), "vit_block")]
    if isinstance(point, MergerPoint):
        return visual.merger
    if isinstance(point, DeepstackPoint):
        mergers = visual.deepstack_merger_list
        return mergers[resolve_layer(point.layer, len(mergers), "deepstack")]
    layer = resolve_layer(point.layer, len(llm.layers), "llm")
    return llm.norm if layer == len(llm.layers) - 1 else llm.layers[layer]


def _to_raster(
    out: torch.Tensor, point: PointParams, shape: VlmShape, windows: torch.Tensor | None, t: int, h: int, w: int
) -> torch.Tensor:
    """A tap's tokens -> the point's raster grid ``[T, gh, gw, C]`` (:mod:`.order`); ``windows``: Qwen2.5-VL's window
    order of merge units (None: the tower keeps merge-unit order)."""
    m = shape.merge
    if isinstance(point, VitEmbedPoint | VitBlockPoint):  # out: [T*h*w, Cv], window or merge-unit order
        if point.order == "naive":
            return naive_grid(out, t, h, w)  # as the tower's hidden_states hold it, reshaped as is (the ablation)
        return merge_order_to_raster(out if windows is None else unwindow(out, windows), t, h, w, merge_size=m)
    return merged_to_raster(out if windows is None else unwindow(out, windows), t, h // m, w // m)  # [T*Hb*Wb, C]


def _forward(
    model: PreTrainedModel,
    frames: torch.Tensor,
    points: Mapping[str, PointParams],
    mode: Mode,
    norm: Normalization,
    fps: float | None,
) -> dict[str, torch.Tensor]:
    """One truncated forward of frames ``[n, H, W, 3]`` -> ``{name: [T, gh, gw, C]}`` (model dtype, model device)."""
    config = model.config
    shape = shape_of(family_of(config), config)
    needs_llm = any(isinstance(p, LlmPoint) for p in points.values())
    device = next(model.parameters()).device
    inputs = build_inputs(frames.to(device), mode, config, norm=norm, fps=fps, text=needs_llm)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    pixel_key, grid_key = (
        ("pixel_values", "image_grid_thw") if mode == "image" else ("pixel_values_videos", "video_grid_thw")
    )

    taps = {name: _tap(model, point) for name, point in points.items()}
    if needs_llm:
        outputs = truncated_forward(lambda: model.model(**inputs, use_cache=False), taps.values())
    else:
        visual = model.model.visual
        outputs = truncated_forward(
            lambda: visual(inputs[pixel_key].to(visual.dtype), grid_thw=inputs[grid_key]), taps.values()
        )

    grid_thw = inputs[grid_key]  # [rows, 3]
    t, h, w = int(grid_thw[:, 0].sum()), int(grid_thw[0, 1]), int(grid_thw[0, 2])
    m = shape.merge
    windows = None
    if shape.window is not None:
        windows = window_index(
            t, h // m, w // m, window_size=shape.window * shape.patch, patch_size=shape.patch, merge_size=m
        )
    token_id = config.image_token_id if mode == "image" else config.video_token_id
    result = {}
    for name, point in points.items():
        out = outputs[taps[name]]
        if isinstance(point, LlmPoint):  # out: [rows, seq, Ct]; vision tokens in raster order of merge units
            result[name] = merged_to_raster(out[inputs["input_ids"] == token_id], t, h // m, w // m)
        else:
            result[name] = _to_raster(out, point, shape, windows, t, h, w)
    return result


def extract(
    model: PreTrainedModel,
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
        frames: uint8 ``[N, H, W, 3]``, H and W multiples of the merge unit (patch x merge: 28 px; Qwen3-VL 32 px).
        points: name -> point; validated against the model config first.
        mode: ``"image"``: T = N, forwards of ``batch_frames`` frames; ``"video"``: T = ceil(N/tp), one
            forward for the whole clip (``batch_frames`` unused: the LLM must see the clip at once).
        norm: the checkpoint's pixel normalisation (``LoadedModel.norm``).
        fps: frame rate of ``frames`` (Qwen2.5-VL video mode: temporal M-RoPE spacing); None or NaN:
            :data:`DEFAULT_VIDEO_FPS`.
        on_device: keep the grids on the model's device in its dtype (the stage's path: its writer casts them
            to the storage dtype there, before the copy); else float32 on the CPU.

    Grid shapes and strides: :func:`point_geometry`.
    """
    if not points:
        return {}
    for point in points.values():
        validate_point(model.config, point)
        check_mode(model.config, point, mode)
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
    """A VLM point: a truncated forward to exactly this point, in true raster order."""

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
    """The extractor of a VLM point; a model loaded here for a vision-only point keeps only its vision tower."""
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
