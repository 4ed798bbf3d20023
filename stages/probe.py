"""Stage `probe@<point>`: spatial probe heads, the shuffled control and temporal probes on one point's feature store."""

from foresight_lib.cli import run, stage_parser
from foresight_lib.errors import ForesightError
from foresight_lib.features import open_features
from foresight_lib.params import load_params
from foresight_lib.probes.run import run_probes


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--point", required=True, help="name of an entry of params.yaml `points`")
    parser.add_argument("--features", required=True, help="the point's feature store (features/<point>.zarr)")
    parser.add_argument("--frames-dir", required=True, help="the frames stage's output directory (data)")
    parser.add_argument("--out", required=True, help="metrics (metrics/probe/<point>.json)")
    parser.add_argument("--live", required=True, help="dvclive directory (probes/<point>/live)")
    parser.add_argument("--predictions", required=True, help="test predictions (probes/<point>/predictions.parquet)")
    parser.add_argument("--heads", required=True, help="trained heads, reusable as detectors (probes/<point>/heads)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    if args.point not in params.points:
        raise ForesightError(f"point {args.point!r} is not in points (defined: {', '.join(params.points) or 'none'})")
    stored = open_features(args.features).name
    if stored != args.point:
        raise ForesightError(f"{args.features}: holds point {stored!r}, not {args.point!r}")
    run_probes(args.features, args.frames_dir, params.probe, args.out, args.live, args.predictions, args.heads)


if __name__ == "__main__":
    run(main)
