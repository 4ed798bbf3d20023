"""The cost model of a params profile: the disk every store takes and the GPU-hours of extraction and probing.

    python -m foresight_lib.check --cost profiles/real.yaml

**Disk** is exact for the uncompressed arrays: each store's shape (from the data geometry, the points'
grids and the models' configs) times its dtype's item size, as the stages write them:

- ``data/frames.zarr`` uint8 ``[clip, frame, H, W, 3]``; ``features/<point>.zarr`` ``extract.dtype``
  ``[clip, t, gh, gw, C]``; ``latents/latents.zarr`` ``ltx.latents_dtype`` ``[clip, 128, F', H/32, W/32]``;
  ``latents/decoded.zarr`` (the ceiling) and ``adapters/<a>/decoded.zarr`` uint8 ``[test clip, frame, H, W, 3]``;
  ``adapters/<a>/latents.zarr`` float32 ``[test clip, 128, F', H/32, W/32]``.
- Compression is ignored: Blosc/zstd gains 1.05 to 1.7x on float16 activations, more on frames.
  Parquet tables, JSON, probe heads and adapter weights (megabytes) are not counted.
- The clip count is ``data.synthetic.n_clips`` or, for real sources, ``data.max_clips`` (no clip skipped); for COIN
  ``data.max_clips`` counts videos, each giving ``data.coin.clips_per_segment`` clips per step segment
  (:func:`foresight_lib.data.coin.coin_count`: counted in ``COIN.json`` where present, else COIN's 3.92 segments per
  video), split by video; a steps oracle stores one channel per step label.
- DVC keeps a second copy of every cached output in ``.dvc/cache`` unless its ``cache.type`` links
  (``hardlink``/``symlink``, or ``reflink`` on a filesystem that has it); the default ``reflink,copy``
  copies on ext4. Both totals are printed.

Every feature store's grid, channels and FLOPs come from extraction's own definitions, never worked out here:
a VLM point's stride and width from :meth:`foresight_lib.families.VlmShape.cell` and its slots from
:func:`foresight_lib.extract.order.n_slots`; an encoder's from :func:`foresight_lib.extract.encoders.encoder_geometry`;
the FLOPs from the function its kind names (:data:`foresight_lib.kinds.KINDS` ``flops``). Each point is costed with
the model it is read from (``model``, or its ``models`` entry; the table's ``model`` column): the config.json of a
local checkpoint (no weight is read); for ``tiny`` the tiny model's widths (what is stored), its GPU time counted at
the family's reference checkpoint (:data:`foresight_lib.families.FAMILIES`; for an encoder the family's base model);
where a checkpoint directory is absent, that reference, and the row says ``assumed``.

**GPU-hours** come from the rates in ``benchmarks/rates.json`` (each names its file, machine and date):

- Extraction: H100 frames/s of the stage path measured on Qwen2.5-VL-7B (:data:`MEASURED`) at 448x672 for
  vit_embed, vit_l7, vit_l31, merger and llm_l13, read as seconds per patch token sent through the vision tower
  against each point's model FLOPs per patch token (:class:`ExtractionRates`): the ViT blocks' measured FLOP rate
  (vit_l7 to vit_l31) and the LLM layers' (merger to llm_l13). A point of any family and model is timed at its own
  FLOPs per patch token: a pre-merge point interpolated between vit_embed, vit_l7 and vit_l31 (beyond vit_l31 at
  the ViT rate); a merged point (merger, deepstack, llm) as the merger, its vision FLOPs' difference at the ViT rate
  and its LLM layers' FLOPs at the LLM rate; then times its patch tokens (``t x gh x gw`` per clip). On Qwen2.5-VL-7B
  this is the measured rates themselves (a block k interpolated between the measured ones); other families are
  converted through FLOPs (noted). Encoder points are unmeasured: ESTIMATED as the storage time of vit_embed scaled
  by the values stored, plus their FLOPs at the ViT rate. ``pixels`` needs no GPU.
- Probing: ESTIMATED (no GPU rate is measured): every head's forward FLOPs counted on the real head at
  the point's grid and width (``torch.utils.flop_counter``), x3 for forward+backward, at the assumed
  ``probe_gpu_achieved_tflops``; per point ``heads x 2 x lrs x seeds`` trainings (features and the shuffled
  control, every learning rate and init seed of the one-pass engine), each the full budget: ``probe.steps`` optimiser
  steps of ``probe.batch_size`` slots (forward+backward) and a forward over the val slots every ``probe.val_every``
  steps (an upper bound: early stopping ends sooner), then one forward over the test slots per seed (the selected
  learning rate); plus one host-to-GPU read of every train slot stepped on and of the val slots at each validation,
  shared by every training.
  Temporal heads, decoding, COCOeval and the bootstrap (CPU) are not counted. A dataset without boxes (COIN) runs
  only the step probes, linear heads on one vector per clip: one read of its features and the heads' FLOPs.
- Latents, adapters and decoding: ESTIMATED (no rate is measured) the same way, FLOPs at the assumed
  ``probe_gpu_achieved_tflops``: the LTX-Video VAE's encode (``latents``, every clip) and decode (the ceiling and
  each adapter's ``decode_*``, the test clips) counted on the real architecture (the checkpoint's config.json,
  else diffusers' default LTX-Video VAE) at the clip geometry; each adapter's forward counted on the real module
  at its inputs' grids, x3 for forward+backward over the train clips and once over the val clips per epoch, plus
  one forward over the test clips. An adapter's pixel loss (``pixel_loss_weight`` > 0) adds a differentiable
  decode per training clip: not counted (noted).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.coin import COIN_SEGMENTS, COIN_TASKS, COIN_VIDEOS, CoinCount, coin_count
from .data.splits import assign_splits
from .data.synthetic import CATEGORIES as SYNTHETIC_CATEGORIES
from .errors import ForesightError
from .extract.order import Mode, n_slots
from .families import FAMILIES, check_checkpoint_dir, family_of, shape_of
from .kinds import KINDS, Family, load
from .params import (
    ADAPTER_KINDS,
    DataParams,
    EncoderPoint,
    LlmPoint,
    MergerPoint,
    ModelParams,
    OraclePoint,
    Params,
    PixelsPoint,
    PointParams,
    ProbeParams,
    VitBlockPoint,
    VitEmbedPoint,
)
from .pipeline import adapter_stage

RATES_FILE = Path(__file__).resolve().parent.parent / "benchmarks" / "rates.json"
MEASURED_FAMILY: Family = "qwen2_5_vl"  # the extraction rates were measured on its reference (7B widths)
MEASURED_FRAME = (448, 672)  # the extraction benchmark's frames (image mode)
MEASURED = {  # rates.json's extract_<name>_h100: the point benchmarks/extract.py timed
    "vit_embed": VitEmbedPoint(kind="vit_embed"),
    "vit_l7": VitBlockPoint(kind="vit_block", layer=7),
    "vit_l31": VitBlockPoint(kind="vit_block", layer=31),
    "merger": MergerPoint(kind="merger"),
    "llm_l13": LlmPoint(kind="llm", layer=13),
}
LATENT_CHANNELS, LATENT_SPATIAL, LATENT_TEMPORAL = 128, 32, 8  # LTX-Video VAE (docs/design.md section 4)
BUDGET_GPU_HOURS = (100.0, 150.0)  # the proposal's Phase 1 budget
BUDGET_DISK_GB = 200.0
GB = 1e9


@dataclass(frozen=True)
class StoreCost:
    """One store a stage writes: its uncompressed size (exact) and the GPU time to make it (an estimate)."""

    stage: str
    path: str
    shape: tuple[int, ...]
    dtype: str
    gpu_hours: float | None  # None: no rate (not counted)
    note: str = ""
    model: str = ""  # what a feature store is read from: family / source

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Cost:
    stores: list[StoreCost]
    probe_gpu_hours: dict[str, float]  # per point
    probe_flops: float  # all probe stages, forward and backward
    cpu_flops_per_s: float  # the dense head's measured CPU rate (probe_dense_cpu) in FLOP/s
    rates: dict[str, dict[str, Any]]

    @property
    def disk_bytes(self) -> int:
        return sum(s.nbytes for s in self.stores)

    @property
    def extract_gpu_hours(self) -> float:
        return sum(s.gpu_hours or 0.0 for s in self.stores if s.stage.startswith("extract@"))

    @property
    def generation_gpu_hours(self) -> float:
        """Latents, adapter training and decoding (estimated)."""
        return sum(s.gpu_hours or 0.0 for s in self.stores if not s.stage.startswith(("extract@", "frames")))

    @property
    def gpu_hours(self) -> float:
        """Every counted stage: extraction, probing, latents, adapters, decoding."""
        return self.extract_gpu_hours + sum(self.probe_gpu_hours.values()) + self.generation_gpu_hours


def load_rates(path: Path = RATES_FILE) -> dict[str, dict[str, Any]]:
    """The rate table ``{name: {value, unit, source, machine, date, measured, ...}}``."""
    try:
        return json.loads(path.read_text())["rates"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise ForesightError(f"{path}: unreadable rate table: {exc}") from None


# ------------------------------------------------------------------------------------ models
@dataclass(frozen=True)
class CostModel:
    """What a point is read from, as the cost model sees it."""

    label: str  # the table's model column: family / source
    stored: Any  # config of the model extraction runs: the stores' shapes
    timed: Any  # config whose FLOPs and widths the GPU time is counted at (a tiny model's: its reference)
    note: str = ""


def vlm_model(model: ModelParams) -> CostModel:
    """A ``model``/``models`` entry: its checkpoint's config.json (no weight read); 'tiny' stores at the tiny widths
    and is timed at the family's reference (:data:`.families.FAMILIES`); an absent checkpoint is assumed to be the
    reference (noted)."""
    info = FAMILIES[model.family]
    label = f"{model.family} / {model.source}"
    if model.source == "tiny":
        note = f"GPU time at {info.reference_id}'s size (the tiny model is far faster)"
        from .extract import qwen

        return CostModel(label, qwen.tiny_config(model.family), info.reference_config(), note)
    path = Path(model.source)
    if (path / "config.json").is_file():
        config = check_checkpoint_dir(path, model.family)
        return CostModel(label, config, config)
    note = f"assumed {info.reference_id} widths (its source not found)"
    return CostModel(label, info.reference_config(), info.reference_config(), note)


def encoder_model(point: EncoderPoint) -> CostModel:
    """An ``encoder`` point's model: as :func:`vlm_model`, the reference being the family's base model."""
    from .extract import encoders

    label = f"{point.family} / {point.source}"
    reference = encoders.reference_config(point.family)
    if point.source != "tiny" and not (Path(point.source) / "config.json").is_file():
        return CostModel(label, reference, reference, f"assumed {point.family} base widths (source not found)")
    stored = encoders.load_config(point.family, point.source)
    if point.source == "tiny":
        return CostModel(label, stored, reference, "GPU time at the base model's size")
    return CostModel(label, stored, stored)


# ------------------------------------------------------------------------------------ extraction
@dataclass(frozen=True)
class ExtractionRates:
    """The measured extraction rates of the Qwen2.5-VL reference (:data:`MEASURED`) as seconds per patch token, with
    each measured point's model FLOPs per patch token (:mod:`.extract.flops`) at the benchmark's frames."""

    seconds: dict[str, float]
    flops: dict[str, float]
    store_values: int  # values stored per patch token by a pre-merge point (the reference ViT width)

    @property
    def vit_flop_rate(self) -> float:
        """FLOP/s of the ViT blocks, measured between ``vit_l7`` and ``vit_l31``."""
        return (self.flops["vit_l31"] - self.flops["vit_l7"]) / (self.seconds["vit_l31"] - self.seconds["vit_l7"])

    @property
    def llm_flop_rate(self) -> float:
        """FLOP/s of the LLM layers, measured between ``merger`` and ``llm_l13``."""
        return (self.flops["llm_l13"] - self.flops["merger"]) / (self.seconds["llm_l13"] - self.seconds["merger"])

    def vlm_seconds(self, merged: bool, vision: float, llm: float) -> float:
        """Seconds per patch token of a VLM point that stores pre-merge (``merged`` False) or merged tokens and runs
        ``vision`` and ``llm`` FLOPs per patch token (module docstring)."""
        if merged:
            return (
                self.seconds["merger"] + (vision - self.flops["merger"]) / self.vit_flop_rate + llm / self.llm_flop_rate
            )
        if vision > self.flops["vit_l31"]:
            return self.seconds["vit_l31"] + (vision - self.flops["vit_l31"]) / self.vit_flop_rate
        knots = ("vit_embed", "vit_l7", "vit_l31")
        return float(np.interp(vision, [self.flops[k] for k in knots], [self.seconds[k] for k in knots]))

    def encoder_seconds(self, values: int, flops: float) -> float:
        """Seconds of an encoder frame storing ``values`` and running ``flops``: ``vit_embed``'s storage time
        scaled by the values stored, plus the FLOPs at the ViT blocks' measured rate (module docstring)."""
        return self.seconds["vit_embed"] * values / self.store_values + flops / self.vit_flop_rate


def extraction_rates(rates: Mapping[str, Mapping[str, Any]]) -> ExtractionRates:
    """The measured rates of :data:`MEASURED` against their FLOPs on the Qwen2.5-VL reference."""
    config = FAMILIES[MEASURED_FAMILY].reference_config()
    shape = shape_of(MEASURED_FAMILY, config)
    height, width = MEASURED_FRAME
    tokens = (height // shape.patch) * (width // shape.patch)
    return ExtractionRates(
        seconds={k: 1 / (rates[f"extract_{k}_h100"]["value"] * tokens) for k in MEASURED},
        flops={
            k: load(KINDS[p.kind].flops)(p, config, height, width, 1, "image") / tokens for k, p in MEASURED.items()
        },
        store_values=shape.cell("vit_embed")[1],
    )


def vlm_store(
    point: PointParams, model: CostModel, data: DataParams, mode: Mode, rates: ExtractionRates
) -> tuple[tuple[int, int, int], int, float]:
    """A VLM point's grid ``(T, gh, gw)`` and channels (the stored model's :meth:`.families.VlmShape.cell`) and GPU
    seconds per clip (the timed model's FLOPs through :class:`ExtractionRates`)."""
    f, h, w = data.n_frames, data.height, data.width
    stored, timed = shape_of(family_of(model.stored), model.stored), shape_of(family_of(model.timed), model.timed)
    unit = stored.patch * stored.merge
    if h % unit or w % unit:
        raise ForesightError(f"frame size {h}x{w} must be a multiple of {unit} (patch x merge size of {model.label})")
    stride, channels = stored.cell(point.kind)
    grid = (n_slots(f, mode, stored.temporal_patch), h // stride, w // stride)
    flops = load(KINDS[point.kind].flops)
    tokens = n_slots(f, mode, timed.temporal_patch) * (h // timed.patch) * (w // timed.patch)  # through the tower
    total = flops(point, model.timed, h, w, f, mode) * f / tokens  # per patch token
    vision = (
        flops(MergerPoint(kind="merger"), model.timed, h, w, f, mode) * f / tokens if point.kind == "llm" else total
    )
    return grid, channels, rates.vlm_seconds(KINDS[point.kind].merged, vision, total - vision) * tokens


def encoder_store(
    point: EncoderPoint, model: CostModel, data: DataParams, rates: ExtractionRates
) -> tuple[tuple[int, int, int], int, float]:
    """An encoder point's grid ``(F, gh, gw)`` and channels (:func:`.extract.encoders.encoder_geometry` of the
    stored model) and GPU seconds per clip (the timed model's storage and FLOPs)."""
    from .extract.encoders import encoder_geometry

    f, h, w = data.n_frames, data.height, data.width
    stored, timed = encoder_geometry(model.stored, h, w), encoder_geometry(model.timed, h, w)
    flops = load(KINDS["encoder"].flops)(point, model.timed, h, w, f, "image")
    values = timed.grid[0] * timed.grid[1] * timed.channels
    return (f, *stored.grid), stored.channels, f * rates.encoder_seconds(values, flops)


# ------------------------------------------------------------------------------------ probing
def head_forward_flops(
    head: str,
    grid: tuple[int, int],
    channels: int,
    probe_params: ProbeParams,
    n_classes: int = 4,
    width: int | None = None,
) -> int:
    """Forward FLOPs of one probe head on one ``[gh, gw, C]`` grid, counted on the real module (meta tensors).

    ``n_classes`` barely matters (only the output layer); ``width`` overrides ``probe.width``."""
    from torch.utils.flop_counter import FlopCounterMode

    from .probes.heads import make_probe

    if width is not None:
        probe_params = probe_params.model_copy(update={"width": width})
    with torch.device("meta"):
        probe = make_probe(head, channels, n_classes, probe_params)
        grid_tensor = torch.zeros(1, *grid, channels)  # [1, gh, gw, C]
    with FlopCounterMode(display=False) as counter:
        if hasattr(probe, "cell_outputs"):
            probe.cell_outputs(grid_tensor)
        else:
            probe(grid_tensor)
    return int(counter.get_total_flops())


# ------------------------------------------------------------------------------------ the model
def estimate(params: Params, rates: Mapping[str, Mapping[str, Any]] | None = None) -> Cost:
    """Every store of a ``dvc repro`` with ``params`` and the GPU-hours of its extraction and probing."""
    rates = dict(rates or load_rates())
    data = params.data
    coin = coin_count(data) if data.source == "coin" else None
    if data.source == "synthetic":
        n_clips = data.synthetic.n_clips
    elif coin is not None:
        n_clips = coin.clips
    elif data.max_clips is None:
        raise ForesightError("cost: data.max_clips is not set, so the clip count of a real source is unknown")
    else:
        n_clips = data.max_clips
    if coin is not None:  # split by video: each split's videos x the clips per video
        videos = assign_splits(coin.videos, data)
        n_split = {s: round(videos.count(s) * n_clips / coin.videos) for s in ("train", "val", "test")}
    else:
        splits = assign_splits(n_clips, data)
        n_split = {s: splits.count(s) for s in ("train", "val", "test")}
    f, h, w = data.n_frames, data.height, data.width
    latent = (LATENT_CHANNELS, (f - 1) // LATENT_TEMPORAL + 1, h // LATENT_SPATIAL, w // LATENT_SPATIAL)

    stores = [StoreCost("frames", "data/frames.zarr", (n_clips, f, h, w, 3), "uint8", None, coin.note if coin else "")]
    probe_hours: dict[str, float] = {}
    probe_flops = 0.0
    grids: dict[str, tuple[tuple[int, int, int], int]] = {}  # point: ((t, gh, gw), C)
    extraction = extraction_rates(rates)
    mode = params.extract.mode
    for name, point in params.points.items():
        note, label = "", ""
        if isinstance(point, PixelsPoint):
            grid, channels, hours = (f, h // point.patch, w // point.patch), point.patch**2 * 3, 0.0
        elif isinstance(point, OraclePoint) and point.target == "steps":  # the step one-hot: no model
            grid, hours = (f, h // point.stride, w // point.stride), 0.0
            channels = coin.step_labels if coin is not None else 1
            note = (
                f"one channel per step label, {coin.step_labels} ({coin.note})"
                if coin is not None
                else "step channels counted as 1 (a source of boxes has no steps)"
            )
        elif isinstance(point, OraclePoint):  # occupancy, 4 edge distances, class one-hot: no model
            classes = len(SYNTHETIC_CATEGORIES) if data.source == "synthetic" else 1
            grid, channels, hours = (f, h // point.stride, w // point.stride), 5 + classes, 0.0
            if data.source != "synthetic":
                note = "class channels counted as 1 (the category count is known after the frames stage)"
        elif isinstance(point, EncoderPoint):
            model = encoder_model(point)
            grid, channels, seconds = encoder_store(point, model, data, extraction)
            hours, label = n_clips * seconds / 3600, model.label
            note = "; ".join(x for x in (model.note, "GPU time ESTIMATED (no encoder rate measured)") if x)
        else:
            vlm = params.model_of(point)
            model = vlm_model(vlm)
            grid, channels, seconds = vlm_store(point, model, data, mode, extraction)
            hours, label = n_clips * seconds / 3600, model.label
            converted = (
                "" if vlm.family == MEASURED_FAMILY else f"GPU time converted from {MEASURED_FAMILY} through FLOPs"
            )
            note = "; ".join(x for x in (model.note, converted) if x)
        grids[name] = (grid, channels)
        store = StoreCost(
            f"extract@{name}",
            f"features/{name}.zarr",
            (n_clips, *grid, channels),
            params.extract.dtype,
            hours,
            note,
            label,
        )
        stores.append(store)
        if coin is not None:  # no boxes: only the step probes, linear heads on one vector per clip
            probe_hours[name], flops = _step_probe_hours(params, grid, channels, n_split, coin, rates)
        else:
            probe_hours[name], flops = _probe_hours(params, grid, channels, n_split, rates)
        probe_flops += flops
    flop_rate = rates["probe_gpu_achieved_tflops"]["value"] * 1e12 * 3600  # FLOPs per GPU-hour (assumed)
    encode, decode, vae_note = vae_flops(params)
    decode_hours = n_split["test"] * decode / flop_rate
    estimated = "GPU time ESTIMATED (FLOPs at an assumed GPU rate)"
    vae_note = "; ".join(x for x in (vae_note, estimated) if x)
    stores += [
        StoreCost(
            "latents",
            "latents/latents.zarr",
            (n_clips, *latent),
            params.ltx.latents_dtype,
            n_clips * encode / flop_rate,
            vae_note,
        ),
        StoreCost(
            "decode_ceiling", "latents/decoded.zarr", (n_split["test"], f, h, w, 3), "uint8", decode_hours, vae_note
        ),
    ]
    for kind in ADAPTER_KINDS:
        for a, spec in getattr(params.adapter, kind).items():
            forward = adapter_flops(spec, params, grids)
            train = params.adapter.train
            flops = (
                train.epochs * (3 * forward * n_split["train"] + forward * n_split["val"]) + forward * n_split["test"]
            )
            note = estimated + ("; the pixel loss's decode not counted" if train.pixel_loss_weight > 0 else "")
            stores += [
                StoreCost(
                    adapter_stage("train", kind, a),
                    f"adapters/{a}/latents.zarr",
                    (n_split["test"], *latent),
                    "float32",
                    flops / flop_rate,
                    note,
                ),
                StoreCost(
                    adapter_stage("decode", kind, a),
                    f"adapters/{a}/decoded.zarr",
                    (n_split["test"], f, h, w, 3),
                    "uint8",
                    decode_hours,
                    vae_note,
                ),
            ]
    cpu_flops_per_s = (
        rates["probe_dense_cpu"]["value"] * 3 * head_forward_flops("dense", (32, 48), 1280, params.probe, width=128)
    )
    return Cost(
        stores=stores,
        probe_gpu_hours=probe_hours,
        probe_flops=probe_flops,
        cpu_flops_per_s=cpu_flops_per_s,
        rates=rates,
    )


def clips_for_test(n_test: int, data: DataParams) -> int:
    """The fewest clips whose test split (:func:`.data.splits.assign_splits`' rounding of ``data.splits.test``)
    holds at least ``n_test`` clips, with a clip left for train."""

    def fits(total: int) -> bool:
        test, val = max(1, round(total * data.splits.test)), max(1, round(total * data.splits.val))
        return test >= n_test and total - val - test >= 1

    # round() reaches n_test from n_test - 0.5 (one test clip at any size): start below, step up
    total = max(3, math.floor((n_test - 0.5) / data.splits.test) - 1) if n_test > 1 else 3
    while not fits(total):
        total += 1
    return total


def with_clips(params: Params, n_clips: int) -> Params:
    """``params`` with ``n_clips`` clips: ``data.synthetic.n_clips`` for the synthetic source, for COIN the
    ``data.max_clips`` videos that give them at COIN's average segments per video, else ``data.max_clips`` (the
    clips must exist)."""
    data = params.data
    if data.source == "synthetic":
        data = data.model_copy(update={"synthetic": data.synthetic.model_copy(update={"n_clips": n_clips})})
    elif data.source == "coin":
        per_video = COIN_SEGMENTS / COIN_VIDEOS * data.coin.clips_per_segment
        data = data.model_copy(update={"max_clips": math.ceil(n_clips / per_video)})
    else:
        data = data.model_copy(update={"max_clips": n_clips})
    return params.model_copy(update={"data": data})


def vae_flops(params: Params) -> tuple[float, float, str]:
    """Forward FLOPs of encoding and of decoding one clip with the LTX-Video VAE at the data geometry, counted on
    meta tensors with ``ltx.source``'s config.json (else diffusers' default LTX-Video VAE, noted); the decoder's
    timestep conditioning (a small embedding) is left out of the count."""
    from diffusers import AutoencoderKLLTXVideo
    from torch.utils.flop_counter import FlopCounterMode

    from .ltx.vae import check_vae_dir

    config: dict[str, Any] = {}
    note = "assumed diffusers' default LTX-Video VAE" if params.ltx.source == "tiny" else ""
    if params.ltx.source != "tiny":
        try:
            config = dict(AutoencoderKLLTXVideo.load_config(check_vae_dir(Path(params.ltx.source))))
        except ForesightError:
            note = "assumed diffusers' default LTX-Video VAE (ltx.source not found)"
    config["timestep_conditioning"] = False
    data = params.data
    with torch.device("meta"):
        vae = AutoencoderKLLTXVideo.from_config(config)
        clip = torch.zeros(1, 3, data.n_frames, data.height, data.width)  # [B, 3, F, H, W]
    with FlopCounterMode(display=False) as counter:
        latents = vae.encode(clip).latent_dist.mode()  # [B, 128, F', H', W']
    encode = float(counter.get_total_flops())
    with FlopCounterMode(display=False) as counter:
        vae.decode(latents)
    return encode, float(counter.get_total_flops()), note


def adapter_flops(spec: Any, params: Params, grids: Mapping[str, tuple[tuple[int, int, int], int]]) -> float:
    """Forward FLOPs of one clip through the adapter ``spec``, counted on the real module (meta tensors) at its
    input points' grids."""
    from torch.utils.flop_counter import FlopCounterMode

    from .adapters.models import build_adapter
    from .adapters.resample import GridSpec, LatentSpec
    from .extract.order import slot_frames

    data = params.data
    streams = {}
    for role, point in spec.inputs().items():
        (t, gh, gw), channels = grids[point]
        slots = slot_frames(data.n_frames, params.extract.mode, 2) if t != data.n_frames else None
        streams[role] = GridSpec(
            point=point,
            stride=data.height // gh,
            grid=(t, gh, gw),
            channels=channels,
            slot_frames=slots or tuple((i,) for i in range(t)),
            height=data.height,
            width=data.width,
        )
    with torch.device("meta"):
        model = build_adapter(spec, streams, LatentSpec(data.n_frames, data.height, data.width))
        inputs = {role: torch.zeros(1, *g.grid, g.channels) for role, g in streams.items()}  # [1, t, gh, gw, C]
    with FlopCounterMode(display=False) as counter:
        model(inputs)
    return float(counter.get_total_flops())


def _probe_hours(
    params: Params,
    grid: tuple[int, int, int],
    channels: int,
    n_split: Mapping[str, int],
    rates: Mapping[str, Mapping[str, Any]],
) -> tuple[float, float]:
    """Estimated H100 hours of one point's probe stage, and its FLOPs (module docstring)."""
    slots = {s: n * grid[0] for s, n in n_split.items()}
    trained = params.probe.steps * params.probe.batch_size  # slots stepped on (forward + backward)
    validations = math.ceil(params.probe.steps / params.probe.val_every)
    flops = 0.0
    for head in params.probe.heads:
        fwd = head_forward_flops(head, grid[1:], channels, params.probe)  # per slot
        sweep = len(params.probe.lrs) * len(params.probe.seeds)  # trained side by side in one pass
        per_training = 3 * fwd * trained + fwd * validations * slots["val"]
        flops += 2 * (sweep * per_training + len(params.probe.seeds) * fwd * slots["test"])  # features + control
    read = _read_hours((trained + validations * slots["val"]) * grid[1] * grid[2] * channels, params, rates)
    return flops / (rates["probe_gpu_achieved_tflops"]["value"] * 1e12) / 3600 + read, flops


def _step_probe_hours(
    params: Params,
    grid: tuple[int, int, int],
    channels: int,
    n_split: Mapping[str, int],
    coin: CoinCount,
    rates: Mapping[str, Mapping[str, Any]],
) -> tuple[float, float]:
    """Estimated hours of one point's step probes (:mod:`foresight_lib.probes.steps`), and their FLOPs: one read of
    the features, then per task a linear head on ``K x T x C`` inputs (K = 2 for a position pair) to its classes
    (the step labels, 2, the tasks: at most COIN's 180 or the videos), ``2 x lrs x seeds`` trainees, each
    ``probe.temporal_epochs`` epochs of forward+backward over the train samples and a forward over the val samples;
    a video of ``c`` clips gives ``c (c - 1) / 2`` position pairs (clips of one step count too: an upper bound)."""
    per_video = coin.clips / coin.videos
    pairs = (per_video - 1) / 2  # position pairs per clip
    tasks = (
        (1, coin.step_labels, 1.0),  # (clips per sample, classes, samples per clip)
        (2, 2, pairs),
        (1, min(COIN_TASKS, coin.videos), 1.0),
    )
    dim = grid[0] * channels
    trainees = 2 * len(params.probe.lrs) * len(params.probe.seeds)
    flops = 0.0
    for k, classes, per_clip in tasks:
        fwd = 2 * k * dim * classes  # per sample
        epoch = 3 * fwd * n_split["train"] * per_clip + fwd * n_split["val"] * per_clip
        flops += trainees * params.probe.temporal_epochs * epoch
    read = _read_hours(sum(n_split.values()) * int(np.prod(grid)) * channels, params, rates)
    return flops / (rates["probe_gpu_achieved_tflops"]["value"] * 1e12) / 3600 + read, flops


def _read_hours(values: int, params: Params, rates: Mapping[str, Mapping[str, Any]]) -> float:
    """Hours to move ``values`` feature values (``extract.dtype``) at the host-to-GPU rate."""
    return values * np.dtype(params.extract.dtype).itemsize / (rates["host_to_gpu_gb_per_s"]["value"] * GB) / 3600


# ------------------------------------------------------------------------------------ the table
def format_cost(cost: Cost, params_path: str) -> str:
    """The table ``check --cost`` prints."""
    rows = [
        (
            s.stage,
            s.path,
            s.model,
            str(list(s.shape)),
            s.dtype,
            f"{s.nbytes / GB:.2f}",
            "-" if s.gpu_hours is None else f"{s.gpu_hours:.2f}",
            s.note,
        )
        for s in cost.stores
    ]
    rows += [
        (f"probe@{p}", f"probes/{p}/", "", "", "", "", f"{h:.2f}", "ESTIMATED (FLOPs at an assumed GPU rate)")
        for p, h in cost.probe_gpu_hours.items()
    ]
    header = ("stage", "store", "model", "shape", "dtype", "disk GB", "GPU h", "note")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(7)]
    fmt = "  ".join(f"{{:{'>' if i >= 5 else '<'}{w}}}" for i, w in enumerate(widths)) + "  {}"
    probe = sum(cost.probe_gpu_hours.values())
    total = cost.gpu_hours
    disk = cost.disk_bytes
    budget = BUDGET_DISK_GB * GB
    lo, hi = BUDGET_GPU_HOURS
    lines = [
        f"cost of {params_path}: disk exact (uncompressed arrays), GPU-hours from benchmarks/rates.json",
        "",
        fmt.format(*header),
        *(fmt.format(*r) for r in rows),
        "",
        f"disk, uncompressed:         {disk / GB:8.1f} GB   budget {BUDGET_DISK_GB:.0f} GB: "
        f"{'fits' if disk <= budget else 'OVER'} (Blosc gains 1.05-1.7x on float16 features; not counted)",
        f"  + the DVC cache copy:     {2 * disk / GB:8.1f} GB   budget {BUDGET_DISK_GB:.0f} GB: "
        f"{'fits' if 2 * disk <= budget else 'OVER'} (unless .dvc cache.type links: hardlink, symlink or reflink)",
        f"GPU-hours, extraction:      {cost.extract_gpu_hours:8.2f} h    H100 rates measured on "
        f"{FAMILIES[MEASURED_FAMILY].reference_id}; other families and encoders converted through FLOPs "
        "(measured FLOP rate = its FLOPs / measured time); tiny models timed at their reference's size",
        f"GPU-hours, probing:         {probe:8.2f} h    ESTIMATED: no GPU probe rate is measured "
        f"(on the 2-core CPU at probe_dense_cpu's FLOP rate: {cost.probe_flops / cost.cpu_flops_per_s / 3600:,.0f} h)",
        f"GPU-hours, VAE, adapters:   {cost.generation_gpu_hours:8.2f} h    ESTIMATED: FLOPs at "
        "probe_gpu_achieved_tflops",
        f"GPU-hours, total:           {total:8.2f} h    budget {lo:.0f}-{hi:.0f} h: {'fits' if total <= hi else 'OVER'}",
        "",
        "rates (benchmarks/rates.json):",
    ]
    for name, r in cost.rates.items():
        value = "unmeasured" if r["value"] is None else f"{r['value']:.4g} {r['unit']}"
        kind = "measured" if r["measured"] else "NOT measured"
        lines.append(f"  {name:26s} {value:16s} {kind:12s} {r['source']} | {r['machine']} | {r['date']}")
    return "\n".join(lines)
