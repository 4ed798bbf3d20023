"""Kill a running stage (SIGKILL) at a chosen point of its work, rerun it, and compare with an uninterrupted run.

Shared by tests/test_kill.py (one kill per stage, in CI) and benchmarks/kill_campaign.py (many kills).
A case runs a stage script with every path under a work directory; the reference runs in this process, the
killed run in a child process, and the rerun in this process again.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
import zarr

from foresight_lib.cli import run
from foresight_lib.errors import ForesightError
from foresight_lib.store import PROGRESS_FILE, open_complete

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = re.compile(r"per_second|peak_|_rss|frames_timed|seconds")  # timings: differ run to run by nature

PROFILE = {  # small enough for CI, big enough that every kill point lands inside the work
    "data": {"height": 224, "width": 224, "n_frames": 9, "synthetic": {"n_clips": 6}},
    "extract": {"batch_frames": 9},
    "points": {"vit_l1": {"kind": "vit_block", "layer": 1}},
    "probe": {
        "heads": ["linear"],
        "steps": 15,
        "val_every": 5,
        "temporal_epochs": 2,
        "bootstrap": 10,
        "bootstrap_map": 0,
    },
    "ltx": {"device": "cpu"},
    "adapter": {"train": {"epochs": 4, "device": "cpu"}, "single": {"a": {"point": "vit_l1", "hidden": 16}}},
}


@dataclass
class Case:
    """One stage: its arguments (given the work directory), what triggers the kill and what must come out equal."""

    stage: str
    args: Callable[[Path], list[str]]
    outputs: Callable[[Path], list[Path]]
    store: Callable[[Path], Path] | None  # a resumable store: the kill comes after some of its units are done
    started: Callable[[Path], bool] | None = None  # else: the kill comes once this holds (no resumable store)
    live: Callable[[Path], Path] | None = None  # its training curves: an output too, not compared (timestamps)


def _frames_args(w: Path) -> list[str]:
    return ["--out", str(w / "data")]


CASES = {
    "frames": Case(
        "frames",
        _frames_args,
        lambda w: [w / "data" / n for n in ("frames.zarr", "annotations.parquet", "clips.parquet", "skipped.json")],
        lambda w: w / "data" / "frames.zarr",
    ),
    "extract": Case(
        "extract",
        lambda w: [
            "--point",
            "vit_l1",
            "--frames",
            str(w / "data" / "frames.zarr"),
            "--out",
            str(w / "features" / "vit_l1.zarr"),
            "--metrics",
            str(w / "metrics" / "extract.json"),
        ],
        lambda w: [w / "features" / "vit_l1.zarr", w / "metrics" / "extract.json"],
        lambda w: w / "features" / "vit_l1.zarr",
    ),
    "latents": Case(
        "latents",
        lambda w: ["--frames", str(w / "data" / "frames.zarr"), "--out", str(w / "latents" / "latents.zarr")],
        lambda w: [w / "latents" / "latents.zarr"],
        lambda w: w / "latents" / "latents.zarr",
    ),
    "probe": Case(
        "probe",
        lambda w: [
            "--point",
            "vit_l1",
            "--features",
            str(w / "features" / "vit_l1.zarr"),
            "--frames-dir",
            str(w / "data"),
            "--out",
            str(w / "metrics" / "probe.json"),
            "--live",
            str(w / "probes" / "live"),
            "--predictions",
            str(w / "probes" / "predictions.parquet"),
            "--heads",
            str(w / "probes" / "heads"),
        ],
        lambda w: [w / "metrics" / "probe.json", w / "probes" / "predictions.parquet", w / "probes" / "heads"],
        None,
        lambda w: any((w / "probes" / "live").rglob("*.tsv")),  # the first head has logged an epoch
        lambda w: w / "probes" / "live",
    ),
    "train_adapter": Case(
        "train_adapter",
        lambda w: [
            "--adapter",
            "a",
            "--features",
            str(w / "features"),
            "--latents",
            str(w / "latents" / "latents.zarr"),
            "--clips",
            str(w / "data" / "clips.parquet"),
            "--frames",
            str(w / "data" / "frames.zarr"),
            "--out",
            str(w / "adapters" / "a"),
            "--metrics",
            str(w / "metrics" / "adapter.json"),
        ],
        lambda w: (
            [w / "adapters" / "a" / n for n in ("config.json", "model.safetensors", "latents.zarr")]
            + [w / "metrics" / "adapter.json"]
        ),
        None,
        lambda w: _lines(w / "adapters" / "a" / "live" / "plots" / "metrics" / "train" / "loss.tsv") >= 2,
        lambda w: w / "adapters" / "a" / "live",
    ),
}
ORDER = ("frames", "extract", "latents", "probe", "train_adapter")  # each case reads what the ones before wrote


def _lines(path: Path) -> int:
    try:
        return path.read_text().count("\n")
    except OSError:
        return 0


def write_params(work: Path) -> Path:
    """The repository's params.yaml with :data:`PROFILE` laid over it (``points`` and adapters taken whole)."""

    def overlay(base: dict, over: dict, path: tuple[str, ...] = ()) -> dict:
        out = dict(base)
        for key, value in over.items():
            whole = (*path, key) in {("points",), ("adapter", "single")}
            out[key] = (
                overlay(base.get(key, {}), value, (*path, key)) if isinstance(value, dict) and not whole else value
            )
        return out

    params = overlay(yaml.safe_load((ROOT / "params.yaml").read_text()), PROFILE)
    for kind in set(params["adapter"]) - {"train", "single"}:  # only the profile's adapter
        params["adapter"][kind] = {}
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return work / "params.yaml"


def run_stage(case: Case, work: Path) -> None:
    """The stage, uninterrupted, in this process."""
    main = runpy.run_path(str(ROOT / "stages" / f"{case.stage}.py"), run_name="stage")["main"]
    run(main, ["--params", str(work / "params.yaml"), *case.args(work)])


def done_units(store: Path) -> dict[str, object]:
    """The units a partial store records as finished (empty when there is none)."""
    try:
        return json.loads((store.with_name(store.name + ".partial") / PROGRESS_FILE).read_text())["done"]
    except (OSError, ValueError):
        return {}


def kill_stage(case: Case, work: Path, after_units: int, delay: float = 0.0, timeout: float = 300.0) -> float | None:
    """Start the stage in a child process and SIGKILL it ``delay`` seconds after ``after_units`` units of its store
    are done (or, without a store, after ``case.started`` holds). Returns the seconds it ran, or None when it ended
    on its own first (then it must have succeeded)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": str(torch.get_num_threads()),
        "MKL_NUM_THREADS": str(torch.get_num_threads()),
    }  # the thread count of this process (tests/conftest.py): the same float sums as the uninterrupted run
    argv = [
        sys.executable,
        str(ROOT / "stages" / f"{case.stage}.py"),
        "--params",
        str(work / "params.yaml"),
        *case.args(work),
    ]
    start = time.monotonic()
    child = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ready = (lambda: len(done_units(case.store(work))) >= after_units) if case.store else (lambda: case.started(work))
    fired = None
    while child.poll() is None and time.monotonic() - start < timeout:
        if fired is None and ready():
            fired = time.monotonic()
        if fired is not None and time.monotonic() - fired >= delay:
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    _, err = child.communicate()
    if child.returncode == -signal.SIGKILL:
        return time.monotonic() - start
    assert child.returncode == 0, f"{case.stage} failed (rc {child.returncode}): {err[-2000:]}"
    return None


def chunk_times(store: Path) -> dict[Path, int]:
    """Modification times of the chunk files of a partial store's finished units (chunk index = stored row)."""
    partial = store.with_name(store.name + ".partial")
    rows = {
        str(r["kept"]) if isinstance(r, dict) else key
        for key, r in done_units(store).items()
        if not isinstance(r, dict) or r.get("kept") is not None
    }
    return {
        f.relative_to(partial): f.stat().st_mtime_ns
        for row in rows
        for f in (partial / "c" / row).rglob("*")
        if f.is_file()
    }


def assert_no_finished_output(case: Case, work: Path) -> None:
    """After a kill: nothing a reader could take as finished."""
    if case.store:
        store = case.store(work)
        assert not store.exists(), f"{store} exists after a kill"
        try:
            open_complete(store)
        except ForesightError as err:
            assert ".partial" in str(err)
        else:
            raise AssertionError(f"{store} opened as finished after a kill")
    for path in case.outputs(work):
        if path.suffix == ".json" and "metrics" in path.parts:
            assert not path.exists(), f"{path} written by a killed run"


def assert_same(a: Path, b: Path) -> None:
    """Outputs ``a`` and ``b`` hold the same content (timings aside)."""
    assert b.exists(), f"{b} is missing"
    if a.suffix == ".zarr":
        x, y = zarr.open_array(a, mode="r"), zarr.open_array(b, mode="r")
        np.testing.assert_array_equal(x[:], y[:], err_msg=str(b))
        assert _stable(dict(x.attrs)) == _stable(dict(y.attrs)), f"{b}: attributes differ"
    elif a.is_dir():
        names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert names == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()), f"{b}: other files"
        for name in names:
            assert_same(a / name, b / name)
    elif a.suffix == ".parquet":
        pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
    elif a.suffix == ".json":
        assert _stable(json.loads(a.read_text())) == _stable(json.loads(b.read_text())), f"{b} differs"
    else:
        assert a.read_bytes() == b.read_bytes(), f"{b} differs"


def _stable(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if not VOLATILE.search(k)}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def kill_and_resume(
    case: Case, reference: Path, work: Path, after_units: int, delay: float = 0.0, must_kill: bool = True
) -> dict[str, object]:
    """Kill ``case`` in ``work`` (which holds its inputs), rerun it, check it against ``reference``. Its outputs are
    removed first, as DVC does before it runs a stage."""
    for path in case.outputs(work) + ([case.live(work)] if case.live else []):
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    seconds = kill_stage(case, work, after_units, delay)
    if seconds is None:
        if must_kill:
            raise AssertionError(f"{case.stage} ended before the kill point ({after_units} units + {delay} s)")
        for a, b in zip(case.outputs(reference), case.outputs(work), strict=True):
            assert_same(a, b)
        return {"stage": case.stage, "killed": False}
    # A kill may land after the work was done (the store renamed, or every output written) but before the exit.
    finished = bool(case.store) and case.store(work).exists()
    complete = all(p.exists() for p in case.outputs(work))
    if complete:
        for a, b in zip(case.outputs(reference), case.outputs(work), strict=True):
            assert_same(a, b)
    elif finished:
        assert_same(case.store(reference), case.store(work))
    else:
        assert_no_finished_output(case, work)
    finished = finished or complete
    before = chunk_times(case.store(work)) if case.store else {}
    done = len(done_units(case.store(work))) if case.store else 0
    run_stage(case, work)
    if case.store and not finished:
        store = case.store(work)
        assert not store.with_name(store.name + ".partial").exists(), "a partial outlived its finished store"
        after = {f: (store / f).stat().st_mtime_ns for f in before}
        assert after == before, "the rerun rewrote chunks of units finished before the kill"
    for a, b in zip(case.outputs(reference), case.outputs(work), strict=True):
        assert_same(a, b)
    return {
        "stage": case.stage,
        "killed": True,
        "work_done_at_kill": finished,
        "killed_after_s": round(seconds, 2),
        "units_done_at_kill": done,
        "chunks_kept": len(before),
    }
