"""Stage `validate_data`: the input files data.source reads (video directory, annotations), before `frames` runs.

`frames` depends on its output, a stamp whose content never changes; it reruns when `data` or the input files
change, exactly when `frames` does, and stops `dvc repro` before DVC removes the previous frames.
"""

from foresight_lib.cli import run, stage_parser
from foresight_lib.errors import ForesightError
from foresight_lib.params import load_params
from foresight_lib.store import write_json_atomic
from foresight_lib.validate import STAMP, data_problems


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", required=True, help="the stamp frames depends on (validated/data.json)")
    args = parser.parse_args(argv)
    problems = data_problems(load_params(args.params).data)
    if problems:
        raise ForesightError("; ".join(problems))
    write_json_atomic(args.out, STAMP)


if __name__ == "__main__":
    run(main)
