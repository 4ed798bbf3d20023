"""Every stage's failures end in one `error:` line: bad input, and running out of disk, memory or GPU (the stage
named, the remedy given), plus how to restore what DVC removed when DVC ran the stage."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from foresight_lib.cli import run
from foresight_lib.errors import ForesightError


def _fails_with(error: BaseException) -> object:
    def main(argv: Sequence[str] | None) -> None:
        try:
            raise RuntimeError("writer thread failed") from error  # the way a worker thread re-raises
        except RuntimeError as wrapped:
            raise (error if isinstance(error, ForesightError) else wrapped) from error

    return main


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "features/x.zarr/c/0"), "out of disk space writing"),
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of GPU memory; lower"),
        (MemoryError(), "out of host memory; lower"),
        (RuntimeError("CUDA error: no kernel image is available"), "the GPU failed (CUDA error: no kernel image"),
        (ForesightError("probe.epochs: must be >= 1"), "probe.epochs"),
    ],
)
def test_one_error_line_naming_the_stage_and_the_remedy(
    error: BaseException, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STAGE", "extract@vit_l7")
    with pytest.raises(SystemExit) as exit_:
        run(_fails_with(error), [])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and expected in line
    assert "`dvc checkout extract@vit_l7` restores them" in line
    if not isinstance(error, ForesightError):
        assert line.startswith("error: extract@vit_l7: ")
    if isinstance(error, torch.cuda.OutOfMemoryError):
        assert "extract.batch_frames" in line


def test_outside_dvc_no_restore_hint_and_other_errors_keep_their_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    with pytest.raises(SystemExit):
        run(_fails_with(ForesightError("data.height: bad")), [])
    assert "dvc checkout" not in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="writer thread failed"):  # a bug: not turned into one line
        run(_fails_with(ValueError("a bug")), [])
