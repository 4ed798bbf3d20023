"""Extraction benchmark: foresight's truncated, raster-ordered, Zarr-backed extraction vs the naive way.

Side by side in one run, on the same frames and the same randomly initialised model:
- ``naive``: ``model(**inputs, output_hidden_states=True)`` on the full model (a forward hook keeps the
  wanted ViT block's output, since the full model does not return vision hidden states), then
  ``torch.save`` of the wanted layer, as the proposal's sketch does (still in scrambled token order);
- ``bare``: the truncated forward alone (``qwen.extract``), no storage: the floor for that point;
- ``foresight``: the whole stage path (``write_point``: truncated forward, raster order, float16 Zarr).
Prints frames/s and the ratios naive/foresight (speed-up) and foresight/bare (storage overhead), and on a
GPU the model FLOPs utilisation (MFU) of the stage path.

Two more comparisons (``--parts``):
- ``attention``: the bare ``vit_l31`` forward (all 32 blocks) with transformers' SDPA, one call per window,
  vs foresight's batched window attention (one call per block): attention calls per forward and frames/s.
- ``torchrun``: the ``extract`` stage as users run it, one process vs ``FORESIGHT_TORCHRUN="--standalone
  --nproc-per-node 2"`` (CPU: gloo), on the same random model saved as a checkpoint: whether the stores are
  byte-identical, and the speed-up (frames/s of the extraction, and the whole command's wall time).

    python benchmarks/extract.py --model tiny            # CPU, tiny widths
    python benchmarks/extract.py --model wide            # CPU, wider random model
    python benchmarks/extract.py --model 7b --device cuda --dtype bfloat16   # real 7B widths (GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
import zarr
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from foresight_lib.cost import MEASURED, MEASURED_FAMILY, MEASURED_FRAME
from foresight_lib.data.frames import write_frames
from foresight_lib.extract import qwen
from foresight_lib.extract.attention import use_windowed_attention
from foresight_lib.extract.qwen import qwen_extractor
from foresight_lib.extract.writer import write_point
from foresight_lib.families import FAMILIES
from foresight_lib.params import ExtractParams, MergerPoint, ModelParams, VitBlockPoint, VitEmbedPoint, parse_params

POINTS = MEASURED  # the points whose rates the cost model reads (benchmarks/rates.json)
WIDE = {
    "hidden_size": 8,
    "intermediate_size": 8,
    "out_hidden_size": 8,
    "num_heads": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
}
"""What a ``wide`` model divides the reference config's widths and heads by (head dims halved)."""


def config_for(name: str) -> Qwen2_5_VLConfig:
    """``tiny``: the pipeline's tiny model; ``7b``: the Qwen2.5-VL reference of :data:`foresight_lib.families.FAMILIES`
    (vocabulary shrunk to the tiny model's: the embedding table plays no part in vision-token features); ``wide``: that
    reference with its widths and heads divided as :data:`WIDE` says."""
    base = qwen.tiny_config("qwen2_5_vl")
    if name == "tiny":
        return base
    divisors = WIDE if name == "wide" else {}
    reference = FAMILIES[MEASURED_FAMILY].reference
    vision, text = (
        {k: v // divisors[k] if k in divisors else v for k, v in reference[section].items()}
        for section in ("vision_config", "text_config")
    )
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    text |= {
        "vocab_size": base.text_config.vocab_size,
        "bos_token_id": base.text_config.bos_token_id,
        "eos_token_id": base.text_config.eos_token_id,
        "rope_parameters": base.text_config.rope_parameters
        | {"mrope_section": [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]},  # sum = head_dim / 2
    }
    return Qwen2_5_VLConfig(
        vision_config=vision,
        text_config=text,
        vision_start_token_id=base.vision_start_token_id,
        vision_end_token_id=base.vision_end_token_id,
        image_token_id=base.image_token_id,
        video_token_id=base.video_token_id,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def naive(model, frames: np.ndarray, point, out: Path, device: torch.device) -> float:
    """Full forward with output_hidden_states, then torch.save of the wanted layer; seconds."""
    inputs = {k: v.to(device) for k, v in qwen.build_inputs(frames, "image", model.config).items()}
    kept = {}
    hook = None
    if isinstance(point, VitEmbedPoint):
        hook = model.model.visual.patch_embed.register_forward_hook(lambda m, a, o: kept.update(x=o))
    elif isinstance(point, VitBlockPoint):
        hook = model.model.visual.blocks[point.layer].register_forward_hook(lambda m, a, o: kept.update(x=o))
    elif isinstance(point, MergerPoint):
        hook = model.model.visual.merger.register_forward_hook(lambda m, a, o: kept.update(x=o))
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        output = model(**inputs, output_hidden_states=True, use_cache=False)
        layer = kept["x"] if hook else output.hidden_states[point.layer + 1]
        torch.save(layer.cpu(), out)
    sync(device)
    if hook:
        hook.remove()
    return time.perf_counter() - start


def transformers_attention(model) -> None:
    """transformers' own SDPA everywhere (the vision tower loops over windows)."""
    model.set_attn_implementation({"vision_config": "sdpa", "text_config": "sdpa"})


def attention_part(model, frames: np.ndarray, device: torch.device, repeats: int) -> dict:
    """Bare vit_l31 forward: transformers' per-window SDPA calls vs one batched call per block."""
    point = {"vit_l31": POINTS["vit_l31"]}
    calls, sdpa = [0], F.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls[0] += 1
        return sdpa(*args, **kwargs)

    row = {"point": "vit_l31", "frames": len(frames)}
    for name, setup in (("transformers", transformers_attention), ("batched", use_windowed_attention)):
        setup(model)
        F.scaled_dot_product_attention = counted
        calls[0] = 0
        qwen.extract(model, frames, point, "image", len(frames))  # one forward: count its calls
        F.scaled_dot_product_attention = sdpa
        row[f"{name}_calls_per_forward"] = calls[0]
        times = []
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            qwen.extract(model, frames, point, "image", len(frames))
            sync(device)
            times.append(time.perf_counter() - start)
        row[f"{name}_fps"] = len(frames) / min(times)
    row["speedup"] = row["batched_fps"] / row["transformers_fps"]
    return row


def torchrun_part(model, tmp: Path, args: argparse.Namespace) -> dict:
    """The extract stage, 1 process vs 2 under torchrun, on ``model`` saved as a checkpoint; same stores?"""
    model.save_pretrained(tmp / "checkpoint")
    params = {
        "model": {"source": str(tmp / "checkpoint"), "device": args.device, "dtype": args.dtype},
        "extract": {"batch_frames": args.batch_frames},
        "points": {"vit_l7": {"kind": "vit_block", "layer": 7}},
    }
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    root = Path(__file__).resolve().parents[1]
    row: dict = {"point": "vit_l7"}
    for name, torchrun in (("one", ""), ("two", "--standalone --nproc-per-node 2")):
        cmd = [
            sys.executable,
            str(root / "stages" / "extract.py"),
            "--params",
            str(tmp / "params.yaml"),
            "--point",
            "vit_l7",
            "--frames",
            str(tmp / "data" / "frames.zarr"),
            "--out",
            str(tmp / f"{name}.zarr"),
            "--metrics",
            str(tmp / f"{name}.json"),
        ]
        start = time.perf_counter()
        res = subprocess.run(
            cmd, check=False, env={**os.environ, "FORESIGHT_TORCHRUN": torchrun}, capture_output=True, text=True
        )
        if res.returncode:
            raise SystemExit(f"{name}: {res.stderr[-2000:]}")
        row[f"{name}_command_s"] = time.perf_counter() - start
        row[f"{name}_fps"] = json.loads((tmp / f"{name}.json").read_text())["frames_per_second"]
    files = [
        {str(p.relative_to(tmp / n)): p.read_bytes() for p in (tmp / n).rglob("*") if p.is_file()}
        for n in ("one.zarr", "two.zarr")
    ]
    row["byte_identical"] = files[0] == files[1]
    row["chunks_differing"] = sum(files[0].get(k) != v for k, v in files[1].items())
    row["speedup_fps"] = row["two_fps"] / row["one_fps"]
    row["speedup_command"] = row["one_command_s"] / row["two_command_s"]
    return row


def peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "wide", "7b"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--clips", type=int, default=3, help="synthetic clips at the measured frame size (at least 3)")
    parser.add_argument("--batch-frames", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats; the best is reported")
    parser.add_argument("--points", default="vit_l7,merger,llm_l13", help=f"comma-separated, of {', '.join(POINTS)}")
    parser.add_argument(
        "--parts", default="points,attention,torchrun", help="comma-separated, of points, attention, torchrun"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    with torch.device(device):
        torch.manual_seed(0)
        model = Qwen2_5_VLForConditionalGeneration._from_config(config_for(args.model), dtype=dtype).eval()
    n_params = sum(p.numel() for p in model.parameters())
    loaded = qwen.LoadedModel(
        model=model,
        device=device,
        dtype=dtype,
        norm=qwen.CLIP_NORMALIZATION,
        identity={"weights": f"random-{args.model}", "dtype": args.dtype},
    )
    rows, attention, scale_out = [], None, None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        height, width = MEASURED_FRAME
        data = parse_params({"data": {"height": height, "width": width, "synthetic": {"n_clips": args.clips}}}).data
        write_frames(data, tmp / "data", progress=False)
        frames_all = np.asarray(zarr.open_array(tmp / "data" / "frames.zarr"))  # [clips, F, H, W, 3]
        frames = frames_all.reshape(-1, *frames_all.shape[2:])  # [N, H, W, 3]
        n = len(frames)
        extract = ExtractParams(mode="image", dtype="float16", batch_frames=args.batch_frames)
        qwen.extract(model, frames[:2], {"w": POINTS["vit_l7"]}, "image", 2)  # warm-up
        if "attention" in parts:
            attention = attention_part(model, frames[: args.batch_frames], device, args.repeats)
        if "torchrun" in parts:
            transformers_attention(model)
            scale_out = torchrun_part(model, tmp, args)
        for name in args.points.split(",") if "points" in parts else []:
            point = POINTS[name]
            times = {"naive": [], "bare": [], "foresight": []}
            peaks = {}
            for r in range(args.repeats):
                peak_reset(device)
                transformers_attention(model)  # the naive way: transformers as it comes
                times["naive"].append(naive(model, frames, point, tmp / f"{name}.pt", device))
                use_windowed_attention(model)  # foresight's stage: batched window attention
                peaks["naive"] = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
                peak_reset(device)
                sync(device)
                start = time.perf_counter()
                qwen.extract(model, frames, {name: point}, "image", args.batch_frames)
                sync(device)
                times["bare"].append(time.perf_counter() - start)
                peaks["bare"] = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
                extractor = qwen_extractor(
                    name, point, ModelParams(), extract, height, width, data.n_frames, loaded=loaded
                )
                peak_reset(device)
                start = time.perf_counter()
                metrics = write_point(
                    extractor, tmp / "data" / "frames.zarr", tmp / f"{name}_{r}.zarr", None, progress=False
                )
                times["foresight"].append(time.perf_counter() - start)
            best = {k: min(v) for k, v in times.items()}
            rows.append(
                {
                    "point": name,
                    "frames": n,
                    "kind": point.kind,
                    **{f"{k}_fps": n / v for k, v in best.items()},
                    "speedup_vs_naive": best["naive"] / best["foresight"],
                    "overhead_vs_bare": best["foresight"] / best["bare"],
                    "peak_bytes": {**peaks, "foresight": metrics["peak_memory_bytes"]},
                    "feature_bytes_per_frame": metrics["feature_bytes_per_frame"],
                    "memory_overhead_vs_merger": metrics["memory_overhead_vs_merger"],
                    "model_flops_per_frame": metrics["model_flops_per_frame"],
                    "mfu": metrics["mfu"],
                    "mfu_note": metrics["mfu_note"],
                }
            )
        # The stage keeps only the vision tower for vision-only points: measure that peak too.
        if rows:
            qwen.drop_llm(loaded)
        for row in rows:
            if row["kind"] != "llm":
                extractor = qwen_extractor(
                    row["point"],
                    POINTS[row["point"]],
                    ModelParams(),
                    extract,
                    height,
                    width,
                    data.n_frames,
                    loaded=loaded,
                )
                peak_reset(device)
                metrics = write_point(
                    extractor, tmp / "data" / "frames.zarr", tmp / f"{row['point']}_vit.zarr", None, progress=False
                )
                row["peak_bytes"]["foresight_vision_only"] = metrics["peak_memory_bytes"]
    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    result = {
        "model": args.model,
        "params": n_params,
        "device": args.device,
        "dtype": args.dtype,
        "machine": machine,
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
        "attention": attention,
        "torchrun": scale_out,
    }
    print(
        f"model {args.model} ({n_params / 1e6:.1f}M params, {args.dtype}) on {machine}; {n} frames of {height}x{width}, image mode"
    )
    if rows:
        print(
            f"{'point':10s} {'naive fps':>10s} {'bare fps':>10s} {'ours fps':>10s} {'speed-up':>9s} {'ours/bare':>9s} {'MFU':>6s}"
        )
    for r in rows:
        mfu = f"{r['mfu']:6.1%}" if r["mfu"] is not None else "   n/a"
        print(
            f"{r['point']:10s} {r['naive_fps']:10.2f} {r['bare_fps']:10.2f} {r['foresight_fps']:10.2f} "
            f"{r['speedup_vs_naive']:8.2f}x {r['overhead_vs_bare']:8.2f}x {mfu}"
        )
    if rows:
        print(f"MFU: {rows[0]['mfu_note']}")
        print(
            "peak memory (GiB): naive | stage with the full model | stage as run (vision-only points keep only the ViT)"
        )
    for r in rows:
        peaks = r["peak_bytes"]
        as_run = peaks.get("foresight_vision_only", peaks["foresight"])
        gib = [f"{v / 2**30:.2f}" if v else "n/a" for v in (peaks["naive"], peaks["foresight"], as_run)]
        print(f"{r['point']:10s} {' | '.join(gib)}   feature memory vs merger {r['memory_overhead_vs_merger']:.2f}x")
    if attention:
        a = attention
        print(
            f"window attention, bare vit_l31 forward of {a['frames']} frames: transformers {a['transformers_calls_per_forward']} "
            f"SDPA calls, {a['transformers_fps']:.2f} fps | batched {a['batched_calls_per_forward']} calls, "
            f"{a['batched_fps']:.2f} fps | {a['speedup']:.2f}x"
        )
    if scale_out:
        t = scale_out
        print(
            f"extract@vit_l7 stage, 1 vs 2 processes (torchrun): {t['one_fps']:.2f} vs {t['two_fps']:.2f} fps "
            f"({t['speedup_fps']:.2f}x), command {t['one_command_s']:.1f} vs {t['two_command_s']:.1f} s "
            f"({t['speedup_command']:.2f}x); stores byte-identical: {t['byte_identical']} "
            f"({t['chunks_differing']} files differ)"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
