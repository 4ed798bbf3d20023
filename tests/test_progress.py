"""Progress in a log file: whole lines, no carriage returns, at most one per interval plus the last."""

from __future__ import annotations

import io

from foresight_lib.progress import progress_bar


def test_a_log_gets_whole_lines_without_carriage_returns() -> None:
    log = io.StringIO()  # not a terminal
    for _ in progress_bar(range(1000), desc="extract vit_l7", unit="clip", file=log):
        pass
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert 1 <= len(lines) <= 3 and all(len(line) <= 80 for line in lines), lines  # start, end (30 s apart at most)
    assert lines[-1].startswith("extract vit_l7: 100%") and "1000/1000" in lines[-1]
