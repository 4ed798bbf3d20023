"""Progress bars that read well in a terminal and in a log file.

On a terminal a bar redraws in place (tqdm's default). Anywhere else (``dvc repro > run.log 2>&1``, CI) every
update is its own line, at most one per :data:`LOG_INTERVAL_S` seconds plus the last, with no carriage returns
and ASCII bars: tqdm's redraws would otherwise pile up into one line thousands of characters long.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

LOG_INTERVAL_S = 30.0
T = TypeVar("T")


class _Lines(io.TextIOBase):
    """A stream that turns tqdm's redraws (``\\r`` + text, cursor moves) into whole lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\x1b[A", "").replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Iterable[T] | None = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on stderr, in line mode when stderr is not a terminal."""
    stream = kwargs.pop("file", None) or sys.stderr
    if not stream.isatty():
        kwargs = {"mininterval": LOG_INTERVAL_S, "ascii": True, "ncols": 80, **kwargs, "file": _Lines(stream)}
    else:
        kwargs["file"] = stream
    return tqdm(iterable, **kwargs)
