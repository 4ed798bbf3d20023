"""Probe benchmark: the one-pass engine vs the per-head loop, and the probe stage before and after.

Side by side in one run, ratios printed and written to ``benchmarks/results_probe_<tag>.json`` (machine, date,
torch version, settings with every figure):

- ``wide``: real widths on synthetic random grids (1280 channels on a 32x48 grid at stride 14, and 3584 on
  16x24 at stride 28; random float16 in a Zarr store, random boxes), the train split streamed (memory budget
  0: the worst case). **one-pass**: every head x {features, shuffled} x learning rate trained from one read of
  the split per epoch (:class:`foresight_lib.probes.engine.OnePass`, the trainees on ``--threads`` threads, each
  op on one, as the stage runs them). **per-head** (the naive way, the probe stage as it was): each trainee
  trains alone (torch on ``--threads`` threads) and re-reads the split from Zarr (float32) every epoch.
  Reported per epoch: bytes read from Zarr (decompressed) and train frames/s for all trainees together.
- ``stage``: the embedded default's ``probe@<point>`` stage (its frames: params.yaml ``data``, and the
  ``pixels`` point), run by ``git``'s ``--before`` code (default ``main``) and by this tree, at equal settings
  (``probe`` section of params.yaml with one learning rate and one seed, and the same ``probe.threads``, each
  value of ``--stage-threads``). Each run in its own process: wall time with imports, and a cProfile run of
  each side at ``probe.threads`` 1 for the breakdown (imports, reads, training, per-epoch validation,
  decoding, COCOeval, bootstrap, temporal; cumulative times, so nested parts overlap: COCOeval calls made by
  the mAP bootstrap count in both). ``sweep``: the same stage with a learning-rate sweep (``--stage-sweep``,
  the issue's "small sweep"): the old code trains one rate per run, so one run per rate, this one all in one.

    python benchmarks/probe.py --tag cpu_small --clips 6 --epochs 1          # proves it runs (minutes on CPU)
    python benchmarks/probe.py --tag gpu --device cuda --clips 64 --epochs 2  # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
import zarr

from foresight_lib.device import resolve_device
from foresight_lib.families import FAMILIES, shape_of
from foresight_lib.features import FeatureStore
from foresight_lib.features_loader import MemoryBudget
from foresight_lib.params import ProbeParams, load_params
from foresight_lib.probes.data import ProbeData
from foresight_lib.probes.engine import Budget, OnePass, Score, TraineeKey, make_trainees, seeded
from foresight_lib.probes.heads import make_probe
from foresight_lib.probes.truth import GroundTruth
from foresight_lib.workers import Workers

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = shape_of("qwen2_5_vl", FAMILIES["qwen2_5_vl"].reference)  # Qwen2.5-VL-7B, at the real 448x672
WIDE = {  # channels, gh, gw, stride
    f"vit_{REFERENCE.vit_width}": (
        REFERENCE.vit_width,
        *(side // REFERENCE.patch for side in (448, 672)),
        REFERENCE.patch,
    ),
    f"merger_{REFERENCE.merged_width}": (
        REFERENCE.merged_width,
        *(side // (2 * REFERENCE.patch) for side in (448, 672)),
        2 * REFERENCE.patch,
    ),
}
CATEGORIES = ("a", "b", "c", "d")


# ----------------------------------------------------------------------------------------------- wide
def _synthetic(
    tmp: Path, name: str, channels: int, gh: int, gw: int, stride: int, clips: int, slots: int
) -> tuple[FeatureStore, GroundTruth]:
    """A float16 store of random grids ``[clips, slots, gh, gw, C]`` and 1-3 random boxes per frame."""
    rng = np.random.default_rng(0)
    height, width = gh * stride, gw * stride
    array = zarr.open_array(
        str(tmp / f"{name}.zarr"),
        mode="w",
        shape=(clips, slots, gh, gw, channels),
        chunks=(1, slots, gh, gw, channels),
        dtype="float16",
    )
    for c in range(clips):
        array[c] = rng.standard_normal((slots, gh, gw, channels), dtype=np.float32).astype(np.float16)
    array.attrs.update(
        {"height": height, "width": width, "stride": stride, "slot_frames": [[t] for t in range(slots)], "point": name}
    )
    boxes = {}
    for c in range(clips):
        for t in range(slots):
            n = int(rng.integers(1, 4))
            wh = rng.uniform(0.1, 0.4, size=(n, 2)) * [width, height]
            xy = rng.uniform(0, 1, size=(n, 2)) * ([width, height] - wh)
            boxes[(c, t)] = (np.concatenate([xy, wh], axis=1), rng.integers(0, len(CATEGORIES), n))
    split = ["val", "test"] + ["train"] * (clips - 2)
    table = pd.DataFrame(
        {"clip": np.arange(clips), "name": [f"c{c}" for c in range(clips)], "split": split, "direction": -1}
    )
    truth = GroundTruth(height, width, slots, CATEGORIES, table, boxes)
    return FeatureStore(tmp / f"{name}.zarr", array), truth


def _one_pass(
    store: FeatureStore,
    truth: GroundTruth,
    params: ProbeParams,
    keys: list[TraineeKey],
    device: torch.device,
    epochs: int,
) -> dict:
    data = ProbeData(store, truth, params.seed, params.batch_size, params.block_clips, device, MemoryBudget(0, 0))
    before = data.loaders["train"].bytes_read
    per_epoch = -(-len(data.splits["train"]) * data.n_slots // params.batch_size)  # optimiser steps per epoch
    budget = Budget(epochs * per_epoch, epochs * per_epoch)  # whole epochs, one validation at the end
    trainees = make_trainees(
        keys,
        lambda k: make_probe(k.name, store.channels, len(CATEGORIES), params),
        params.weight_decay,
        budget.steps,
        device,
    )

    def loss(t, batch):
        return t.model.loss(t.model(batch.inputs(t.key.shuffled)), batch.targets), len(batch.clips)

    threads = torch.get_num_threads()  # as the probe stage runs: each op on one thread, trainees on `threads`
    torch.set_num_threads(1)
    started = time.perf_counter()
    with Workers(threads, device) as workers:
        OnePass(
            trainees,
            lambda e: data.batches("train", True, e),
            loss,
            lambda ts: [Score(0.0, 0.0)] * len(ts),
            "none",
            workers,
        ).run(budget, device, "one-pass")
    _sync(device)
    seconds = time.perf_counter() - started
    torch.set_num_threads(threads)
    frames = len(data.splits["train"]) * data.n_slots
    return {
        "seconds_per_epoch": seconds / epochs,
        "frames_per_s": frames * epochs / seconds,
        "bytes_read_per_epoch": (data.loaders["train"].bytes_read - before) / epochs,
        "held": data.loaders["train"].residency,
    }


def _per_head(
    store: FeatureStore,
    truth: GroundTruth,
    params: ProbeParams,
    keys: list[TraineeKey],
    device: torch.device,
    epochs: int,
) -> dict:
    """The naive way: each trainee alone, the split re-read (float32) and standardised every epoch."""
    data = ProbeData(store, truth, params.seed, params.batch_size, params.block_clips, device, MemoryBudget(0, 0))
    mean, std = data.standardiser.mean, data.standardiser.std
    train = data.splits["train"]
    bytes_read, started = 0, time.perf_counter()
    for key in keys:
        with seeded(key.seed):
            model = make_probe(key.name, store.channels, len(CATEGORIES), params).to(device)
        optimiser = torch.optim.AdamW(model.parameters(), lr=key.lr, weight_decay=params.weight_decay)
        for epoch in range(epochs):
            rng = np.random.default_rng([params.seed, epoch])
            clips = rng.permutation(train)
            for start in range(0, len(clips), params.block_clips):
                block = clips[start : start + params.block_clips]
                grids = (store.read(np.sort(block)) - mean) / std  # [k, T, gh, gw, C] float32
                bytes_read += grids.size * 2  # float16 in the store
                order = rng.permutation(len(block) * data.n_slots)
                for s in range(0, len(order), params.batch_size):
                    pick = order[s : s + params.batch_size]
                    pos, slots = pick // data.n_slots, pick % data.n_slots
                    x = torch.from_numpy(grids[pos, slots]).to(device)
                    if key.shuffled:
                        x = data.shuffle(x, np.sort(block)[pos], slots)
                    loss = model.loss(model(x), data.box_targets(np.sort(block)[pos], slots))
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
    _sync(device)
    seconds = time.perf_counter() - started
    frames = len(train) * data.n_slots
    return {
        "seconds_per_epoch": seconds / epochs,
        "frames_per_s": frames * epochs / seconds,
        "bytes_read_per_epoch": bytes_read / epochs,
        "held": "re-read per trainee",
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def wide(args: argparse.Namespace, device: torch.device) -> dict:
    params = ProbeParams(
        heads=args.heads,
        lrs=args.lrs,
        width=args.width,
        batch_size=args.batch_size,
        block_clips=args.block_clips,
    )
    keys = [TraineeKey(h, c, lr, 0) for c in (False, True) for h in params.heads for lr in params.lrs]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (channels, gh, gw, stride) in WIDE.items():
            store, truth = _synthetic(Path(tmp), name, channels, gh, gw, stride, args.clips, args.slots)
            split_bytes = (args.clips - 2) * args.slots * gh * gw * channels * 2
            one = _one_pass(store, truth, params, keys, device, args.epochs)
            naive = _per_head(store, truth, params, keys, device, args.epochs)
            out[name] = {
                "trainees": len(keys),
                "train_split_bytes": split_bytes,
                "one_pass": one,
                "per_head": naive,
                "speed_up": one["frames_per_s"] / naive["frames_per_s"],
                "read_ratio": naive["bytes_read_per_epoch"] / one["bytes_read_per_epoch"],
            }
            print(
                f"{name}: {len(keys)} trainees, split {split_bytes / 1e6:.1f} MB; one-pass "
                f"{one['frames_per_s']:.2f} frames/s, {one['bytes_read_per_epoch'] / 1e6:.1f} MB/epoch; per-head "
                f"{naive['frames_per_s']:.2f} frames/s, {naive['bytes_read_per_epoch'] / 1e6:.1f} MB/epoch; "
                f"speed-up {out[name]['speed_up']:.2f}x, reads {out[name]['read_ratio']:.1f}x fewer",
                flush=True,
            )
    return out


# ---------------------------------------------------------------------------------------------- stage
BREAKDOWN = {  # part -> (file suffix, function names); cumulative seconds, summed over matches
    "reads": [("foresight_lib/features.py", "read"), ("foresight_lib/features_loader.py", "read_float16")],
    "training (incl. per-epoch validation)": [("probes/train.py", "fit"), ("probes/engine.py", "run")],
    "per-epoch validation": [("probes/evaluate.py", "mean_loss"), ("probes/spatial.py", "validate")],
    "decoding": [("probes/grid.py", "decode"), ("probes/detr.py", "decode")],
    "COCOeval": [("metrics/coco.py", "__init__"), ("metrics/coco.py", "map")],
    "bootstrap": [("metrics/bootstrap.py", "bootstrap_ci"), ("metrics/bootstrap.py", "bootstrap_cis")],
    "temporal": [("probes/temporal.py", "temporal_metrics")],
}


def _frames_and_point(tmp: Path) -> Path:
    """The embedded default's frames (params.yaml ``data``) and its ``pixels`` point."""
    from foresight_lib.data.frames import write_frames
    from foresight_lib.extract.points import make_extractor
    from foresight_lib.extract.writer import write_point

    params = load_params(ROOT / "params.yaml")
    root = tmp / "data"
    write_frames(params.data, root, progress=False)
    extractor = make_extractor(
        "pixels",
        params.points["pixels"],
        params.model,
        params.extract,
        params.data.height,
        params.data.width,
        params.data.n_frames,
    )
    write_point(extractor, root / "frames.zarr", root / "pixels.zarr", None, params.extract.dtype, progress=False)
    return root


def _code_tree(ref: str, tmp: Path) -> Path:
    """``ref``'s ``foresight_lib`` and ``stages`` (git archive) in a directory of their own."""
    out = tmp / f"code_{ref.replace('/', '_')}"
    out.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "foresight_lib", "stages"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def _stage_params(probe: dict, old: bool, tmp: Path, name: str, ref: str, threads: int, lrs: list[float]) -> Path:
    """The params file of one side: its own code's params.yaml with the same ``probe`` settings, ``threads``, the
    first of ``probe.seeds`` and the learning rates ``lrs`` (the old code takes one)."""
    text = (
        subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{ref}:params.yaml"], check=True, capture_output=True, text=True
        ).stdout
        if old
        else (ROOT / "params.yaml").read_text()
    )
    raw = yaml.safe_load(text)
    section = {k: v for k, v in probe.items() if k not in ("lrs", "seeds", "device", "gpu_memory_gb", "host_memory_gb")}
    section["threads"] = threads
    if old:  # the old keys: one lr and seed, a clip cache, slot pairs for the order probe
        section = {k: v for k, v in section.items() if k != "order_triplets"}
        (lr,) = lrs
        section |= {"lr": lr, "seed": probe["seeds"][0], "max_clips_in_memory": 64, "order_pairs": 4}
    else:
        section |= {"lrs": lrs, "seeds": probe["seeds"][:1], "device": probe["device"]}
    raw["probe"] = section
    path = tmp / f"params_{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _run_stage(code: Path, params: Path, data: Path, out: Path, profile: bool) -> float:
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        *(["-m", "cProfile", "-o", str(out / "profile")] if profile else []),
        "-m",
        "stages.probe",
        "--params",
        str(params),
        "--point",
        "pixels",
        "--features",
        str(data / "pixels.zarr"),
        "--frames-dir",
        str(data),
        "--out",
        str(out / "m.json"),
        "--live",
        str(out / "live"),
        "--predictions",
        str(out / "p.parquet"),
        "--heads",
        str(out / "heads"),
    ]
    started = time.perf_counter()
    subprocess.run(
        command,
        cwd=code,
        env={"PYTHONPATH": str(code), "PATH": str(Path(sys.executable).parent), "HOME": str(out)},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def _imports(code: Path) -> float:
    probe = "import time; t = time.perf_counter(); import foresight_lib.probes.run; print(time.perf_counter() - t)"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=code,
        env={"PYTHONPATH": str(code)},
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout.strip())


def _breakdown(profile: Path) -> dict[str, float]:
    stats = pstats.Stats(str(profile)).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    return {
        part: sum(
            v[3]
            for (file, _, fn), v in stats.items()
            if any(file.endswith(suffix) and fn == name for suffix, name in targets)
        )
        for part, targets in BREAKDOWN.items()
    }


def stage(args: argparse.Namespace) -> dict:
    """Wall time of both sides at each ``--stage-threads`` value (the same ``probe.threads`` on both: the old code
    gave torch that many intra-op threads, this one steps that many trainees at once, each op on one thread), and a
    cProfile breakdown of each side at ``probe.threads`` 1 (cProfile sees only the main thread)."""
    probe = yaml.safe_load((ROOT / "params.yaml").read_text())["probe"]
    out = {
        "settings": {
            k: probe[k]
            for k in ("heads", "steps", "val_every", "patience", "temporal_epochs", "bootstrap", "bootstrap_map")
        }
        | {"lrs": probe["lrs"][:1], "seeds": probe["seeds"][:1], "before": args.before}
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = _frames_and_point(tmp)
        sides = (("before", True, _code_tree(args.before, tmp)), ("after", False, ROOT))
        for threads in args.stage_threads:
            for name, old, code in sides:
                params = _stage_params(probe, old, tmp, f"{name}_{threads}", args.before, threads, probe["lrs"][:1])
                walls = [
                    _run_stage(code, params, data, tmp / f"{name}_{threads}_{i}", False) for i in range(args.repeats)
                ]
                out.setdefault(name, {})[f"threads_{threads}"] = {"wall_seconds": min(walls), "walls": walls}
                print(f"stage {name}, probe.threads {threads}: {min(walls):.1f} s", flush=True)
            ratio = (
                out["before"][f"threads_{threads}"]["wall_seconds"] / out["after"][f"threads_{threads}"]["wall_seconds"]
            )
            out[f"speed_up_threads_{threads}"] = ratio
            print(f"stage speed-up at probe.threads {threads}: {ratio:.2f}x", flush=True)
        if args.stage_sweep:
            out["sweep"] = _sweep(args, probe, sides, tmp, data)
        for name, old, code in sides:
            params = _stage_params(probe, old, tmp, f"{name}_profile", args.before, 1, probe["lrs"][:1])
            _run_stage(code, params, data, tmp / f"{name}_profile", True)
            parts = {"imports": _imports(code), **_breakdown(tmp / f"{name}_profile" / "profile")}
            out[name]["breakdown_seconds (profiled, probe.threads 1)"] = parts
            print(
                f"stage {name} (profiled, 1 thread): " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()), flush=True
            )
    return out


def _sweep(args: argparse.Namespace, probe: dict, sides: tuple, tmp: Path, data: Path) -> dict:
    """A learning-rate sweep at the last ``--stage-threads``: the old code trains one learning rate per run (so one
    run per rate), this one every rate in one run."""
    threads, lrs = args.stage_threads[-1], args.stage_sweep
    (_, _, before_code), (_, _, after_code) = sides
    before = [
        _run_stage(
            before_code,
            _stage_params(probe, True, tmp, f"sweep_before_{lr:g}", args.before, threads, [lr]),
            data,
            tmp / f"sweep_before_{lr:g}",
            False,
        )
        for lr in lrs
    ]
    params = _stage_params(probe, False, tmp, "sweep_after", args.before, threads, lrs)
    after = _run_stage(after_code, params, data, tmp / "sweep_after", False)
    result = {"lrs": lrs, "threads": threads, "before_walls": before, "before_seconds": sum(before)}
    result |= {"after_seconds": after, "speed_up": sum(before) / after}
    print(
        f"sweep of {len(lrs)} learning rates at probe.threads {threads}: before {sum(before):.1f} s "
        f"({len(lrs)} runs), after {after:.1f} s (one run): {result['speed_up']:.2f}x",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag", default="cpu", help="results go to benchmarks/results_probe_<tag>.json")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--parts", default="wide,stage")
    parser.add_argument("--clips", type=int, default=6, help="wide: clips (2 of them val/test)")
    parser.add_argument("--slots", type=int, default=2, help="wide: slots per clip")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--heads", default="linear,dense")
    parser.add_argument("--lrs", default="0.003,0.01,0.03")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block-clips", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--before", default="main", help="git ref of the code the stage is compared with")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--stage-threads", default="1,2", help="stage: probe.threads values, each on both sides")
    parser.add_argument("--stage-sweep", default="0.003,0.01,0.03", help="stage: a learning-rate sweep ('' skips)")
    args = parser.parse_args()
    args.heads, args.lrs = args.heads.split(","), [float(x) for x in args.lrs.split(",")]
    args.stage_threads = [int(x) for x in args.stage_threads.split(",")]
    args.stage_sweep = [float(x) for x in args.stage_sweep.split(",") if x]
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device, "--device")
    result = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads"
        + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "device": device.type,
        "args": vars(args),
    }
    parts = args.parts.split(",")
    if "wide" in parts:
        result["wide"] = wide(args, device)
    if "stage" in parts:
        result["stage"] = stage(args)
    path = ROOT / "benchmarks" / f"results_probe_{args.tag}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
