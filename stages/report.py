"""Stage `report`: metrics/summary.json, the Phase 1 decision (metrics/decision.json) and reports/phase1.md."""

from foresight_lib.cli import run, stage_parser
from foresight_lib.params import load_params
from foresight_lib.report.phase1 import build_report


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--reports", default="reports", help="output directory of the markdown report and figures")
    args = parser.parse_args(argv)
    build_report(load_params(args.params), reports_dir=args.reports)


if __name__ == "__main__":
    run(main)
