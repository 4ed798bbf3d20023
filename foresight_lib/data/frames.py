"""The ``frames`` stage: decode every clip once into ``data/frames.zarr`` plus the ground-truth tables.

Outputs (all or nothing; a killed run resumes from the last complete clip). The inputs are read and checked
before anything is written, and the previous outputs are replaced only once every clip is done: a failed call
replaces none of them (under DVC, which removes a stage's outputs before it runs, ``dvc checkout frames`` brings
them back).
- ``frames.zarr``: uint8 ``[clip, frame, H, W, 3]``, one chunk per clip; attributes: source, geometry, seed,
  categories, n_clips.
- ``annotations.parquet``: one row per visible (clip, frame, object): ``clip, frame, object_id, category,
  category_id, x, y, w, h, visibility`` (COCO xywh pixels, category ids from 1).
- ``clips.parquet``: ``clip, name, split, direction, direction_name, speed, fps, n_frames, source``. Splits are
  drawn by video: every clip of one source video (``steps.parquet`` ``video``; else the clip itself) shares one split.
- ``steps.parquet``: the step facts of each clip of a procedural source (``coin``), one row per clip, columns
  :data:`.clip.STEP_COLUMNS`; no rows (the same columns) for a source of boxes. A source without boxes (``coin``)
  writes ``annotations.parquet`` with no rows and ``categories`` ``[]``.
- ``skipped.json``: clips that could not be decoded, with their reasons, and the source's input report.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ForesightError
from ..params import DataParams
from ..progress import progress_bar
from ..store import PartialStore, write_json_atomic, write_parquet_atomic
from .clip import DIRECTIONS, STEP_COLUMNS, Clip, Skipped
from .splits import assign_splits
from .synthetic import CATEGORIES, make_clip


@dataclass
class FramesOutputs:
    """Paths of the frames stage's outputs."""

    root: Path

    @property
    def frames(self) -> Path:
        return self.root / "frames.zarr"

    @property
    def annotations(self) -> Path:
        return self.root / "annotations.parquet"

    @property
    def clips(self) -> Path:
        return self.root / "clips.parquet"

    @property
    def steps(self) -> Path:
        return self.root / "steps.parquet"

    @property
    def skipped(self) -> Path:
        return self.root / "skipped.json"


@dataclass
class ClipSource:
    """A data source: ``count`` clips in a fixed order, each loaded on demand (a resumed run skips done ones)."""

    load: Callable[[int], Clip | Skipped]
    count: int
    categories: tuple[str, ...] | None  # known up front (synthetic), else collected from the clips
    report: dict[str, Any] = field(default_factory=dict)  # what the source says before decoding
    summarise: Callable[[dict[str, Any], list[Any]], dict[str, Any]] | None = None  # adds per-clip counts


def open_source(data: DataParams) -> ClipSource:
    """The clip source that ``data.source`` names."""
    if data.source == "synthetic":
        s = data.synthetic
        return ClipSource(
            load=partial(
                make_clip,
                data.seed,
                height=data.height,
                width=data.width,
                n_frames=data.n_frames,
                min_objects=s.min_objects,
                max_objects=s.max_objects,
                occlusion_prob=s.occlusion_prob,
            ),
            count=s.n_clips,
            categories=CATEGORIES,
        )
    if data.source == "coin":
        from .coin import open_coin_source

        coin = open_coin_source(data)
        return ClipSource(load=coin.__getitem__, count=len(coin), categories=(), report=coin.report)
    from .real import open_real_source, summarise

    real = open_real_source(data)
    return ClipSource(load=real.__getitem__, count=len(real), categories=None, report=real.report, summarise=summarise)


def write_frames(
    data: DataParams, out_dir: str | Path, source: ClipSource | None = None, progress: bool = True
) -> FramesOutputs:
    """Decode every clip of ``data`` into the frames store and ground-truth tables under ``out_dir``."""
    source = source or open_source(data)  # reads and checks the annotations and video paths first
    if source.count == 0:
        raise ForesightError(f"data: the {data.source} source has no clips")
    out = FramesOutputs(Path(out_dir))
    out.root.mkdir(parents=True, exist_ok=True)
    # max_skipped_fraction decides only whether the run passes: raising it resumes a failed run's work
    fingerprint = {"data": data.model_dump(mode="json", exclude={"max_skipped_fraction"}), "count": source.count}
    store = PartialStore(out.frames, fingerprint)
    shape = (source.count, data.n_frames, data.height, data.width, 3)
    arr = store.array(
        shape, chunks=(1, *shape[1:]), dtype="uint8", dimension_names=("clip", "frame", "y", "x", "rgb"), attributes={}
    )
    tables = out.root / (out.frames.name + ".partial") / "tables"
    tables.mkdir(exist_ok=True)

    n_kept = sum(1 for r in store.done.values() if r["kept"] is not None)
    for i in progress_bar(range(source.count), desc="frames", unit="clip", disable=not progress):
        if store.is_done(i):
            continue
        item = source.load(i)
        if isinstance(item, Skipped):
            store.mark_done(i, {"kept": None, "name": item.name, "source": item.source, "reason": item.reason})
            continue
        if item.frames.shape != shape[1:]:
            raise ForesightError(f"clip {item.name}: decoded to {item.frames.shape}, expected {shape[1:]}")
        arr[n_kept] = item.frames
        _clip_row(item, n_kept).to_parquet(tables / f"{n_kept:06d}.clip.parquet")
        item.objects.assign(clip=n_kept).to_parquet(tables / f"{n_kept:06d}.objects.parquet")
        step = item.extra.get("step")
        if step is not None:
            pd.DataFrame([{"clip": n_kept, **step}]).to_parquet(tables / f"{n_kept:06d}.step.parquet")
        store.mark_done(i, {"kept": n_kept, "name": item.name, "counts": item.extra.get("counts")})
        n_kept += 1

    skipped = [{k: r[k] for k in ("name", "source", "reason")} for r in store.done.values() if r["kept"] is None]
    fraction = len(skipped) / source.count
    report = source.report
    if source.summarise is not None:
        report = source.summarise(
            report, [r.get("counts") if r["kept"] is not None else None for r in store.done.values()]
        )
    record = {"skipped": skipped, "fraction": fraction, "source_report": report}
    if fraction > data.max_skipped_fraction:
        write_json_atomic(store.partial / "skipped.json", record)
        reasons = "; ".join(f"{s['name']}: {s['reason']}" for s in skipped[:5])
        raise ForesightError(
            f"data: {len(skipped)} of {source.count} clips could not be decoded ({fraction:.0%} > "
            f"data.max_skipped_fraction {data.max_skipped_fraction:.0%}); see {store.partial / 'skipped.json'} "
            f"(this run replaced none of the outputs in {out.root}). First: {reasons}"
        )

    clips = pd.concat([pd.read_parquet(tables / f"{k:06d}.clip.parquet") for k in range(n_kept)], ignore_index=True)
    step_files = [tables / f"{k:06d}.step.parquet" for k in range(n_kept)]
    steps = _steps_table([pd.read_parquet(f) for f in step_files if f.is_file()])
    clips["split"] = assign_splits(n_kept, data, list(steps["video"]) if len(steps) else None)
    objects = [pd.read_parquet(tables / f"{k:06d}.objects.parquet") for k in range(n_kept)]
    annotations = pd.concat(objects, ignore_index=True) if objects else pd.DataFrame()
    categories = source.categories if source.categories is not None else tuple(sorted(annotations["category"].unique()))
    annotations = _finish_annotations(annotations, categories)
    arr.resize((n_kept, *shape[1:]))
    write_parquet_atomic(clips, out.clips)
    write_parquet_atomic(annotations, out.annotations)
    write_parquet_atomic(steps, out.steps)
    write_json_atomic(out.skipped, record)
    store.finalize(
        {
            "source": data.source,
            "seed": data.seed,
            "height": data.height,
            "width": data.width,
            "n_frames": data.n_frames,
            "n_clips": n_kept,
            "categories": list(categories),
            "resize": data.resize if data.source != "synthetic" else None,
        }
    )
    shutil.rmtree(out.frames / "tables")
    report_dropped(record, out.skipped)
    return out


def report_dropped(record: dict[str, Any], where: Path) -> None:
    """One line on stderr when input was dropped: skipped clips, annotated videos not found, dropped boxes (counts of
    clipped boxes and unsampled annotated frames are only in ``where``)."""
    source, boxes = record["source_report"], record["source_report"].get("boxes", {})
    parts = []
    if record["skipped"]:
        parts.append(f"{len(record['skipped'])} clips skipped")
    if source.get("unknown_videos"):
        parts.append(f"{source['unknown_videos']} annotated videos not found")
    dropped = {k: boxes.get(k, 0) for k in ("inverted", "zero_area", "outside")}
    if any(dropped.values()):
        detail = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in dropped.items() if n)
        parts.append(f"{sum(dropped.values())} of {boxes.get('total', 0)} boxes dropped ({detail})")
    if parts:
        print(f"frames: {'; '.join(parts)}; details in {where}", file=sys.stderr)


def _clip_row(clip: Clip, index: int) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "clip": index,
                "name": clip.name,
                "direction": clip.direction,
                "direction_name": DIRECTIONS[clip.direction] if clip.direction >= 0 else "unknown",
                "speed": clip.speed,
                "fps": clip.fps,
                "n_frames": len(clip.frames),
                "source": clip.source,
            }
        ]
    )


def _steps_table(rows: list[pd.DataFrame]) -> pd.DataFrame:
    """The per-clip step rows as one table of :data:`.clip.STEP_COLUMNS` (no rows when there are none)."""
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in STEP_COLUMNS.items()})
    return pd.concat(rows, ignore_index=True)[list(STEP_COLUMNS)].astype(STEP_COLUMNS)


def _finish_annotations(annotations: pd.DataFrame, categories: tuple[str, ...]) -> pd.DataFrame:
    columns = ["clip", "frame", "object_id", "category", "category_id", "x", "y", "w", "h", "visibility"]
    if annotations.empty:
        return pd.DataFrame({c: pd.Series(dtype="float32" if c in "xywh" else "int64") for c in columns})
    ids = {c: i + 1 for i, c in enumerate(categories)}
    annotations = annotations.assign(category_id=annotations["category"].map(ids).astype("int64"))
    for c in ("x", "y", "w", "h", "visibility"):
        annotations[c] = annotations[c].astype("float32")
    return annotations[columns].sort_values(["clip", "frame", "object_id"], ignore_index=True)
