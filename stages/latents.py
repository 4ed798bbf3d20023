"""Stage `latents`: normalised LTX-Video VAE latents of every clip, as one Zarr store."""

from foresight_lib.cli import run, stage_parser
from foresight_lib.ltx.latents import write_latents
from foresight_lib.params import load_params


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--frames", required=True, help="the frames store (data/frames.zarr)")
    parser.add_argument("--out", required=True, help="the latents store (latents/latents.zarr)")
    args = parser.parse_args(argv)
    write_latents(args.frames, args.out, load_params(args.params).ltx)


if __name__ == "__main__":
    run(main)
