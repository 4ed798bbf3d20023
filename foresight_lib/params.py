"""The one typed loader for ``params.yaml``.

Every section is a strict pydantic model: an unknown key, a wrong type or an out-of-range value
stops with a :class:`ForesightError` that names the key (``data.height``) and what is allowed.
Stages call :func:`load_params` and read only the section(s) that dvc.yaml declares for them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ForesightError
from .kinds import (  # the point classes live with their kinds' table; imported from here by the rest
    FAMILIES,
    KINDS,
    DeepstackPoint,
    EncoderPoint,
    Family,
    LlmPoint,
    MergerPoint,
    OraclePoint,
    PixelsPoint,
    Section,
    VitBlockPoint,
    VitEmbedPoint,
)

__all__ = [
    "DeepstackPoint",
    "EncoderPoint",
    "LlmPoint",
    "MergerPoint",
    "OraclePoint",
    "PixelsPoint",
    "VitBlockPoint",
    "VitEmbedPoint",
]

GEOMETRY_MULTIPLE = 224
"""Frame sides must be multiples of 28 (Qwen2.5-VL merge unit) and 32 (LTX-Video VAE): lcm = 224."""

SYNTHETIC_INPUTS = ("foresight_lib/data", "foresight_lib/data/synthetic.py")
"""``data.video_dir`` and ``data.annotations`` of the synthetic source, which reads no input: dvc.yaml makes both
paths deps of ``frames`` (DVC cannot depend on a null path), so they name the generator's own code."""

POINT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


_Section = Section


# --------------------------------------------------------------------------------------- data
class SyntheticParams(_Section):
    n_clips: int = Field(64, ge=3, description="clips generated (split into train/val/test)")
    min_objects: int = Field(1, ge=1, le=3)
    max_objects: int = Field(3, ge=1, le=3)
    occlusion_prob: float = Field(0.3, ge=0.0, le=1.0, description="chance a clip has a foreground occluder")

    @model_validator(mode="after")
    def _order(self) -> SyntheticParams:
        if self.min_objects > self.max_objects:
            raise ValueError(f"min_objects ({self.min_objects}) must be <= max_objects ({self.max_objects})")
        return self


class CoinParams(_Section):
    clips_per_segment: int = Field(
        1, ge=1, description="clips sampled per annotated segment: the segment cut into this many equal windows"
    )


class SplitParams(_Section):
    train: float = Field(0.6, gt=0.0, lt=1.0)
    val: float = Field(0.2, gt=0.0, lt=1.0)
    test: float = Field(0.2, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _sum(self) -> SplitParams:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1 (got {self.train + self.val + self.test:g})")
        return self


class DataParams(_Section):
    source: Literal["synthetic", "something_else", "coco_video", "coin"] = "synthetic"
    seed: int = 0
    height: int = Field(224, ge=GEOMETRY_MULTIPLE, le=4480)
    width: int = Field(448, ge=GEOMETRY_MULTIPLE, le=4480)
    n_frames: int = Field(9, ge=1, le=257, description="frames per clip, 1 + 8k (LTX-Video VAE rule)")
    fps: float | None = Field(None, gt=0.0, description="sample at this rate; null samples n_frames uniformly")
    resize: Literal["pad", "crop", "stretch"] = "pad"
    video_dir: str = Field(
        SYNTHETIC_INPUTS[0],
        min_length=1,
        description="real sources: the videos' directory; frames depends on it (synthetic: unused, an existing path)",
    )
    annotations: str = Field(
        SYNTHETIC_INPUTS[1],
        min_length=1,
        description="real sources: the box annotations (file or directory); frames depends on it (synthetic: unused)",
    )
    max_clips: int | None = Field(None, ge=1, description="use at most this many annotated videos")
    max_skipped_fraction: float = Field(0.1, ge=0.0, le=1.0)
    splits: SplitParams = SplitParams()
    synthetic: SyntheticParams = SyntheticParams()
    coin: CoinParams = CoinParams()

    @field_validator("height", "width")
    @classmethod
    def _multiple(cls, v: int) -> int:
        if v % GEOMETRY_MULTIPLE:
            raise ValueError(
                f"must be a multiple of {GEOMETRY_MULTIPLE} (28 for Qwen2.5-VL merge units, 32 for the VAE)"
            )
        return v

    @field_validator("n_frames")
    @classmethod
    def _one_plus_8k(cls, v: int) -> int:
        if (v - 1) % 8:
            raise ValueError("must be 1 + 8k (1, 9, 17, ...), the LTX-Video VAE's clip rule")
        return v

    @model_validator(mode="after")
    def _paths(self) -> DataParams:
        if self.source != "synthetic":
            missing = [k for k, v in zip(("video_dir", "annotations"), SYNTHETIC_INPUTS) if getattr(self, k) == v]
            if missing:
                raise ValueError(
                    f"source {self.source!r} needs {' and '.join('data.' + k for k in missing)} "
                    "(the defaults stand in for the synthetic source, which reads no files)"
                )
        return self


# -------------------------------------------------------------------------------------- model
class ModelParams(_Section):
    family: Family = Field("qwen2_5_vl", description=f"the VLM family: {', '.join(FAMILIES)}")
    source: str = Field(
        "tiny", min_length=1, description="'tiny' (seeded random, real depths) or a local checkpoint directory"
    )
    seed: int = 0
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"


class ExtractParams(_Section):
    mode: Literal["image", "video"] = "image"
    dtype: Literal["float16", "float32"] = "float16"
    batch_frames: int = Field(18, ge=1, le=4096, description="frames per forward pass")


# ------------------------------------------------------------------------------------- points
PointParams = Annotated[
    Union[tuple(info.params for info in KINDS.values())],  # noqa: UP007 (a union built from the table)
    Field(discriminator="kind"),
]
"""One ``points`` entry: the params class of its kind (:data:`foresight_lib.kinds.KINDS`)."""


# -------------------------------------------------------------------------------------- probe
class ProbeParams(_Section):
    """Probes trained on stored grids (``foresight_lib/probes``); every head sees only the grid, its stride and slots."""

    seed: int = Field(0, description="sample order, the shuffled control's permutations and the bootstrap")
    seeds: list[int] = Field(
        [0],
        min_length=1,
        max_length=100,
        description="initialisation seeds of every head: each trained and tested (batch order shared)",
    )
    heads: list[Literal["linear", "mlp", "dense", "detr"]] = Field(
        ["linear", "dense"], min_length=1, description="spatial heads, each also run on the shuffled control"
    )
    steps: int = Field(
        800,
        ge=1,
        le=10_000_000,
        description="optimiser steps budget of every spatial head (cosine decay over it), whatever the clip count",
    )
    val_every: int = Field(
        50, ge=1, le=1_000_000, description="spatial heads: validate (and keep the best weights) every this many steps"
    )
    patience: int = Field(
        4,
        ge=0,
        le=100_000,
        description="spatial heads: a trainee stops after this many validations without a better score (0: never)",
    )
    temporal_epochs: int = Field(30, ge=1, le=10000, description="training epochs of the temporal heads")
    lrs: list[float] = Field(
        [1e-2],
        min_length=1,
        max_length=20,
        description=(
            "AdamW peak learning rates (cosine decay over the steps), each trained; selected per head on validation"
        ),
    )
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    batch_size: int = Field(8, ge=1, le=4096, description="samples (clip, slot) or pairs per optimiser step")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present, else the CPU")
    width: int = Field(32, ge=4, le=4096, description="hidden width of the mlp, dense, detr and temporal heads")
    score_thresholds: list[float] = Field(
        [0.3, 0.5, 0.7, 0.85, 0.95, 0.98],
        min_length=1,
        max_length=50,
        description="operating-point grid: bbox IoU counts the detections scoring at least one of these, chosen per "
        "trainee on validation",
    )
    max_boxes: list[int] = Field(
        [1, 2, 3, 4, 6, 100],
        min_length=1,
        max_length=50,
        description="operating-point grid: at most this many counted boxes per frame (highest scores), chosen per "
        "trainee on validation with the threshold; also the prior's box count",
    )
    min_score: float = Field(
        0.05, ge=0.0, le=1.0, description="decoded detections below this score are dropped (mAP floor)"
    )
    max_detections: int = Field(
        100, ge=1, le=100, description="detections kept per frame, highest score first (COCO maxDets)"
    )
    nms_iou: float = Field(0.5, gt=0.0, le=1.0, description="IoU above which the grid heads' NMS suppresses a box")
    detr_queries: int = Field(10, ge=1, le=100, description="object queries of the detr head")
    detr_layers: int = Field(2, ge=1, le=12, description="transformer decoder layers of the detr head")
    order_triplets: int = Field(
        9, ge=1, le=1000, description="frame-order slot triplets (i, i + g, i + 2g) drawn per clip (9 slots: 9 exist)"
    )
    block_clips: int = Field(
        8, ge=1, le=4096, description="clips shuffled together per block (fixes the sample order) and read at once"
    )
    gpu_memory_gb: float = Field(
        8.0, ge=0.0, le=10_000.0, description="GPU memory for float16 features: a split that fits is held on the GPU"
    )
    host_memory_gb: float = Field(
        4.0,
        ge=0.0,
        le=100_000.0,
        description=(
            "host RAM for float16 features: a split that fits (and not the GPU) is held here, else it is streamed"
        ),
    )
    bootstrap: int = Field(
        1000, ge=0, le=100000, description="bootstrap resamples over clips for IoU and accuracy 95% intervals"
    )
    bootstrap_map: int = Field(
        100,
        ge=0,
        le=100000,
        description="bootstrap resamples for mAP 95% intervals (class-agnostic and class-aware AP re-accumulated each)",
    )
    threads: int = Field(
        2,
        ge=1,
        le=256,
        description="CPU threads while probing: the trainees of a pass step concurrently, each torch op on one "
        "thread, so the numbers do not depend on this (CUDA: ignored)",
    )

    @field_validator("heads")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"heads must not repeat (got {v})")
        return v

    @field_validator("lrs")
    @classmethod
    def _lrs(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not 0.0 < x <= 1.0]
        if bad:
            raise ValueError(f"every learning rate must be in (0, 1] (got {bad[0]})")
        if len(set(v)) != len(v):
            raise ValueError(f"learning rates must not repeat (got {v})")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must not repeat (got {v})")
        return v

    @field_validator("width")
    @classmethod
    def _width(cls, v: int) -> int:
        if v % 4:
            raise ValueError("must be a multiple of 4 (detr's 4 attention heads and its 2-D sine encoding)")
        return v

    @field_validator("score_thresholds")
    @classmethod
    def _thresholds(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not 0.0 < x <= 1.0]
        if bad:
            raise ValueError(f"every score threshold must be in (0, 1] (got {bad[0]})")
        if len(set(v)) != len(v):
            raise ValueError(f"score thresholds must not repeat (got {v})")
        return v

    @field_validator("max_boxes")
    @classmethod
    def _max_boxes(cls, v: list[int]) -> list[int]:
        bad = [x for x in v if x < 1]
        if bad:
            raise ValueError(f"every box count must be >= 1 (got {bad[0]})")
        if len(set(v)) != len(v):
            raise ValueError(f"box counts must not repeat (got {v})")
        return v

    @model_validator(mode="after")
    def _scores(self) -> ProbeParams:
        if self.min_score > min(self.score_thresholds):
            raise ValueError(
                f"min_score ({self.min_score}) must be <= every score_thresholds entry (got {min(self.score_thresholds)})"
            )
        if max(self.max_boxes) > self.max_detections:
            raise ValueError(
                f"max_boxes entries must be <= max_detections ({self.max_detections}; got {max(self.max_boxes)})"
            )
        if self.val_every > self.steps:
            raise ValueError(f"val_every ({self.val_every}) must be <= steps ({self.steps})")
        return self


# ---------------------------------------------------------------------- ltx, adapter, eval, decision
class LtxParams(_Section):
    """The LTX-Video VAE (``foresight_lib/ltx``): which weights, where they run, how latents are stored and decoded."""

    source: str = Field(
        "tiny",
        min_length=1,
        description="'tiny' (seeded random VAE, real interface) or a local LTX-Video checkpoint directory",
    )
    seed: int = Field(0, description="weights of the tiny VAE, and the decode noise (one generator per clip)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bfloat16 on GPU, float32 on CPU"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_clips: int = Field(1, ge=1, le=1024, description="clips per VAE encode call")
    latents_dtype: Literal["float32", "float16"] = Field("float32", description="storage dtype of latents/latents.zarr")
    decode_timestep: float = Field(0.05, ge=0.0, le=1.0, description="temb of a timestep-conditioned (0.9.1+) decoder")
    decode_noise_scale: float = Field(
        0.025, ge=0.0, le=1.0, description="noise mixed into the latents before a timestep-conditioned decode"
    )


class AdapterTrainParams(_Section):
    seed: int = Field(0, description="initial weights and the order of training clips")
    epochs: int = Field(10, ge=1, le=10000, description="the epoch with the lowest validation loss is kept")
    lr: float = Field(2e-3, gt=0.0, le=1.0, description="AdamW learning rate")
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    batch_size: int = Field(4, ge=1, le=4096, description="clips per optimiser step")
    pixel_loss_weight: float = Field(
        0.0,
        ge=0.0,
        le=1000.0,
        description=(
            "weight of an MSE on frames decoded differentiably (no noise) from the predicted latents; 0: latent MSE only"
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    autocast: bool = Field(
        True, description="bfloat16 autocast of forward and loss on CUDA (no effect on CPU: float32)"
    )
    checkpointing: bool = Field(
        False,
        description=(
            "recompute the token-resolution stream (per-token layer, temporal pool, resampling: dual_stream's spatial "
            "stream, single's and multi_scale's input stream) in the backward pass instead of storing its activations"
        ),
    )
    gpu_memory_gb: float = Field(
        8.0, ge=0.0, le=10_000.0, description="GPU memory for an input store's float16 features (held there if it fits)"
    )
    host_memory_gb: float = Field(
        4.0,
        ge=0.0,
        le=100_000.0,
        description="host RAM for input features (held there if it fits), else read per batch",
    )


class SingleAdapterParams(_Section):
    """The proposal's adapter: per-token MLP from one point to the 128 latent channels."""

    point: str = Field(pattern=POINT_NAME.pattern, description="the points entry it reads")
    hidden: int = Field(256, ge=8, le=8192, description="width of the token MLP and of the head")
    subcells: Literal[1, 2, 4] = Field(
        2, description="sub-cells per side of each 32 px latent cell kept by the resampling"
    )
    context: Literal[1, 3, 5] = Field(1, description="latent cells per side the head's output layer sees (1: per cell)")

    def inputs(self) -> dict[str, str]:
        """Input roles and the points they read."""
        return {"point": self.point}


class MultiScaleAdapterParams(_Section):
    """Option C: several points of one stride mixed by learned softmax-normalised weights, then ``single``'s head."""

    points: list[Annotated[str, Field(pattern=POINT_NAME.pattern)]] = Field(
        min_length=1, description="points entries of one stride (e.g. ViT blocks 7, 15, 23, 31)"
    )
    hidden: int = Field(256, ge=8, le=8192, description="width of the token MLP and of the head")
    subcells: Literal[1, 2, 4] = Field(
        2, description="sub-cells per side of each 32 px latent cell kept by the resampling"
    )
    context: Literal[1, 3, 5] = Field(1, description="latent cells per side the head's output layer sees (1: per cell)")

    @field_validator("points")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"must not repeat a point (got {v})")
        return v

    def inputs(self) -> dict[str, str]:
        """Input roles (``scale0``, ``scale1``, ... in list order) and the points they read."""
        return {f"scale{i}": point for i, point in enumerate(self.points)}


class DualStreamAdapterParams(_Section):
    """Spatial stream (pre-merge point) and semantic stream (merger or LLM point), fused by gated cross-attention."""

    spatial: str = Field(pattern=POINT_NAME.pattern, description="a pre-merge points entry (not merger or llm)")
    semantic: str = Field(pattern=POINT_NAME.pattern, description="a merger or llm points entry")
    dim: int = Field(128, ge=8, le=8192, description="width of both streams and of the attention")
    heads: int = Field(4, ge=1, le=64, description="attention heads; must divide dim")
    subcells: Literal[1, 2, 4] = Field(
        2, description="sub-cells per side of each 32 px latent cell kept from the spatial stream"
    )
    context: Literal[1, 3, 5] = Field(1, description="latent cells per side the head's output layer sees (1: per cell)")
    gate_init: float = Field(
        0.0, ge=-10.0, le=10.0, description="initial per-channel gate of the spatial stream (0: starts semantic-only)"
    )

    @model_validator(mode="after")
    def _heads(self) -> DualStreamAdapterParams:
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        return self

    def inputs(self) -> dict[str, str]:
        """Input roles and the points they read."""
        return {"spatial": self.spatial, "semantic": self.semantic}


ADAPTER_KINDS = ("single", "dual_stream", "multi_scale")
MERGED_KINDS = tuple(kind for kind, info in KINDS.items() if info.merged)


class AdapterParams(_Section):
    """Adapters from VLM features to LTX-Video latents; one train/decode/recon chain per entry of each kind."""

    train: AdapterTrainParams = AdapterTrainParams()
    single: dict[str, SingleAdapterParams] = {}
    dual_stream: dict[str, DualStreamAdapterParams] = {}
    multi_scale: dict[str, MultiScaleAdapterParams] = {}

    @model_validator(mode="after")
    def _names(self) -> AdapterParams:
        kinds = {kind: getattr(self, kind) for kind in ADAPTER_KINDS}
        for name in (n for entries in kinds.values() for n in entries):
            if not POINT_NAME.match(name):
                raise ValueError(
                    f"adapter name {name!r} must match {POINT_NAME.pattern} (it names files and DVC stages)"
                )
        for name in sorted({n for entries in kinds.values() for n in entries}):
            where = [kind for kind, entries in kinds.items() if name in entries]
            if len(where) > 1:
                raise ValueError(f"adapter names must be unique across kinds ({name!r} in {' and '.join(where)})")
        return self


class Phase2Criteria(_Section):
    """Phase 2 success criteria, evaluated per adapter: target, acceptable (and a hard parameter limit)."""

    iou_target: float = Field(0.6, ge=0.0, le=1.0, description="spatial IoU on decoded frames must exceed this")
    iou_acceptable: float = Field(0.5, ge=0.0, le=1.0)
    lpips_target: float = Field(
        0.30, ge=0.0, le=2.0, description="LPIPS of decoded vs original frames must be below this"
    )
    lpips_acceptable: float = Field(0.35, ge=0.0, le=2.0)
    params_target: int = Field(15_000_000, ge=1, description="trainable adapter parameters, at most")
    params_acceptable: int = Field(25_000_000, ge=1)
    params_limit: int = Field(50_000_000, ge=1, description="above this the adapter fails")
    steps_target: int = Field(
        50_000, ge=1, description="optimiser steps to the selected epoch, below this (and no divergence)"
    )
    steps_acceptable: int = Field(100_000, ge=1, description="above: marginal; a divergent run fails")

    @model_validator(mode="after")
    def _order(self) -> Phase2Criteria:
        if self.iou_acceptable > self.iou_target:
            raise ValueError(f"iou_acceptable ({self.iou_acceptable}) must be <= iou_target ({self.iou_target})")
        if self.lpips_acceptable < self.lpips_target:
            raise ValueError(
                f"lpips_acceptable ({self.lpips_acceptable}) must be >= lpips_target ({self.lpips_target})"
            )
        if not self.params_target <= self.params_acceptable <= self.params_limit:
            raise ValueError("params_target <= params_acceptable <= params_limit must hold")
        if self.steps_acceptable < self.steps_target:
            raise ValueError(
                f"steps_acceptable ({self.steps_acceptable}) must be >= steps_target ({self.steps_target})"
            )
        return self


class EvalParams(_Section):
    """Reconstruction evaluation of decoded frames (``foresight_lib/adapters/recon.py``)."""

    lpips_net: Literal["alex", "vgg", "squeeze"] = "alex"
    sheet_clips: int = Field(3, ge=1, le=64, description="test clips shown in each adapter's PNG sheet")
    seed: int = Field(0, description="bootstrap draws")
    bootstrap: int = Field(
        1000, ge=0, le=100000, description="resamples over clips for the 95% intervals of means and IoU"
    )
    bootstrap_map: int = Field(50, ge=0, le=100000, description="resamples for mAP 95% intervals")
    detector_point: str = Field(
        "pixels",
        min_length=1,
        description="a pixels point whose trained probe finds boxes on original and decoded frames",
    )
    detector_head: Literal["linear", "mlp", "dense", "detr"] = "dense"
    phase2: Phase2Criteria = Phase2Criteria()


class DecisionParams(_Section):
    go_iou: float = Field(0.4, ge=0.0, le=1.0)
    go_map50: float = Field(0.15, ge=0.0, le=1.0)
    nogo_iou: float = Field(0.2, ge=0.0, le=1.0)
    lpips_max: float = Field(0.35, ge=0.0, le=1.0)
    memory_overhead_max: float = Field(2.0, gt=0.0)
    map_kind: Literal["class_agnostic", "class_aware"] = Field(
        "class_agnostic", description="which mAP@0.5 the rule reads: a spatial probe's is class-agnostic by default"
    )
    selectivity_margin: float = Field(
        0.1, ge=0.0, le=1.0, description="GO needs the lower bound of IoU minus the shuffled control's IoU above this"
    )
    oracle_min_iou: float = Field(
        0.85, ge=0.0, le=1.0, description="a head whose oracle-point IoU is below this cannot decide (INCONCLUSIVE)"
    )
    oracle_min_step_accuracy: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="the step probes count only if they read a steps oracle point at this step accuracy (else: gated)",
    )
    min_test_clips: int = Field(
        10,
        ge=2,
        le=1_000_000,
        description=(
            "fewer test clips (holding ground truth) than this give INCONCLUSIVE: below 10 the 95% intervals' "
            "simulated coverage falls to 89-91% where some clips fail outright (tests/test_metrics_coverage.py)"
        ),
    )

    @model_validator(mode="after")
    def _order(self) -> DecisionParams:
        if self.nogo_iou > self.go_iou:
            raise ValueError(f"nogo_iou ({self.nogo_iou}) must be <= go_iou ({self.go_iou})")
        return self


class Params(_Section):
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    models: dict[str, ModelParams] = {}
    extract: ExtractParams = ExtractParams()
    points: dict[str, PointParams] = {}
    probe: ProbeParams = ProbeParams()
    adapter: AdapterParams = AdapterParams()
    ltx: LtxParams = LtxParams()
    eval: EvalParams = EvalParams()
    decision: DecisionParams = DecisionParams()

    @field_validator("points")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not POINT_NAME.match(name):
                raise ValueError(f"point name {name!r} must match {POINT_NAME.pattern} (it names files and DVC stages)")
        return v

    @model_validator(mode="after")
    def _point_models(self) -> Params:
        for name, point in self.points.items():
            info, model = KINDS[point.kind], getattr(point, "model", None)
            if model is not None and model not in self.models:
                defined = ", ".join(self.models) or "none"
                raise ValueError(f"points.{name}.model: {model!r} is not in models (defined: {defined})")
            family = self.model_of(point).family
            if info.families and family not in info.families:
                where = "model.family" if model is None else f"models.{model}.family"
                raise ValueError(
                    f"points.{name}.kind: {point.kind} points are read from {', '.join(info.families)} models, "
                    f"not {family} ({where})"
                )
        return self

    def model_of(self, point: PointParams) -> ModelParams:
        """The model a VLM point is read from: its ``models`` entry, else the ``model`` section."""
        name = getattr(point, "model", None)
        return self.model if name is None else self.models[name]

    @model_validator(mode="after")
    def _oracle_stride(self) -> Params:
        for name, point in self.points.items():
            if isinstance(point, OraclePoint) and (self.data.height % point.stride or self.data.width % point.stride):
                raise ValueError(
                    f"points.{name}.stride: {point.stride} must divide data.height ({self.data.height}) "
                    f"and data.width ({self.data.width})"
                )
        return self


_POINT_CLASSES: dict[str, type[BaseModel]] = {kind: info.params for kind, info in KINDS.items()}


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"] if p not in _POINT_CLASSES)
    kinds = ", ".join(_POINT_CLASSES)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed(tuple(err["loc"]))
        return f"{loc}: unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "missing":
        return f"{loc}: required key is missing"
    if kind == "union_tag_invalid":
        return f"{loc}.kind: must be one of {kinds} (got {err['input'].get('kind')!r})"
    if kind == "union_tag_not_found":
        return f"{loc}: needs a 'kind' ({kinds})"
    msg = err["msg"].removeprefix("Value error, ")
    got = "" if isinstance(err["input"], dict | list) else f" (got {err['input']!r})"
    if not loc and msg.split(".")[0] in Params.model_fields:  # a cross-section check names its own key
        return f"{msg}{got}"
    return f"{loc or '<top level>'}: {msg}{got}"


def _allowed(loc: tuple[Any, ...]) -> list[str] | None:
    """Keys allowed at the parent of ``loc``, for 'unknown key' messages."""
    cls: Any = Params
    parts = list(loc[:-1])
    while parts:
        part = parts.pop(0)
        if cls is Params and part == "points":
            if len(parts) < 2:  # a point name, then its kind tag
                return None
            cls = _POINT_CLASSES[parts[1]]
            parts = parts[2:]
            continue
        field = cls.model_fields.get(part)
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        cls = field.annotation
    return sorted(cls.model_fields)


def stride_class(point: PointParams) -> tuple[str, str]:
    """What fixes a point's grid stride: ``(maker, value)``; two points of one maker and different values have
    different strides (:data:`foresight_lib.kinds.KINDS`' ``stride``). Across makers (e.g. pixels vs the ViT patch, or
    two models) it is known only from the stores, where :func:`..adapters.train.open_data` checks it."""
    info = KINDS[point.kind]
    if info.source == "vlm":
        return f"model {getattr(point, 'model', None) or 'model'}", info.stride
    if isinstance(point, PixelsPoint):
        return "pixels", f"{point.patch} px patches"
    if isinstance(point, OraclePoint):
        return "oracle", f"{point.stride} px cells"
    return "encoder", f"the {point.family} patch of {point.source}"


def adapter_input_problems(params: Params) -> list[str]:
    """Each adapter's input points checked against ``points``: each must exist; a dual stream's ``semantic`` must
    be a merger or llm point and its ``spatial`` not; a multi_scale's points must share one stride."""
    problems = []
    defined = ", ".join(params.points) or "none"
    for kind in ADAPTER_KINDS:
        for name, spec in getattr(params.adapter, kind).items():
            key = f"adapter.{kind}.{name}"
            roles = spec.inputs()
            field = {role: ("points" if kind == "multi_scale" else role) for role in roles}
            missing = [(role, p) for role, p in roles.items() if p not in params.points]
            for role, p in missing:
                problems.append(f"{key}.{field[role]}: {p!r} is not in points (defined: {defined})")
            if missing:
                continue
            point_kind = {role: params.points[p].kind for role, p in roles.items()}
            if kind == "dual_stream" and point_kind["semantic"] not in MERGED_KINDS:
                problems.append(
                    f"{key}.semantic: {spec.semantic!r} is a {point_kind['semantic']} point; the semantic "
                    "stream needs a merger or llm point"
                )
            if kind == "dual_stream" and point_kind["spatial"] in MERGED_KINDS:
                problems.append(
                    f"{key}.spatial: {spec.spatial!r} is a {point_kind['spatial']} point; the spatial "
                    "stream needs a pre-merge point (vit_embed, vit_block, pixels, ...)"
                )
            if kind == "multi_scale":
                first = spec.points[0]
                family, value = stride_class(params.points[first])
                for other in spec.points[1:]:
                    other_family, other_value = stride_class(params.points[other])
                    if other_family == family and other_value != value:
                        problems.append(
                            f"{key}.points: {first!r} (stride of {value}) and {other!r} (stride of "
                            f"{other_value}) have different strides; the points must share one"
                        )
                        break
    return problems


def point_depth(params: Params, name: str, point: PointParams) -> tuple[int, str, str] | None:
    """What ``points.<name>.layer`` indexes: ``(depth, what, source)`` (e.g. ``(32, "ViT blocks", "model.source
    'tiny'")``) from the tiny model or the checkpoint's config.json (no weights); None for a kind without layers.
    An unreadable checkpoint raises :class:`ForesightError` naming its key."""
    what = KINDS[point.kind].layer
    if what is None:
        return None
    from .families import encoder_depth, shape

    if isinstance(point, EncoderPoint):
        source = f"points.{name}.source {point.source!r}"
        try:
            depth = encoder_depth(point.source)
        except ForesightError as err:
            raise ForesightError(str(err).replace("encoder source:", f"points.{name}.source:", 1)) from None
        return depth, f"{point.family} blocks", source
    key = "model" if getattr(point, "model", None) is None else f"models.{point.model}"
    model = params.model_of(point)
    try:
        found = shape(model.family, model.source).depths
    except ForesightError as err:
        raise ForesightError(str(err).replace("model.source:", f"{key}.source:", 1)) from None
    return found[what], what, f"{key}.source {model.source!r} ({model.family})"


def resolve_layers(params: Params) -> Params:
    """``params`` with every layer counted from the start: a negative layer counts from the end of what it indexes
    (-1: the last), resolved here once, so every stage, the cost model and the report read one meaning. A layer past
    the depth stops with its key. A checkpoint that cannot be read leaves its points' layers as written (the
    ``validate`` stage names the problem)."""
    points = dict(params.points)
    for name, point in params.points.items():
        try:
            found = point_depth(params, name, point)
        except ForesightError:
            continue
        if found is None:
            continue
        depth, what, source = found
        if not -depth <= point.layer < depth:
            raise ForesightError(
                f"points.{name}.layer: {point.layer} is past the {depth} {what} of {source} "
                f"(valid: 0..{depth - 1}, or -{depth}..-1 from the end)"
            )
        if point.layer < 0:
            points[name] = point.model_copy(update={"layer": point.layer % depth})
    return params.model_copy(update={"points": points})


def parse_params(raw: Any, origin: str = "params") -> Params:
    """Validate a params mapping (each section, then the adapters' input points against ``points``); raise
    :class:`ForesightError` listing every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ForesightError(f"{origin}: the top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ForesightError(f"{origin}: {problems}") from None
    problems = adapter_input_problems(params)
    if problems:
        raise ForesightError(f"{origin}: {'; '.join(problems)}")
    try:
        return resolve_layers(params)
    except ForesightError as err:
        raise ForesightError(f"{origin}: {err}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.is_file():
        raise ForesightError(f"params file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ForesightError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, origin=str(path))
