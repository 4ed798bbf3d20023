"""Shared entry-point plumbing for ``stages/*.py``: argument parsing and one-line errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import ForesightError
from .store import sweep_partials


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--params`` option every stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Run a stage's ``main``; a :class:`ForesightError` becomes one line on stderr and exit code 2.

    First removes the partial stores that a killed run left beside outputs DVC then restored from its cache
    (:func:`~.store.sweep_partials`; stages run at the repository root)."""
    sweep_partials(".")
    try:
        main(argv)
    except ForesightError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
