"""Train one adapter on the train split, keep the epoch with the lowest validation loss, predict the test split.

Loss: MSE on the normalised VAE latents, plus ``pixel_loss_weight`` x MSE on frames decoded differentiably from the
predicted latents (:class:`PixelTerm`, off by default). Selection uses the validation latent MSE. The trivial
predictor, the mean latent of the train split, is reported beside every loss. Training is seeded and, on CPU,
deterministic (float32); it leaves the global RNG untouched. On CUDA the forward runs under bfloat16 autocast
(``adapter.train.autocast``). Training stops at the first non-finite loss (:func:`convergence` calls the run
divergent). Memory: :func:`memory_record`.

Outputs under ``adapters/<name>/``: ``config.json`` (kind, params, input and latent geometry), ``model.safetensors``
(weights and input statistics), ``latents.zarr`` (predicted test-split latents, attributes as the VAE latents'
plus ``clips``), ``live/`` (dvclive curves); the summary goes to ``metrics/adapter/<name>.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import resource
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
import zarr
from dvclive import Live
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import ForesightError
from ..features import FeatureStore, open_features
from ..features_loader import MemoryBudget, SplitLoader
from ..ltx.latents import decode_for_loss
from ..params import AdapterTrainParams, DualStreamAdapterParams, MultiScaleAdapterParams, SingleAdapterParams
from ..progress import progress_bar
from ..store import PartialStore, open_complete, write_json_atomic
from .models import Adapter, AdapterSpec, DualStreamAdapter, MultiScaleAdapter, build_adapter, count_parameters
from .resample import GridSpec, LatentSpec

STD_FLOOR = 1e-6
SPEC_CLASSES: dict[str, type[AdapterSpec]] = {
    "single": SingleAdapterParams,
    "dual_stream": DualStreamAdapterParams,
    "multi_scale": MultiScaleAdapterParams,
}

if TYPE_CHECKING:
    from diffusers import AutoencoderKLLTXVideo


@dataclass
class AdapterData:
    """An adapter's inputs (feature stores by role) and targets (the VAE latents ``[clip, 128, F', H', W']``).

    Inputs are read through :mod:`foresight_lib.features_loader` (float16, one loader per store over all its
    clips): held in GPU memory or host RAM when the store fits ``budget`` (read once), else read per batch.
    """

    stores: dict[str, FeatureStore]
    latents: zarr.Array
    latent: LatentSpec
    budget: MemoryBudget = field(default_factory=lambda: MemoryBudget(0, 0))
    loaders: dict[str, SplitLoader] = field(default_factory=dict)

    @property
    def streams(self) -> dict[str, GridSpec]:
        return {role: GridSpec.of(store) for role, store in self.stores.items()}

    def inputs(self, clips: Sequence[int], device: torch.device) -> dict[str, torch.Tensor]:
        """``{role: float32 [k, t, gh, gw, C]}`` of ``clips`` on ``device`` (the stored float16 values)."""
        for role, store in self.stores.items():
            if role not in self.loaders:
                self.loaders[role] = SplitLoader.open(store, range(store.n_clips), self.budget, device, 1)
        return {role: self.loaders[role].take(list(clips)).float() for role in self.stores}

    def targets(self, clips: Sequence[int]) -> np.ndarray:
        """float32 ``[k, 128, F', H', W']``."""
        return np.stack([np.asarray(self.latents[c], dtype=np.float32) for c in clips])


def open_data(
    spec: AdapterSpec, features_dir: str | Path, latents_path: str | Path, budget: MemoryBudget | None = None
) -> AdapterData:
    """The feature stores of ``spec``'s input points and the VAE latents, checked to describe the same clips;
    inputs held within ``budget`` (default: none, every batch read from the stores)."""
    latents = open_complete(latents_path)
    latent = LatentSpec.of(latents)
    stores = {role: open_features(Path(features_dir) / f"{point}.zarr") for role, point in spec.inputs().items()}
    for store in stores.values():
        if store.n_clips != latents.shape[0]:
            raise ForesightError(f"{store.path}: {store.n_clips} clips, but {latents_path} has {latents.shape[0]}")
        if store.attrs.get("frames", {}).get("sha256") != latents.attrs["frames"]["sha256"]:
            raise ForesightError(f"{store.path} and {latents_path} were made from different frames stores")
    return AdapterData(stores=stores, latents=latents, latent=latent, budget=budget or MemoryBudget(0, 0))


def input_stats(store: FeatureStore, clips: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std ``[C]`` (float32, std floored) over every token of ``clips``."""
    total = np.zeros(store.channels)
    square = np.zeros(store.channels)
    count = 0
    for c in clips:
        x = store.read(int(c)).reshape(-1, store.channels).astype(np.float64)  # [t*gh*gw, C]
        total += x.sum(axis=0)
        square += (x * x).sum(axis=0)
        count += len(x)
    mean = total / count
    std = np.sqrt(np.maximum(square / count - mean * mean, 0.0))
    return mean.astype(np.float32), np.maximum(std, STD_FLOOR).astype(np.float32)


@dataclass
class PixelTerm:
    """MSE between the original frames and frames decoded (differentiably) from the predicted latents."""

    vae: AutoencoderKLLTXVideo
    frames: zarr.Array  # [clip, F, H, W, 3] uint8
    decode_timestep: float
    weight: float

    def __call__(self, pred: torch.Tensor, clips: Sequence[int]) -> torch.Tensor:  # pred [B, 128, F', H', W']
        frames = torch.from_numpy(np.stack([self.frames[c] for c in clips])).to(pred.device)  # [B, F, H, W, 3]
        target = frames.permute(0, 4, 1, 2, 3).to(torch.float32) / 255 * 2 - 1  # [B, 3, F, H, W]
        return F.mse_loss(decode_for_loss(self.vae, pred, self.decode_timestep), target)


def precision(device: torch.device, autocast: bool) -> torch.autocast:
    """The forward's precision: bfloat16 autocast on CUDA when ``autocast``, else float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast and device.type == "cuda")


@torch.no_grad()
def predict(
    model: Adapter, data: AdapterData, clips: Sequence[int], batch_size: int, autocast: bool = False
) -> np.ndarray:
    """Predicted latents, float32 ``[k, 128, F', H', W']``."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(clips), batch_size):
        with precision(device, autocast):
            pred = model(data.inputs(clips[i : i + batch_size], device))  # [b, 128, F', H', W']
        out.append(pred.float().cpu().numpy())
    return np.concatenate(out)


def latent_mse(
    model: Adapter, data: AdapterData, clips: Sequence[int], batch_size: int, autocast: bool = False
) -> float:
    """MSE of the predicted latents of ``clips`` (mean over every element)."""
    return float(np.mean((predict(model, data, clips, batch_size, autocast) - data.targets(clips)) ** 2))


class SavedActivations:
    """Bytes autograd keeps for the backward pass during the forwards run inside ``with meter:``: the distinct
    storages of the tensors it saves, except parameters, buffers and :meth:`exclude`'d tensors (the batch, held by
    the caller anyway): the activation memory a step adds. Device-independent; a checkpointed stream keeps only its
    inputs."""

    def __init__(self, model: nn.Module) -> None:
        self._held = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
        self._storages: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def exclude(self, tensors: Iterable[torch.Tensor]) -> SavedActivations:
        self._held |= {t.untyped_storage().data_ptr() for t in tensors}
        return self

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in self._held:
            self._storages[storage.data_ptr()] = storage.nbytes()
        return t

    def __enter__(self) -> SavedActivations:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)

    @property
    def bytes(self) -> int:
        return sum(self._storages.values())


def memory_record(device: torch.device, activation_bytes: int, train: AdapterTrainParams) -> dict[str, Any]:
    """Peak memory of a training run. CUDA: ``peak_allocated_bytes`` = ``torch.cuda.max_memory_allocated`` since
    training started (weights, gradients, optimiser state, batches, activations). CPU: torch keeps no allocator
    statistics, so it is ``None`` with the reason, and ``peak_rss_bytes`` is the process's peak resident set
    (``getrusage``; since the process started, so it includes the data, libraries and anything run before).
    Both: ``activation_bytes`` of the first training step (:class:`SavedActivations`)."""
    cuda = device.type == "cuda"
    return {
        "device": device.type,
        "peak_allocated_bytes": torch.cuda.max_memory_allocated(device) if cuda else None,
        "peak_allocated_reason": None if cuda else "CPU: torch keeps no allocator statistics (see peak_rss_bytes)",
        "peak_rss_bytes": None if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "activation_bytes": activation_bytes,
        "checkpointing": train.checkpointing,
        "precision": "bfloat16 autocast" if cuda and train.autocast else "float32",
    }


def convergence(
    val_losses: Sequence[float],
    trivial_val: float,
    steps_per_epoch: int,
    steps_run: int,
    best_epoch: int | None,
    non_finite: str | None,
) -> dict[str, Any]:
    """Criterion 4 of the proposal's section 7.2 (training convergence), the facts its verdict reads.

    Divergent when (a) a training or validation loss was not finite (``non_finite`` names it; training stops
    there), or (b) the last epoch's validation latent MSE is above the trivial predictor's (the train split's mean
    latent): training ended worse than predicting no input at all. ``steps_to_best``: optimiser steps to the end
    of the selected epoch (``None`` when no epoch was kept).
    """
    final = val_losses[-1] if val_losses else None
    reason = (
        non_finite
        if non_finite
        else f"last validation loss {final:.6g} is above the trivial predictor's {trivial_val:.6g}"
        if final is not None and final > trivial_val
        else None
    )
    return {
        "diverged": reason is not None,
        "reason": reason,
        "steps_to_best": None if best_epoch is None else (best_epoch + 1) * steps_per_epoch,
        "steps_per_epoch": steps_per_epoch,
        "steps_run": steps_run,
        "final_val_loss": final,
        "trivial_val_loss": trivial_val,
    }


@dataclass
class TrainedAdapter:
    model: Adapter
    summary: dict[str, Any]


def _fit_epoch(
    model: Adapter,
    data: AdapterData,
    order: Sequence[int],
    train: AdapterTrainParams,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    pixel_term: PixelTerm | None,
    meter: SavedActivations | None,
) -> list[float]:
    """One pass over ``order`` in batches: each step's loss, stopping at the first non-finite one (not applied).
    ``meter`` records the first step's saved activations."""
    model.train()
    device = next(model.parameters()).device
    losses: list[float] = []
    for i in range(0, len(order), train.batch_size):
        batch = [int(c) for c in order[i : i + train.batch_size]]
        inputs = data.inputs(batch, device)
        measure = meter.exclude(inputs.values()) if meter is not None and i == 0 else contextlib.nullcontext()
        with precision(device, train.autocast), measure:
            pred = model(inputs).float()  # [B, 128, F', H', W']
        loss = F.mse_loss(pred, torch.from_numpy(data.targets(batch)).to(device))
        if pixel_term is not None:
            loss = loss + pixel_term.weight * pixel_term(pred, batch)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    return losses


def train_adapter(
    spec: AdapterSpec,
    train: AdapterTrainParams,
    data: AdapterData,
    splits: Mapping[str, Sequence[int]],
    live_dir: str | Path,
    pixel_term: PixelTerm | None = None,
    device: torch.device | None = None,
    progress: bool = True,
) -> TrainedAdapter:
    """Train ``spec`` on ``splits["train"]``, keep the epoch with the lowest ``splits["val"]`` latent MSE (the
    initial weights, i.e. the trivial predictor, if no epoch finished with finite losses), report every split beside
    the trivial predictor, :func:`convergence` and :func:`memory_record` (curves to dvclive in ``live_dir``)."""
    device = device or torch.device("cpu")
    clips = {k: [int(c) for c in splits[k]] for k in ("train", "val", "test")}
    started = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(train.seed)
        model = build_adapter(spec, data.streams, data.latent)
        for role, store in data.stores.items():
            model.set_input_stats(role, *input_stats(store, clips["train"]))
        mean = data.targets(clips["train"]).mean(axis=0)  # [128, F', H', W'] the trivial predictor
        model.set_latent_mean(mean)
        model.to(device)
        model.checkpointing = train.checkpointing
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        steps = -(-len(clips["train"]) // train.batch_size)
        optimiser = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=train.epochs * steps)
        order_rng = np.random.default_rng(train.seed)
        meter = SavedActivations(model)
        trivial = {k: float(np.mean((data.targets(clips[k]) - mean) ** 2)) for k in ("val", "test")}
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        val_losses: list[float] = []
        steps_run, non_finite = 0, None
        with Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None) as live:
            for epoch in progress_bar(range(train.epochs), desc="train adapter", unit="epoch", disable=not progress):
                order = order_rng.permutation(clips["train"])
                losses = _fit_epoch(
                    model, data, order, train, optimiser, schedule, pixel_term, meter if epoch == 0 else None
                )
                steps_run += len(losses)
                if not math.isfinite(losses[-1]):
                    non_finite = f"training loss {losses[-1]} at step {steps_run} (epoch {epoch})"
                    break
                live.log_metric("train/loss", float(np.mean(losses)))
                val = latent_mse(model, data, clips["val"], train.batch_size, train.autocast)
                if not math.isfinite(val):
                    non_finite = f"validation loss {val} after epoch {epoch}"
                    break
                live.log_metric("val/loss", val)
                live.next_step()
                val_losses.append(val)
                if best is None or val < best[0]:
                    best = (val, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
            best_epoch = None if best is None else best[1]
            model.load_state_dict(initial if best is None else best[2])
            loss = {k: latent_mse(model, data, c, train.batch_size, train.autocast) for k, c in clips.items()}
            live.summary.update({"best_epoch": best_epoch, "test": {"loss": loss["test"]}})
    summary: dict[str, Any] = {
        "kind": model.kind,
        "inputs": spec.inputs(),
        "parameters": count_parameters(model),
        "epochs": train.epochs,
        "best_epoch": best_epoch,
        "loss": loss,
        "trivial_loss": trivial,
        "explained": {k: 1.0 - loss[k] / trivial[k] for k in trivial},
        "pixel_loss_weight": pixel_term.weight if pixel_term else 0.0,
        "device": device.type,
        "convergence": convergence(val_losses, trivial["val"], steps, steps_run, best_epoch, non_finite),
        "memory": memory_record(device, meter.bytes, train),
    }
    print(f"train: {time.perf_counter() - started:.1f} s", file=sys.stderr)  # no output file holds timings
    if isinstance(model, DualStreamAdapter):
        summary["gate_mean_abs"] = model.gate.detach().abs().mean().item()
    if isinstance(model, MultiScaleAdapter):
        summary["point_weights"] = model.point_weights()
    return TrainedAdapter(model=model, summary=summary)


def save_adapter(out_dir: str | Path, name: str, spec: AdapterSpec, model: Adapter) -> None:
    """``config.json`` and ``model.safetensors`` (weights and input statistics) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "name": name,
        "kind": model.kind,
        "params": spec.model_dump(),
        "latent": model.latent.to_dict(),
        "streams": {role: grid.to_dict() for role, grid in model.streams.items()},
    }
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, out / "model.safetensors")
    write_json_atomic(out / "config.json", config)


def load_adapter(out_dir: str | Path) -> Adapter:
    """An adapter saved by :func:`save_adapter`, on the CPU, in eval mode."""
    out = Path(out_dir)
    config = json.loads((out / "config.json").read_text())
    spec = SPEC_CLASSES[config["kind"]].model_validate(config["params"])
    streams = {role: GridSpec.from_dict(d) for role, d in config["streams"].items()}
    model = build_adapter(spec, streams, LatentSpec(**config["latent"]))
    model.load_state_dict(load_file(out / "model.safetensors"))
    return model.eval()


def weights_sha256(model: Adapter) -> str:
    """sha256 over the names and bytes of the model's state dict."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_predictions(
    model: Adapter,
    data: AdapterData,
    clips: Sequence[int],
    out_path: str | Path,
    name: str,
    batch_size: int,
    autocast: bool = False,
) -> zarr.Array:
    """Predicted latents of ``clips`` into ``out_path`` ``[row, 128, F', H', W']`` (attributes ``clips``,
    ``weights_sha256`` and the VAE latents' identity and geometry)."""
    attrs = {
        **{k: data.latents.attrs[k] for k in ("vae", "n_frames", "height", "width", "latent_shape")},
        "adapter": name,
        "clips": [int(c) for c in clips],
        "weights_sha256": weights_sha256(model),
    }
    store = PartialStore(out_path, {"attributes": attrs})
    shape = (len(clips), *data.latents.shape[1:])
    arr = store.array(
        shape,
        chunks=(1, *shape[1:]),
        dtype="float32",
        dimension_names=("row", "channel", "t", "y", "x"),
        attributes=attrs,
    )
    for row in range(0, len(clips), batch_size):
        for k, latent in enumerate(
            predict(model, data, clips[row : row + batch_size], batch_size, autocast), start=row
        ):
            arr[k] = latent
            store.mark_done(k)
    store.finalize()
    return open_complete(out_path)
