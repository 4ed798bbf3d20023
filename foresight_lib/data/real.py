"""Annotated real videos as :class:`Clip` objects: decode, sample, resize, and carry the boxes along.

Sampling follows :func:`decode_frames` (``data.fps`` null: ``n_frames`` uniformly over the video; else at
``data.fps`` from the start); a video too short for it, or decoding to fewer frames than its container declares,
is skipped with the counts as its reason (listed in ``skipped.json``), never padded. Each sampled frame takes the
boxes of the nearest annotated source frame within half a sampling step (ties: the earlier frame); a sampled
frame with none in reach has no boxes, and annotated frames no sampled frame took are counted as
``boxes.not_sampled``. Boxes then follow the resize (``data.resize``) and are clipped to the source image
inside the output frame; ``visibility`` is the kept fraction of a box's area.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from ..params import DataParams
from .annotations import AnnotationSet, VideoAnnotations, read_annotations
from .clip import OBJECT_COLUMNS, Clip, Skipped, direction_from_boxes
from .video import VideoDecodeError, clip_boxes, decode_frames, resize_frames, transform_boxes

MAX_LISTED_UNKNOWN = 100
"""``report["unknown_video_ids"]`` lists at most this many names; ``report["unknown_videos"]`` has the count."""

_BOX_COUNTS = ("total", "kept", "clipped", "zero_area", "inverted", "outside", "not_sampled")


class RealSource:
    """The clips of one annotation file, in sorted video-name order, each decoded on demand.

    A decoded clip carries its own counts in ``clip.extra["counts"]`` (boxes kept, clipped, dropped, ...);
    :func:`summarise` adds them to the source-level :attr:`report`, so a resumed run reports the same.
    """

    def __init__(self, data: DataParams, annotations: AnnotationSet) -> None:
        self.data = data
        self.annotations = annotations

    def __len__(self) -> int:
        return len(self.annotations.videos)

    def __getitem__(self, index: int) -> Clip | Skipped:
        return self._clip(self.annotations.videos[index])

    def __iter__(self) -> Iterator[Clip | Skipped]:
        return (self[i] for i in range(len(self)))

    @property
    def report(self) -> dict[str, Any]:
        """What the annotations say, before any video is decoded."""
        ann = self.annotations
        return {
            "source": self.data.source,
            "annotations": str(self.data.annotations),
            "video_dir": str(self.data.video_dir),
            "videos_annotated": ann.n_annotated,
            "videos_found": ann.n_found,
            "videos_used": len(ann.videos),
            "unknown_videos": len(ann.unknown),
            "unknown_video_ids": ann.unknown[:MAX_LISTED_UNKNOWN],
        }

    def _clip(self, video: VideoAnnotations) -> Clip | Skipped:
        data = self.data
        try:
            frames, indices, fps = decode_frames(video.path, data.n_frames, data.fps)  # [F, h, w, 3], [F]
        except VideoDecodeError as exc:
            return Skipped(name=video.name, source=str(video.path), reason=exc.reason)
        src_h, src_w = frames.shape[1:3]
        boxes = video.boxes
        rescaled = 0
        if video.size is not None and video.size != (src_w, src_h):
            fx, fy = src_w / video.size[0], src_h / video.size[1]
            boxes = boxes.assign(x=boxes["x"] * fx, y=boxes["y"] * fy, w=boxes["w"] * fx, h=boxes["h"] * fy)
            rescaled = 1

        matched = match_annotated_frames(indices, boxes["frame"].to_numpy())  # [F]
        by_frame = dict(tuple(boxes.groupby("frame")))
        placed = [by_frame[a].assign(frame=k) for k, a in enumerate(matched.tolist()) if a >= 0]
        placed_df = pd.concat(placed, ignore_index=True) if placed else boxes.iloc[:0]
        counts = dict.fromkeys(_BOX_COUNTS, 0)
        counts["not_sampled"] += int((~boxes["frame"].isin(matched)).sum())
        counts["total"] += len(placed_df)

        resized, transform = resize_frames(frames, data.height, data.width, data.resize)  # [F, H, W, 3]
        xywh = transform_boxes(placed_df[["x", "y", "w", "h"]].to_numpy(), transform)  # [N, 4]
        kept = clip_boxes(xywh, transform.window)
        for key, n in kept.counts.items():
            counts[key] += n
        counts["kept"] += int(kept.keep.sum())
        objects = placed_df[kept.keep].reset_index(drop=True)
        objects[["x", "y", "w", "h"]] = kept.boxes
        objects["visibility"] = kept.visibility
        objects = objects[list(OBJECT_COLUMNS)]
        return Clip(
            name=video.name,
            frames=resized,
            objects=objects,
            direction=direction_from_boxes(objects),
            source=str(video.path),
            speed=mean_speed(objects),
            fps=fps,
            extra={
                "source_frames": indices.tolist(),
                "source_size": [src_w, src_h],
                "counts": {"boxes": counts, "rescaled": rescaled, "without_boxes": int(objects.empty)},
            },
        )


def summarise(report: dict[str, Any], items: Iterable[Clip | Skipped | dict[str, Any] | None]) -> dict[str, Any]:
    """``report`` plus the totals over clips: clips, skipped, rescaled videos, clips without boxes, box counts.

    ``items`` are clips or skips, or the ``clip.extra["counts"]`` records of clips (``None`` for a skip).
    """
    totals = {
        "clips": 0,
        "skipped": 0,
        "rescaled_videos": 0,
        "clips_without_boxes": 0,
        "boxes": dict.fromkeys(_BOX_COUNTS, 0),
    }
    for item in items:
        counts = item.extra["counts"] if isinstance(item, Clip) else None if isinstance(item, Skipped) else item
        if counts is None:
            totals["skipped"] += 1
            continue
        totals["clips"] += 1
        totals["rescaled_videos"] += counts["rescaled"]
        totals["clips_without_boxes"] += counts["without_boxes"]
        for key, n in counts["boxes"].items():
            totals["boxes"][key] += n
    return {**report, **totals}


def open_real_source(data: DataParams) -> RealSource:
    """Read the annotations of ``data`` (source ``something_else`` or ``coco_video``) and check the paths."""
    if data.source == "synthetic" or data.video_dir is None or data.annotations is None:
        raise ValueError(
            f"open_real_source needs a real data.source with video_dir and annotations, got {data.source!r}"
        )
    annotations = read_annotations(data.source, data.annotations, data.video_dir, data.max_clips)
    return RealSource(data, annotations)


def match_annotated_frames(sampled: np.ndarray, annotated: np.ndarray) -> np.ndarray:
    """For each sampled source frame, the nearest annotated source frame, or -1 if none is in reach.

    Reach is half the sampling step (the mean gap between distinct sampled frames; 0 for a single frame, i.e.
    exact matches only). Ties go to the earlier frame.
    """
    sampled = np.asarray(sampled, dtype=np.int64)  # [F]
    annotated = np.unique(np.asarray(annotated, dtype=np.int64))  # [A] sorted
    if annotated.size == 0:
        return np.full(sampled.shape, -1, dtype=np.int64)
    distinct = np.unique(sampled)  # [D] sorted
    reach = (distinct[-1] - distinct[0]) / (distinct.size - 1) / 2 if distinct.size > 1 else 0.0
    pos = np.searchsorted(annotated, sampled)  # [F] first annotated >= sampled
    left = annotated[np.maximum(pos - 1, 0)]  # [F]
    right = annotated[np.minimum(pos, annotated.size - 1)]  # [F]
    d_left = np.where(pos > 0, sampled - left, np.inf)
    d_right = np.where(pos < annotated.size, right - sampled, np.inf)
    best = np.where(d_left <= d_right, left, right)
    return np.where(np.minimum(d_left, d_right) <= reach, best, -1)


def mean_speed(objects: pd.DataFrame) -> float:
    """Mean box-centre displacement per frame (pixels) over consecutive sightings of each object, NaN if none."""
    speeds: list[np.ndarray] = []
    for _, g in objects.sort_values("frame").groupby("object_id"):
        cx = (g["x"] + g["w"] / 2).to_numpy()
        cy = (g["y"] + g["h"] / 2).to_numpy()
        dt = np.diff(g["frame"].to_numpy())
        speeds.append(np.hypot(np.diff(cx), np.diff(cy))[dt > 0] / dt[dt > 0])
    values = np.concatenate(speeds) if speeds else np.empty(0)
    return float(values.mean()) if values.size else float("nan")
