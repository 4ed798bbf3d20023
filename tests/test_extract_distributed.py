"""Data-parallel extraction under torchrun (2 CPU processes, gloo): the same store as one process, and a
killed rank resumes to that store without redoing what was recorded.

The stage runs as users start it: ``python -m stages.extract`` restarting itself under torchrun because
``FORESIGHT_TORCHRUN`` says so. 5 clips of 9 frames at 224x448; the tiny Qwen2.5-VL (vit_l7) and pixels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import small_params

from foresight_lib.data.frames import write_frames
from foresight_lib.features import open_features

ROOT = Path(__file__).resolve().parents[1]
POINTS = {"vit_l7": {"kind": "vit_block", "layer": 7}, "pixels": {"kind": "pixels", "patch": 14}}
TWO = "--standalone --nproc-per-node 2"

# Run the stage with two test hooks: a rank that kills itself (SIGKILL) when it starts its second batch,
# and a record of the clips each process computed.
HOOKED = textwrap.dedent("""
    import os, runpy, signal, sys
    from foresight_lib.extract import pixels
    run, batches = pixels.PixelsExtractor.run, []
    def hooked(self, clips):
        rank = os.environ.get("RANK", "0")
        if rank == os.environ.get("KILL_RANK") and batches:
            os.kill(os.getpid(), signal.SIGKILL)
        batches.append(len(clips))
        with open(os.path.join(os.environ["COUNT_DIR"], f"computed.{rank}.{os.getpid()}"), "w") as f:
            f.write(str(sum(batches)))
        return run(self, clips)
    pixels.PixelsExtractor.run = hooked
    sys.argv = [sys.argv[1], *sys.argv[2:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dist")
    write_frames(small_params(data={"synthetic": {"n_clips": 5}}).data, root / "data", progress=False)
    params = {"model": {"device": "cpu"}, "extract": {"batch_frames": 9}, "points": POINTS}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "hooked.py").write_text(HOOKED)
    return root


def _stage(
    workdir: Path,
    point: str,
    out: str,
    torchrun: str = "",
    launcher: tuple[str, ...] = (),
    hooked: bool = False,
    **env: str,
) -> subprocess.CompletedProcess:
    """The stage's command line (``launcher``: e.g. torchrun by hand; ``hooked``: through the test hooks)."""
    environ = {**os.environ, "FORESIGHT_TORCHRUN": torchrun, "OMP_NUM_THREADS": "1", **env}
    environ.pop("RANK", None)
    script = (str(workdir / "hooked.py"), "stages/extract.py") if hooked else ("-m", "stages.extract")
    cmd = [
        sys.executable,
        *launcher,
        *script,
        "--params",
        str(workdir / "params.yaml"),
        "--point",
        point,
        "--frames",
        str(workdir / "data" / "frames.zarr"),
        "--out",
        str(workdir / f"{out}.zarr"),
        "--metrics",
        str(workdir / f"{out}.json"),
    ]
    return subprocess.run(cmd, check=False, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600)


def _files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def test_two_processes_write_the_one_process_store(workdir):
    one = _stage(workdir, "vit_l7", "one")
    assert one.returncode == 0, one.stderr[-3000:]
    two = _stage(workdir, "vit_l7", "two", torchrun=TWO)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "extract vit_l7 [1]" in two.stderr  # both ranks worked
    single, double = _files(workdir / "one.zarr"), _files(workdir / "two.zarr")
    assert len(single) == 7 and single == double  # zarr.json, fingerprint.json and 5 chunks, byte for byte
    metrics = json.loads((workdir / "two.json").read_text())
    assert metrics["processes"] == 2 and metrics["frames_timed"] == 45
    assert json.loads((workdir / "one.json").read_text())["processes"] == 1
    assert not (workdir / "two.zarr.partial").exists()


def test_a_killed_rank_resumes_to_the_same_store(workdir):
    clean = _stage(workdir, "pixels", "clean")
    assert clean.returncode == 0, clean.stderr[-3000:]
    killed_dir, resumed_dir = workdir / "killed", workdir / "resumed"
    killed_dir.mkdir()
    resumed_dir.mkdir()
    torchrun = ("-m", "torch.distributed.run", *TWO.split())  # started by hand, as on several machines
    killed = _stage(workdir, "pixels", "px", launcher=torchrun, hooked=True, KILL_RANK="1", COUNT_DIR=str(killed_dir))
    assert killed.returncode != 0  # torchrun reports the dead rank and stops the other
    assert {p.name.split(".")[1] for p in killed_dir.iterdir()} == {"0", "1"}  # both ranks had started
    partial = workdir / "px.zarr.partial"
    assert not (workdir / "px.zarr").exists() and partial.is_dir()
    recorded = {k for p in partial.glob("progress*.json") for k in json.loads(p.read_text())["done"]}
    assert len(recorded) < 5
    # resumed by one process: only the clips nobody had recorded are computed
    resumed = _stage(workdir, "pixels", "px", hooked=True, COUNT_DIR=str(resumed_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    computed = sum(int(p.read_text()) for p in resumed_dir.iterdir())
    assert computed == 5 - len(recorded)
    assert _files(workdir / "clean.zarr") == _files(workdir / "px.zarr")
    assert np.array_equal(
        open_features(workdir / "clean.zarr").read(slice(None)), open_features(workdir / "px.zarr").read(slice(None))
    )
