"""Kill anywhere, lose nothing: each resumable stage is SIGKILLed in the middle of its work and rerun.

The rerun's outputs equal an uninterrupted run's (timings aside), nothing a killed run leaves is taken as finished,
the rerun keeps the chunks of the clips finished before the kill, and no partial store outlives its finished output.
The kill points and the harness are in tests/killing.py; benchmarks/kill_campaign.py kills at many more points.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from killing import CASES, ORDER, kill_and_resume, run_stage, write_params

from foresight_lib.cli import run
from foresight_lib.store import PartialStore, sweep_partials

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("reference")
    write_params(work)
    for name in ORDER:
        run_stage(CASES[name], work)
    return work


@pytest.mark.parametrize("after_units", [2])
def test_every_stage_killed_midway_resumes_to_the_uninterrupted_result(reference, tmp_path, after_units):
    work = tmp_path / "work"
    write_params(work)
    results = [kill_and_resume(CASES[name], reference, work, after_units) for name in ORDER]
    resumable = [r for r in results if CASES[r["stage"]].store]
    assert all(r["units_done_at_kill"] >= after_units and r["chunks_kept"] >= after_units for r in resumable), results


def _stores(root: Path, fingerprint: dict) -> PartialStore:
    finished = PartialStore(root / "x.zarr", {"a": 1})
    finished.array((2,), (1,), "float32", ("clip",), {})
    finished.mark_done(0), finished.mark_done(1)
    finished.finalize()
    pending = PartialStore(root / "x.zarr", fingerprint)  # a killed run's partial beside the finished store
    pending.array((2,), (1,), "float32", ("clip",), {})
    pending.mark_done(0)
    return pending


def test_a_partial_beside_a_finished_store_of_the_same_inputs_goes_at_the_next_stage_start(
    tmp_path, monkeypatch, capsys
):
    """DVC restores a killed stage's output from its cache without running the stage: the partial stays until any
    stage starts (cli.run); a partial of other inputs is resumable work and stays."""
    same, other = tmp_path / "same" / "data", tmp_path / "other" / "data"
    _stores(same, {"a": 1}), _stores(other, {"a": 2})
    assert sweep_partials(tmp_path / "other") == [] and (other / "x.zarr.partial").is_dir()
    monkeypatch.chdir(tmp_path / "same")
    run(lambda argv: None, [])
    assert not (same / "x.zarr.partial").exists() and (same / "x.zarr" / "zarr.json").is_file()
    assert capsys.readouterr().err.startswith(f"removed {Path('data/x.zarr.partial')}: a killed run left it")
    assert json.loads((same / "x.zarr" / "fingerprint.json").read_text()) == {"a": 1}


def test_a_chunk_write_cut_short_by_a_kill_leaves_nothing_in_the_finished_store(tmp_path):
    """Zarr writes a chunk to ``<key>.<uuid hex>.partial`` and renames it: a kill in between leaves that file."""
    store = PartialStore(tmp_path / "x.zarr", {"a": 1})
    store.array((2,), (1,), "float32", ("clip",), {})[:] = [1.0, 2.0]
    store.mark_done(0), store.mark_done(1)
    cut_short = store.partial / "c" / f"1.{'ab' * 16}.partial"
    cut_short.write_bytes(b"half a chunk")
    store.finalize()
    assert not any(p.name.endswith(".partial") for p in (tmp_path / "x.zarr").rglob("*"))
    assert (tmp_path / "x.zarr" / "c" / "1").is_file()
