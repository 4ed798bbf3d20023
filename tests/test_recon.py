"""Reconstruction evaluation: image metrics on known pairs, LPIPS availability, detector-based IoU/mAP, Phase 2."""

from __future__ import annotations

import json
import runpy

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from scipy import ndimage

from foresight_lib.adapters.recon import evaluate_decoded, evaluate_originals, input_cka, phase2_verdicts
from foresight_lib.adapters.resample import LatentSpec
from foresight_lib.cli import run
from foresight_lib.extract.pixels import pixels_extractor
from foresight_lib.extract.writer import write_point
from foresight_lib.features import open_features
from foresight_lib.metrics.cka import linear_cka
from foresight_lib.metrics.operating import OperatingPoint
from foresight_lib.params import EvalParams, Phase2Criteria, PixelsPoint, ProbeParams
from foresight_lib.probes.detector import save_probe
from foresight_lib.probes.heads import make_probe

H, W, F, SIDE = 64, 96, 3, 32
PARAMS = EvalParams(bootstrap=20, bootstrap_map=5)


def _clips() -> tuple[np.ndarray, pd.DataFrame]:
    """2 clips of 3 frames: a red 32 px square on grey, moving right by 8 px per frame; and its boxes."""
    frames = np.full((2, F, H, W, 3), 128, dtype=np.uint8)
    rows = []
    for c in range(2):
        for f in range(F):
            x, y = 4 + 8 * f + 12 * c, 8 + 16 * c
            frames[c, f, y : y + SIDE, x : x + SIDE] = (220, 30, 30)
            rows.append({"clip": c, "frame": f, "x": x, "y": y, "w": SIDE, "h": SIDE, "category_id": 1})
    return frames, pd.DataFrame(rows)


def _store(frames: np.ndarray, clips: list[int] | None = None) -> zarr.Array:
    attrs = {"clips": clips} if clips is not None else {}
    arr = zarr.create_array(store={}, shape=frames.shape, dtype="uint8", attributes=attrs)
    arr[:] = frames
    return arr


def saturation_detector(frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Stand-in detector: boxes of the connected regions whose colour saturation exceeds 100 (label 1)."""
    out = []
    for frame in frames.astype(np.int16):
        regions = ndimage.find_objects(ndimage.label(frame.max(-1) - frame.min(-1) > 100)[0])
        boxes = np.array(
            [[s[1].start, s[0].start, s[1].stop - s[1].start, s[0].stop - s[0].start] for s in regions],
            dtype=np.float64,
        ).reshape(-1, 4)
        out.append((boxes, np.ones(len(boxes)), np.ones(len(boxes), dtype=np.int64)))
    return out


saturation_detector.operating_point = OperatingPoint(0.5, 100)


@pytest.mark.filterwarnings("ignore:.*(pretrained|weights).*:UserWarning")
def test_identical_frames_are_perfect(stand_in_torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", stand_in_torch_home)
    frames, boxes = _clips()
    result = evaluate_decoded(
        _store(frames), _store(frames, [0, 1]), boxes, PARAMS, saturation_detector, progress=False
    )
    assert result["clips"] == [0, 1] and result["frames"] == 2 * F
    assert result["psnr"]["mean"] == np.inf
    assert result["ssim"]["mean"] == pytest.approx(1.0, abs=1e-12)
    assert result["lpips"] == {"mean": 0.0, "ci95": [0.0, 0.0]} and "alexnet-owt" in result["lpips_reason"]
    assert result["detection"]["bbox_iou"] == 1.0 and result["detection"]["map50_class_agnostic"] == pytest.approx(1)


def test_lpips_is_null_with_its_reason_without_the_backbone(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    frames, boxes = _clips()
    noisy = np.clip(frames + np.random.default_rng(0).normal(0, 20, frames.shape), 0, 255).astype(np.uint8)
    result = evaluate_decoded(_store(frames), _store(noisy, [0, 1]), boxes, PARAMS, progress=False)
    assert result["lpips"] is None
    assert "alexnet-owt-7be5be79.pth" in result["lpips_reason"] and "not found" in result["lpips_reason"]
    assert 10 < result["psnr"]["mean"] < 30 and result["ssim"]["mean"] < 0.9
    low, high = result["psnr"]["ci95"]
    assert low <= result["psnr"]["mean"] <= high
    assert result["detection"] == {"reason": "no detector given"}


def test_detector_boxes_on_decoded_frames_are_scored_against_ground_truth(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    frames, boxes = _clips()
    shifted = np.full_like(frames, 128)
    shifted[:, :, :, 6:] = frames[:, :, :, :-6]  # every square 6 px to the right: IoU 26/38 with its box
    blank = np.full_like(frames, 128)  # nothing to detect
    original = evaluate_originals(_store(frames), [0, 1], boxes, PARAMS, saturation_detector)["detection"]
    assert original["bbox_iou"] == 1.0 and original["map_class_agnostic"] == pytest.approx(1.0)
    d = evaluate_decoded(_store(frames), _store(shifted, [0, 1]), boxes, PARAMS, saturation_detector, progress=False)[
        "detection"
    ]
    assert d["bbox_iou"] == pytest.approx(26 / 38) and d["best_box_iou"] == pytest.approx(26 / 38)
    assert d["map50_class_agnostic"] == pytest.approx(1.0)
    assert d["map_class_agnostic"] == pytest.approx(0.4)  # matched at IoU 0.50, 0.55, 0.60, 0.65 of ten thresholds
    assert d["map_class_aware"] == pytest.approx(0.4)
    d = evaluate_decoded(_store(frames), _store(blank, [0, 1]), boxes, PARAMS, saturation_detector, progress=False)[
        "detection"
    ]
    assert d["bbox_iou"] == 0.0 and d["map50_class_agnostic"] == 0.0
    assert evaluate_originals(_store(frames), [0, 1], boxes.iloc[:0], PARAMS, saturation_detector)["detection"] == {
        "reason": "the clips hold no ground-truth box"
    }


def test_input_cka_pools_tokens_onto_the_latent_grid(tmp_path):
    """Pixel grids at stride 16 vs a 'latent' that is their own 32 px block mean: CKA 1 with n = latent cells."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 1, 64, 96, 3), dtype=np.uint8)
    frames_store = _store(frames)
    zarr.save_array(str(tmp_path / "frames.zarr"), frames)
    extractor = pixels_extractor("px", PixelsPoint(kind="pixels", patch=16), 64, 96, 1)
    write_point(extractor, tmp_path / "frames.zarr", tmp_path / "px.zarr", None, "float32", progress=False)
    store = open_features(tmp_path / "px.zarr")
    blocks = store.read([0, 1, 2]).reshape(3, 1, 2, 2, 3, 2, 768).mean(axis=(3, 5))  # [3, 1, 2, 3, 768]
    latent = np.moveaxis(blocks[..., :128], -1, 1)  # [3, 128, 1, 2, 3]
    latents = zarr.create_array(store={}, shape=latent.shape, dtype="float32")
    latents[:] = latent
    result = input_cka(store, latents, [0, 1, 2], LatentSpec(1, 64, 96))
    assert result["n"] == 3 * 2 * 3 and result["point"] == "px"
    expected = linear_cka(blocks.reshape(-1, 768), blocks[..., :128].reshape(-1, 128))
    assert result["linear"] == pytest.approx(expected, rel=1e-6) and frames_store.shape[0] == 3


CRITERIA = Phase2Criteria()


def _converged(steps: int | None, diverged: bool = False) -> dict:
    """A convergence record as :func:`foresight_lib.adapters.train.convergence` writes it."""
    return {"steps_to_best": steps, "diverged": diverged, "reason": "a non-finite loss" if diverged else None}


@pytest.mark.parametrize(
    "record, verdict",
    [
        (_converged(1_000), "target"),
        (_converged(49_999), "target"),
        (_converged(50_000), "acceptable"),
        (_converged(99_999), "acceptable"),
        (_converged(100_000), "marginal"),
        (_converged(10, diverged=True), "fail"),
        (_converged(None, diverged=True), "fail"),
        (None, "unknown"),
    ],
)
def test_convergence_criterion(record, verdict):
    result = phase2_verdicts(0.7, 0.2, 1_000, record, CRITERIA)
    assert result["convergence"]["verdict"] == verdict
    assert result["overall"] == verdict  # the other criteria are at target


@pytest.mark.parametrize(
    "iou, lpips, params, verdicts, overall",
    [
        (0.65, 0.25, 10_000_000, ("target", "target", "target"), "target"),
        (0.6, 0.30, 15_000_000, ("acceptable", "acceptable", "target"), "acceptable"),  # strict > and < at the targets
        (0.55, 0.32, 20_000_000, ("acceptable", "acceptable", "acceptable"), "acceptable"),
        (0.7, 0.2, 40_000_000, ("target", "target", "marginal"), "marginal"),
        (0.5, 0.2, 10_000_000, ("fail", "target", "target"), "fail"),
        (0.7, 0.35, 10_000_000, ("target", "fail", "target"), "fail"),
        (0.7, 0.2, 50_000_001, ("target", "target", "fail"), "fail"),
        (None, 0.2, 10_000_000, ("unknown", "target", "target"), "unknown"),
        (None, None, 60_000_000, ("unknown", "unknown", "fail"), "fail"),
    ],
)
def test_phase2_criteria(iou, lpips, params, verdicts, overall):
    result = phase2_verdicts(iou, lpips, params, _converged(1_000), CRITERIA)
    assert tuple(result[k]["verdict"] for k in ("spatial_iou", "lpips", "parameters")) == verdicts
    assert result["overall"] == overall and result["spatial_iou"]["value"] == iou


def test_recon_stages_put_the_adapter_beside_the_ceiling(tmp_path, monkeypatch, capsys):
    """recon_ceiling once, then recon_adapter: image metrics of both, CKA of the inputs, Phase 2 verdicts."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    frames, boxes = _clips()
    frames = frames[:, :1]  # one frame per clip: a valid VAE clip (1 + 8k)
    zarr.save_array(str(tmp_path / "frames.zarr"), frames)
    boxes[boxes["frame"] == 0].to_parquet(tmp_path / "boxes.parquet")
    noisy = np.clip(frames + np.random.default_rng(0).normal(0, 20, frames.shape), 0, 255).astype(np.uint8)
    for path, content in ((tmp_path / "ceiling.zarr", frames), (tmp_path / "a" / "decoded.zarr", noisy)):
        zarr.save_array(str(path), content)
        zarr.open_array(str(path), mode="r+").attrs["clips"] = [0, 1]
    extractor = pixels_extractor("px", PixelsPoint(kind="pixels", patch=16), 64, 96, 1)
    write_point(extractor, tmp_path / "frames.zarr", tmp_path / "px.zarr", None, "float32", progress=False)
    zarr.save_array(str(tmp_path / "latents.zarr"), np.random.default_rng(1).normal(size=(2, 128, 1, 2, 3)))
    zarr.open_array(str(tmp_path / "latents.zarr"), mode="r+").attrs.update({"n_frames": 1, "height": 64, "width": 96})
    (tmp_path / "a" / "config.json").write_text(json.dumps({"streams": {"point": {"point": "px"}}}))
    (tmp_path / "train.json").write_text(
        json.dumps({"parameters": {"total": 20_000_000}, "convergence": _converged(300)})
    )
    (tmp_path / "params.yaml").write_text(
        "eval: {bootstrap: 10, bootstrap_map: 2, detector_point: px, detector_head: linear}\n"
    )
    probe_params = ProbeParams(heads=["linear"])
    with torch.random.fork_rng():
        torch.manual_seed(0)
        head = make_probe("linear", 16 * 16 * 3, 4, probe_params)  # untrained: the wiring, not the quality
    save_probe(
        tmp_path / "probes" / "px" / "heads",
        "linear",
        head,
        OperatingPoint(0.5, 100),
        4,
        np.zeros(768, np.float32),
        np.ones(768, np.float32),
        16,
        {"kind": "pixels", "patch": 16},
        "float32",
        probe_params,
    )
    ceiling_stage = runpy.run_path("stages/recon_ceiling.py", run_name="stage")["main"]
    adapter_stage = runpy.run_path("stages/recon_adapter.py", run_name="stage")["main"]
    common = [
        "--params",
        str(tmp_path / "params.yaml"),
        "--frames",
        str(tmp_path / "frames.zarr"),
        "--annotations",
        str(tmp_path / "boxes.parquet"),
        "--probes",
        str(tmp_path / "probes"),
    ]
    run(ceiling_stage, [*common, "--decoded", str(tmp_path / "ceiling.zarr"), "--out", str(tmp_path / "ceiling.json")])
    adapter = [
        "--adapter",
        "a",
        "--decoded",
        str(tmp_path / "a" / "decoded.zarr"),
        "--config",
        str(tmp_path / "a" / "config.json"),
        "--train-metrics",
        str(tmp_path / "train.json"),
        "--ceiling-metrics",
        str(tmp_path / "ceiling.json"),
        "--latents",
        str(tmp_path / "latents.zarr"),
        "--features",
        str(tmp_path),
        "--out",
        str(tmp_path / "recon.json"),
    ]
    run(adapter_stage, [*common, *adapter])
    result = json.loads((tmp_path / "recon.json").read_text())
    assert result["ceiling"]["psnr"]["mean"] == np.inf and result["adapter"]["psnr"]["mean"] < 30
    assert result["detector"] == "px/linear"
    for stage_result in (result["original"], result["ceiling"], result["adapter"]):
        assert 0 <= stage_result["detection"]["bbox_iou"] <= 1 and stage_result["detection"]["n_objects"] == 2
    assert result["cka"]["point"]["n"] == 2 * 1 * 2 * 3 and -1 <= result["cka"]["point"]["debiased"] <= 1
    assert (
        result["phase2"]["parameters"]["verdict"] == "acceptable" and result["phase2"]["lpips"]["verdict"] == "unknown"
    )
    assert result["phase2"]["convergence"]["verdict"] == "target" and result["phase2"]["convergence"]["value"] == 300
    assert result["phase2"]["spatial_iou"]["value"] == result["adapter"]["detection"]["bbox_iou"]
    assert result["phase2"]["overall"] == (
        "fail" if result["phase2"]["spatial_iou"]["verdict"] == "fail" else "unknown"
    )

    zarr.open_array(str(tmp_path / "a" / "decoded.zarr"), mode="r+").attrs["clips"] = [1, 0]
    with pytest.raises(SystemExit):
        run(adapter_stage, [*common, *adapter])
    assert "cover different clips: rerun recon_ceiling" in capsys.readouterr().err
