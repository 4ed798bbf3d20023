"""The VLM families foresight reads (``model.family``), one entry each in :data:`FAMILIES`: transformers classes,
the reference checkpoint (its id, widths and weight size: what the cost model, ``benchmarks/extract.py`` and the tests
assume where no checkpoint is present), the files ``check`` needs in a checkpoint directory, and the depths.

Every family gives the kinds ``vit_embed``, ``vit_block``, ``merger`` and ``llm``; Qwen3-VL adds ``deepstack``
(:data:`foresight_lib.kinds.KINDS`). What differs between them, all read from a config:

- Qwen2.5-VL: patch 14, window attention in all but 4 ViT blocks (tokens in window order), gated ViT MLP.
- Qwen2-VL: patch 14, full attention in every ViT block (tokens stay in merge-unit order), plain ViT MLP; its vision
  config calls the ViT width ``embed_dim`` and the merger's output ``hidden_size``.
- Qwen3-VL: patch 16 (merge unit 32 px), a learned position embedding added to the patch embedding, plain ViT MLP,
  and ``deepstack_visual_indexes`` (8, 16, 24): those blocks' outputs go through mergers of their own and are added
  into the LLM's first layers.

The params loader resolves every point's layer against the depths here, for every stage: so this module imports
neither torch, transformers nor any extraction code (the transformers classes are resolved on use), and reads a
checkpoint's depths from its config.json as JSON. :class:`VlmShape` is the one normalised view of a family's config
(the families name their widths differently) that extraction, FLOPs and the cost model read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ForesightError
from .kinds import Family

TINY_ENCODER_DEPTH = 12
"""Blocks of every family's tiny encoder (:mod:`foresight_lib.extract.encoders`): the base models' depth."""


@dataclass(frozen=True)
class FamilyInfo:
    """One VLM family."""

    title: str  # as its authors write it
    model_type: str  # config.json's model_type
    config_class: str  # transformers class names
    model_class: str
    reference_id: str  # the Hugging Face id of the reference checkpoint
    reference_weights_gb: float  # its weights in bfloat16 (what extraction holds when no checkpoint is present)
    reference: dict[str, Any]  # its config (widths, depths), for the cost model, the benchmark and the tests
    files: tuple[str, ...] = ("config.json", "*.safetensors", "preprocessor_config.json")  # check needs them
    window_attention: bool = False
    deepstack: bool = False
    notes: dict[str, str] = field(default_factory=dict)

    def classes(self) -> tuple[Any, Any]:
        """The transformers config and model classes."""
        import transformers

        return getattr(transformers, self.config_class), getattr(transformers, self.model_class)

    def reference_config(self) -> Any:
        """The reference checkpoint's config (no weights)."""
        return self.classes()[0](**self.reference)


FAMILIES: dict[Family, FamilyInfo] = {
    "qwen2_5_vl": FamilyInfo(
        title="Qwen2.5-VL",
        model_type="qwen2_5_vl",
        config_class="Qwen2_5_VLConfig",
        model_class="Qwen2_5_VLForConditionalGeneration",
        reference_id="Qwen/Qwen2.5-VL-7B-Instruct",
        reference_weights_gb=16.6,  # 8.3 B parameters
        reference={
            "vision_config": {
                "depth": 32,
                "hidden_size": 1280,
                "intermediate_size": 3420,
                "num_heads": 16,
                "out_hidden_size": 3584,
                "patch_size": 14,
                "temporal_patch_size": 2,
                "spatial_merge_size": 2,
                "window_size": 112,
                "fullatt_block_indexes": [7, 15, 23, 31],
            },
            "text_config": {
                "hidden_size": 3584,
                "num_hidden_layers": 28,
                "intermediate_size": 18944,
                "num_attention_heads": 28,
                "num_key_value_heads": 4,
            },
        },
        window_attention=True,
    ),
    "qwen2_vl": FamilyInfo(
        title="Qwen2-VL",
        model_type="qwen2_vl",
        config_class="Qwen2VLConfig",
        model_class="Qwen2VLForConditionalGeneration",
        reference_id="Qwen/Qwen2-VL-7B-Instruct",
        reference_weights_gb=16.6,  # 8.3 B parameters
        reference={
            "vision_config": {
                "depth": 32,
                "embed_dim": 1280,
                "hidden_size": 3584,
                "mlp_ratio": 4,
                "num_heads": 16,
                "patch_size": 14,
                "temporal_patch_size": 2,
                "spatial_merge_size": 2,
            },
            "text_config": {
                "hidden_size": 3584,
                "num_hidden_layers": 28,
                "intermediate_size": 18944,
                "num_attention_heads": 28,
                "num_key_value_heads": 4,
            },
        },
    ),
    "qwen3_vl": FamilyInfo(
        title="Qwen3-VL",
        model_type="qwen3_vl",
        config_class="Qwen3VLConfig",
        model_class="Qwen3VLForConditionalGeneration",
        reference_id="Qwen/Qwen3-VL-8B-Instruct",
        reference_weights_gb=17.5,  # 8.8 B parameters
        reference={
            "vision_config": {
                "depth": 27,
                "hidden_size": 1152,
                "intermediate_size": 4304,
                "num_heads": 16,
                "out_hidden_size": 4096,
                "patch_size": 16,
                "temporal_patch_size": 2,
                "spatial_merge_size": 2,
                "num_position_embeddings": 2304,
                "deepstack_visual_indexes": [8, 16, 24],
            },
            "text_config": {
                "hidden_size": 4096,
                "num_hidden_layers": 36,
                "intermediate_size": 12288,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "head_dim": 128,
            },
        },
        deepstack=True,
    ),
}


@dataclass(frozen=True)
class VlmShape:
    """One family's config, normalised (Qwen2-VL's vision config calls the ViT width ``embed_dim`` and the merger's
    output ``hidden_size``; the others ``hidden_size`` and ``out_hidden_size``)."""

    family: Family
    vit_depth: int
    vit_width: int  # d: the pre-merge channels
    vit_heads: int
    vit_mlp: int  # I: the ViT MLP's hidden width
    vit_mlp_gated: bool  # Qwen2.5-VL's SwiGLU (3 projections) or a plain MLP (2)
    patch: int  # pixels
    temporal_patch: int  # frames per temporal slot in video mode
    merge: int  # merge unit side in patches
    merged_width: int  # the merger's output: the LLM width
    window: int | None  # window side in pre-merge patches (None: full attention everywhere)
    full_attention_blocks: tuple[int, ...]  # blocks with full attention when ``window`` is set
    deepstack_blocks: tuple[int, ...]  # ViT blocks whose outputs feed the deepstack mergers (Qwen3-VL)
    llm_layers: int
    llm_width: int
    llm_mlp: int
    llm_heads: int
    llm_kv_heads: int
    llm_head_dim: int

    @property
    def depths(self) -> dict[str, int]:
        """What each kind's ``layer`` counts (keys: :attr:`foresight_lib.kinds.KindInfo.layer`)."""
        return {
            "ViT blocks": self.vit_depth,
            "LLM layers": self.llm_layers,
            "deepstack levels": len(self.deepstack_blocks),
        }

    def cell(self, kind: str) -> tuple[int, int]:
        """``(stride in pixels, channels)`` of a VLM point of ``kind``: pre-merge kinds one patch of the ViT width;
        ``merger`` and ``deepstack`` one merge unit of the merged width; ``llm`` one merge unit of the LLM width."""
        if kind in ("vit_embed", "vit_block"):
            return self.patch, self.vit_width
        if kind in ("merger", "deepstack"):
            return self.patch * self.merge, self.merged_width
        if kind == "llm":
            return self.patch * self.merge, self.llm_width
        raise ForesightError(f"{kind!r} points are not read from a VLM")


def _get(section: Any, key: str, default: Any = None) -> Any:
    return section.get(key, default) if isinstance(section, dict) else getattr(section, key, default)


def family_of(config: Any) -> Family:
    """The family of a config (transformers object or dict) by its ``model_type``."""
    model_type = _get(config, "model_type")
    for family, info in FAMILIES.items():
        if info.model_type == model_type:
            return family
    raise ForesightError(f"model_type {model_type!r} is none of the VLM families ({', '.join(FAMILIES)})")


def shape_of(family: Family, config: Any) -> VlmShape:
    """The normalised view of a ``family`` config: a transformers config, or its dict (a config.json's, or
    :attr:`FamilyInfo.reference`)."""
    vision, text = _get(config, "vision_config"), _get(config, "text_config")
    if family == "qwen2_vl":
        width, merged = _get(vision, "embed_dim"), _get(vision, "hidden_size")
        mlp = int(width * _get(vision, "mlp_ratio"))
    else:
        width, merged, mlp = (
            _get(vision, "hidden_size"),
            _get(vision, "out_hidden_size"),
            _get(vision, "intermediate_size"),
        )
    patch = _get(vision, "patch_size")
    window = _get(vision, "window_size") if FAMILIES[family].window_attention else None
    heads = _get(text, "num_attention_heads")
    return VlmShape(
        family=family,
        vit_depth=_get(vision, "depth"),
        vit_width=width,
        vit_heads=_get(vision, "num_heads"),
        vit_mlp=mlp,
        vit_mlp_gated=family == "qwen2_5_vl",
        patch=patch,
        temporal_patch=_get(vision, "temporal_patch_size"),
        merge=_get(vision, "spatial_merge_size"),
        merged_width=merged,
        window=None if window is None else window // patch,
        full_attention_blocks=tuple(_get(vision, "fullatt_block_indexes", None) or ()),
        deepstack_blocks=tuple(_get(vision, "deepstack_visual_indexes", None) or ()),
        llm_layers=_get(text, "num_hidden_layers"),
        llm_width=_get(text, "hidden_size"),
        llm_mlp=_get(text, "intermediate_size"),
        llm_heads=heads,
        llm_kv_heads=_get(text, "num_key_value_heads"),
        llm_head_dim=_get(text, "head_dim", None) or _get(text, "hidden_size") // heads,
    )


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ForesightError(f"{path}: cannot read it as JSON ({err})") from None


def check_checkpoint_dir(path: Path, family: Family) -> dict[str, Any]:
    """``path``'s config.json as a dict (weights unread); stop with a :class:`ForesightError` unless it is a
    ``family`` checkpoint."""
    info = FAMILIES[family]
    if not path.is_dir():
        raise ForesightError(
            f"model.source: checkpoint directory not found: {path} (use 'tiny' or a local {info.title} directory)"
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ForesightError(f"model.source: {path} has no config.json, so it is not a transformers checkpoint")
    config = _read_json(config_file)
    if config.get("model_type") != info.model_type:
        other = next((f for f, i in FAMILIES.items() if i.model_type == config.get("model_type")), None)
        hint = f"; set model.family: {other}" if other else ""
        raise ForesightError(
            f"model.source: {config_file} declares model_type {config.get('model_type')!r} "
            f"(architectures {config.get('architectures')}), not a {info.title} checkpoint "
            f"(model_type {info.model_type!r}, {info.model_class}){hint}"
        )
    return config


def shape(family: Family, source: str) -> VlmShape:
    """The shape of the model ``source`` names ('tiny': the reference's depths; else the checkpoint's config.json)."""
    if source == "tiny":
        return shape_of(family, FAMILIES[family].reference)
    return shape_of(family, check_checkpoint_dir(Path(source), family))


def encoder_depth(source: str) -> int:
    """Blocks of an encoder ``source`` ('tiny' or a checkpoint directory: its config.json's vision tower)."""
    if source == "tiny":
        return TINY_ENCODER_DEPTH
    config_file = Path(source) / "config.json"
    if not config_file.is_file():
        raise ForesightError(f"encoder source: {source} has no config.json")
    config = _read_json(config_file)
    depth = _get(config.get("vision_config") or config, "num_hidden_layers")
    if not isinstance(depth, int):
        raise ForesightError(f"encoder source: {config_file} gives no num_hidden_layers")
    return depth
