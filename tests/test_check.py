"""The dry check lists what a real run would miss, without loading anything."""

import json
import shutil
from pathlib import Path

import yaml

from foresight_lib.check import main
from foresight_lib.extract.qwen import build_tiny_model


def test_the_real_profile_is_valid_and_its_missing_pieces_are_listed(capsys):
    assert main(["profiles/real.yaml"]) == 1
    out = capsys.readouterr().out
    assert "ok       profiles/real.yaml: valid params" in out
    for what in ("data.video_dir", "data.annotations", "model.source", "points.dinov2_l11.source", "ltx.source"):
        assert f"MISSING  {what}" in out, what
    for hint in (
        "huggingface-cli download Qwen/Qwen2.5-VL-7B-Instruct --local-dir /models/Qwen2.5-VL-7B-Instruct",
        "huggingface-cli download Lightricks/LTX-Video --local-dir /models/LTX-Video",
        "huggingface-cli download facebook/dinov2-base --local-dir /models/dinov2-base",
        "something-something-v-2-dataset",
        "github.com/joaanna/something_else",
    ):
        assert hint in out, hint
    assert "GPU memory: at least 56 GB: probe.gpu_memory_gb" in out


def test_the_coin_profile_lists_what_it_needs(capsys):
    assert main(["profiles/real_coin.yaml"]) == 1
    out = capsys.readouterr().out
    assert "MISSING  data.video_dir: /data/coin/videos not found" in out
    assert "MISSING  data.annotations: /data/coin/COIN.json not found" in out
    assert "github.com/coin-dataset/annotations" in out and "`video_url` in COIN.json" in out
    for what in ("model.source", "points.dinov2_l11.source", "ltx.source"):
        assert f"MISSING  {what}" in out, what


def test_present_pieces_are_ok_and_invalid_params_stop(tmp_path, capsys):
    ckpt = tmp_path / "qwen"
    build_tiny_model("qwen2_5_vl", 0).save_pretrained(ckpt)
    (ckpt / "preprocessor_config.json").write_text("{}")
    videos = tmp_path / "videos"
    videos.mkdir()
    (tmp_path / "ann.json").write_text(json.dumps({}))
    params = yaml.safe_load(open("profiles/real.yaml"))
    params["data"] |= {"video_dir": str(videos), "annotations": str(tmp_path / "ann.json")}
    params["model"]["source"] = str(ckpt)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    main([str(tmp_path / "p.yaml")])
    out = capsys.readouterr().out
    assert f"ok       model.source: {ckpt} (Qwen2.5-VL, 1 safetensors files)" in out
    assert "ok       data.video_dir" in out and "MISSING  ltx.source" in out
    # contents, with the pipeline's own validate check: an empty video directory, `{}` as annotations
    assert f"WRONG    data.video_dir: {videos} holds no videos" in out
    (videos / "1.webm").write_bytes(b"")
    assert main([str(tmp_path / "p.yaml")]) == 1
    out = capsys.readouterr().out
    assert "WRONG    data.annotations: " in out and "annotates 0 videos" in out
    params["points"]["vit_l7"]["layer"] = 40  # past the checkpoint's depth: the params loader stops (layers resolve)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    assert main([str(tmp_path / "p.yaml")]) == 2
    assert "invalid" in (out := capsys.readouterr().out) and "points.vit_l7.layer: 40 is past the 32 ViT blocks" in out
    params["points"]["vit_l7"]["layer"] = "seven"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    assert main([str(tmp_path / "p.yaml")]) == 2
    out = capsys.readouterr().out
    assert out.startswith("invalid") and "points.vit_l7.layer" in out


def test_a_stale_generated_block_is_wrong_and_names_the_command(tmp_path, monkeypatch, capsys):
    """For the params.yaml DVC reads (beside dvc.yaml): a multi_scale entry that dvc.yaml's generated stages lack."""
    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["adapter"]["multi_scale"]["added"] = {"points": ["vit_l7"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(tmp_path / "params.yaml", tmp_path / "profile.yaml")
    monkeypatch.chdir(tmp_path)
    assert main([]) == 1
    out = capsys.readouterr().out
    assert "WRONG    adapter.multi_scale: dvc.yaml's generated stages do not match params.yaml (missing stage " in out
    assert out.count("WRONG") == 1 and "run `python -m foresight_lib.pipeline`" in out
    main(["profile.yaml"])  # a profile is compared once copied to params.yaml
    assert "adapter.multi_scale" not in capsys.readouterr().out


def test_the_gpu_memory_need_counts_the_largest_model_a_point_reads():
    from foresight_lib.check import gpu_memory_gb
    from foresight_lib.families import FAMILIES
    from foresight_lib.params import parse_params

    raw = {
        "model": {"source": "/absent/qwen2.5"},
        "models": {"q3": {"family": "qwen3_vl", "source": "/absent/qwen3"}},
        "points": {"a": {"kind": "vit_embed"}, "b": {"kind": "vit_embed", "model": "q3"}},
        "probe": {"gpu_memory_gb": 1},
        "adapter": {"train": {"gpu_memory_gb": 1}},
    }
    need, why = gpu_memory_gb(parse_params(raw))
    assert need == FAMILIES["qwen3_vl"].reference_weights_gb > FAMILIES["qwen2_5_vl"].reference_weights_gb
    assert why.startswith("the Qwen3-VL weights (models.q3, extraction)")
    del raw["points"]["b"]
    need, why = gpu_memory_gb(parse_params(raw))
    assert need == FAMILIES["qwen2_5_vl"].reference_weights_gb and why.startswith("the Qwen2.5-VL weights (model,")
