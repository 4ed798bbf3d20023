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

Importing this module imports neither torch nor transformers (the params loader reads the depths here); the classes
are resolved on use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ForesightError
from ..kinds import Family


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


def config_depths(config: Any) -> dict[str, int]:
    """What each kind's ``layer`` counts in ``config`` (keys: :attr:`foresight_lib.kinds.KindInfo.layer`)."""
    vision = config.vision_config
    return {
        "ViT blocks": vision.depth,
        "LLM layers": config.text_config.num_hidden_layers,
        "deepstack levels": len(getattr(vision, "deepstack_visual_indexes", None) or ()),
    }


def check_checkpoint_dir(path: Path, family: Family) -> dict[str, Any]:
    """``path``'s config.json (weights unread); stop with a :class:`ForesightError` unless it is a ``family``
    checkpoint."""
    from .checkpoints import read_json

    info = FAMILIES[family]
    if not path.is_dir():
        raise ForesightError(
            f"model.source: checkpoint directory not found: {path} (use 'tiny' or a local {info.title} directory)"
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ForesightError(f"model.source: {path} has no config.json, so it is not a transformers checkpoint")
    config = read_json(config_file)
    if config.get("model_type") != info.model_type:
        other = next((f for f, i in FAMILIES.items() if i.model_type == config.get("model_type")), None)
        hint = f"; set model.family: {other}" if other else ""
        raise ForesightError(
            f"model.source: {config_file} declares model_type {config.get('model_type')!r} "
            f"(architectures {config.get('architectures')}), not a {info.title} checkpoint "
            f"(model_type {info.model_type!r}, {info.model_class}){hint}"
        )
    return config


def load_config(family: Family, source: str) -> Any:
    """The config of ``source`` ('tiny': the family's tiny config; else a checkpoint directory's config.json)."""
    if source == "tiny":
        from .qwen import tiny_config

        return tiny_config(family)
    check_checkpoint_dir(Path(source), family)
    return FAMILIES[family].classes()[0].from_pretrained(source, local_files_only=True)


def depths(family: Family, source: str) -> dict[str, int]:
    """What each layer counts in the model ``source`` names (the tiny models have the reference depths)."""
    if source == "tiny":  # the reference's, read from its dict (no transformers import)
        vision, text = FAMILIES[family].reference["vision_config"], FAMILIES[family].reference["text_config"]
        return {
            "ViT blocks": vision["depth"],
            "LLM layers": text["num_hidden_layers"],
            "deepstack levels": len(vision.get("deepstack_visual_indexes", ())),
        }
    return config_depths(load_config(family, source))
