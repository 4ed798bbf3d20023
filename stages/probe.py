"""Stage `probe@<point>`: spatial probe heads, the shuffled control and temporal probes on one point's feature store."""

from foresight_lib.cli import run, stage_parser
from foresight_lib.errors import ForesightError
from foresight_lib.features import open_features
from foresight_lib.params import load_params
from foresight_lib.probes.run import run_probes


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--point", required=True, help="name of an entry of params.yaml `points`")
    parser.add_argument("--features", help="default: features/<point>.zarr")
    parser.add_argument("--frames-dir", default="data", help="the frames stage's output directory (default: data)")
    parser.add_argument("--out", help="default: metrics/probe/<point>.json")
    parser.add_argument("--live", help="dvclive directory (default: probes/<point>/live)")
    parser.add_argument("--predictions", help="default: probes/<point>/predictions.parquet")
    parser.add_argument("--heads", help="trained heads, reusable as detectors (default: probes/<point>/heads)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    if args.point not in params.points:
        raise ForesightError(f"point {args.point!r} is not in points (defined: {', '.join(params.points) or 'none'})")
    features = args.features or f"features/{args.point}.zarr"
    stored = open_features(features).name
    if stored != args.point:
        raise ForesightError(f"{features}: holds point {stored!r}, not {args.point!r}")
    run_probes(features, args.frames_dir, params.probe, args.out or f"metrics/probe/{args.point}.json",
               args.live or f"probes/{args.point}/live", args.predictions or f"probes/{args.point}/predictions.parquet",
               args.heads or f"probes/{args.point}/heads")


if __name__ == "__main__":
    run(main)
