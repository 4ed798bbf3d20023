"""Stages `recon_<kind>@<name>` (multi_scale: `recon_multi_scale-<name>`, generated): an adapter's decoded test
clips scored beside the ceiling, CKA of its inputs with the VAE latents, and the Phase 2 criteria (convergence read
from its training summary)."""

import json
from pathlib import Path

import pandas as pd

from foresight_lib.adapters.recon import evaluate_decoded, input_cka, phase2_verdicts
from foresight_lib.adapters.resample import LatentSpec
from foresight_lib.cli import run, stage_parser
from foresight_lib.errors import ForesightError
from foresight_lib.features import open_features
from foresight_lib.params import load_params
from foresight_lib.probes.detector import ProbeDetector
from foresight_lib.store import open_complete, write_json_atomic


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--adapter", required=True, help="the adapter's name")
    parser.add_argument("--decoded", required=True, help="its decoded clips (adapters/<adapter>/decoded.zarr)")
    parser.add_argument(
        "--config", required=True, help="its config, naming its input points (adapters/<adapter>/config.json)"
    )
    parser.add_argument("--train-metrics", required=True, help="its training summary (metrics/adapter/<adapter>.json)")
    parser.add_argument(
        "--ceiling-metrics", required=True, help="the recon_ceiling stage's output (metrics/ceiling.json)"
    )
    parser.add_argument("--latents", required=True, help="the VAE latents (latents/latents.zarr)")
    parser.add_argument("--features", required=True, help="directory of the <point>.zarr feature stores (features)")
    parser.add_argument("--frames", required=True, help="the originals (data/frames.zarr)")
    parser.add_argument("--annotations", required=True, help="ground-truth boxes (data/annotations.parquet)")
    parser.add_argument("--probes", required=True, help="the probe stages' outputs, for the detector's head (probes)")
    parser.add_argument("--out", required=True, help="output (metrics/recon/<adapter>.json)")
    args = parser.parse_args(argv)
    params = load_params(args.params).eval
    frames, annotations = open_complete(args.frames), pd.read_parquet(args.annotations)
    detector = (  # a dataset without boxes (COIN) has no trained detector: no spatial fidelity
        ProbeDetector(Path(args.probes) / params.detector_point / "heads", params.detector_head)
        if len(annotations)
        else None
    )
    decoded = open_complete(args.decoded)
    reference = json.loads(Path(args.ceiling_metrics).read_text())
    if reference["ceiling"]["clips"] != decoded.attrs["clips"]:
        raise ForesightError(f"{args.ceiling_metrics} and {args.decoded} cover different clips: rerun recon_ceiling")
    result = {"adapter": evaluate_decoded(frames, decoded, annotations, params, detector), **reference}
    latents = open_complete(args.latents)
    latent = LatentSpec.of(latents)
    streams = json.loads(Path(args.config).read_text())["streams"]
    result["cka"] = {
        role: input_cka(
            open_features(Path(args.features) / f"{grid['point']}.zarr"), latents, decoded.attrs["clips"], latent
        )
        for role, grid in streams.items()
    }
    train = json.loads(Path(args.train_metrics).read_text())
    lpips, detection = result["adapter"]["lpips"], result["adapter"]["detection"]
    result["phase2"] = phase2_verdicts(
        detection.get("bbox_iou"),
        lpips["mean"] if lpips else None,
        train["parameters"]["total"],
        train.get("convergence"),
        params.phase2,
    )
    write_json_atomic(args.out, result)


if __name__ == "__main__":
    run(main)
