"""Readers of real-video box annotations into one per-video table (:data:`ANNOTATION_COLUMNS`).

Two layouts:

- ``something_else``: the Something-Else boxes for Something-Something v2 (``bounding_box_smthsmth_part*.json``):
  ``{video_id: [{"name": "<id>/0001.jpg", "labels": [{"box2d": {x1, y1, x2, y2}, "category", "standard_category"}]}]}``.
  The video is ``<video_dir>/<video_id>.webm``; the jpg number is the 1-based source frame. ``annotations`` may be
  one file or a directory whose ``*.json`` files (the released parts) are merged.
- ``coco_video``: COCO-style ``videos`` (``id``, ``file_name`` or ``name`` relative to ``video_dir``), ``images``
  (``id``, ``video_id`` or ``video``, 0-based ``frame_id``, optional ``width``/``height``), ``annotations``
  (``image_id``, ``bbox`` [x, y, w, h], ``category_id``, optional ``track_id``/``instance_id``), ``categories``
  (``id``, ``name``). Without a track id every box is its own object.

Object ids become integers ``0..k-1`` per video (sorted original ids); categories are strings.
Videos are sorted by name; annotated videos with no file in ``video_dir`` are listed, not fatal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from ..errors import ForesightError
from .video import check_video_path

ANNOTATION_COLUMNS: tuple[str, ...] = ("frame", "object_id", "category", "x", "y", "w", "h")
"""Per-video boxes: ``frame`` is the 0-based source frame index, boxes are xywh in source pixels."""

SOMETHING_ELSE_LAYOUT = (
    '{video_id: [{"name": "<video_id>/0001.jpg", "labels": [{"box2d": {"x1", "y1", "x2", "y2"}, '
    '"category": str, "standard_category": str}]}]}'
)
COCO_VIDEO_LAYOUT = (
    '{"videos": [{"id", "file_name"}], "images": [{"id", "video_id", "frame_id"}], '
    '"annotations": [{"image_id", "bbox": [x, y, w, h], "category_id"}], "categories": [{"id", "name"}]}'
)


@dataclass(frozen=True)
class VideoAnnotations:
    """The boxes of one annotated video."""

    name: str
    path: Path  # the video file
    boxes: pd.DataFrame  # columns ANNOTATION_COLUMNS
    size: tuple[int, int] | None = None  # (width, height) the boxes were drawn on; None: the video's own size


@dataclass(frozen=True)
class AnnotationSet:
    """What an annotation file yields for one ``video_dir``."""

    videos: list[VideoAnnotations]  # annotated videos with a file, sorted by name, at most max_videos
    unknown: list[str]  # names of annotated videos with no file in video_dir, sorted
    n_annotated: int  # videos in the annotation file
    n_found: int  # of those, videos with a file (before max_videos)


def read_annotations(
    source: str, annotations: str | Path, video_dir: str | Path, max_videos: int | None = None
) -> AnnotationSet:
    """Read ``annotations`` in the layout of ``source`` (``something_else`` or ``coco_video``) against ``video_dir``."""
    readers = {"something_else": read_something_else, "coco_video": read_coco_video}
    if source not in readers:
        raise ValueError(f"no annotation reader for source {source!r} (expected one of {', '.join(readers)})")
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise ForesightError(f"video directory not found: {video_dir}")
    return readers[source](Path(annotations), video_dir, max_videos)


# ------------------------------------------------------------------------------ shared helpers
class _Model(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False, frozen=True)


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise ForesightError(f"annotation file not found: {path}")
    try:
        with path.open("rb") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise ForesightError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError:
        raise ForesightError(f"{path}: not valid JSON (not UTF-8 text)") from None


def _layout_error(path: Path, layout: str, problem: str) -> ForesightError:
    return ForesightError(f"{path}: {problem}; expected {layout}")


def _first_problem(exc: ValidationError, prefix: str = "") -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    return f"{loc or 'top level'}: {err['msg']}"


def _partition(names: list[str], paths: dict[str, Path], max_videos: int | None) -> tuple[list[str], list[str], int]:
    """Split sorted ``names`` into (selected with a file, unknown, number found)."""
    exists = {n: paths[n].is_file() for n in names}
    found = [n for n in names if exists[n]]
    unknown = [n for n in names if not exists[n]]
    selected = found if max_videos is None else found[:max_videos]
    for name in selected:
        check_video_path(paths[name])
    return selected, unknown, len(found)


def _table(rows: list[tuple[int, str, str, float, float, float, float]]) -> pd.DataFrame:
    """Boxes with per-video raw object keys -> ANNOTATION_COLUMNS with integer object ids (sorted keys)."""
    df = pd.DataFrame(rows, columns=["frame", "key", "category", "x", "y", "w", "h"])
    df["object_id"] = pd.factorize(df["key"], sort=True)[0].astype("int64")
    df = df.astype({"frame": "int64", "x": "float64", "y": "float64", "w": "float64", "h": "float64"})
    return df[list(ANNOTATION_COLUMNS)].sort_values(["frame", "object_id"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------- Something-Else
class _SeBox(_Model):
    x1: float
    y1: float
    x2: float
    y2: float


class _SeLabel(_Model):
    box2d: _SeBox
    category: str
    standard_category: str | None = None


class _SeFrame(_Model):
    name: str
    labels: list[_SeLabel]


_SE_FRAMES = TypeAdapter(list[_SeFrame])
_FRAME_NAME = re.compile(r"(?:.*/)?(\d+)\.[A-Za-z]+")


def read_something_else(path: Path, video_dir: Path, max_videos: int | None = None) -> AnnotationSet:
    """Read Something-Else boxes (a file, or a directory of part files)."""
    raw = _load_something_else(path)
    names = sorted(raw)
    paths = {n: video_dir / f"{n}.webm" for n in names}
    selected, unknown, n_found = _partition(names, paths, max_videos)
    videos = [VideoAnnotations(n, paths[n], _something_else_boxes(path, n, raw[n])) for n in selected]
    return AnnotationSet(videos=videos, unknown=unknown, n_annotated=len(names), n_found=n_found)


def _load_something_else(path: Path) -> dict[str, Any]:
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise ForesightError(f"{path}: annotation directory has no .json files")
    else:
        files = [path]
    merged: dict[str, Any] = {}
    for file in files:
        raw = _load_json(file)
        if not isinstance(raw, dict):
            raise _layout_error(
                file, SOMETHING_ELSE_LAYOUT, f"top level is a {type(raw).__name__}, not a mapping of video ids"
            )
        duplicates = merged.keys() & raw.keys()
        if duplicates:
            raise ForesightError(f"{file}: video {min(duplicates)!r} is also annotated in another file of {path}")
        merged.update(raw)
    return merged


def _something_else_boxes(path: Path, video: str, raw: Any) -> pd.DataFrame:
    try:
        frames = _SE_FRAMES.validate_python(raw)
    except ValidationError as exc:
        raise _layout_error(path, SOMETHING_ELSE_LAYOUT, _first_problem(exc, video)) from None
    rows: list[tuple[int, str, str, float, float, float, float]] = []
    for frame in frames:
        match = _FRAME_NAME.fullmatch(frame.name)
        if match is None or int(match[1]) < 1:
            raise _layout_error(
                path,
                SOMETHING_ELSE_LAYOUT,
                f"{video}: frame name {frame.name!r} is not '<video_id>/<1-based number>.jpg'",
            )
        seen: dict[str, int] = {}
        for i, label in enumerate(frame.labels):
            key = label.standard_category if label.standard_category is not None else f"{i:04d}"
            seen[key] = seen.get(key, -1) + 1
            if seen[key]:  # a second box with the same id in one frame (e.g. two hands): its own object
                key = f"{key}#{seen[key]}"
            b = label.box2d
            rows.append((int(match[1]) - 1, key, label.category, b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1))
    return _table(rows)


# ---------------------------------------------------------------------------------- COCO video
class _CocoVideo(_Model):
    id: int | str
    file_name: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _has_file(self) -> _CocoVideo:
        if self.file_name is None and self.name is None:
            raise ValueError("a video needs 'file_name' or 'name'")
        return self


class _CocoImage(_Model):
    id: int | str
    video_id: int | str | None = None
    video: int | str | None = None
    frame_id: int = Field(ge=0)
    width: int | None = Field(None, gt=0)
    height: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _has_video(self) -> _CocoImage:
        if self.video_id is None and self.video is None:
            raise ValueError("an image needs 'video_id' or 'video'")
        return self


class _CocoAnnotation(_Model):
    image_id: int | str
    bbox: tuple[float, float, float, float]
    category_id: int | str
    track_id: int | str | None = None
    instance_id: int | str | None = None


class _CocoCategory(_Model):
    id: int | str
    name: str


class _CocoFile(_Model):
    videos: list[_CocoVideo]
    images: list[_CocoImage]
    annotations: list[_CocoAnnotation]
    categories: list[_CocoCategory]


def read_coco_video(path: Path, video_dir: Path, max_videos: int | None = None) -> AnnotationSet:
    """Read a COCO-style video annotation file."""
    raw = _load_json(path)
    if not isinstance(raw, dict):
        raise _layout_error(path, COCO_VIDEO_LAYOUT, f"top level is a {type(raw).__name__}, not a mapping")
    try:
        coco = _CocoFile.model_validate(raw)
    except ValidationError as exc:
        raise _layout_error(path, COCO_VIDEO_LAYOUT, _first_problem(exc)) from None

    files = {v.id: v.file_name or v.name or "" for v in coco.videos}
    names = {vid: str(Path(f).with_suffix("")) for vid, f in files.items()}
    images = {im.id: im for im in coco.images}
    categories = {c.id: c.name for c in coco.categories}
    rows: dict[int | str, list[tuple[int, str, str, float, float, float, float]]] = {vid: [] for vid in files}
    for i, ann in enumerate(coco.annotations):
        image = images.get(ann.image_id)
        if image is None:
            raise _layout_error(
                path, COCO_VIDEO_LAYOUT, f"annotations.{i}: image_id {ann.image_id!r} is not in 'images'"
            )
        vid = image.video_id if image.video_id is not None else image.video
        if vid not in files:
            raise _layout_error(path, COCO_VIDEO_LAYOUT, f"image {image.id!r}: video {vid!r} is not in 'videos'")
        if ann.category_id not in categories:
            raise _layout_error(
                path, COCO_VIDEO_LAYOUT, f"annotations.{i}: category_id {ann.category_id!r} is not in 'categories'"
            )
        track = ann.track_id if ann.track_id is not None else ann.instance_id
        key = f"t{track}" if track is not None else f"a{i:09d}"
        rows[vid].append((image.frame_id, key, categories[ann.category_id], *ann.bbox))

    sizes: dict[int | str, tuple[int, int]] = {}
    for im in coco.images:
        vid = im.video_id if im.video_id is not None else im.video
        if im.width is not None and im.height is not None:
            sizes.setdefault(vid, (im.width, im.height))
    by_name = {names[vid]: vid for vid in files}
    if len(by_name) < len(files):
        raise _layout_error(path, COCO_VIDEO_LAYOUT, "two videos have the same file name")
    ordered = sorted(by_name)
    paths = {n: video_dir / files[by_name[n]] for n in ordered}
    selected, unknown, n_found = _partition(ordered, paths, max_videos)
    videos = [VideoAnnotations(n, paths[n], _table(rows[by_name[n]]), sizes.get(by_name[n])) for n in selected]
    return AnnotationSet(videos=videos, unknown=unknown, n_annotated=len(ordered), n_found=n_found)
