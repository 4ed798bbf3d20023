"""The one typed loader for ``params.yaml``.

Every section is a strict pydantic model: an unknown key, a wrong type or an out-of-range value
stops with a :class:`ForesightError` that names the key (``data.height``) and what is allowed.
Stages call :func:`load_params` and read only the section(s) that dvc.yaml declares for them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ForesightError

GEOMETRY_MULTIPLE = 224
"""Frame sides must be multiples of 28 (Qwen2.5-VL merge unit) and 32 (LTX-Video VAE): lcm = 224."""

POINT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --------------------------------------------------------------------------------------- data
class SyntheticParams(_Section):
    n_clips: int = Field(60, ge=3, description="clips generated (split into train/val/test)")
    min_objects: int = Field(1, ge=1, le=3)
    max_objects: int = Field(3, ge=1, le=3)
    occlusion_prob: float = Field(0.3, ge=0.0, le=1.0, description="chance a clip has a foreground occluder")

    @model_validator(mode="after")
    def _order(self) -> SyntheticParams:
        if self.min_objects > self.max_objects:
            raise ValueError(f"min_objects ({self.min_objects}) must be <= max_objects ({self.max_objects})")
        return self


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
    source: Literal["synthetic", "something_else", "coco_video"] = "synthetic"
    seed: int = 0
    height: int = Field(448, ge=GEOMETRY_MULTIPLE, le=4480)
    width: int = Field(672, ge=GEOMETRY_MULTIPLE, le=4480)
    n_frames: int = Field(9, ge=1, le=257, description="frames per clip, 1 + 8k (LTX-Video VAE rule)")
    fps: float | None = Field(None, gt=0.0, description="sample at this rate; null samples n_frames uniformly")
    resize: Literal["pad", "crop", "stretch"] = "pad"
    video_dir: str | None = None
    annotations: str | None = None
    max_clips: int | None = Field(None, ge=1, description="use at most this many annotated videos")
    max_skipped_fraction: float = Field(0.1, ge=0.0, le=1.0)
    splits: SplitParams = SplitParams()
    synthetic: SyntheticParams = SyntheticParams()

    @field_validator("height", "width")
    @classmethod
    def _multiple(cls, v: int) -> int:
        if v % GEOMETRY_MULTIPLE:
            raise ValueError(f"must be a multiple of {GEOMETRY_MULTIPLE} (28 for Qwen2.5-VL merge units, 32 for the VAE)")
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
            missing = [k for k in ("video_dir", "annotations") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"source {self.source!r} needs {' and '.join('data.' + k for k in missing)}")
        return self


# -------------------------------------------------------------------------------------- model
class ModelParams(_Section):
    source: str = Field("tiny", min_length=1, description="'tiny' (seeded random, real depths) or a local checkpoint directory")
    seed: int = 0
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"


class ExtractParams(_Section):
    mode: Literal["image", "video"] = "image"
    dtype: Literal["float16", "float32"] = "float16"
    batch_frames: int = Field(8, ge=1, le=4096, description="frames per forward pass")


# ------------------------------------------------------------------------------------- points
class VitEmbedPoint(_Section):
    kind: Literal["vit_embed"]


class VitBlockPoint(_Section):
    kind: Literal["vit_block"]
    layer: int = Field(ge=0, description="output of ViT block k (pre-merge)")


class MergerPoint(_Section):
    kind: Literal["merger"]


class LlmPoint(_Section):
    kind: Literal["llm"]
    layer: int = Field(ge=0, description="LLM hidden state after decoder layer L, at the vision tokens")


class PixelsPoint(_Section):
    kind: Literal["pixels"]
    patch: int = Field(14, ge=1, le=224, description="raw patch x patch x 3 pixels per cell: the control every feature must beat")


PointParams = Annotated[VitEmbedPoint | VitBlockPoint | MergerPoint | LlmPoint | PixelsPoint, Field(discriminator="kind")]


# -------------------------------------------------------------------------------------- probe
class ProbeParams(_Section):
    seed: int = 0
    heads: list[Literal["linear", "mlp", "dense", "detr"]] = ["linear"]
    epochs: int = Field(30, ge=1, le=10000)
    lr: float = Field(3e-3, gt=0.0, le=1.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    batch_size: int = Field(32, ge=1, le=4096)
    bootstrap: int = Field(1000, ge=0, le=100000, description="bootstrap resamples over clips for 95% intervals")


# ---------------------------------------------------------------------- ltx, adapter, eval, decision
class LtxParams(_Section):
    source: str = Field("tiny", min_length=1)
    seed: int = 0
    decode_timestep: float = Field(0.05, ge=0.0, le=1.0)
    decode_noise_scale: float = Field(0.025, ge=0.0, le=1.0)


class AdapterParams(_Section):
    seed: int = 0


class EvalParams(_Section):
    lpips_net: Literal["alex", "vgg", "squeeze"] = "alex"


class DecisionParams(_Section):
    go_iou: float = Field(0.4, ge=0.0, le=1.0)
    go_map50: float = Field(0.15, ge=0.0, le=1.0)
    nogo_iou: float = Field(0.2, ge=0.0, le=1.0)
    lpips_max: float = Field(0.35, ge=0.0, le=1.0)
    memory_overhead_max: float = Field(2.0, gt=0.0)

    @model_validator(mode="after")
    def _order(self) -> DecisionParams:
        if self.nogo_iou > self.go_iou:
            raise ValueError(f"nogo_iou ({self.nogo_iou}) must be <= go_iou ({self.go_iou})")
        return self


class Params(_Section):
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
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


_POINT_CLASSES: dict[str, type[BaseModel]] = {
    c.model_fields["kind"].annotation.__args__[0]: c
    for c in (VitEmbedPoint, VitBlockPoint, MergerPoint, LlmPoint, PixelsPoint)
}


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


def parse_params(raw: Any, origin: str = "params") -> Params:
    """Validate a params mapping; raise :class:`ForesightError` listing every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ForesightError(f"{origin}: the top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ForesightError(f"{origin}: {problems}") from None


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
