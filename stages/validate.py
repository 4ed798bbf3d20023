"""Stage `validate`: all of params.yaml, every layer against its checkpoint's depth, and dvc.yaml's generated stages
against params.yaml's multi_scale entries (foresight_lib/pipeline.py), before any stage runs.

Every other stage depends on its output, a stamp whose content never changes: a mistake stops `dvc repro` here,
before DVC removes any stage's outputs, and a valid change reruns nothing by itself.
"""

from foresight_lib.cli import run, stage_parser
from foresight_lib.errors import ForesightError
from foresight_lib.params import load_params
from foresight_lib.pipeline import pipeline_problems
from foresight_lib.store import write_json_atomic
from foresight_lib.validate import STAMP, run_problems


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--dvc-yaml", required=True, help="the pipeline whose generated stages it checks (dvc.yaml)")
    parser.add_argument("--out", required=True, help="the stamp every stage depends on (validated/run.json)")
    args = parser.parse_args(argv)
    problems = run_problems(load_params(args.params)) + pipeline_problems(args.params, args.dvc_yaml)
    if problems:
        raise ForesightError("; ".join(problems))
    write_json_atomic(args.out, STAMP)


if __name__ == "__main__":
    run(main)
