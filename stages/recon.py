"""Stage `recon_ceiling` (--ceiling): the VAE ceiling's decoded test clips (and the originals' detection) vs the
originals, once. Stages `recon_<kind>@<name>` (--adapter): an adapter's decoded test clips beside the ceiling,
CKA of its inputs with the VAE latents, and the Phase 2 criteria (convergence read from its training metrics)."""

import json
from pathlib import Path

import pandas as pd

from foresight_lib.adapters.recon import evaluate_decoded, evaluate_originals, input_cka, phase2_verdicts
from foresight_lib.adapters.resample import LatentSpec
from foresight_lib.cli import run, stage_parser
from foresight_lib.errors import ForesightError
from foresight_lib.features import open_features
from foresight_lib.params import load_params
from foresight_lib.probes.detector import ProbeDetector
from foresight_lib.store import open_complete, write_json_atomic


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--ceiling", action="store_true", help="evaluate latents/ceiling.zarr")
    which.add_argument("--adapter", help="evaluate adapters/<adapter>/decoded.zarr")
    parser.add_argument("--frames", default="data/frames.zarr")
    parser.add_argument("--annotations", default="data/annotations.parquet")
    parser.add_argument("--latents", default="latents/latents.zarr")
    parser.add_argument("--ceiling-store", default="latents/ceiling.zarr")
    parser.add_argument("--ceiling-metrics", default="metrics/ceiling.json")
    parser.add_argument("--features", default="features")
    parser.add_argument("--adapters", default="adapters")
    parser.add_argument("--train-metrics", help="default: metrics/adapter/<adapter>.json")
    parser.add_argument("--out", help="default: metrics/recon/<adapter>.json")
    parser.add_argument("--probes", default="probes", help="probe stage outputs (the detector's trained head)")
    args = parser.parse_args(argv)
    params = load_params(args.params).eval
    frames, annotations = open_complete(args.frames), pd.read_parquet(args.annotations)
    detector = ProbeDetector(Path(args.probes) / params.detector_point / "heads", params.detector_head)
    if args.ceiling:
        ceiling = open_complete(args.ceiling_store)
        write_json_atomic(args.ceiling_metrics, {
            "detector": f"{params.detector_point}/{params.detector_head}",
            "ceiling": evaluate_decoded(frames, ceiling, annotations, params, detector),
            "original": evaluate_originals(frames, ceiling.attrs["clips"], annotations, params, detector),
        })
        return
    out = Path(args.adapters) / args.adapter
    decoded = open_complete(out / "decoded.zarr")
    reference = json.loads(Path(args.ceiling_metrics).read_text())
    if reference["ceiling"]["clips"] != decoded.attrs["clips"]:
        raise ForesightError(f"{args.ceiling_metrics} and {out / 'decoded.zarr'} cover different clips: "
                             "rerun recon_ceiling")
    result = {"adapter": evaluate_decoded(frames, decoded, annotations, params, detector), **reference}
    latents = open_complete(args.latents)
    latent = LatentSpec.of(latents)
    streams = json.loads((out / "config.json").read_text())["streams"]
    result["cka"] = {role: input_cka(open_features(Path(args.features) / f"{grid['point']}.zarr"), latents,
                                     decoded.attrs["clips"], latent) for role, grid in streams.items()}
    train = json.loads(Path(args.train_metrics or f"metrics/adapter/{args.adapter}.json").read_text())
    lpips, detection = result["adapter"]["lpips"], result["adapter"]["detection"]
    result["phase2"] = phase2_verdicts(detection.get("bbox_iou"), lpips["mean"] if lpips else None,
                                       train["parameters"]["total"], train.get("convergence"), params.phase2)
    write_json_atomic(args.out or f"metrics/recon/{args.adapter}.json", result)


if __name__ == "__main__":
    run(main)
