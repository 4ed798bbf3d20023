"""Adapters from VLM feature grids to LTX-Video latents ``[B, 128, F', H', W']``.

``single`` (the proposal's per-token MLP, split around the pooling): per-token Linear + GELU on one point ->
:class:`TemporalPool` -> :class:`AreaResample` onto the latent grid refined ``subcells`` times per side, sub-cells
stacked into channels -> :class:`LatentHead` (per-cell LayerNorm, Linear, GELU; its output layer sees ``context`` x
``context`` latent cells, 1 = per cell as proposed) to 128 channels. Pooling is linear, so the first layer runs on
every slot's tokens and the rest only on the latent grid (about 4x fewer positions).

``dual_stream``: a spatial stream (pre-merge point) and a semantic stream (merger / LLM point), each a per-token
Linear + GELU and :class:`TemporalPool`. The spatial stream is resampled like ``single`` and projected to ``dim``
per latent cell; the semantic stream is area-resampled to the latent grid (its base) and kept as tokens. Fusion is
cross-attention with the latent cells as queries: each cell's query = its semantic base + its pixel position +
``gate * spatial``, attending to the semantic tokens (+ their pixel positions) of the same latent step; output =
base + attention + ``gate * spatial`` -> :class:`LatentHead`. The per-channel ``gate`` is learned; at zero the output
does not depend on the spatial stream at all.

``multi_scale`` (the proposal's option C): several points of one stride, each standardised, mixed by learned
softmax-normalised scalars (one per point, as in layer-mixing practice), then ``single``'s layers
(:class:`MultiScaleAdapter`). With one point it computes exactly what ``single`` computes.

Inputs are standardised per channel with train-split statistics (:meth:`Adapter.set_input_stats`). Every adapter
adds a learned latent ``bias`` ``[128, F', H', W']`` set to the train split's mean latent, and its head's last layer
starts at zero: an untrained adapter *is* the trivial predictor, and training learns the residual.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ForesightError
from ..kinds import KINDS
from ..ltx.vae import LATENT_CHANNELS, SPATIAL_COMPRESSION
from ..params import (
    ADAPTER_KINDS,
    AdapterParams,
    DualStreamAdapterParams,
    MultiScaleAdapterParams,
    PointParams,
    SingleAdapterParams,
)
from .resample import GridSpec, LatentSpec, frame_slots, spatial_matrices, step_matrix

AdapterSpec = SingleAdapterParams | DualStreamAdapterParams | MultiScaleAdapterParams
POSITION_FREQUENCIES = 6
OPTIONS = {"dual_stream": "B", "multi_scale": "C"}


def adapter_spec(adapters: AdapterParams, name: str) -> AdapterSpec:
    """The entry ``name`` of ``adapter.single``, ``adapter.dual_stream`` or ``adapter.multi_scale`` (its input
    points were checked against ``points`` when the params were loaded)."""
    for kind in ADAPTER_KINDS:
        if name in getattr(adapters, kind):
            return getattr(adapters, kind)[name]
    defined = ", ".join(n for kind in ADAPTER_KINDS for n in getattr(adapters, kind)) or "none"
    raise ForesightError(f"adapter {name!r} is not in adapter.{', adapter.'.join(ADAPTER_KINDS)} (defined: {defined})")


def proposal_option(spec: AdapterSpec, points: Mapping[str, PointParams]) -> str:
    """The proposal's implementation option: ``A`` (pure pre-merge: ``single`` on a vit_embed or vit_block point),
    ``B`` (``dual_stream``), ``C`` (``multi_scale``); a ``single`` adapter elsewhere is ``post-merge`` (the
    proposal's merger adapter), ``control`` (pixels) or ``hybrid`` (a dedicated encoder)."""
    if isinstance(spec, SingleAdapterParams):
        return KINDS[points[spec.point].kind].option
    return OPTIONS["dual_stream" if isinstance(spec, DualStreamAdapterParams) else "multi_scale"]


class Standardize(nn.Module):
    """``(x - mean) / std`` per input channel; the statistics are buffers set from the train split."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., C] -> [..., C]
        return (x - self.mean) / self.std


class TemporalPool(nn.Module):
    """Slots -> latent steps: per step, a sum over its frames of ``weight[frame] * slot covering the frame``.

    ``weight`` ``[F, D]`` is learned per frame and channel (so a step can encode order and motion), initialised to
    the plain step mean of :func:`.resample.step_matrix`.
    """

    def __init__(self, spec: GridSpec, n_frames: int, dim: int) -> None:
        super().__init__()
        mean = step_matrix(n_frames)  # [F', F]
        self.register_buffer("frame_slot", torch.as_tensor(frame_slots(spec, n_frames)), persistent=False)  # [F]
        self.register_buffer("member", torch.as_tensor(mean > 0, dtype=torch.float32), persistent=False)
        per_frame = torch.as_tensor(mean.sum(axis=0), dtype=torch.float32)  # [F] each frame's share of its step
        self.weight = nn.Parameter(per_frame[:, None].repeat(1, dim))  # [F, D]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, t, gh, gw, D] -> [B, F', gh, gw, D]
        frames = x[:, self.frame_slot] * self.weight[:, None, None, :]  # [B, F, gh, gw, D]
        return torch.einsum("kf,bfhwd->bkhwd", self.member, frames)


class AreaResample(nn.Module):
    """Token grid -> latent grid: area filter onto ``subcells`` x ``subcells`` sub-cells of each 32 px latent cell
    (:func:`.resample.spatial_matrices`), then the sub-cells stacked into channels in (sy, sx, d) order."""

    def __init__(self, spec: GridSpec, latent: LatentSpec, subcells: int) -> None:
        super().__init__()
        ry, rx = spatial_matrices(spec, latent, subcells)
        self.subcells = subcells
        self.register_buffer("ry", torch.as_tensor(ry, dtype=torch.float32), persistent=False)  # [H'*s, gh]
        self.register_buffer("rx", torch.as_tensor(rx, dtype=torch.float32), persistent=False)  # [W'*s, gw]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, gh, gw, D] -> [B, T, H', W', s*s*D]
        y = torch.einsum("ir,btrcd->bticd", self.ry, x)
        y = torch.einsum("jc,bticd->btijd", self.rx, y)  # [B, T, H'*s, W'*s, D]
        b, t, hs, ws, d = y.shape
        s = self.subcells
        y = y.reshape(b, t, hs // s, s, ws // s, s, d).permute(0, 1, 2, 4, 3, 5, 6)
        return y.reshape(b, t, hs // s, ws // s, s * s * d)


class PixelPositions(nn.Module):
    """Learned projection of Fourier features of cell centres in frame-relative pixel coordinates, so that a
    semantic token and a latent cell at the same place get the same code."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(4 * POSITION_FREQUENCIES, dim)

    @staticmethod
    def features(rows: int, cols: int, stride: float, height: int, width: int) -> torch.Tensor:
        """float32 ``[rows * cols, 4 * POSITION_FREQUENCIES]`` for a grid of ``stride`` px cells."""
        y = (torch.arange(rows, dtype=torch.float64) + 0.5) * stride / height
        x = (torch.arange(cols, dtype=torch.float64) + 0.5) * stride / width
        yy, xx = torch.meshgrid(y, x, indexing="ij")
        freq = torch.pi * 2.0 ** torch.arange(POSITION_FREQUENCIES, dtype=torch.float64)
        angles = torch.cat([yy.reshape(-1, 1) * freq, xx.reshape(-1, 1) * freq], dim=1)  # [n, 2K]
        return torch.cat([angles.sin(), angles.cos()], dim=1).to(torch.float32)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # [n, 4K] -> [n, D]
        return self.proj(feats)


def _token_layer(channels: int, dim: int) -> nn.Sequential:
    """Per token (every slot, every cell): Linear -> GELU; the MLP's second layer is the head's, after pooling."""
    return nn.Sequential(nn.Linear(channels, dim), nn.GELU())


class LatentHead(nn.Module):
    """Per latent cell LayerNorm -> Linear -> GELU, then a ``context`` x ``context`` convolution over each latent
    step's grid to the 128 channels (``context`` 1: per cell), its weights starting at zero."""

    def __init__(self, channels: int, hidden: int, context: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, hidden), nn.GELU())
        self.out = nn.Conv2d(hidden, LATENT_CHANNELS, context, padding=context // 2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, F', H', W', C] -> [B, 128, F', H', W']
        h = self.mlp(x)
        b, k, lh, lw, d = h.shape
        y = self.out(h.reshape(b * k, lh, lw, d).permute(0, 3, 1, 2))  # [B F', 128, H', W']
        return y.view(b, k, LATENT_CHANNELS, lh, lw).transpose(1, 2)


class Adapter(nn.Module):
    """Base: ``forward(inputs)`` maps ``{role: float32 [B, t, gh, gw, C]}`` to latents ``[B, 128, F', H', W']``.

    ``checkpointing`` (a training setting, not saved): the token-resolution stream (:meth:`_stream`) keeps no
    activations for the backward pass and is recomputed there; same gradients, less memory.
    """

    kind: str
    roles: tuple[str, ...]
    checkpointing: bool = False

    def __init__(self, streams: Mapping[str, GridSpec], latent: LatentSpec) -> None:
        super().__init__()
        missing = set(self.roles) - set(streams)
        if missing:
            raise ValueError(f"{self.kind} adapter needs input grids for {sorted(missing)}")
        self.streams = dict(streams)
        self.latent = latent
        self.norms = nn.ModuleDict({role: Standardize(streams[role].channels) for role in self.roles})
        self.bias = nn.Parameter(torch.zeros(latent.shape))  # [128, F', H', W']

    def set_input_stats(self, role: str, mean: np.ndarray, std: np.ndarray) -> None:
        """Per-channel train-split statistics of input ``role`` (``std`` floored by the caller)."""
        self.norms[role].mean.copy_(torch.as_tensor(mean))
        self.norms[role].std.copy_(torch.as_tensor(std))

    def set_latent_mean(self, mean: np.ndarray) -> None:
        """Start the latent ``bias`` at the train split's mean latent ``[128, F', H', W']``."""
        with torch.no_grad():
            self.bias.copy_(torch.as_tensor(mean))

    def _stream(self, fn: Callable[..., torch.Tensor], *x: torch.Tensor) -> torch.Tensor:
        """``fn(*x)``, recomputed in the backward pass when ``checkpointing`` and gradients are on."""
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *x, use_reentrant=False)
        return fn(*x)


class _GridAdapter(Adapter):
    """``single``'s layers on one input grid: per-token layer -> temporal pool -> resampling -> head. Subclasses
    define :meth:`_combined`, the standardised input grid."""

    def __init__(
        self, spec: SingleAdapterParams | MultiScaleAdapterParams, streams: Mapping[str, GridSpec], latent: LatentSpec
    ) -> None:
        super().__init__(streams, latent)
        grid = streams[self.roles[0]]
        self.tokens = _token_layer(grid.channels, spec.hidden)
        self.time = TemporalPool(grid, latent.n_frames, spec.hidden)
        self.space = AreaResample(grid, latent, spec.subcells)
        self.head = LatentHead(spec.subcells**2 * spec.hidden, spec.hidden, spec.context)

    def _combined(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:  # -> [B, t, gh, gw, C]
        raise NotImplementedError

    def _grid_stream(self, *grids: torch.Tensor) -> torch.Tensor:  # -> [B, F', H', W', s*s*hidden]
        h = self.tokens(self._combined(dict(zip(self.roles, grids, strict=True))))  # [B, t, gh, gw, hidden]
        return self.space(self.time(h))

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        h = self._stream(self._grid_stream, *(inputs[role] for role in self.roles))  # [B, F', H', W', s*s*hidden]
        return self.head(h) + self.bias  # [B, 128, F', H', W']


class SingleAdapter(_GridAdapter):
    kind = "single"
    roles = ("point",)

    def _combined(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.norms["point"](inputs["point"])


class MultiScaleAdapter(_GridAdapter):
    """Option C: input grids of one stride and width, each standardised, mixed as ``sum_i softmax(w)_i * x_i`` with
    one learned scalar ``w_i`` per point (starting equal), then ``single``'s layers. Standardising first puts the
    points on one scale, so a weight is the point's share of the mixed input."""

    kind = "multi_scale"

    def __init__(self, spec: MultiScaleAdapterParams, streams: Mapping[str, GridSpec], latent: LatentSpec) -> None:
        self.roles = tuple(spec.inputs())
        grids = [streams[role] for role in self.roles if role in streams]
        for grid in grids[1:]:
            a, b = grids[0], grid
            if (a.stride, a.grid, a.channels, a.slot_frames) != (b.stride, b.grid, b.channels, b.slot_frames):
                raise ForesightError(
                    f"multi_scale points {a.point} and {b.point} differ in stride, grid, width or "
                    f"slots ({a.stride} px {a.grid} x {a.channels} vs {b.stride} px {b.grid} x "
                    f"{b.channels}): they must share one grid to be mixed"
                )
        super().__init__(spec, streams, latent)
        self.mix = nn.Parameter(torch.zeros(len(self.roles)))  # [P] logits of the per-point weights

    def weights(self) -> torch.Tensor:  # [P], sums to 1
        return torch.softmax(self.mix, dim=0)

    def point_weights(self) -> dict[str, float]:
        """The learned weight of each input point."""
        return {self.streams[role].point: w for role, w in zip(self.roles, self.weights().tolist(), strict=True)}

    def _combined(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        grids = torch.stack([self.norms[role](inputs[role]) for role in self.roles])  # [P, B, t, gh, gw, C]
        return torch.einsum("p,p...->...", self.weights(), grids)


class DualStreamAdapter(Adapter):
    kind = "dual_stream"
    roles = ("spatial", "semantic")

    def __init__(self, spec: DualStreamAdapterParams, streams: Mapping[str, GridSpec], latent: LatentSpec) -> None:
        super().__init__(streams, latent)
        spatial, semantic = streams["spatial"], streams["semantic"]
        d = spec.dim
        self.spatial_tokens = _token_layer(spatial.channels, d)
        self.spatial_time = TemporalPool(spatial, latent.n_frames, d)
        self.spatial_space = AreaResample(spatial, latent, spec.subcells)
        self.spatial_proj = nn.Linear(spec.subcells**2 * d, d)
        self.semantic_tokens = _token_layer(semantic.channels, d)
        self.semantic_time = TemporalPool(semantic, latent.n_frames, d)
        self.semantic_space = AreaResample(semantic, latent, 1)
        self.gate = nn.Parameter(torch.full((d,), spec.gate_init))
        self.positions = PixelPositions(d)
        _, lh, lw = latent.shape[1:]
        _, gh, gw = semantic.grid
        self.register_buffer(
            "latent_pos",
            PixelPositions.features(lh, lw, SPATIAL_COMPRESSION, latent.height, latent.width),
            persistent=False,
        )  # [H'W', 4K]
        self.register_buffer(
            "token_pos", PixelPositions.features(gh, gw, semantic.stride, latent.height, latent.width), persistent=False
        )  # [gh gw, 4K]
        self.query_norm = nn.LayerNorm(d)
        self.key_norm = nn.LayerNorm(d)
        self.attention = nn.MultiheadAttention(d, spec.heads, batch_first=True)
        self.head = LatentHead(d, d, spec.context)

    def _spatial_stream(self, x: torch.Tensor) -> torch.Tensor:  # [B, ts, gh_s, gw_s, C] -> [B, F', H', W', D]
        s = self.spatial_tokens(self.norms["spatial"](x))  # [B, ts, gh_s, gw_s, D]
        return self.spatial_proj(self.spatial_space(self.spatial_time(s)))

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        s = self._stream(self._spatial_stream, inputs["spatial"])  # [B, F', H', W', D]
        m = self.semantic_time(self.semantic_tokens(self.norms["semantic"](inputs["semantic"])))  # [B, F', gh, gw, D]
        base = self.semantic_space(m)  # [B, F', H', W', D]
        b, k, lh, lw, d = base.shape
        gated = self.gate * s  # [B, F', H', W', D]
        query = self.query_norm(base + gated + self.positions(self.latent_pos).view(lh, lw, d))
        keys = self.key_norm(m + self.positions(self.token_pos).view(*m.shape[2:4], d))  # [B, F', gh, gw, D]
        attended, _ = self.attention(
            query.reshape(b * k, lh * lw, d), keys.reshape(b * k, -1, d), keys.reshape(b * k, -1, d), need_weights=False
        )  # [B F', H'W', D]
        fused = base + attended.view(b, k, lh, lw, d) + gated
        return self.head(fused) + self.bias  # [B, 128, F', H', W']


def build_adapter(spec: AdapterSpec, streams: Mapping[str, GridSpec], latent: LatentSpec) -> Adapter:
    """The adapter ``spec`` describes, for these input grids and clip geometry (weights at PyTorch's init)."""
    if isinstance(spec, SingleAdapterParams):
        return SingleAdapter(spec, streams, latent)
    if isinstance(spec, MultiScaleAdapterParams):
        return MultiScaleAdapter(spec, streams, latent)
    return DualStreamAdapter(spec, streams, latent)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameters: ``total`` and per top-level submodule (and direct parameters such as ``gate``)."""
    counts = {"total": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    for name, param in model.named_parameters():
        if param.requires_grad:
            top = name.split(".")[0]
            counts[top] = counts.get(top, 0) + param.numel()
    return counts
