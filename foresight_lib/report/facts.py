"""What the reported run was: its data, which points had random weights, which adapters are configured.

The report words itself from these facts (never from the embedded default's): the data as ``data.source`` names it,
a warning naming exactly the points whose weights are random, advice on clips that a user can act on, and only the
configured adapters' records (stale ones on disk are listed as ignored).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..kinds import KINDS
from ..params import Params
from .summary import RANDOM_WEIGHTS, PointRow

MODEL_KINDS = tuple(k for k, info in KINDS.items() if info.source in ("vlm", "encoder"))  # features from weights
WEIGHTS_MEANING = {
    "tiny-random": "a seeded random tiny model of the real class",
    "random-init": "the checkpoint's architecture with seeded random weights: the control for learned structure",
}


@dataclass(frozen=True)
class RunFacts:
    """The facts the report's wording depends on."""

    data_source: str
    n_clips: dict[str, int]  # split -> clips
    max_clips: int | None
    videos_found: int | None  # real sources: annotated videos found under data.video_dir
    videos_used: int | None
    model_points: dict[str, str | None]  # every point with weights -> its weights label
    configured_adapters: list[str]
    ignored_files: list[str]  # stale adapter records on disk, not read

    @property
    def random_points(self) -> dict[str, str]:
        return {n: w for n, w in self.model_points.items() if w in RANDOM_WEIGHTS}

    @property
    def all_random(self) -> bool:
        return bool(self.model_points) and len(self.random_points) == len(self.model_points)

    def data_text(self) -> str:
        """The data in words, as ``data.source`` names it."""
        n = sum(self.n_clips.values())
        split = ", ".join(f"{k} {v}" for k, v in self.n_clips.items())
        if self.data_source == "synthetic":
            return f"the synthetic spatial benchmark ({n} seeded clips: {split})"
        if self.data_source == "something_else":
            return f"{n} Something-Something v2 videos with Something-Else boxes ({split})"
        if self.data_source == "coin":
            return f"{n} clips sampled inside the step segments of COIN videos ({split}; split by video)"
        return f"{n} videos of a COCO-style video annotation file ({split})"

    def more_clips(self) -> str:
        """How to add clips with this data source, naming only a params key that would change something."""
        if self.data_source == "synthetic":
            return f"add clips (`data.synthetic.n_clips`, now {sum(self.n_clips.values())})"
        found, used = self.videos_found, self.videos_used
        if self.max_clips is not None and found is not None and used is not None and used < found:
            return f"raise `data.max_clips` (now {self.max_clips}; {found} annotated videos found, {used} used)"
        every = f"every one of the {found} annotated videos found is used" if found is not None else "every video"
        return f"add annotated videos under `data.video_dir` and `data.annotations` ({every})"

    def weights_warning(self) -> str | None:
        """A warning naming exactly the points with random weights; None when no point has them."""
        random = self.random_points
        if not random:
            return None
        by_label: dict[str, list[str]] = {}
        for name, label in random.items():
            by_label.setdefault(label, []).append(f"`{name}`")
        names = "; ".join(f"{', '.join(n)} ({w}: {WEIGHTS_MEANING.get(w, w)})" for w, n in by_label.items())
        if self.all_random:
            return (
                f"**Warning: the weights are random** at every model point: {names}. The numbers describe the "
                f"pipeline on {self.data_text()}, not the real models: point `model.source` (and each `models` "
                "entry's and encoder point's `source`) at checkpoints for a real decision."
            )
        return f"Random weights (controls, not findings) at: {names}."


def configured_adapters(params: Params) -> list[str]:
    a = params.adapter
    return [*a.single, *a.dual_stream, *a.multi_scale]


def read_adapter_records(directory: Path, configured: list[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``{adapter: record}`` of the configured adapters whose ``<adapter>.json`` exists, and the other JSON files in
    ``directory`` (records of adapters no longer configured: ignored)."""
    found = {p.stem: p for p in sorted(directory.glob("*.json"))} if directory.is_dir() else {}
    records = {name: json.loads(found[name].read_text()) for name in configured if name in found}
    return records, [str(p) for name, p in found.items() if name not in configured]


def run_facts(params: Params, rows: Mapping[str, PointRow], data_dir: Path, ignored_files: list[str]) -> RunFacts:
    """The facts of the run in ``data_dir`` (``clips.parquet``, ``skipped.json``) with these params and rows."""
    clips = pd.read_parquet(data_dir / "clips.parquet", columns=["split"])
    counts = clips["split"].value_counts()
    n_clips = {s: int(counts.get(s, 0)) for s in ("train", "val", "test")}
    skipped = data_dir / "skipped.json"
    source = json.loads(skipped.read_text()).get("source_report", {}) if skipped.is_file() else {}
    return RunFacts(
        data_source=params.data.source,
        n_clips=n_clips,
        max_clips=params.data.max_clips,
        videos_found=source.get("videos_found"),
        videos_used=source.get("videos_used"),
        model_points={n: r.weights for n, r in rows.items() if r.kind in MODEL_KINDS},
        configured_adapters=configured_adapters(params),
        ignored_files=ignored_files,
    )
