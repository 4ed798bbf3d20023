"""Stage `report`: metrics/summary.json, metrics/timing.json, the Phase 1 decision (metrics/decision.json,
reports/decision.json) and reports/phase1.md; prints the verdict and why (the last lines `dvc repro` shows)."""

from foresight_lib.cli import run, stage_parser
from foresight_lib.params import load_params
from foresight_lib.report.build import build_report
from foresight_lib.report.markdown import verdict_lines


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument(
        "--metrics",
        required=True,
        help="metrics directory: reads probe/, extract/, recon/, adapter/; writes summary.json, timing.json, decision.json",
    )
    parser.add_argument("--probes", required=True, help="the probe stages' output directory (probes)")
    parser.add_argument("--features", required=True, help="directory of the <point>.zarr feature stores (features)")
    parser.add_argument("--data", required=True, help="the frames stage's output directory (data)")
    parser.add_argument("--adapters", required=True, help="directory of the adapters' outputs (adapters)")
    parser.add_argument("--reports", required=True, help="output directory of the markdown report and figures")
    args = parser.parse_args(argv)
    doc = build_report(
        load_params(args.params),
        metrics_dir=args.metrics,
        probes_dir=args.probes,
        features_dir=args.features,
        data_dir=args.data,
        reports_dir=args.reports,
        adapters_dir=args.adapters,
    )
    print("\n".join(verdict_lines(doc, f"{args.reports}/phase1.md")), flush=True)


if __name__ == "__main__":
    run(main)
