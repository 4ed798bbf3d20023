"""The one feature loader of probes and adapters: where a split is held, what it reads, what it returns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from foresight_lib.errors import ForesightError
from foresight_lib.features import FeatureStore
from foresight_lib.features_loader import GB, MemoryBudget, SplitLoader, train_statistics

SHAPE = (7, 2, 3, 4, 5)  # clip, t, gh, gw, C
CLIP_BYTES = 2 * 3 * 4 * 5 * 2  # float16


def _store(tmp_path: Path, dtype: str = "float16") -> tuple[FeatureStore, np.ndarray]:
    values = np.random.default_rng(0).normal(3.0, 2.0, size=SHAPE).astype(dtype)
    array = zarr.open_array(str(tmp_path / "f.zarr"), mode="w", shape=SHAPE, chunks=(1, *SHAPE[1:]), dtype=dtype)
    array[:] = values
    return FeatureStore(tmp_path / "f.zarr", array), values


def test_budgets_place_each_split_in_the_first_place_it_fits():
    budget = MemoryBudget(gpu_bytes=100, host_bytes=50)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert [budget.place(n, cuda) for n in (60, 60, 40, 20, 40)] == ["gpu", "stream", "gpu", "host", "stream"]
    assert MemoryBudget(100, 0).place(10, cpu) == "stream"  # no GPU residency without a CUDA device
    assert MemoryBudget.of(1.5, 0.5) == MemoryBudget(int(1.5 * GB), int(0.5 * GB))


@pytest.mark.parametrize("host_bytes, residency", [(10**6, "host"), (0, "stream")])
def test_held_and_streamed_loaders_give_the_stored_float16_values(tmp_path, host_bytes, residency):
    store, values = _store(tmp_path)
    clips = np.array([5, 1, 2, 6])
    loader = SplitLoader.open(store, clips, MemoryBudget(0, host_bytes), torch.device("cpu"), block_clips=3)
    assert loader.residency == residency
    order = np.array([6, 2, 5, 1])
    blocks = list(loader.blocks(order))
    assert [b.tolist() for b, _ in blocks] == [[6, 2, 5], [1]]
    got = torch.cat([g for _, g in blocks])
    assert got.dtype == torch.float16 and np.array_equal(got.numpy(), values[order])
    assert np.array_equal(loader.take([2, 6]).numpy(), values[[2, 6]])
    second = list(loader.blocks(order))  # a second pass: re-read only when streamed
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(blocks, second))
    reads = {"host": 4, "stream": 4 + 2 + 4}[residency]
    assert loader.bytes_read == reads * CLIP_BYTES


def test_statistics_and_standardisation_match_numpy(tmp_path):
    store, values = _store(tmp_path)
    loader = SplitLoader.open(store, [0, 3, 4], MemoryBudget(0, 10**6), torch.device("cpu"), block_clips=2)
    stats = train_statistics(loader)
    flat = values[[0, 3, 4]].astype(np.float64).reshape(-1, SHAPE[-1])
    np.testing.assert_allclose(stats.mean, flat.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats.std, flat.std(0), rtol=1e-5)
    assert loader.bytes_read == 3 * CLIP_BYTES  # the statistics pass filled the held split
    loader.standardise(stats)
    expected = ((values[[3]].astype(np.float32) - stats.mean) / stats.std).astype(np.float16)
    assert np.array_equal(loader.take([3]).numpy(), expected)
    streamed = SplitLoader.open(store, [0, 3, 4], MemoryBudget(0, 0), torch.device("cpu"), block_clips=2)
    streamed.standardise(stats)
    assert np.array_equal(torch.cat([g for _, g in streamed.blocks([3])]).numpy(), expected)


def test_a_value_beyond_float16_names_the_clip(tmp_path):
    store, _ = _store(tmp_path, "float32")
    store.array[4, 0, 0, 0, 0] = 1e6
    loader = SplitLoader.open(store, range(7), MemoryBudget(0, 0), torch.device("cpu"), block_clips=7)
    with pytest.raises(ForesightError, match=r"non-finite features \(NaN or inf\) in clip\(s\) \[4\]"):
        loader.take([1, 4])
