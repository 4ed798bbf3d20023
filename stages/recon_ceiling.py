"""Stage `recon_ceiling`: the VAE ceiling's decoded test clips (and the detector on the originals) against the
originals, once: the reference every adapter's reconstruction is reported beside."""

from pathlib import Path

import pandas as pd

from foresight_lib.adapters.recon import evaluate_decoded, evaluate_originals
from foresight_lib.cli import run, stage_parser
from foresight_lib.params import load_params
from foresight_lib.probes.detector import ProbeDetector
from foresight_lib.store import open_complete, write_json_atomic


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--decoded", required=True, help="the decode_ceiling stage's store (latents/decoded.zarr)")
    parser.add_argument("--frames", required=True, help="the originals (data/frames.zarr)")
    parser.add_argument("--annotations", required=True, help="ground-truth boxes (data/annotations.parquet)")
    parser.add_argument("--probes", required=True, help="the probe stages' outputs, for the detector's head (probes)")
    parser.add_argument("--out", required=True, help="output (metrics/ceiling.json)")
    args = parser.parse_args(argv)
    params = load_params(args.params).eval
    frames, annotations = open_complete(args.frames), pd.read_parquet(args.annotations)
    detector = (  # a dataset without boxes (COIN) has no trained detector and nothing to score it against
        ProbeDetector(Path(args.probes) / params.detector_point / "heads", params.detector_head)
        if len(annotations)
        else None
    )
    ceiling = open_complete(args.decoded)
    write_json_atomic(
        args.out,
        {
            "detector": f"{params.detector_point}/{params.detector_head}"
            if detector
            else f"none: no boxes in {args.annotations}",
            "ceiling": evaluate_decoded(frames, ceiling, annotations, params, detector),
            "original": evaluate_originals(frames, ceiling.attrs["clips"], annotations, params, detector),
        },
    )


if __name__ == "__main__":
    run(main)
