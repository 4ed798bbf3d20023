"""Adapter training memory at real size, computed without a GPU (the README's figure for the real profile).

For each adapter of a profile, at the real geometry (Qwen2.5-VL-7B: pre-merge 32x48 = 1536 tokens x 1280 channels
at 14 px, merger/LLM 16x24 = 384 tokens x 3584 at 28 px, per frame; 448x672, 9 frames in image mode; LTX latent
128 x 2 x 14 x 21) and the profile's batch size, it builds the adapter, runs its forward on random inputs at
batches 1 and 2 on the CPU and counts what autograd keeps for the backward pass (:class:`SavedActivations`, inputs
excluded), with and without checkpointing, in float32 and under bfloat16 autocast (CPU autocast, a proxy for CUDA's:
both cast linear layers and matmuls). Then

    peak ~ 24 P                 weights, gradients (4 B each), AdamW moments (8 B), initial and best copies (8 B)
         + B * sum(t*gh*gw*C) * 4   the float32 input batch
         + A(B)                 activations kept for the backward, A(B) = A(1) + (B - 1) * (A(2) - A(1))
         + B * t*gh*gw*D * 4    backward transient: the gradient of the spatial token layer's output (float32)

(P parameters, B batch size, D the adapter width). Computed, not measured: no CUDA context, allocator rounding or
fragmentation, and CPU autocast stands in for CUDA's.

    python benchmarks/adapter_memory.py --profile profiles/real.yaml --adapters dual_vit_l15_llm_l13
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import date

import torch

from foresight_lib.adapters.models import adapter_spec, build_adapter, count_parameters
from foresight_lib.adapters.resample import GridSpec, LatentSpec
from foresight_lib.adapters.train import SavedActivations
from foresight_lib.families import FAMILIES, shape_of
from foresight_lib.params import ADAPTER_KINDS, MERGED_KINDS, load_params

GIB = 2**30


def grid_of(point: str, kind: str, args: argparse.Namespace, height: int, width: int, n_frames: int) -> GridSpec:
    """Image mode: one slot per frame; pre-merge points at the patch stride, merger/LLM at the 2x2 merge unit."""
    merged = kind in MERGED_KINDS
    stride = args.patch * (2 if merged else 1)
    channels = args.merged_channels if merged else args.vit_channels
    return GridSpec(
        point,
        stride,
        (n_frames, height // stride, width // stride),
        channels,
        tuple((f,) for f in range(n_frames)),
        height,
        width,
    )


def saved_bytes(model: torch.nn.Module, streams: dict[str, GridSpec], batch: int, autocast: bool) -> int:
    inputs = {role: torch.randn(batch, *g.grid, g.channels) for role, g in streams.items()}  # [B, t, gh, gw, C]
    meter = SavedActivations(model).exclude(inputs.values())
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast), meter:
        model(inputs)
    return meter.bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="profiles/real.yaml")
    parser.add_argument("--adapters", default="", help="comma-separated names (default: every adapter of the profile)")
    reference = shape_of("qwen2_5_vl", FAMILIES["qwen2_5_vl"].reference)  # Qwen2.5-VL-7B
    parser.add_argument("--patch", type=int, default=reference.patch, help="ViT patch size (config: vision patch_size)")
    parser.add_argument("--vit-channels", type=int, default=reference.vit_width, help="ViT hidden size")
    parser.add_argument("--merged-channels", type=int, default=reference.merged_width, help="merger output = LLM width")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    params = load_params(args.profile)
    data, batch = params.data, params.adapter.train.batch_size
    names = [n for n in args.adapters.split(",") if n] or [
        n for kind in ADAPTER_KINDS for n in getattr(params.adapter, kind)
    ]
    latent = LatentSpec(data.n_frames, data.height, data.width)
    torch.manual_seed(0)
    results = []
    for name in names:
        spec = adapter_spec(params.adapter, name)
        streams = {
            role: grid_of(p, params.points[p].kind, args, data.height, data.width, data.n_frames)
            for role, p in spec.inputs().items()
        }
        model = build_adapter(spec, streams, latent)
        n_params = count_parameters(model)["total"]
        width = getattr(spec, "dim", None) or spec.hidden
        first = streams.get("spatial") or next(iter(streams.values()))
        inputs = batch * sum(g.grid[0] * g.grid[1] * g.grid[2] * g.channels for g in streams.values()) * 4
        targets = batch * torch.Size(latent.shape).numel() * 4
        transient = batch * first.grid[0] * first.grid[1] * first.grid[2] * width * 4
        for checkpointing in (False, True):
            model.checkpointing = checkpointing
            for autocast in (False, True):
                with torch.enable_grad():
                    one, two = (saved_bytes(model, streams, b, autocast) for b in (1, 2))
                activations = one + (batch - 1) * (two - one)
                peak = 24 * n_params + inputs + targets + activations + transient
                row = {
                    "adapter": name,
                    "kind": model.kind,
                    "parameters": n_params,
                    "batch_size": batch,
                    "checkpointing": checkpointing,
                    "precision": "bfloat16 autocast" if autocast else "float32",
                    "state_gib": 24 * n_params / GIB,
                    "inputs_gib": (inputs + targets) / GIB,
                    "activations_gib": activations / GIB,
                    "transient_gib": transient / GIB,
                    "peak_gib": peak / GIB,
                }
                results.append(row)
                print(
                    f"{name:28s} ckpt={checkpointing!s:5s} {row['precision']:17s} P={n_params:>11,} "
                    f"state {row['state_gib']:.2f} + inputs {row['inputs_gib']:.2f} + activations "
                    f"{row['activations_gib']:.2f} + transient {row['transient_gib']:.2f} = {peak / GIB:.2f} GiB"
                )
    record = {
        "computed": True,
        "machine": f"{platform.machine()} CPU, no GPU",
        "date": date.today().isoformat(),
        "torch": torch.__version__,
        "profile": args.profile,
        "results": results,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
