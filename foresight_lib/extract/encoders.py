"""Dedicated vision encoders (DINOv2, OWL-ViT, OWLv2, SigLIP): the ``encoder`` points, the hybrid baseline.

A point's ``layer`` k is a block, as for every kind of point (timm's convention): the output of block k
(k < 0 counts from the end, -1 is the last block), i.e. transformers' ``hidden_states[k+1]``, before the
final norm. The forward stops after that block (:func:`.truncate.truncated_forward`).

Every frame is its own image, normalised with the family's (or the checkpoint's) mean/std at the
stored geometry, never resized or cropped. Position embeddings are resampled to the ``H/p x W/p``
patch grid (bicubic, as transformers does): DINOv2 always does it; OWL-ViT, OWLv2 and SigLIP only
with ``interpolate_pos_encoding=True``, which every forward here passes. The tokens before the
patch tokens (CLS; DINOv2-with-registers registers; SigLIP has none) are dropped and named in the
point's definition (``dropped_tokens``); the patch tokens are in raster order and become the grid
``[N, H/p, W/p, C]``, stride = patch size. :func:`encoder_geometry` says all of this from a config alone: the
extractor, the FLOPs (:func:`.flops.encoder_point_flops`) and the cost model read it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from transformers import (
    Dinov2Config,
    Dinov2Model,
    Dinov2WithRegistersModel,
    Owlv2VisionConfig,
    Owlv2VisionModel,
    OwlViTVisionConfig,
    OwlViTVisionModel,
    PretrainedConfig,
    PreTrainedModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
)

from ..device import resolve_device, resolve_dtype
from ..errors import ForesightError
from ..families import TINY_ENCODER_DEPTH
from ..params import EncoderPoint
from .base import ExtractContext, Extractor, resolve_layer
from .checkpoints import CLIP_NORMALIZATION, Normalization, normalize, read_json, read_normalization, weights_identity
from .flops import encoder_point_flops
from .truncate import truncated_forward

Family = Literal["dinov2", "owlvit", "owlv2", "siglip"]


@dataclass(frozen=True)
class _FamilySpec:
    title: str  # the family's name in messages
    classes: Mapping[str, type[PreTrainedModel]]  # config.json model_type -> the class that loads its vision encoder
    tiny_class: type[PreTrainedModel]
    tiny_config: Callable[[], PretrainedConfig]
    norm: Normalization  # used when a checkpoint has no preprocessor_config.json (and for tiny models)
    interpolate_flag: bool  # forward needs interpolate_pos_encoding=True off the pre-training size
    reference: Callable[[], PretrainedConfig]  # the base model's (ViT-B) widths: what the cost model assumes


def _small(**real: Any) -> dict[str, Any]:
    """Small widths (hidden 32, 2 heads) around the family's real geometry and depth."""
    return {"hidden_size": 32, "num_attention_heads": 2, **real}


_FAMILIES: dict[str, _FamilySpec] = {
    "dinov2": _FamilySpec(  # ViT-B/14 at 518 px; plain DINOv2 (1 CLS token, no registers)
        title="DINOv2",
        classes={"dinov2": Dinov2Model, "dinov2_with_registers": Dinov2WithRegistersModel},
        tiny_class=Dinov2Model,
        tiny_config=lambda: Dinov2Config(
            **_small(patch_size=14, num_hidden_layers=TINY_ENCODER_DEPTH, image_size=518, mlp_ratio=2)
        ),
        norm=Normalization(mean=tuple(IMAGENET_DEFAULT_MEAN), std=tuple(IMAGENET_DEFAULT_STD)),
        interpolate_flag=False,
        reference=lambda: Dinov2Config(hidden_size=768, patch_size=14, num_hidden_layers=12, mlp_ratio=4),
    ),
    "owlvit": _FamilySpec(  # OWL-ViT B/32 at 768 px
        title="OWL-ViT",
        classes={"owlvit": OwlViTVisionModel, "owlvit_vision_model": OwlViTVisionModel},
        tiny_class=OwlViTVisionModel,
        tiny_config=lambda: OwlViTVisionConfig(
            **_small(patch_size=32, num_hidden_layers=TINY_ENCODER_DEPTH, image_size=768, intermediate_size=64)
        ),
        norm=CLIP_NORMALIZATION,
        interpolate_flag=True,
        reference=lambda: OwlViTVisionConfig(
            hidden_size=768, patch_size=32, num_hidden_layers=12, intermediate_size=3072
        ),
    ),
    "owlv2": _FamilySpec(  # OWLv2 B/16 at 960 px
        title="OWLv2",
        classes={"owlv2": Owlv2VisionModel, "owlv2_vision_model": Owlv2VisionModel},
        tiny_class=Owlv2VisionModel,
        tiny_config=lambda: Owlv2VisionConfig(
            **_small(patch_size=16, num_hidden_layers=TINY_ENCODER_DEPTH, image_size=960, intermediate_size=64)
        ),
        norm=CLIP_NORMALIZATION,
        interpolate_flag=True,
        reference=lambda: Owlv2VisionConfig(
            hidden_size=768, patch_size=16, num_hidden_layers=12, intermediate_size=3072
        ),
    ),
    "siglip": _FamilySpec(  # SigLIP B/16 at 224 px (no CLS token)
        title="SigLIP",
        classes={"siglip": SiglipVisionModel, "siglip_vision_model": SiglipVisionModel},
        tiny_class=SiglipVisionModel,
        tiny_config=lambda: SiglipVisionConfig(
            **_small(patch_size=16, num_hidden_layers=TINY_ENCODER_DEPTH, image_size=224, intermediate_size=64)
        ),
        norm=Normalization(mean=tuple(IMAGENET_STANDARD_MEAN), std=tuple(IMAGENET_STANDARD_STD)),
        interpolate_flag=True,
        reference=lambda: SiglipVisionConfig(
            hidden_size=768, patch_size=16, num_hidden_layers=12, intermediate_size=3072
        ),
    ),
}


@dataclass(frozen=True)
class LoadedEncoder:
    """A vision encoder ready for :func:`extract_encoder`, with what produced it."""

    family: Family
    model: PreTrainedModel
    device: torch.device
    dtype: torch.dtype
    identity: dict[str, Any]  # JSON-serialisable
    norm: Normalization  # pixel normalisation applied to the frames

    @property
    def stride(self) -> int:
        """Patch size in pixels: one grid cell per patch."""
        return int(self.model.config.patch_size)

    @property
    def depth(self) -> int:
        """Blocks in the encoder: valid layers are ``0..depth-1`` (or ``-depth..-1``)."""
        return int(self.model.config.num_hidden_layers)

    @property
    def channels(self) -> int:
        """Feature width ``C``: the encoder's hidden size."""
        return int(self.model.config.hidden_size)

    @property
    def dropped_tokens(self) -> list[str]:
        """The tokens before the patch tokens, in sequence order; extraction drops them."""
        return list(special_tokens(self.model.config))


@dataclass(frozen=True)
class EncoderGeometry:
    """An encoder's grid on ``height x width`` frames: one cell per patch."""

    stride: int  # the patch size in pixels
    grid: tuple[int, int]  # (gh, gw)
    channels: int  # the hidden size
    special_tokens: tuple[str, ...]  # before the patch tokens in its sequence, dropped


def special_tokens(config: PretrainedConfig) -> tuple[str, ...]:
    """The tokens an encoder of ``config`` puts before its patch tokens: CLS (and DINOv2-with-registers' registers);
    SigLIP none."""
    if config.model_type == SiglipVisionConfig.model_type:
        return ()
    registers = config.num_register_tokens if config.model_type == "dinov2_with_registers" else 0
    return ("cls", *(f"register{i}" for i in range(registers)))


def encoder_geometry(config: PretrainedConfig, height: int, width: int) -> EncoderGeometry:
    """Stride, patch grid, width and special tokens of an encoder of ``config`` on ``height x width`` frames; both
    must be multiples of the patch size (frames are never resized or cropped)."""
    p = int(config.patch_size)
    if height % p or width % p:
        title = next(f.title for f in _FAMILIES.values() if config.model_type in f.classes)
        raise ForesightError(
            f"frame size {height}x{width} is not a multiple of the {title} patch size {p} "
            "(frames are never resized or cropped)"
        )
    return EncoderGeometry(
        stride=p,
        grid=(height // p, width // p),
        channels=int(config.hidden_size),
        special_tokens=special_tokens(config),
    )


# ------------------------------------------------------------------------------------ models
def tiny_config(family: Family) -> PretrainedConfig:
    """The family's real patch size, depth and pre-training image size, with hidden size 32 and 2 heads."""
    return _FAMILIES[family].tiny_config()


def reference_config(family: Family) -> PretrainedConfig:
    """The family's base model (ViT-B) widths and depth: what the cost model assumes for a tiny encoder or an absent
    checkpoint."""
    return _FAMILIES[family].reference()


def load_config(family: Family, source: str) -> PretrainedConfig:
    """The vision config of ``source``: 'tiny' (:func:`tiny_config`) or a local checkpoint's (weights unread)."""
    if source == "tiny":
        return tiny_config(family)
    path = Path(source)
    return checkpoint_class(path, family).config_class.from_pretrained(path, local_files_only=True)


def build_tiny_encoder(family: Family, seed: int) -> PreTrainedModel:
    """Randomly initialised tiny encoder of the family's transformers class (float32, CPU, eval).

    The same seed gives the same weights; initialisation draws from a forked, seeded CPU generator,
    so the global RNG is left as it was.
    """
    spec = _FAMILIES[family]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.tiny_class(spec.tiny_config())
    return model.eval()


def checkpoint_class(path: Path, family: Family) -> type[PreTrainedModel]:
    """The class that loads the vision encoder of checkpoint ``path`` (config checked, weights unread)."""
    spec = _FAMILIES[family]
    expected = f"a {spec.title} checkpoint (model_type {' or '.join(map(repr, spec.classes))})"
    if not path.is_dir():
        raise ForesightError(
            f"encoder source: checkpoint directory not found: {path} (use 'tiny' or a local directory with {expected})"
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ForesightError(
            f"encoder source: {path} has no config.json, so it is not a transformers checkpoint ({expected})"
        )
    config = read_json(config_file)
    found = config.get("model_type")
    if found not in spec.classes:
        raise ForesightError(
            f"encoder source: {config_file} declares model_type {found!r} (architectures {config.get('architectures')}), "
            f"but family {family!r} needs {expected}"
        )
    return spec.classes[found]


def load_encoder(point: EncoderPoint, dtype: str = "auto", device: str = "auto") -> LoadedEncoder:
    """The point's tiny encoder or local checkpoint (config checked before any weight is read).

    ``dtype``/``device``: as ``model.dtype``/``model.device`` (auto: bfloat16 on CUDA, else float32 on CPU).
    A full checkpoint (e.g. ``OwlViTForObjectDetection``, ``SiglipModel``) loads its vision tower only;
    a checkpoint missing any of the tower's weights stops with a :class:`ForesightError`. ``weights: random``
    builds the checkpoint's architecture (its config) with seeded random weights, the control for learned structure.
    """
    family: Family = point.family
    spec = _FAMILIES[family]
    torch_device = resolve_device(device, "model.device")
    torch_dtype = resolve_dtype(dtype, torch_device)
    if point.source == "tiny":
        model = build_tiny_encoder(family, point.seed).to(device=torch_device, dtype=torch_dtype)
        norm, path = spec.norm, None
        weights, extra = (
            "tiny-random",
            {"seed": point.seed, "config": json.loads(model.config.to_json_string(use_diff=False))},
        )
    elif point.weights == "random":  # the checkpoint's architecture, seeded random weights: the control
        path = Path(point.source)
        cls = checkpoint_class(path, family)
        config = cls.config_class.from_pretrained(path, local_files_only=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(point.seed)
            model = cls._from_config(config, dtype=torch_dtype).to(torch_device).eval()
        norm = read_normalization(path, spec.norm)
        weights, extra = "random-init", {"architecture_of": str(path.resolve()), "seed": point.seed}
    else:
        path = Path(point.source)
        cls = checkpoint_class(path, family)
        try:  # an explicit class: a checkpoint's auto_map (remote code) is never consulted
            model, info = cls.from_pretrained(
                path, local_files_only=True, dtype=torch_dtype, device_map=str(torch_device), output_loading_info=True
            )
        except OSError as exc:
            raise ForesightError(f"encoder source: {path}: cannot load a {cls.__name__}: {exc}") from None
        if info["missing_keys"]:
            missing = sorted(info["missing_keys"])
            raise ForesightError(
                f"encoder source: {path} lacks {len(missing)} {cls.__name__} weights "
                f"(e.g. {', '.join(missing[:3])}): not a complete {spec.title} vision encoder"
            )
        model = model.eval()
        norm = read_normalization(path, spec.norm)
        weights, extra = "checkpoint", {}
    identity = weights_identity(
        weights,
        dtype=torch_dtype,
        device=torch_device,
        norm=norm,
        path=path,
        attn_implementation=model.config._attn_implementation,
        family=family,
        **extra,
        **{"class": type(model).__name__},
    )
    return LoadedEncoder(
        family=family, model=model, device=torch_device, dtype=torch_dtype, identity=identity, norm=norm
    )


# ------------------------------------------------------------------------------------ extraction
def validate_layer(loaded: LoadedEncoder, layer: int) -> int:
    """The block index of ``layer`` (negative counts from the end); out of range stops with a :class:`ForesightError`."""
    return resolve_layer(layer, loaded.depth, f"the {_FAMILIES[loaded.family].title} encoder's")


def check_geometry(loaded: LoadedEncoder, height: int, width: int) -> tuple[int, int]:
    """The patch grid ``(gh, gw)`` of ``height x width`` frames; both must be multiples of the patch size."""
    return encoder_geometry(loaded.model.config, height, width).grid


def _blocks(model: PreTrainedModel) -> nn.ModuleList:
    """The encoder's transformer blocks, in forward order."""
    if isinstance(model, Dinov2Model | Dinov2WithRegistersModel):
        return model.encoder.layer
    if isinstance(model, SiglipVisionModel):
        return model.encoder.layers
    return model.vision_model.encoder.layers


def patch_grid(loaded: LoadedEncoder, tokens: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """An encoder's token sequence ``[n, S, C]`` -> its patch grid ``[n, gh, gw, C]`` (special tokens dropped)."""
    n_special = len(loaded.dropped_tokens)
    if tokens.shape[1] != n_special + gh * gw:
        raise ForesightError(
            f"{type(loaded.model).__name__} returned {tokens.shape[1]} tokens for a {gh}x{gw} patch grid; "
            f"expected {n_special} special + {gh * gw} patch tokens"
        )
    return tokens[:, n_special:].reshape(tokens.shape[0], gh, gw, tokens.shape[2])  # raster order of patches


def _forward(loaded: LoadedEncoder, frames: torch.Tensor, block: int) -> torch.Tensor:
    """One forward of uint8 frames ``[n, H, W, 3]`` up to ``block`` -> its output ``[n, gh, gw, C]`` (model dtype and device)."""
    gh, gw = check_geometry(loaded, frames.shape[1], frames.shape[2])
    pixels = normalize(frames, loaded.norm).to(loaded.dtype)  # [n, 3, H, W]
    module = _blocks(loaded.model)[block]
    kwargs = {"interpolate_pos_encoding": True} if _FAMILIES[loaded.family].interpolate_flag else {}
    output = truncated_forward(lambda: loaded.model(pixel_values=pixels, **kwargs), [module])[module]
    tokens = output[0] if isinstance(output, tuple) else output  # [n, S, C]
    return patch_grid(loaded, tokens, gh, gw)


def extract_encoder(
    loaded: LoadedEncoder, frames: torch.Tensor | np.ndarray, layer: int, batch_frames: int, *, on_device: bool = False
) -> torch.Tensor:
    """The output of block ``layer`` for every frame as a raster grid: uint8 ``[N, H, W, 3]`` -> ``[N, H/p, W/p, C]``.

    Each frame is its own image; forwards of ``batch_frames`` frames. H and W must be multiples of the patch
    size ``p``. float32 on the CPU, or with ``on_device`` the model's dtype on its device.
    """
    block = validate_layer(loaded, layer)
    frames = torch.as_tensor(frames)  # [N, H, W, 3] uint8
    parts = []
    with torch.inference_mode():
        for start in range(0, frames.shape[0], batch_frames):
            grid = _forward(loaded, frames[start : start + batch_frames].to(loaded.device), block)  # [n, gh, gw, C]
            parts.append(grid if on_device else grid.to(device="cpu", dtype=torch.float32))
    return torch.cat(parts)


@dataclass(kw_only=True)
class EncoderExtractor(Extractor):
    """An ``encoder`` point: every frame alone through the encoder."""

    loaded: LoadedEncoder
    layer: int
    batch_frames: int

    def run(self, clips: np.ndarray) -> torch.Tensor:  # [k, F, H, W, 3] -> [k, F, gh, gw, C]
        k, f, h, w, _ = clips.shape
        grid = extract_encoder(self.loaded, clips.reshape(-1, h, w, 3), self.layer, self.batch_frames, on_device=True)
        return grid.reshape(k, f, *grid.shape[1:])


def encoder_extractor(
    name: str,
    point: EncoderPoint,
    height: int,
    width: int,
    n_frames: int,
    batch_frames: int,
    dtype: str = "auto",
    device: str = "auto",
) -> EncoderExtractor:
    """An ``encoder`` point: the output of block ``layer`` of every frame, ``[F, H/p, W/p, C]``."""
    loaded = load_encoder(point, dtype=dtype, device=device)
    validate_layer(loaded, point.layer)
    geometry = encoder_geometry(loaded.model.config, height, width)
    return EncoderExtractor(
        name=name,
        definition={**point.model_dump(), "dropped_tokens": list(geometry.special_tokens)},
        stride=geometry.stride,
        grid=(n_frames, *geometry.grid),
        channels=geometry.channels,
        slot_frames=[[f] for f in range(n_frames)],
        mode="image",
        weights=loaded.identity,
        clips_per_batch=max(1, batch_frames // n_frames),
        device=loaded.device,
        flops_per_frame=encoder_point_flops(point, loaded.model.config, height, width, n_frames, "image"),
        loaded=loaded,
        layer=point.layer,
        batch_frames=batch_frames,
    )


def encoder_point_extractor(name: str, point: EncoderPoint, context: ExtractContext) -> EncoderExtractor:
    """The ``encoder`` kind's entry point (:data:`foresight_lib.kinds.KINDS`); dtype and device from ``model``."""
    c = context
    return encoder_extractor(
        name, point, c.height, c.width, c.n_frames, c.extract.batch_frames, c.model.dtype, c.model.device
    )
