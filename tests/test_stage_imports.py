"""Each stage runs its own checkout's code: dvc.yaml starts stages as ``python -m stages.<name>`` from the
repository root, which puts that root first on ``sys.path`` whatever ``foresight_lib`` an editable install (here:
``PYTHONPATH``) points at.

The probe is the real ``validate`` stage (about a second): its output is ``foresight_lib.validate.STAMP``, which
the second checkout changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_workflow import make_repo

ROOT = Path(__file__).resolve().parents[1]
MARK = '"passed": "foresight_lib/validate.py"'


def _checkout(where: Path, mark: str | None = None) -> Path:
    """A copy of the code (stages/, foresight_lib/, params.yaml, dvc.yaml); ``mark`` replaces the validate stage's
    stamp."""
    for item in ("stages", "foresight_lib"):
        shutil.copytree(ROOT / item, where / item, ignore=shutil.ignore_patterns("__pycache__"))
    for item in ("params.yaml", "dvc.yaml"):
        shutil.copy(ROOT / item, where / item)
    if mark is not None:
        module = where / "foresight_lib" / "validate.py"
        source = module.read_text()
        assert MARK in source
        module.write_text(source.replace(MARK, f'"passed": "{mark}"'))
    return where


def _validate(checkout: Path, *command: str, editable: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(editable)}
    out = checkout / "run.json"
    res = subprocess.run(
        [sys.executable, *command, "--dvc-yaml", "dvc.yaml", "--out", str(out)],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(out.read_text())["passed"]


def test_two_checkouts_sharing_one_environment_each_run_their_own_code(tmp_path: Path) -> None:
    a = _checkout(tmp_path / "a")
    b = _checkout(tmp_path / "b", mark="checkout b")
    for editable in (a, b):  # whichever checkout the shared environment's install points at
        assert _validate(a, "-m", "stages.validate", editable=editable) == "foresight_lib/validate.py"
        assert _validate(b, "-m", "stages.validate", editable=editable) == "checkout b"
    # the old command line ran the installed checkout's code: what -m fixes
    assert _validate(b, "stages/validate.py", editable=a) == "foresight_lib/validate.py"


@pytest.mark.slow
def test_a_queued_experiment_runs_its_own_copy(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    repo = make_repo(tmp_path / "repo", {})
    decoy = _checkout(tmp_path / "decoy", mark="the decoy")
    env = {
        **os.environ,
        "PYTHONPATH": str(decoy),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }

    def dvc(*args: str) -> str:
        res = subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
        assert res.returncode == 0, f"dvc {' '.join(args)}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
        return res.stdout

    dvc("exp", "run", "--queue", "-n", "own-copy", "validate")
    dvc("exp", "run", "--run-all")
    ref = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=repo, capture_output=True, text=True
    ).stdout.split()
    assert len(ref) == 1, f"expected one experiment, found {ref}"
    lock = yaml.safe_load(subprocess.run(["git", "show", f"{ref[0]}:dvc.lock"], cwd=repo, capture_output=True).stdout)
    (out,) = lock["stages"]["validate"]["outs"]
    md5 = out["md5"]
    stamp = json.loads((repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).read_text())
    assert stamp["passed"] == "foresight_lib/validate.py", "the experiment ran the decoy checkout's code"
