"""Shared fixtures. Tests build their own tiny models and data with the real code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import small_params

from foresight_lib.params import Params

# one compute thread per xdist worker (the README's command runs two on the two cores: more would oversubscribe them)
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of the slow end-to-end tests first: with ``-n 2 --dist loadfile`` (the README's test command) a
    worker starts on them at once while the other runs the rest, instead of one of them starting last."""
    seconds = {item.path: m.kwargs.get("seconds", 0) for item in items if (m := item.get_closest_marker("slow"))}
    # the longest first (a file marked `slow(seconds=...)`), so that the other worker runs the rest beside it
    items.sort(key=lambda item: (item.path not in seconds, -seconds.get(item.path, 0)))  # stable within a group


@pytest.fixture(scope="session")
def stand_in_torch_home(tmp_path_factory) -> str:
    """A TORCH_HOME whose hub cache holds a randomly initialised AlexNet under the real file name (wiring only)."""
    import torchvision

    home = tmp_path_factory.mktemp("torch_home")
    path = home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    path.parent.mkdir(parents=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(torchvision.models.alexnet().state_dict(), path)
    return str(home)


@pytest.fixture
def params() -> Params:
    return small_params()


ROOT = Path(__file__).resolve().parents[1]
PIPELINE_OUTPUTS = ("data", "features", "probes", "latents", "adapters", "metrics", "reports")


def _snapshot() -> dict[Path, int]:
    return {
        f: f.stat().st_mtime_ns
        for d in PIPELINE_OUTPUTS
        if (ROOT / d).is_dir()
        for f in (ROOT / d).rglob("*")
        if f.is_file()
    }


@pytest.fixture(scope="session", autouse=True)
def pipeline_outputs_untouched():
    """No test may write into the checkout's own pipeline outputs (a stage run with a default path would)."""
    before = _snapshot()
    yield
    after = _snapshot()
    changed = sorted(str(f.relative_to(ROOT)) for f in before.keys() | after.keys() if before.get(f) != after.get(f))
    assert not changed, f"tests wrote into the pipeline outputs: {changed[:10]}"
