"""COIN (instructional videos with step segments, no boxes) read into clips sampled inside the segments.

``COIN.json``: ``{"database": {<video id>: {"annotation": [{"id": <step id>, "segment": [start_s, end_s],
"label": <step>}, ...], "class": <task>, "recipe_type": int, "subset": "training" | "testing", "duration": s,
...}}}``. The video is the file ``<video_dir>/<video id>.<ext>`` with a video suffix (``.mp4``, ``.webm``, ...).

Sampling: each segment gives ``data.coin.clips_per_segment`` (k) clips of ``data.n_frames`` (F) frames
(:func:`segment_clip_times`). ``data.fps`` null: the segment is cut into k equal windows, and a clip's frames
sit at the centres of F equal parts of its window. ``data.fps`` set: a clip spans ``(F - 1) / fps`` seconds and
the k clips are evenly spaced from the segment's start to its end (one clip: centred); a shorter segment is a
skipped clip. Each frame is the source frame nearest its time (:func:`.video.decode_at_times`, one pass per
video for all its clips). A clip is named ``<video id>/<step index>/<window>``.

Videos are sorted by id (``data.max_clips`` keeps the first that many with a file); annotated videos with no file
are listed in the report, not fatal. An unreadable video, a segment that is not ``start < end`` or too short at
``data.fps``, and a clip whose last frame falls after the video's end are skipped clips with their reason.
A clip's step facts (:data:`.clip.STEP_COLUMNS`, ``step_index`` 0-based in order of segment start) travel in
``clip.extra["step"]``; the frames stage writes them to ``steps.parquet``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, TypeAdapter, ValidationError

from ..errors import ForesightError
from ..params import DataParams
from .annotations import _first_problem, _layout_error, _load_json, _Model
from .clip import OBJECT_COLUMNS, Clip, Skipped
from .real import MAX_LISTED_UNKNOWN
from .video import VIDEO_EXTENSIONS, VideoDecodeError, decode_at_times, resize_frames

COIN_LAYOUT = (
    '{"database": {<video id>: {"annotation": [{"id", "segment": [start_s, end_s], "label"}], "class", '
    '"recipe_type", "subset", "duration"}}}'
)


COIN_VIDEOS, COIN_SEGMENTS, COIN_STEP_LABELS, COIN_TASKS = 11_827, 46_354, 778, 180
"""The whole COIN release as its paper counts it: videos, annotated step segments, distinct step labels, tasks."""


@dataclass(frozen=True)
class CoinCount:
    """What a COIN run holds, known before any video is decoded: videos used, clips, distinct step labels."""

    videos: int
    clips: int
    step_labels: int
    note: str  # where the numbers come from


def coin_count(data: DataParams) -> CoinCount:
    """The videos, clips and step labels of a run with ``data`` (source ``coin``), without decoding: from
    ``COIN.json`` where it is present (the first ``data.max_clips`` videos with a file in ``data.video_dir``, or of
    the annotated ones while that directory is absent; ``data.coin.clips_per_segment`` clips per segment, an upper
    bound: a segment shorter than a clip at ``data.fps`` gives none), else ``data.max_clips`` videos at COIN's
    average of :data:`COIN_SEGMENTS` / :data:`COIN_VIDEOS` (3.92) segments each, and at most
    :data:`COIN_STEP_LABELS` labels."""
    per_segment = data.coin.clips_per_segment
    path = Path(data.annotations) if data.annotations is not None else None
    if path is not None and path.is_file():
        database = read_coin(path)
        names = sorted(database)
        video_dir = Path(data.video_dir) if data.video_dir is not None else None
        if video_dir is not None and video_dir.is_dir():
            files = video_files(video_dir)
            names = [n for n in names if n in files]
        used = names if data.max_clips is None else names[: data.max_clips]
        segments = [step for n in used for step in database[n].annotation]
        labels = {step.label for step in segments}
        return CoinCount(len(used), len(segments) * per_segment, len(labels), f"counted in {path}")
    if data.max_clips is None:
        raise ForesightError(f"data.max_clips is not set and {path} is not there: the videos of a COIN run are unknown")
    clips = round(data.max_clips * COIN_SEGMENTS / COIN_VIDEOS * per_segment)
    note = (
        f"ESTIMATED: {path} not found; {data.max_clips} videos x {COIN_SEGMENTS / COIN_VIDEOS:.2f} segments "
        f"(COIN's average) x {per_segment} clips per segment; step labels: at most COIN's {COIN_STEP_LABELS} or the clips"
    )
    return CoinCount(data.max_clips, clips, min(COIN_STEP_LABELS, clips), note)


class _CoinStep(_Model):
    id: int | str
    segment: tuple[float, float]
    label: str


class _CoinVideo(_Model):
    annotation: list[_CoinStep]
    task: str = Field(alias="class")
    subset: str = ""


_DATABASE = TypeAdapter(dict[str, _CoinVideo])


@dataclass(frozen=True)
class PlannedClip:
    """One clip to sample: where it comes from, its frame times, and why it cannot be sampled (if so)."""

    name: str
    path: Path  # the video file
    times: np.ndarray  # [F] seconds from the video's first frame; empty when ``problem`` is set
    problem: str | None
    step: dict[str, Any]  # the STEP_COLUMNS values except ``clip``


def segment_clip_times(
    start: float, end: float, n_frames: int, fps: float | None, clips: int
) -> list[np.ndarray] | str:
    """Frame times ``[n_frames]`` (seconds) of the ``clips`` clips of segment ``[start, end]``, or why there are none."""
    length = end - start
    if not length > 0:
        return f"segment [{start:g}, {end:g}] s is empty or inverted"
    if fps is None:
        window = length / clips
        offsets = (np.arange(n_frames) + 0.5) / n_frames * window  # [F]
        return [start + j * window + offsets for j in range(clips)]
    span = (n_frames - 1) / fps
    if span > length:
        return f"segment [{start:g}, {end:g}] s is shorter than a clip at data.fps {fps:g} ({span:g} s)"
    starts = [start + (length - span) / 2] if clips == 1 else np.linspace(start, end - span, clips).tolist()
    return [s + np.arange(n_frames) / fps for s in starts]


class CoinSource:
    """The planned clips of one ``COIN.json`` against one ``video_dir``, decoded on demand, a video at a time.

    Loading a clip decodes every clip of its video in one pass and keeps them until a clip of another video is
    asked for (the frames stage asks in order, so each video is decoded once).
    """

    def __init__(self, data: DataParams, clips: list[PlannedClip], report: dict[str, Any]) -> None:
        self.data = data
        self.clips = clips
        self.report = report
        self._of_video: dict[Path, list[int]] = {}  # video file -> its clips' indices
        for i, c in enumerate(clips):
            self._of_video.setdefault(c.path, []).append(i)
        self._cached: dict[int, Clip | Skipped] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> Clip | Skipped:
        if index not in self._cached:
            self._cached = self._decode(self._of_video[self.clips[index].path])
        return self._cached[index]

    def __iter__(self) -> Iterator[Clip | Skipped]:
        return (self[i] for i in range(len(self)))

    def _decode(self, indices: list[int]) -> dict[int, Clip | Skipped]:
        planned = {i: self.clips[i] for i in indices}
        out: dict[int, Clip | Skipped] = {
            i: Skipped(name=c.name, source=str(c.path), reason=c.problem) for i, c in planned.items() if c.problem
        }
        todo = [i for i in indices if i not in out]
        if not todo:
            return out
        times = np.concatenate([planned[i].times for i in todo])  # [len(todo) * F]
        path = planned[todo[0]].path
        try:
            frames, _, end = decode_at_times(path, times)  # [len(todo) * F, h, w, 3]
        except VideoDecodeError as exc:
            return out | {i: Skipped(name=planned[i].name, source=str(path), reason=exc.reason) for i in todo}
        n = self.data.n_frames
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in OBJECT_COLUMNS})
        for k, i in enumerate(todo):
            c = planned[i]
            if c.times[-1] > end:
                reason = f"the video ends at {end:.2f} s, before the clip's last frame at {c.times[-1]:.2f} s"
                out[i] = Skipped(name=c.name, source=str(path), reason=reason)
                continue
            resized, _ = resize_frames(frames[k * n : (k + 1) * n], self.data.height, self.data.width, self.data.resize)
            out[i] = Clip(
                name=c.name,
                frames=resized,
                objects=empty.copy(),
                direction=-1,
                source=str(path),
                fps=(n - 1) / (c.times[-1] - c.times[0]) if n > 1 else float("nan"),
                extra={"step": c.step},
            )
        return out


def open_coin_source(data: DataParams) -> CoinSource:
    """Read ``data.annotations`` (``COIN.json``), find the videos in ``data.video_dir`` and plan every clip."""
    if data.source != "coin" or data.video_dir is None or data.annotations is None:
        raise ValueError(f"open_coin_source needs source coin with video_dir and annotations, got {data.source!r}")
    path, video_dir = Path(data.annotations), Path(data.video_dir)
    if not video_dir.is_dir():
        raise ForesightError(f"data.video_dir: video directory not found: {video_dir}")
    database = read_coin(path)
    files = video_files(video_dir)
    names = sorted(database)
    found = [n for n in names if n in files]
    used = found if data.max_clips is None else found[: data.max_clips]
    clips = [clip for name in used for clip in _plan_video(name, files[name], database[name], data)]
    unknown = [n for n in names if n not in files]
    report = {
        "source": data.source,
        "annotations": str(path),
        "video_dir": str(video_dir),
        "videos_annotated": len(names),
        "videos_found": len(found),
        "videos_used": len(used),
        "unknown_videos": len(unknown),
        "unknown_video_ids": unknown[:MAX_LISTED_UNKNOWN],
        "segments": sum(len(database[n].annotation) for n in used),
        "clips_planned": len(clips),
    }
    return CoinSource(data, clips, report)


def read_coin(path: Path) -> dict[str, _CoinVideo]:
    """The ``database`` of a ``COIN.json``, validated (a layout error names the first bad entry)."""
    raw = _load_json(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("database"), dict):
        raise _layout_error(path, COIN_LAYOUT, "no 'database' mapping of video ids at the top level")
    try:
        return _DATABASE.validate_python(raw["database"])
    except ValidationError as exc:
        raise _layout_error(path, COIN_LAYOUT, _first_problem(exc, "database")) from None


def video_files(video_dir: Path) -> dict[str, Path]:
    """Video id -> its file in ``video_dir`` (the first name in sorted order when several suffixes exist)."""
    files: dict[str, Path] = {}
    for name in sorted(e.name for e in os.scandir(video_dir) if e.is_file()):
        p = video_dir / name
        if p.suffix.lower() in VIDEO_EXTENSIONS:
            files.setdefault(p.stem, p)
    return files


def _plan_video(name: str, path: Path, video: _CoinVideo, data: DataParams) -> list[PlannedClip]:
    steps = sorted(video.annotation, key=lambda s: (s.segment[0], s.segment[1]))
    planned = []
    for index, step in enumerate(steps):
        start, end = step.segment
        facts = {
            "video": name,
            "task": video.task,
            "subset": video.subset,
            "step": step.label,
            "step_id": str(step.id),
            "step_index": index,
            "n_steps": len(steps),
            "segment_start": float(start),
            "segment_end": float(end),
        }
        times = segment_clip_times(start, end, data.n_frames, data.fps, data.coin.clips_per_segment)
        for window in range(data.coin.clips_per_segment):
            clip_name = f"{name}/{index}/{window}"
            if isinstance(times, str):
                planned.append(PlannedClip(clip_name, path, np.empty(0), times, facts))
                continue
            t = times[window]  # [F]
            step_facts = facts | {"clip_start": float(t[0]), "clip_end": float(t[-1])}
            planned.append(PlannedClip(clip_name, path, t, None, step_facts))
    return planned
