"""The cost model (``check --cost``): its disk figures are the stores the stages actually write, and its rates
are the benchmark files they name.

The stores are written by the stage scripts themselves (frames, extract for every point kind but ``llm``, whose
store has the merger's grid and costs the tiny LLM's forward, latents, the ceiling decode, one adapter's training
and decode) on tiny models in a temporary directory.
"""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import pytest
import torch
import yaml
import zarr
from torch.utils.flop_counter import FlopCounterMode
from transformers import Dinov2Model

from foresight_lib.check import main
from foresight_lib.cli import run
from foresight_lib.cost import (
    BUDGET_DISK_GB,
    GB,
    StoreCost,
    estimate,
    extraction_rates,
    format_cost,
    head_forward_flops,
    load_rates,
)
from foresight_lib.errors import ForesightError
from foresight_lib.extract.flops import qwen_flops_per_frame
from foresight_lib.extract.truncate import truncated_forward
from foresight_lib.families import FAMILIES
from foresight_lib.params import ProbeParams, load_params, parse_params

SMALL = {
    "data": {"height": 224, "width": 224, "n_frames": 9, "synthetic": {"n_clips": 3}},
    "model": {"device": "cpu"},
    "extract": {"batch_frames": 18},
    "points": {
        "pixels": {"kind": "pixels", "patch": 14},
        "vit_embed": {"kind": "vit_embed"},
        "vit_l7": {"kind": "vit_block", "layer": 7},
        "merger": {"kind": "merger"},
        "dinov2_l3": {"kind": "encoder", "family": "dinov2", "layer": 3},
    },
    "ltx": {"device": "cpu"},
    "adapter": {
        "train": {"epochs": 1, "device": "cpu"},
        "single": {"single_merger": {"point": "merger", "hidden": 16}},
    },
}


def _stage(name: str):
    return runpy.run_path(f"stages/{name}.py", run_name="stage")["main"]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, Path]:
    """Every store of the small profile, written by the stages into a temporary directory."""
    root = tmp_path_factory.mktemp("cost")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(SMALL))
    p = ["--params", str(params)]
    frames, latents = str(root / "data/frames.zarr"), str(root / "latents/latents.zarr")
    run(_stage("frames"), [*p, "--out", str(root / "data")])
    for point in SMALL["points"]:
        run(
            _stage("extract"),
            [
                *p,
                "--point",
                point,
                "--frames",
                frames,
                "--out",
                str(root / f"features/{point}.zarr"),
                "--metrics",
                str(root / f"metrics/{point}.json"),
            ],
        )
    run(_stage("latents"), [*p, "--frames", frames, "--out", latents])
    clips, decoded = str(root / "data/clips.parquet"), str(root / "latents/decoded.zarr")
    run(_stage("decode_ceiling"), [*p, "--latents", latents, "--clips", clips, "--out", decoded])
    adapter = root / "adapters/single_merger"
    run(
        _stage("train_adapter"),
        [
            *p,
            "--adapter",
            "single_merger",
            "--features",
            str(root / "features"),
            "--latents",
            latents,
            "--clips",
            clips,
            "--frames",
            frames,
            "--out",
            str(adapter),
            "--metrics",
            str(root / "metrics/a.json"),
        ],
    )
    run(
        _stage("decode_adapter"),
        [
            *p,
            "--adapter",
            "single_merger",
            "--latents",
            str(adapter / "latents.zarr"),
            "--ceiling",
            decoded,
            "--frames",
            frames,
            "--out",
            str(adapter / "decoded.zarr"),
            "--sheet",
            str(adapter / "sheet.png"),
        ],
    )
    return root, params


def test_the_disk_figures_are_the_stores_the_stages_write(written):
    root, params = written
    cost = estimate(load_params(params))
    assert len(cost.stores) == 1 + len(SMALL["points"]) + 2 + 2  # frames, features, latents + ceiling, adapter x2
    total = 0
    for store in cost.stores:
        arr = zarr.open_array(str(root / store.path), mode="r")
        assert (list(arr.shape), str(arr.dtype)) == (list(store.shape), store.dtype), store.path
        assert arr.nbytes == store.nbytes, store.path  # uncompressed bytes, exact
        total += arr.nbytes
    assert total == cost.disk_bytes


def test_the_extraction_rates_are_the_benchmark_file_they_name():
    rates = load_rates()
    rows = {r["point"]: r for r in json.loads(Path("benchmarks/results_7b_h100.json").read_text())["rows"]}
    for point in ("vit_embed", "vit_l7", "vit_l31", "merger", "llm_l13"):
        rate = rates[f"extract_{point}_h100"]
        assert rate["value"] == rows[point]["foresight_fps"] and rate["measured"]
        assert rate["source"].startswith("benchmarks/results_7b_h100.json") and "H100" in rate["machine"]
    assert rates["probe_h100"]["value"] is None and not rates["probe_h100"]["measured"]  # no GPU probe rate exists
    assert not rates["probe_gpu_achieved_tflops"]["measured"]


def test_head_flops_are_counted_on_the_real_head():
    """The dense head's projection alone is 2 x C x width FLOPs per cell; the convolutions add the rest."""
    params = ProbeParams(width=128)
    dense = head_forward_flops("dense", (32, 48), 1280, params)
    linear = head_forward_flops("linear", (32, 48), 1280, params)
    assert linear == 2 * 1280 * (5 + 4) * 32 * 48  # one linear map per cell: objectness, 4 box edges, 4 classes
    assert 2 * 1280 * 128 * 32 * 48 < dense < 3 * 2 * 1280 * 128 * 32 * 48


@pytest.mark.parametrize("profile", ["profiles/real.yaml", "profiles/real_qwen3.yaml"])
def test_the_real_profiles_fit_the_phase1_budget(profile):
    cost = estimate(load_params(profile))
    out = format_cost(cost, profile)  # what `check --cost` prints (its wiring: test_the_cost_table_has_a_model_column)
    assert cost.disk_bytes <= BUDGET_DISK_GB * GB and f"{cost.disk_bytes / GB:8.1f} GB   budget 200 GB: fits" in out
    assert cost.extract_gpu_hours + sum(cost.probe_gpu_hours.values()) <= 100
    assert "ESTIMATED" in out and "benchmarks/results_7b_h100.json" in out
    assert cost.generation_gpu_hours > 0, "latents, adapters and decoding are counted"
    header = Path(profile).read_text()
    figures = re.search(
        r"extraction (\d+\.\d+) .*?probing (\d+\.\d+) and VAE, adapters (\d+\.\d+) .*?total (\d+\.\d+)", header, re.S
    )
    assert figures, "the profile's header states the GPU-hours of --cost"
    stated = [float(x) for x in figures.groups()]
    printed = [cost.extract_gpu_hours, sum(cost.probe_gpu_hours.values()), cost.generation_gpu_hours, cost.gpu_hours]
    assert stated == [round(x, 2) for x in printed], f"{profile}'s header says {stated}; --cost: {printed}"


@pytest.mark.parametrize("test_fraction", [0.2, 0.1, 0.5])
def test_clips_for_test_is_the_fewest_whose_test_split_holds_them(test_fraction):
    """Against the splits' own assignment, clip count by clip count."""
    from foresight_lib.cost import clips_for_test
    from foresight_lib.data.splits import assign_splits
    from foresight_lib.params import parse_params

    val = (1 - test_fraction) / 2
    data = parse_params({"data": {"splits": {"train": val, "val": val, "test": test_fraction}}}).data
    for n_test in (1, 2, 3, 10, 38, 101):
        total = clips_for_test(n_test, data)
        assert assign_splits(total, data).count("test") >= n_test
        if total > 3:
            try:
                assert assign_splits(total - 1, data).count("test") < n_test
            except ForesightError:  # one clip fewer cannot fill train/val/test
                pass


def test_a_run_at_more_clips_costs_what_the_profile_at_that_size_costs():
    from foresight_lib.cost import with_clips

    real = load_params("profiles/real.yaml")
    twice = estimate(with_clips(real, 2 * real.data.max_clips))
    once = estimate(real)
    assert once.gpu_hours == once.extract_gpu_hours + sum(once.probe_gpu_hours.values()) + once.generation_gpu_hours
    # extraction, latents, adapters and decoding pass over every clip; probing trains a step budget, whatever the
    # clip count (only its evaluation passes grow)
    assert twice.extract_gpu_hours == pytest.approx(2 * once.extract_gpu_hours, rel=0.01)
    assert twice.generation_gpu_hours == pytest.approx(2 * once.generation_gpu_hours, rel=0.01)
    probing = sum(once.probe_gpu_hours.values())
    assert probing <= sum(twice.probe_gpu_hours.values()) < 1.5 * probing
    assert twice.disk_bytes == pytest.approx(2 * once.disk_bytes, rel=0.01)
    default = load_params("params.yaml")
    assert with_clips(default, 7).data.synthetic.n_clips == 7 and with_clips(real, 7).data.max_clips == 7


def test_coin_counts_videos_and_their_segments_and_the_steps_oracle_a_channel_per_step_label(tmp_path):
    from foresight_lib.cost import with_clips

    real = load_params("profiles/real_coin.yaml")
    cost = estimate(real)  # COIN.json absent: COIN's average of 46,354 segments in 11,827 videos
    clips = round(160 * 46_354 / 11_827)  # 627
    shapes = {s.stage: s.shape for s in cost.stores}
    assert shapes["frames"][0] == shapes["extract@vit_l7"][0] == clips and shapes["extract@oracle_steps"][-1] == clips
    assert with_clips(real, clips).data.max_clips == 160
    # no boxes: only the step probes run (pooled vectors), far below one box-probe stage of real.yaml
    assert sum(cost.probe_gpu_hours.values()) < 0.01 * sum(
        estimate(load_params("profiles/real.yaml")).probe_gpu_hours.values()
    )
    # COIN.json present (no video directory): the first max_clips videos by id counted, segments x clips_per_segment
    database = {
        vid: {
            "annotation": [{"id": str(k), "segment": [k, k + 1], "label": f"{task}-{k}"} for k in range(n)],
            "class": task,
            "subset": "training",
            "duration": 10.0,
        }
        for vid, n, task in (("a", 2, "t1"), ("b", 3, "t1"), ("c", 1, "t1"), ("d", 4, "t2"))
    }
    (tmp_path / "COIN.json").write_text(json.dumps({"database": database}))
    data = real.data.model_copy(
        update={
            "annotations": str(tmp_path / "COIN.json"),
            "max_clips": 3,
            "coin": real.data.coin.model_copy(update={"clips_per_segment": 2}),
        }
    )
    shapes = {s.stage: s.shape for s in estimate(real.model_copy(update={"data": data})).stores}
    assert shapes["frames"][0] == (2 + 3 + 1) * 2 and shapes["extract@oracle_steps"][-1] == 3  # t1-0, t1-1, t1-2


# ------------------------------------------------------------------------------------ every family, from extract
def _checkpoint(root: Path, family: str) -> str:
    """A checkpoint directory of the family's reference: its config.json only (the cost model reads no weight)."""
    path = root / family
    path.mkdir()
    info = FAMILIES[family]
    (path / "config.json").write_text(json.dumps({"model_type": info.model_type, **info.reference}))
    return str(path)


def _stores(params) -> dict[str, StoreCost]:
    return {s.stage.removeprefix("extract@"): s for s in estimate(params).stores}


FRAME = {"height": 448, "width": 672, "n_frames": 9, "synthetic": {"n_clips": 10}}


def test_every_family_costs_with_its_model_and_extracts_geometry_and_flops(tmp_path):
    """Qwen2-VL in the model section, Qwen3-VL in a models entry (a deepstack point among them): each point's grid,
    channels and model column from its own model; the LLM's time is its layers' FLOPs (counted by torch on the 7B's
    text model, meta tensors) at the measured LLM rate, a deepstack level's its FLOPs below the merger's at the ViT's."""
    params = parse_params(
        {
            "data": FRAME,
            "model": {"family": "qwen2_vl", "source": _checkpoint(tmp_path, "qwen2_vl")},
            "models": {"q3": {"family": "qwen3_vl", "source": _checkpoint(tmp_path, "qwen3_vl")}},
            "points": {
                "q2_l31": {"kind": "vit_block", "layer": 31},
                "q2_merger": {"kind": "merger"},
                "q2_llm": {"kind": "llm", "layer": 5},
                "q3_last": {"kind": "vit_block", "layer": -1, "model": "q3"},
                "q3_deep": {"kind": "deepstack", "layer": 1, "model": "q3"},
                "q3_merger": {"kind": "merger", "model": "q3"},
            },
        }
    )
    stores = _stores(params)
    for name, point in params.points.items():
        model = params.model_of(point)
        reference = FAMILIES[model.family].reference
        vision, text = reference["vision_config"], reference["text_config"]
        if point.kind == "vit_block":  # one patch of the ViT width
            stride, width = vision["patch_size"], vision["embed_dim" if model.family == "qwen2_vl" else "hidden_size"]
        else:  # one merge unit of the LLM width
            stride, width = vision["patch_size"] * vision["spatial_merge_size"], text["hidden_size"]
        store = stores[name]
        assert store.shape == (10, 9, 448 // stride, 672 // stride, width), name
        assert store.model == f"{model.family} / {model.source}"
        assert "converted from qwen2_5_vl through FLOPs" in store.note
    assert params.points["q3_last"].layer == 26

    rates = extraction_rates(load_rates())
    config = FAMILIES["qwen2_vl"].reference_config()
    with torch.device("meta"):
        model = FAMILIES["qwen2_vl"].classes()[1]._from_config(config)
        embeds = torch.zeros(9, 2 + 16 * 24, config.text_config.hidden_size)  # one prompt per frame
    model.set_attn_implementation("eager")
    text = model.model.language_model
    with FlopCounterMode(display=False) as counter:
        truncated_forward(lambda: text(inputs_embeds=embeds, use_cache=False), [text.layers[5]])
    llm_hours = 10 * counter.get_total_flops() / rates.llm_flop_rate / 3600
    assert stores["q2_llm"].gpu_hours - stores["q2_merger"].gpu_hours == pytest.approx(llm_hours, rel=1e-9)

    q3 = FAMILIES["qwen3_vl"].reference_config()
    flops = {n: qwen_flops_per_frame(params.points[n], q3, 448, 672, 9, "image") for n in ("q3_deep", "q3_merger")}
    below = 10 * 9 * (flops["q3_merger"] - flops["q3_deep"]) / rates.vit_flop_rate / 3600
    assert stores["q3_merger"].gpu_hours - stores["q3_deep"].gpu_hours == pytest.approx(below, rel=1e-9)


def test_the_last_block_costs_like_the_last_block_whatever_its_source(tmp_path):
    """layer -1 of an absent checkpoint (left as written at load, the 7B assumed) and of a tiny model (resolved at
    load) cost what layer depth-1 costs, far above the embedding."""
    for source in ("tiny", str(tmp_path / "absent")):
        params = parse_params(
            {
                "data": FRAME,
                "model": {"source": source},
                "points": {
                    "last": {"kind": "vit_block", "layer": -1},
                    "l31": {"kind": "vit_block", "layer": 31},
                    "embed": {"kind": "vit_embed"},
                },
            }
        )
        stores = _stores(params)
        assert stores["last"].gpu_hours == stores["l31"].gpu_hours > 2 * stores["embed"].gpu_hours, source


def test_encoder_time_counts_the_encoders_flops(tmp_path):
    """An encoder's GPU time is its stored values at vit_embed's storage rate plus its FLOPs at the ViT's measured
    rate; the FLOPs are every block 0..k with attention, as torch counts the base model's truncated forward (meta
    tensors), at the base model's size for a tiny encoder."""
    from foresight_lib.extract.encoders import reference_config

    params = parse_params({"data": FRAME, "points": {"d": {"kind": "encoder", "family": "dinov2", "layer": 7}}})
    config = reference_config("dinov2")
    with torch.device("meta"):
        model = Dinov2Model(config).eval()
        pixels = torch.zeros(1, 3, 448, 672)
    model.set_attn_implementation("eager")
    with FlopCounterMode(display=False) as counter:
        truncated_forward(lambda: model(pixel_values=pixels), [model.encoder.layer[7]])
    rates = extraction_rates(load_rates())
    values = 32 * 48 * config.hidden_size
    seconds = rates.seconds["vit_embed"] * values / rates.store_values + counter.get_total_flops() / rates.vit_flop_rate
    store = _stores(params)["d"]
    assert store.gpu_hours == pytest.approx(10 * 9 * seconds / 3600, rel=1e-9)
    assert store.shape[-1] == 32 and store.model == "dinov2 / tiny"  # stored at the tiny model's width


def test_the_cost_table_has_a_model_column(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"data": FRAME, "points": {"m": {"kind": "merger"}}}))
    assert main(["--cost", str(params)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:4] == ["stage", "store", "model", "shape"]
    row = next(line for line in lines if line.startswith("extract@m "))
    assert "qwen2_5_vl / tiny" in row and "GPU time at Qwen/Qwen2.5-VL-7B-Instruct's size" in row
