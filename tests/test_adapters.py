"""Adapters: latent-grid geometry, resampling against pixel-level references, the spatial gate, learning, saving."""

from __future__ import annotations

import json
import runpy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

from foresight_lib.adapters.models import AreaResample, MultiScaleAdapter, TemporalPool, adapter_spec, build_adapter
from foresight_lib.adapters.recon import phase2_verdicts
from foresight_lib.adapters.resample import GridSpec, LatentSpec, area_matrix, pool_to_latent_grid, temporal_matrix
from foresight_lib.adapters.train import (
    AdapterData,
    PixelTerm,
    SavedActivations,
    convergence,
    load_adapter,
    open_data,
    predict,
    save_adapter,
    train_adapter,
    write_predictions,
)
from foresight_lib.cli import run
from foresight_lib.errors import ForesightError
from foresight_lib.extract.pixels import pixels_extractor
from foresight_lib.extract.writer import write_point
from foresight_lib.features import FeatureStore
from foresight_lib.ltx.latents import write_latents
from foresight_lib.ltx.vae import latent_shape, load_vae
from foresight_lib.params import (
    AdapterTrainParams,
    DualStreamAdapterParams,
    LtxParams,
    MultiScaleAdapterParams,
    Phase2Criteria,
    PixelsPoint,
    SingleAdapterParams,
    parse_params,
)
from foresight_lib.store import PartialStore, open_complete

H, W = 448, 672


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: a second intra-op thread only adds synchronisation (10x slower on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _grid(
    point: str, stride: int, n_frames: int, mode: str, channels: int = 8, height: int = H, width: int = W
) -> GridSpec:
    """A point's geometry as the extract stage records it: image mode one slot per frame, video mode pairs."""
    slots = (
        [[f] for f in range(n_frames)]
        if mode == "image"
        else [list(range(t, min(t + 2, n_frames))) for t in range(0, n_frames, 2)]
    )
    return GridSpec(
        point,
        stride,
        (len(slots), height // stride, width // stride),
        channels,
        tuple(map(tuple, slots)),
        height,
        width,
    )


def _inputs(streams: dict[str, GridSpec], seed: int = 0, batch: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {role: torch.randn(batch, *s.grid, s.channels, generator=g) for role, s in streams.items()}


@pytest.mark.parametrize("n_frames", [9, 17])
@pytest.mark.parametrize("mode", ["image", "video"])
@pytest.mark.parametrize("strides", [(14,), (28,), (14, 28), (28, 14), (14, 14), (28, 28)])
def test_output_is_the_vae_latent_shape(n_frames, mode, strides):
    latent = LatentSpec(n_frames, H, W)
    if len(strides) == 1:
        spec = SingleAdapterParams(point="a", hidden=8)
        streams = {"point": _grid("a", strides[0], n_frames, mode)}
    else:
        spec = DualStreamAdapterParams(spatial="a", semantic="b", dim=8, heads=2)
        streams = {
            "spatial": _grid("a", strides[0], n_frames, mode),
            "semantic": _grid("b", strides[1], n_frames, mode, 12),
        }
    with torch.no_grad():
        out = build_adapter(spec, streams, latent)(_inputs(streams))
    assert out.shape == (1, *latent_shape(n_frames, H, W)) == (1, 128, 1 + (n_frames - 1) // 8, 14, 21)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("stride", [14, 28])
def test_area_matrix_is_the_pixel_level_block_mean(stride):
    """Upsample tokens to pixels, average each 32 px block: the separable matrices must give the same."""
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(H // stride, W // stride))
    pixels = np.repeat(np.repeat(tokens, stride, 0), stride, 1)  # [H, W]
    reference = pixels.reshape(H // 32, 32, W // 32, 32).mean(axis=(1, 3))  # [14, 21]
    ry, rx = area_matrix(H // 32, 32, H // stride, stride), area_matrix(W // 32, 32, W // stride, stride)
    np.testing.assert_allclose(ry @ tokens @ rx.T, reference, rtol=1e-12, atol=1e-12)


def test_temporal_matrix_follows_the_ltx_frame_rule():
    # video mode, 9 frames: slots {0,1} {2,3} {4,5} {6,7} {8}; step 0 = frame 0, step 1 = frames 1..8
    np.testing.assert_allclose(
        temporal_matrix(_grid("v", 28, 9, "video"), 9), [[1, 0, 0, 0, 0], [1 / 8, 2 / 8, 2 / 8, 2 / 8, 1 / 8]]
    )
    image = temporal_matrix(_grid("i", 14, 17, "image"), 17)  # steps: {0}, {1..8}, {9..16}
    assert image.shape == (3, 17) and image[0, 0] == 1 and np.allclose(image[2, 9:], 1 / 8) and image[2, :9].sum() == 0
    with pytest.raises(ForesightError, match="no slot covers frames \\[8\\]"):
        temporal_matrix(_grid("v", 28, 8, "video"), 9)


def test_untrained_pooling_is_the_documented_fixed_pooling():
    grid, latent = _grid("v", 14, 9, "video", channels=3), LatentSpec(9, H, W)
    x = torch.randn(2, *grid.grid, 3, dtype=torch.float64)
    time, space = TemporalPool(grid, 9, 3).double(), AreaResample(grid, latent, subcells=1).double()
    with torch.no_grad():
        np.testing.assert_allclose(space(time(x)).numpy(), pool_to_latent_grid(x.numpy(), grid, latent), rtol=1e-10)


def test_subcells_are_stacked_in_row_major_order():
    """16 px tokens and 2 sub-cells per side: latent cell (i, j) holds tokens (2i, 2j), (2i, 2j+1), (2i+1, 2j), ..."""
    grid = GridSpec("p", 16, (1, 4, 6), 1, ((0,),), 64, 96)
    x = torch.arange(24, dtype=torch.float32).view(1, 1, 4, 6, 1)
    out = AreaResample(grid, LatentSpec(1, 64, 96), subcells=2)(x)  # [1, 1, 2, 3, 4]
    assert out[0, 0, 1, 2].tolist() == [16, 17, 22, 23]


def test_gate_at_zero_ignores_the_spatial_stream():
    streams = {"spatial": _grid("a", 14, 9, "image"), "semantic": _grid("b", 28, 9, "image", 12)}
    latent = LatentSpec(9, H, W)
    inputs = _inputs(streams)
    other = {**inputs, "spatial": inputs["spatial"] + torch.randn_like(inputs["spatial"])}
    model = build_adapter(
        DualStreamAdapterParams(spatial="a", semantic="b", dim=8, heads=2, gate_init=0.0), streams, latent
    )
    with torch.no_grad():
        model.head.out.weight.normal_()  # the output layer starts at zero: make the output depend on its inputs
        assert torch.equal(model(inputs), model(other))
        model.gate.fill_(0.5)
        assert not torch.allclose(model(inputs), model(other))


POINTS = {
    "vit_embed": {"kind": "vit_embed"},
    "vit_l7": {"kind": "vit_block", "layer": 7},
    "llm_l13": {"kind": "llm", "layer": 13},
    "merger": {"kind": "merger"},
}


def test_adapter_entries_must_name_fitting_points():
    params = parse_params(
        {
            "points": POINTS,
            "adapter": {
                "dual_stream": {"ok": {"spatial": "vit_l7", "semantic": "llm_l13"}},
                "multi_scale": {"m": {"points": ["vit_embed", "vit_l7"]}, "late": {"points": ["merger", "llm_l13"]}},
            },
        }
    )
    assert adapter_spec(params.adapter, "ok").semantic == "llm_l13"
    assert adapter_spec(params.adapter, "m").inputs() == {"scale0": "vit_embed", "scale1": "vit_l7"}
    with pytest.raises(
        ForesightError,
        match="'nope' is not in adapter.single, adapter.dual_stream, adapter.multi_scale \\(defined: ok, m, late\\)",
    ):
        adapter_spec(params.adapter, "nope")
    with pytest.raises(ForesightError, match="unique across kinds \\('x' in single and multi_scale\\)"):
        parse_params(
            {
                "points": POINTS,
                "adapter": {"single": {"x": {"point": "vit_l7"}}, "multi_scale": {"x": {"points": ["vit_l7"]}}},
            }
        )


@pytest.mark.parametrize(
    "adapter, message",
    [
        (
            {"single": {"s": {"point": "vit_l99"}}},
            "adapter.single.s.point: 'vit_l99' is not in points (defined: vit_embed, vit_l7, llm_l13, merger)",
        ),
        (
            {"dual_stream": {"d": {"spatial": "llm_l13", "semantic": "vit_l7"}}},
            "adapter.dual_stream.d.semantic: 'vit_l7' is a vit_block point; the semantic stream needs a merger or llm point; "
            "adapter.dual_stream.d.spatial: 'llm_l13' is a llm point; the spatial stream needs a pre-merge point",
        ),
        (
            {"multi_scale": {"m": {"points": ["vit_l7", "merger"]}}},
            "adapter.multi_scale.m.points: 'vit_l7' (stride of the ViT patch) and 'merger' (stride of the 2x2 merge unit) "
            "have different strides",
        ),
        ({"multi_scale": {"m": {"points": []}}}, "adapter.multi_scale.m.points: List should have at least 1 item"),
        (
            {"multi_scale": {"m": {"points": ["vit_l7", "vit_l99"]}}},
            "adapter.multi_scale.m.points: 'vit_l99' is not in points (defined: vit_embed, vit_l7, llm_l13, merger)",
        ),
    ],
)
def test_bad_adapter_inputs_stop_with_one_line_naming_the_key(adapter, message):
    with pytest.raises(ForesightError) as err:
        parse_params({"points": POINTS, "adapter": adapter})
    assert message in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------------- learning on the tiny setup
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200]], dtype=np.uint8)
N_CLIPS, SIDE = 16, 224


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """16 still 9-frame clips at 224x224, each four quadrants of palette colours; their pixel-patch grids (stride 14
    and 28) and tiny-VAE latents. Splits: clips 0-9 train, 10-12 val, 13-15 test.

    The tiny random VAE is non-local (a 32 px change moves latents 3 cells away) and texture-sensitive, so with a
    handful of clips only piecewise-flat frames give a target an adapter can learn in seconds.
    """
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    store = PartialStore(root / "frames.zarr", {"palette": True})
    frames = store.array(
        (N_CLIPS, 9, SIDE, SIDE, 3), (1, 9, SIDE, SIDE, 3), "uint8", ("clip", "frame", "y", "x", "rgb"), {}
    )
    for c in range(N_CLIPS):
        quadrants = np.repeat(np.repeat(rng.integers(0, len(PALETTE), (2, 2)), SIDE // 2, 0), SIDE // 2, 1)
        frames[c] = np.broadcast_to(PALETTE[quadrants], (9, SIDE, SIDE, 3))
    store.finalize()
    for patch in (14, 28):
        extractor = pixels_extractor(f"px{patch}", PixelsPoint(kind="pixels", patch=patch), SIDE, SIDE, 9)
        write_point(
            extractor, root / "frames.zarr", root / "features" / f"px{patch}.zarr", None, "float32", progress=False
        )
    write_latents(root / "frames.zarr", root / "latents.zarr", LtxParams(device="cpu"), progress=False)
    splits = {"train": list(range(10)), "val": [10, 11, 12], "test": [13, 14, 15]}
    return root, splits


TRAIN = AdapterTrainParams(epochs=16, lr=5e-3, batch_size=2, device="cpu")
SINGLE = SingleAdapterParams(point="px14", hidden=32, context=3)


def _shuffled(store: FeatureStore, name: str | None = None) -> FeatureStore:
    """The same grids, each paired with the next clip's latents (a cyclic shift of the clips)."""
    arr = zarr.create_array(
        store={}, shape=store.array.shape, dtype="float32", attributes={**store.attrs, "point": name or store.name}
    )
    arr[:] = store.read(list(np.roll(np.arange(store.n_clips), -1)))
    return FeatureStore(path=store.path, array=arr)


def test_training_beats_the_mean_latent_and_shuffled_inputs_do_not(tiny, tmp_path):
    root, splits = tiny
    data = open_data(SINGLE, root / "features", root / "latents.zarr")
    trained = train_adapter(SINGLE, TRAIN, data, splits, tmp_path / "live", progress=False)
    s = trained.summary
    assert s["loss"]["val"] < 0.5 * s["trivial_loss"]["val"] and s["loss"]["test"] < 0.5 * s["trivial_loss"]["test"], s
    assert 0 <= s["best_epoch"] < TRAIN.epochs and s["parameters"]["total"] == sum(
        p.numel() for p in trained.model.parameters()
    )
    assert (tmp_path / "live" / "plots" / "metrics" / "val" / "loss.tsv").read_text().count("\n") == TRAIN.epochs + 1

    control = AdapterData({"point": _shuffled(data.stores["point"])}, data.latents, data.latent)
    shuffled = train_adapter(SINGLE, TRAIN, control, splits, tmp_path / "live_shuffled", progress=False).summary
    assert shuffled["explained"]["val"] < 0.5 * s["explained"]["val"], (shuffled, s)


def test_dual_stream_learns(tiny, tmp_path):
    root, splits = tiny
    spec = DualStreamAdapterParams(spatial="px14", semantic="px28", dim=32, heads=4, gate_init=0.1, context=3)
    data = open_data(spec, root / "features", root / "latents.zarr")
    s = train_adapter(spec, TRAIN, data, splits, tmp_path / "live", progress=False).summary
    assert s["loss"]["val"] < 0.5 * s["trivial_loss"]["val"], s
    assert s["inputs"] == {"spatial": "px14", "semantic": "px28"} and s["gate_mean_abs"] > 0


def test_training_is_deterministic_and_saved_weights_reload(tiny, tmp_path):
    root, splits = tiny
    data = open_data(SINGLE, root / "features", root / "latents.zarr")
    short = AdapterTrainParams(epochs=2, batch_size=3, seed=3, device="cpu")
    a, b = (train_adapter(SINGLE, short, data, splits, tmp_path / f"live{i}", progress=False) for i in range(2))
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.summary["loss"] == b.summary["loss"]

    save_adapter(tmp_path / "saved", "single_px14", SINGLE, a.model)
    loaded = load_adapter(tmp_path / "saved")
    test = list(splits["test"])
    expected = predict(a.model, data, test, 2)
    np.testing.assert_array_equal(predict(loaded, data, test, 2), expected)
    stored = write_predictions(loaded, data, test, tmp_path / "pred.zarr", "single_px14", 1)
    np.testing.assert_array_equal(stored[:], expected)
    assert stored.attrs["clips"] == test and stored.attrs["vae"] == data.latents.attrs["vae"]


def test_pixel_term_trains_through_the_vae_decoder(tiny, tmp_path):
    root, splits = tiny
    data = open_data(SINGLE, root / "features", root / "latents.zarr")
    vae, _ = load_vae("tiny", seed=0)
    term = PixelTerm(vae.requires_grad_(False), open_complete(root / "frames.zarr"), 0.05, weight=1.0)
    two = AdapterTrainParams(epochs=2, batch_size=2, device="cpu")
    few = {"train": [0, 1], "val": [10], "test": [13]}
    plain = train_adapter(SINGLE, two, data, few, tmp_path / "a", progress=False)
    pixel = train_adapter(SINGLE, two, data, few, tmp_path / "b", pixel_term=term, progress=False)
    assert pixel.summary["pixel_loss_weight"] == 1.0 and plain.summary["pixel_loss_weight"] == 0.0
    changed = [k for k, v in pixel.model.state_dict().items() if not torch.equal(v, plain.model.state_dict()[k])]
    assert "tokens.0.weight" in changed, "the pixel term's gradient reaches the token MLP"


def test_train_stage_writes_weights_predictions_curves_and_metrics(tiny, tmp_path, capsys):
    root, splits = tiny
    pd.DataFrame(
        {"clip": range(N_CLIPS), "split": [s for s in ("train", "val", "test") for _ in splits[s]]}
    ).to_parquet(tmp_path / "clips.parquet")
    (tmp_path / "params.yaml").write_text(
        "points: {px14: {kind: pixels, patch: 14}, px28: {kind: pixels, patch: 28}}\n"
        "adapter:\n  train: {epochs: 2, batch_size: 4, device: cpu}\n  single: {s: {point: px14, hidden: 8}}\n"
        "  multi_scale: {m: {points: [px28], hidden: 8}}\n"
    )
    stage = runpy.run_path("stages/train_adapter.py", run_name="stage")["main"]
    args = [
        "--params",
        str(tmp_path / "params.yaml"),
        "--features",
        str(root / "features"),
        "--latents",
        str(root / "latents.zarr"),
        "--clips",
        str(tmp_path / "clips.parquet"),
        "--frames",
        str(root / "frames.zarr"),
    ]
    run(stage, [*args, "--adapter", "s", "--out", str(tmp_path / "s"), "--metrics", str(tmp_path / "s.json")])
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["epochs"] == 2 and summary["inputs"] == {"point": "px14"} and summary["option"] == "control"
    assert summary["convergence"]["steps_per_epoch"] == 3 and summary["memory"]["activation_bytes"] > 0
    predicted = open_complete(tmp_path / "s" / "latents.zarr")
    assert predicted.attrs["clips"] == splits["test"] and predicted.shape == (3, 128, 2, 7, 7)
    np.testing.assert_allclose(
        predicted[:],
        predict(
            load_adapter(tmp_path / "s"),
            open_data(SingleAdapterParams(point="px14"), root / "features", root / "latents.zarr"),
            splits["test"],
            3,
        ),
        rtol=1e-6,
    )
    assert (tmp_path / "s" / "live" / "plots" / "metrics" / "train" / "loss.tsv").is_file()
    run(stage, [*args, "--adapter", "m", "--out", str(tmp_path / "m"), "--metrics", str(tmp_path / "m.json")])
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["option"] == "C" and summary["point_weights"] == {"px28": 1.0}
    assert isinstance(load_adapter(tmp_path / "m"), MultiScaleAdapter)

    (tmp_path / "params.yaml").write_text(
        "points: {px14: {kind: pixels, patch: 14}, px28: {kind: pixels, patch: 28}}\n"
        "adapter:\n  dual_stream: {d: {spatial: px14, semantic: px28}}\n"
    )
    capsys.readouterr()
    with pytest.raises(SystemExit):
        run(stage, [*args, "--adapter", "d", "--out", str(tmp_path / "d"), "--metrics", str(tmp_path / "d.json")])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'px28' is a pixels point; the semantic stream needs a merger or llm point" in err


# ------------------------------------------------------------------- option C, convergence, memory
def test_multi_scale_learns_and_its_point_weights_sum_to_one(tiny, tmp_path):
    """Two stride-14 inputs, the real grids and the same grids paired with the wrong clips: the mix must learn to
    weigh the real ones more (they start equal)."""
    root, splits = tiny
    spec = MultiScaleAdapterParams(points=["px14", "px14_shuffled"], hidden=32, context=3)
    real = open_data(SINGLE, root / "features", root / "latents.zarr")
    data = AdapterData(
        {"scale0": real.stores["point"], "scale1": _shuffled(real.stores["point"], "px14_shuffled")},
        real.latents,
        real.latent,
    )
    s = train_adapter(spec, TRAIN, data, splits, tmp_path / "live", progress=False).summary
    weights = s["point_weights"]
    assert s["kind"] == "multi_scale" and set(weights) == {"px14", "px14_shuffled"}
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-6) and weights["px14"] > 0.5, weights
    assert s["loss"]["val"] < 0.75 * s["trivial_loss"]["val"], s


def test_multi_scale_on_one_point_is_the_single_adapter(tiny, tmp_path):
    root, splits = tiny
    spec = MultiScaleAdapterParams(points=["px14"], hidden=SINGLE.hidden, context=SINGLE.context)
    short = AdapterTrainParams(epochs=3, batch_size=3, seed=1, device="cpu")
    single_data = open_data(SINGLE, root / "features", root / "latents.zarr")
    multi_data = open_data(spec, root / "features", root / "latents.zarr")
    single = train_adapter(SINGLE, short, single_data, splits, tmp_path / "a", progress=False)
    multi = train_adapter(spec, short, multi_data, splits, tmp_path / "b", progress=False)
    assert multi.summary["point_weights"] == {"px14": 1.0}
    assert (
        multi.summary["loss"] == single.summary["loss"] and multi.summary["best_epoch"] == single.summary["best_epoch"]
    )
    test = splits["test"]
    np.testing.assert_array_equal(
        predict(multi.model, multi_data, test, 3), predict(single.model, single_data, test, 3)
    )


@dataclass
class _Poisoned(AdapterData):
    """Feature grids with NaN in the ``poison``-th batch read (input statistics read the stores, so stay finite)."""

    poison: int = 1
    reads: int = 0

    def inputs(self, clips, device):
        self.reads += 1
        out = super().inputs(clips, device)
        return {k: torch.full_like(v, torch.nan) for k, v in out.items()} if self.reads == self.poison else out


@pytest.mark.parametrize("poison, kept", [(1, None), (7, {0, 1})])
def test_a_non_finite_loss_is_divergent_and_fails_the_criterion(tiny, tmp_path, poison, kept):
    """10 train clips in batches of 5: per epoch 2 training reads and 1 validation read. Read 1 is the first step
    (no epoch kept: the initial weights, the trivial predictor); read 7 the first step of epoch 2."""
    root, splits = tiny
    real = open_data(SINGLE, root / "features", root / "latents.zarr")
    data = _Poisoned(real.stores, real.latents, real.latent, poison=poison)
    s = train_adapter(
        SINGLE,
        AdapterTrainParams(epochs=4, batch_size=5, device="cpu"),
        data,
        splits,
        tmp_path / "live",
        progress=False,
    ).summary
    c = s["convergence"]
    assert c["diverged"] and c["reason"].startswith(f"training loss nan at step {1 if kept is None else 5}"), c
    if kept is None:
        assert s["best_epoch"] is None and c["steps_to_best"] is None
        assert s["loss"]["val"] == pytest.approx(s["trivial_loss"]["val"], rel=1e-6)
    else:
        assert s["best_epoch"] in kept and c["steps_to_best"] == 2 * (s["best_epoch"] + 1) and c["steps_run"] == 5
    verdicts = phase2_verdicts(0.9, 0.1, 1000, c, Phase2Criteria())
    assert verdicts["convergence"]["verdict"] == "fail" and verdicts["overall"] == "fail"


def test_convergence_rule():
    stable = convergence([0.5, 0.4, 0.45], 0.6, steps_per_epoch=10, steps_run=30, best_epoch=1, non_finite=None)
    assert not stable["diverged"] and stable["steps_to_best"] == 20 and stable["final_val_loss"] == 0.45
    worse = convergence([0.5, 0.7], 0.6, steps_per_epoch=10, steps_run=20, best_epoch=0, non_finite=None)
    assert worse["diverged"] and "above the trivial predictor's 0.6" in worse["reason"]


def test_saved_activations_count_what_autograd_keeps():
    """Linear(4, 3) then GELU on a [2, 4] input: autograd keeps the input (for the weight's gradient, 2*4 floats)
    and the GELU's input (2*3 floats); the weight it keeps is a parameter, not counted."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.GELU())
    meter = SavedActivations(model)
    with meter:
        model(torch.randn(2, 4))
    assert meter.bytes == (2 * 4 + 2 * 3) * 4


@pytest.mark.parametrize(
    "spec", [SINGLE, DualStreamAdapterParams(spatial="px14", semantic="px28", dim=16, heads=2, gate_init=0.1)]
)
def test_checkpointing_changes_memory_not_results(tiny, tmp_path, spec):
    """Tolerance: recomputation repeats the same float32 operations (bitwise equal on this CPU); allowed: rtol 1e-5
    on weights and losses, for kernels that might reorder a reduction."""
    root, splits = tiny
    data = open_data(spec, root / "features", root / "latents.zarr")
    runs = [
        train_adapter(
            spec,
            AdapterTrainParams(epochs=2, batch_size=3, device="cpu", checkpointing=flag),
            data,
            splits,
            tmp_path / str(flag),
            progress=False,
        )
        for flag in (False, True)
    ]
    plain, checkpointed = (r.summary["memory"] for r in runs)
    assert checkpointed["checkpointing"] and checkpointed["activation_bytes"] < 0.8 * plain["activation_bytes"]
    assert plain["peak_allocated_bytes"] is None and "CPU" in plain["peak_allocated_reason"]
    np.testing.assert_allclose(
        list(runs[1].summary["loss"].values()), list(runs[0].summary["loss"].values()), rtol=1e-5
    )
    a, b = runs[0].model.state_dict(), runs[1].model.state_dict()
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)


def test_multi_scale_points_must_share_one_grid():
    latent = LatentSpec(9, H, W)
    streams = {"scale0": _grid("a", 14, 9, "image"), "scale1": _grid("b", 14, 9, "image", channels=12)}
    with pytest.raises(ForesightError, match="multi_scale points a and b differ in stride, grid, width or slots"):
        build_adapter(MultiScaleAdapterParams(points=["a", "b"], hidden=8), streams, latent)
