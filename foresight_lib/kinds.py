"""The extraction-point kinds: each kind's params and, in one table (:data:`KINDS`), every fact about it.

timm's ``feature_info`` is the model: one entry per kind says what makes its features, whether they are merged,
what sets the stride, the token order its module emits, its width, the proposal option of an adapter on it, where it
sorts, what its layer counts, which VLM families have it, how its extractor and FLOPs are found, and what
``check`` needs present. params, extraction, check, cost, adapters and the report read it; none repeats it.

Adding a kind: its params class and :data:`KINDS` entry here, and its extractor (``extractor``: a function
``(name, point, context) -> Extractor``, :class:`foresight_lib.extract.base.ExtractContext`). Nothing else lists
kinds; ``tests/test_kinds.py`` fails when a kind lacks an entry or an entry lacks a working extractor.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FAMILIES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")
"""VLM families (``model.family``); their facts (classes, configs, checkpoint files) are in
:mod:`foresight_lib.families`."""
Family = Literal["qwen2_5_vl", "qwen2_vl", "qwen3_vl"]


class Section(BaseModel):
    """A params section: strict types, unknown keys refused, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ------------------------------------------------------------------------------------- params of each kind
class _VlmPoint(Section):
    model: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="the models entry it is read from (null: the model section)",
    )
    weights: Literal["pretrained", "random"] = Field(
        "pretrained", description="random: a seeded random initialisation of the model's architecture (a control)"
    )


class _PreMergePoint(_VlmPoint):
    order: Literal["raster", "naive"] = Field(
        "raster", description="naive (an ablation): the token sequence reshaped to the grid as is, not un-permuted"
    )


class VitEmbedPoint(_PreMergePoint):
    kind: Literal["vit_embed"]


class VitBlockPoint(_PreMergePoint):
    kind: Literal["vit_block"]
    layer: int = Field(description="output of ViT block k (pre-merge); negative counts from the end (-1: last block)")


class MergerPoint(_VlmPoint):
    kind: Literal["merger"]


class LlmPoint(_VlmPoint):
    kind: Literal["llm"]
    layer: int = Field(
        description="LLM hidden state after decoder layer L, at the vision tokens; negative counts from the end"
    )


class DeepstackPoint(_VlmPoint):
    kind: Literal["deepstack"]
    layer: int = Field(
        description="deepstack level i (Qwen3-VL): the output of the merger of ViT block deepstack_visual_indexes[i]; "
        "negative counts from the end"
    )


class PixelsPoint(Section):
    kind: Literal["pixels"]
    patch: int = Field(
        14, ge=1, le=224, description="raw patch x patch x 3 pixels per cell: the control every feature must beat"
    )


class EncoderPoint(Section):
    kind: Literal["encoder"]
    family: Literal["dinov2", "owlvit", "owlv2", "siglip"] = Field(
        description="a dedicated vision encoder (hybrid baseline)"
    )
    layer: int = Field(
        description="output of encoder block k (transformers' hidden_states[k+1]); negative counts from the end"
    )
    source: str = Field(
        "tiny",
        min_length=1,
        description="'tiny' (seeded random, real patch size and depth) or a local checkpoint directory",
    )
    weights: Literal["pretrained", "random"] = Field(
        "pretrained",
        description="random: a seeded random initialisation of the source checkpoint's architecture (a control)",
    )
    seed: int = Field(0, description="weights of the tiny model or of the weights: random control")


class OraclePoint(Section):
    kind: Literal["oracle"]
    stride: int = Field(
        14,
        ge=1,
        le=224,
        description=(
            "cell side in pixels of the ground truth rasterised per cell (occupancy, edge distances, class): the "
            "positive control every head must read"
        ),
    )
    target: Literal["boxes", "steps"] = Field(
        "boxes",
        description="boxes: the boxes per cell; steps: the clip's step (data/steps.parquet) one-hot in every cell",
    )


# ------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class KindInfo:
    """Every fact about one point kind."""

    params: type[Section]  # its points entry
    source: Literal["vlm", "encoder", "pixels", "ground truth"]  # what makes its features
    merged: bool  # after the VLM's 2x2 merge (post-merge): the semantic side of a dual stream
    stride: str  # what sets its cell side in pixels
    token_order: str  # order of the tokens its module emits (stored grids are always raster)
    channels: str  # its width
    option: str  # the proposal's option of a `single` adapter on it
    sort: int  # model order in the report and summary (then family, layer)
    layer: str | None  # what its `layer` counts (None: no layer)
    families: tuple[Family, ...]  # VLM families that have it (empty: not read from a VLM)
    extractor: str  # "module:function" (name, point, context) -> Extractor
    flops: str | None  # "module:function" (point, config, height, width, n_frames, mode) -> FLOPs per frame
    check: Literal["vlm", "encoder", ""]  # what `check` needs present: the VLM checkpoint's files, the encoder's

    @property
    def pre_merge(self) -> bool:
        """A VLM's own pre-merge tokens: where the go/no-go rule looks."""
        return self.source == "vlm" and not self.merged


_QWEN = "foresight_lib.extract.qwen"
_FLOPS = "foresight_lib.extract.flops"
KINDS: dict[str, KindInfo] = {
    "oracle": KindInfo(
        OraclePoint, "ground truth", False, "points.<p>.stride", "raster", "5 + classes (boxes) or step labels",
        "control", -1, None, (), "foresight_lib.extract.oracle:oracle_point_extractor", None, "",
    ),
    "pixels": KindInfo(
        PixelsPoint, "pixels", False, "points.<p>.patch", "raster", "patch x patch x 3",
        "control", 0, None, (), "foresight_lib.extract.pixels:pixels_point_extractor", None, "",
    ),
    "vit_embed": KindInfo(
        VitEmbedPoint, "vlm", False, "the ViT patch", "window (Qwen2.5-VL), else merge-unit", "ViT width",
        "A", 1, None, FAMILIES, f"{_QWEN}:qwen_point_extractor", f"{_FLOPS}:qwen_flops_per_frame", "vlm",
    ),
    "vit_block": KindInfo(
        VitBlockPoint, "vlm", False, "the ViT patch", "window (Qwen2.5-VL), else merge-unit", "ViT width",
        "A", 2, "ViT blocks", FAMILIES, f"{_QWEN}:qwen_point_extractor", f"{_FLOPS}:qwen_flops_per_frame", "vlm",
    ),
    "deepstack": KindInfo(
        DeepstackPoint, "vlm", True, "the 2x2 merge unit", "merge-unit", "LLM width",
        "post-merge", 3, "deepstack levels", ("qwen3_vl",), f"{_QWEN}:qwen_point_extractor",
        f"{_FLOPS}:qwen_flops_per_frame", "vlm",
    ),
    "merger": KindInfo(
        MergerPoint, "vlm", True, "the 2x2 merge unit", "window (Qwen2.5-VL), else merge-unit", "LLM width",
        "post-merge", 4, None, FAMILIES, f"{_QWEN}:qwen_point_extractor", f"{_FLOPS}:qwen_flops_per_frame", "vlm",
    ),
    "llm": KindInfo(
        LlmPoint, "vlm", True, "the 2x2 merge unit", "text sequence", "LLM width",
        "post-merge", 5, "LLM layers", FAMILIES, f"{_QWEN}:qwen_point_extractor", f"{_FLOPS}:qwen_flops_per_frame", "vlm",
    ),
    "encoder": KindInfo(
        EncoderPoint, "encoder", False, "the encoder patch", "raster (special tokens dropped)", "encoder width",
        "hybrid", 6, "encoder blocks", (), "foresight_lib.extract.encoders:encoder_point_extractor",
        f"{_FLOPS}:encoder_point_flops", "encoder",
    ),
}  # fmt: skip


def kind_of(point: Any) -> KindInfo:
    """The table entry of a point's kind."""
    return KINDS[point.kind]


def load(ref: str) -> Callable[..., Any]:
    """The function a table entry names (``"module:function"``), imported on first use (extraction code is heavy)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)
