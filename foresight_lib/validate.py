"""The one check of what a run reads, before any stage's outputs are touched.

Two parts, both run by ``python -m foresight_lib.check`` and each by a first stage of ``dvc.yaml`` that the other
stages depend on, so ``dvc repro`` stops there, before DVC removes any stage's outputs:

- :func:`run_problems` (stage ``validate``, which reads all of ``params.yaml`` and runs first): the input paths
  exist, and every layer is within the depth of the checkpoint that ``model.source`` or the encoder point's
  ``source`` configures (config files only, no weights); the strict params loader has already named any unknown
  key, wrong type or bad value.
- :func:`data_problems` (stage ``validate_data``, which reads ``data`` and depends on the input files): the video
  directory exists and holds videos; the annotations exist, are not empty, parse in ``data.source``'s layout and
  hold at least three clips (one per split) whose videos are in ``data.video_dir``.

Every problem is one string that starts with the params key it concerns.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ForesightError
from .params import DataParams, Params, point_depth

STAMP = {
    "passed": "foresight_lib/validate.py",
    "note": "written only when the check passes; the same content every time, so it reruns no stage by itself",
}
"""What the ``validate`` stages write: the stages after them depend on it, which orders them after the check."""


def data_problems(data: DataParams) -> list[str]:
    """What stops ``frames`` from reading ``data``'s inputs (nothing for the synthetic source)."""
    if data.source == "synthetic":
        return []
    from .data.annotations import read_annotations
    from .data.splits import SPLITS
    from .data.video import VIDEO_EXTENSIONS

    problems = path_problems(data)
    video_dir, annotations = Path(data.video_dir), Path(data.annotations)
    if video_dir.is_dir() and not _holds_a_video(video_dir, VIDEO_EXTENSIONS):
        problems.append(f"data.video_dir: {video_dir} holds no videos ({', '.join(sorted(VIDEO_EXTENSIONS))})")
    if annotations.is_file() and annotations.stat().st_size == 0:
        problems.append(f"data.annotations: {annotations} is empty")
    if problems:
        return problems
    if data.source == "coin":
        return _coin_problems(annotations, video_dir)
    try:
        found = read_annotations(data.source, annotations, video_dir, data.max_clips)
    except ForesightError as err:
        return [f"data.annotations: {err}"]
    if len(found.videos) < len(SPLITS):
        missing = f" ({len(found.unknown)} of them not in data.video_dir)" if found.unknown else ""
        return [
            f"data.annotations: {annotations} annotates {found.n_annotated} videos{missing}, {len(found.videos)} "
            f"with a video to decode; train/val/test need at least {len(SPLITS)} (layout of data.source "
            f"{data.source!r})"
        ]
    return []


def _coin_problems(annotations: Path, video_dir: Path) -> list[str]:
    """A ``COIN.json`` that does not parse, or whose videos with a file cannot fill train/val/test."""
    from .data.coin import read_coin, video_files
    from .data.splits import SPLITS

    try:
        videos = read_coin(annotations)
    except ForesightError as err:
        return [f"data.annotations: {err}"]
    files = video_files(video_dir)
    with_file = [v for v in videos if v in files]
    if len(with_file) < len(SPLITS):
        return [
            f"data.annotations: {annotations} annotates {len(videos)} videos, {len(with_file)} with a video in "
            f"data.video_dir; train/val/test need at least {len(SPLITS)} (splits are by video; data.source 'coin')"
        ]
    return []


def path_problems(data: DataParams) -> list[str]:
    """A real source's input paths that do not exist (DVC, which depends on them, would name only the path)."""
    if data.source == "synthetic":
        return []
    problems = []
    video_dir, annotations = Path(data.video_dir), Path(data.annotations)
    if not video_dir.is_dir():
        problems.append(f"data.video_dir: {video_dir} {'is not a directory' if video_dir.exists() else 'not found'}")
    if not annotations.exists():
        problems.append(f"data.annotations: {annotations} not found")
    return problems


def _holds_a_video(folder: Path, suffixes: frozenset[str]) -> bool:
    """Whether ``folder`` holds a file with a video suffix (stops at the first: a real folder holds 220,000)."""
    with os.scandir(folder) as entries:
        return any(Path(e.name).suffix.lower() in suffixes and e.is_file() for e in entries)


def run_problems(params: Params) -> list[str]:
    """Missing input paths (:func:`path_problems`) and checkpoints that cannot be read for the layers of the points
    that name them (a layer past a readable depth already stopped the params loader)."""
    problems = path_problems(params.data)
    for name, point in params.points.items():
        try:
            point_depth(params, name, point)
        except ForesightError as err:
            problems.append(str(err))
    return problems
