"""Stage `extract@<point>`: features of one extraction point for every clip, as a raster-grid Zarr store.

Data-parallel when started by torchrun, or when FORESIGHT_TORCHRUN holds torchrun's arguments
(foresight_lib/extract/distributed.py); the store is the same whatever the number of processes.
"""

import sys

from foresight_lib.cli import run, stage_parser
from foresight_lib.errors import ForesightError
from foresight_lib.extract import distributed
from foresight_lib.extract.points import make_extractor
from foresight_lib.extract.writer import write_point
from foresight_lib.params import load_params
from foresight_lib.store import open_complete


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--point", required=True, help="name of an entry of params.yaml `points`")
    parser.add_argument("--frames", required=True, help="the frames store (data/frames.zarr)")
    parser.add_argument(
        "--annotations", help="the ground-truth table (data/annotations.parquet): what an oracle point rasterises"
    )
    parser.add_argument("--steps", help="the step table (data/steps.parquet): what a steps oracle point one-hot codes")
    parser.add_argument("--out", required=True, help="the point's feature store (features/<point>.zarr)")
    parser.add_argument("--metrics", required=True, help="cost metrics (metrics/extract/<point>.json)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    if args.point not in params.points:
        raise ForesightError(f"point {args.point!r} is not in points (defined: {', '.join(params.points) or 'none'})")
    if argv is None:
        distributed.relaunch_under_torchrun(sys.argv)
    launch = distributed.start()
    _, n_frames, height, width, _ = open_complete(args.frames).shape
    extractor = make_extractor(
        args.point,
        params.points[args.point],
        params.model_of(params.points[args.point]),
        params.extract,
        height,
        width,
        n_frames,
        args.frames,
        args.annotations,
        args.steps,
    )
    write_point(extractor, args.frames, args.out, args.metrics, params.extract.dtype, launch=launch)
    distributed.stop(launch)


if __name__ == "__main__":
    run(main)
