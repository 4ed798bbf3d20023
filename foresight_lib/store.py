"""Chunked Zarr v3 stores that are never taken as finished before they are.

A stage writes into ``<out>.partial/`` beside its output. Each finished unit of work (a clip) is
recorded in a progress file (replaced atomically) only after its chunks are written, so a killed run
resumes from the last complete clip. Several processes may write one store (disjoint chunks): writer
``w`` records its own clips in ``progress.json`` (w = 0) or ``progress.<w>.json``, and what is done is the
union of every writer's records. :meth:`PartialStore.finalize` renames the directory onto ``<out>``
only when every unit is done, so DVC and later stages only ever see complete stores.
A resumed run is accepted only when its ``fingerprint`` (everything that determines the content) matches;
a finished store keeps it in ``fingerprint.json``.

After a killed run, DVC may restore the finished output from its cache without running the stage, which leaves
the partial beside it: :func:`sweep_partials` (run at every stage start) removes a partial whose finished output
was made from the same fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr
from zarr.codecs import BloscCodec

from .errors import ForesightError

PROGRESS_FILE = "progress.json"
"""Writer 0's progress record; writer ``w > 0`` keeps ``progress.<w>.json`` beside it."""
PROGRESS_GLOB = "progress*.json"
ZARR_TEMPORARY = re.compile(r".+\.[0-9a-f]{32}\.partial")
"""Zarr writes a chunk to ``<key>.<uuid hex>.partial``, then renames it: a kill in between leaves this file."""
FINGERPRINT_FILE = "fingerprint.json"


def compressor() -> BloscCodec:
    """The project's one codec choice: Blosc/zstd level 3 with bit shuffle (docs/design.md section 5)."""
    return BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON via a temporary file and rename, so a reader never sees a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")
    os.replace(tmp, path)


def write_parquet_atomic(df: pd.DataFrame, path: str | Path) -> None:
    """Write a table (without its index) via a temporary file and rename, so a reader never sees a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class PartialStore:
    """A Zarr v3 array written clip by clip into ``<out>.partial`` and renamed onto ``<out>`` when complete.

    A progress file holds the fingerprint and a record per finished clip (any JSON value, e.g. the
    clip's stored index or a skip reason). ``writer``: this process's number when several processes
    write the store. Writer 0 prepares the store (discards a partial store of another fingerprint, creates
    the array) before any other writer opens it, and only writer 0 finalises it.
    """

    def __init__(self, out: str | Path, fingerprint: Mapping[str, Any], writer: int = 0) -> None:
        self.out = Path(out)
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.fingerprint = json.loads(json.dumps(dict(fingerprint), sort_keys=True, default=_jsonable))
        self.writer = writer
        self.progress = self.partial / (PROGRESS_FILE if writer == 0 else f"progress.{writer}.json")
        self.done: dict[str, Any] = {}  # every writer's finished clips
        self._own: dict[str, Any] = {}  # this writer's (what its progress file holds)
        self.resumed = self._read()
        if not self.resumed and self.partial.exists():
            if writer != 0:
                raise ForesightError(f"{self.partial}: not prepared for this run (writer 0 prepares the store first)")
            shutil.rmtree(self.partial)

    def _read(self) -> bool:
        """Load every writer's records; False when there are none or any has another fingerprint."""
        states = {p: json.loads(p.read_text()) for p in sorted(self.partial.glob(PROGRESS_GLOB))}
        if not states or any(state.get("fingerprint") != self.fingerprint for state in states.values()):
            return False
        self.done = {k: v for state in states.values() for k, v in state["done"].items()}
        self._own = dict(states[self.progress]["done"]) if self.progress in states else {}
        return True

    def refresh(self) -> None:
        """Reload what every writer has finished (e.g. before finalising a store that others wrote too)."""
        if not self._read():
            raise ForesightError(f"{self.partial}: progress records missing or of another run")

    def array(
        self,
        shape: Sequence[int],
        chunks: Sequence[int],
        dtype: str | np.dtype,
        dimension_names: Sequence[str],
        attributes: Mapping[str, Any],
        fill_value: Any = None,
        shards: Sequence[int] | None = None,
    ) -> zarr.Array:
        """Open the array, creating it on a fresh start (float arrays default to fill NaN: unwritten is visible)."""
        if self.resumed:
            return zarr.open_array(self.partial, mode="r+")
        if fill_value is None:
            fill_value = float("nan") if np.dtype(dtype).kind == "f" else 0
        arr = zarr.create_array(
            store=str(self.partial),
            shape=tuple(shape),
            chunks=tuple(chunks),
            shards=tuple(shards) if shards else None,
            dtype=dtype,
            fill_value=fill_value,
            compressors=compressor(),
            dimension_names=list(dimension_names),
            attributes=json.loads(json.dumps(dict(attributes), default=_jsonable)),
        )
        self._save()
        return arr

    def mark_done(self, key: str | int, record: Any = True) -> None:
        """Record a finished clip; call only after its chunks are written."""
        self.done[str(key)] = self._own[str(key)] = record
        self._save()

    def is_done(self, key: str | int) -> bool:
        return str(key) in self.done

    def _save(self) -> None:
        write_json_atomic(self.progress, {"fingerprint": self.fingerprint, "done": self._own})

    def finalize(self, attributes: Mapping[str, Any] | None = None) -> None:
        """Add final attributes, keep the fingerprint, drop the progress records and move the store onto ``out``
        (writer 0 only)."""
        if self.writer != 0:
            raise ValueError("only writer 0 finalises a store")
        if attributes:
            arr = zarr.open_array(self.partial, mode="r+")
            arr.attrs.update(json.loads(json.dumps(dict(attributes), default=_jsonable)))
        write_json_atomic(self.partial / FINGERPRINT_FILE, self.fingerprint)
        for progress in self.partial.glob(PROGRESS_GLOB):
            progress.unlink()
        for interrupted in self.partial.rglob("*.partial"):  # a chunk write a kill cut short (Zarr's temporary file)
            if ZARR_TEMPORARY.fullmatch(interrupted.name):
                interrupted.unlink()
        if self.out.exists():
            shutil.rmtree(self.out)
        os.replace(self.partial, self.out)


def sweep_partials(root: str | Path = ".", depth: int = 3) -> list[Path]:
    """Remove every ``<out>.partial`` within ``depth`` directories of ``root`` whose ``<out>`` is a finished store
    made from the same fingerprint (nothing left to resume); return the removed paths.

    A partial beside a finished store of another fingerprint is kept: it is resumable work for other inputs.
    """
    removed = []
    for partial in _partials(Path(root), depth):
        finished = partial.with_name(partial.name.removesuffix(".partial"))
        try:
            done = json.loads((finished / FINGERPRINT_FILE).read_text())
            pending = json.loads((partial / PROGRESS_FILE).read_text())["fingerprint"]
        except (OSError, ValueError, KeyError):
            continue
        if done == pending:
            shutil.rmtree(partial, ignore_errors=True)
            print(
                f"removed {partial}: a killed run left it, and {finished} is finished from the same inputs",
                file=sys.stderr,
            )
            removed.append(partial)
    return removed


def _partials(root: Path, depth: int) -> list[Path]:
    """``*.partial`` directories under ``root`` (not descending into stores or hidden directories)."""
    found = []
    for entry in os.scandir(root):
        if not entry.is_dir(follow_symlinks=False) or entry.name.startswith((".", "__")):
            continue
        if entry.name.endswith(".partial"):
            found.append(Path(entry.path))
        elif depth > 1 and not entry.name.endswith(".zarr"):
            found += _partials(Path(entry.path), depth - 1)
    return found


def open_complete(path: str | Path) -> zarr.Array:
    """Open a finished store read-only; a missing or unfinished one is a clear error."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        partial = path.with_name(path.name + ".partial")
        hint = f" (an unfinished run left {partial}; rerun its stage to resume)" if partial.exists() else ""
        raise ForesightError(f"no finished store at {path}{hint}")
    return zarr.open_array(path, mode="r")


def store_identity(path: str | Path) -> dict[str, Any]:
    """What a store derived from a finished store was made from: its attributes and a hash of its files."""
    arr = open_complete(path)
    digest = hashlib.sha256()
    root = Path(path)
    for chunk in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(chunk.relative_to(root)).encode())
        digest.update(chunk.read_bytes())
    return {**dict(arr.attrs), "sha256": digest.hexdigest()}
