"""Stage `frames`: decode every clip into <out>/frames.zarr and the ground-truth tables beside it."""

from foresight_lib.cli import run, stage_parser
from foresight_lib.data.frames import write_frames
from foresight_lib.params import load_params


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument(
        "--out", required=True, help="output directory (frames.zarr, annotations.parquet, clips.parquet, skipped.json)"
    )
    args = parser.parse_args(argv)
    write_frames(load_params(args.params).data, args.out)


if __name__ == "__main__":
    run(main)
