"""dvc.yaml's generated multi_scale stages (foresight_lib/pipeline.py): each depends on exactly its own points' stores
and params, matches the hand-written stages of the other adapter kinds otherwise, and the committed dvc.yaml is up to
date with params.yaml; `--check` names a stale block and the command that fixes it; rewriting is atomic and
idempotent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from foresight_lib import pipeline
from foresight_lib.errors import ForesightError
from foresight_lib.pipeline import main, pipeline_problems, render, stages

ROOT = Path(__file__).resolve().parents[1]
RAW = {
    "adapter": {
        "multi_scale": {
            "deep": {"points": ["vit_l7", "vit_l15", "vit_l31"], "hidden": 64},
            "shallow": {"points": ["vit_embed"], "hidden": 16},
        }
    }
}


def _dvc() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _copy(tmp_path: Path, raw: dict | None = None) -> tuple[Path, Path]:
    """dvc.yaml and params.yaml (``raw`` when given) in ``tmp_path``."""
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw) if raw is not None else (ROOT / "params.yaml").read_text())
    return tmp_path / "dvc.yaml", params


def test_each_stage_reads_exactly_its_entrys_points():
    got = stages(RAW)
    assert list(got) == [
        f"{step}_multi_scale-{a}" for a in ("deep", "shallow") for step in ("train", "decode", "recon")
    ]
    for name, points in (("deep", ["vit_l7", "vit_l15", "vit_l31"]), ("shallow", ["vit_embed"])):
        stores = [f"features/{p}.zarr" for p in points]
        train, decode, recon = (got[f"{step}_multi_scale-{name}"] for step in ("train", "decode", "recon"))
        for stage in (train, recon):
            assert [d for d in stage["deps"] if d.startswith("features")] == stores
        assert [p for p in train["params"] if p.startswith("points")] == [f"points.{p}" for p in points]
        assert f"adapter.multi_scale.{name}" in train["params"]
        assert not any(d.startswith("features") for d in decode["deps"])
        assert not any(p.startswith("points") for s in (decode, recon) for p in s["params"])
        assert f"--adapter {name} " in train["cmd"] and f"metrics/recon/{name}.json" in recon["cmd"]


@pytest.mark.parametrize(
    ("step", "twin"), [("train", "train_dual_stream"), ("decode", "decode_dual_stream"), ("recon", "recon_dual_stream")]
)
def test_a_generated_stage_is_its_foreach_twin_but_for_the_points(step: str, twin: str):
    """Everything but the points (deps on their stores, their params, the adapter's own entry) is what the
    hand-written ``foreach`` stage of another kind declares, with the adapter's name for ``${key}``."""

    def own(stage: dict, name: str) -> dict:
        text = yaml.safe_dump(stage).replace("${key}", name)
        out = yaml.safe_load(text)
        out["deps"] = [d for d in out["deps"] if not d.startswith("features/")]
        out["params"] = [
            p for p in out["params"] if not p.startswith(("points.", "adapter.dual_stream.", "adapter.multi_scale."))
        ]
        return out

    generated = stages(RAW)[f"{step}_multi_scale-deep"]
    assert own(generated, "deep") == own(_dvc()[twin]["do"], "deep")


def test_the_rendered_block_is_the_stages_as_yaml():
    block = render(RAW)
    assert block.splitlines()[0].strip() == pipeline.BEGIN and block.splitlines()[-1].strip() == pipeline.END
    assert yaml.safe_load("stages:\n" + block)["stages"] == stages(RAW)
    assert render({"adapter": {"multi_scale": {}}}) == f"  {pipeline.BEGIN}\n  {pipeline.END}\n"


def test_the_committed_dvc_yaml_is_up_to_date_with_params_yaml(capsys):
    assert pipeline_problems(ROOT / "params.yaml", ROOT / "dvc.yaml") == []
    assert main(["--check", "--params", str(ROOT / "params.yaml"), "--dvc-yaml", str(ROOT / "dvc.yaml")]) == 0
    names = set(_dvc())
    for a in yaml.safe_load((ROOT / "params.yaml").read_text())["adapter"]["multi_scale"]:
        assert {f"{s}_multi_scale-{a}" for s in ("train", "decode", "recon")} <= names
    assert not any("multi_scale" in n and "-" not in n for n in names), "a multi_scale foreach stage is left"


def test_check_names_a_stale_block_and_the_command(tmp_path, capsys):
    dvc, params = _copy(tmp_path)
    raw = yaml.safe_load(params.read_text())
    (entry,) = raw["adapter"]["multi_scale"]
    raw["adapter"]["multi_scale"][entry]["points"] = ["vit_embed"]
    raw["adapter"]["multi_scale"]["added"] = {"points": ["vit_l7"]}
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["--check", "--params", str(other), "--dvc-yaml", str(dvc)]) == 1
    out = capsys.readouterr().out
    assert f"changed stage train_multi_scale-{entry}" in out and f"changed stage recon_multi_scale-{entry}" in out
    assert f"decode_multi_scale-{entry}" not in out, "its decode reads no point"
    assert "missing stage train_multi_scale-added" in out
    assert f"run `python -m foresight_lib.pipeline --params {other} --dvc-yaml {dvc}`" in out
    (problem,) = pipeline_problems(other, dvc)
    assert problem.startswith("adapter.multi_scale: ") and "run `python -m foresight_lib.pipeline --params" in problem
    raw["adapter"]["multi_scale"] = {}
    params.write_text(yaml.safe_dump(raw))
    (problem,) = pipeline_problems(params, dvc)
    assert f"extra stage train_multi_scale-{entry}" in problem and problem.endswith(
        "run `python -m foresight_lib.pipeline --params " + f"{params} --dvc-yaml {dvc}`"
    )


def test_the_validate_stage_stops_on_a_stale_block(tmp_path, monkeypatch):
    from stages.validate import main as validate

    dvc, params = _copy(tmp_path)
    monkeypatch.chdir(tmp_path)
    validate(["--dvc-yaml", "dvc.yaml", "--out", "run.json"])
    assert (tmp_path / "run.json").is_file()
    raw = yaml.safe_load(params.read_text())
    raw["adapter"]["multi_scale"]["added"] = {"points": ["vit_l7"]}
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    (tmp_path / "run.json").unlink()
    with pytest.raises(
        ForesightError, match=r"missing stage train_multi_scale-added.*run `python -m foresight_lib\.pipeline`"
    ):
        validate(["--dvc-yaml", "dvc.yaml", "--out", "run.json"])
    assert not (tmp_path / "run.json").exists()
    assert main([]) == 0
    validate(["--dvc-yaml", "dvc.yaml", "--out", "run.json"])


def test_rewriting_is_atomic_idempotent_and_touches_only_the_block(tmp_path, monkeypatch, capsys):
    dvc, params = _copy(tmp_path, {**yaml.safe_load((ROOT / "params.yaml").read_text()), **RAW})
    before = dvc.read_text()
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        main(["--params", str(params), "--dvc-yaml", str(dvc)])
    assert dvc.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["dvc.yaml", "params.yaml"]
    monkeypatch.undo()

    assert main(["--params", str(params), "--dvc-yaml", str(dvc)]) == 0
    after = dvc.read_text()
    start, end = after.index(pipeline.BEGIN), after.index(pipeline.END)
    old_start, old_end = before.index(pipeline.BEGIN), before.index(pipeline.END)
    assert after[:start] == before[:old_start] and after[end:] == before[old_end:]
    assert set(yaml.safe_load(after)["stages"]) >= set(stages(RAW))
    stat = dvc.stat()
    assert main(["--params", str(params), "--dvc-yaml", str(dvc)]) == 0
    assert dvc.read_text() == after and dvc.stat().st_mtime_ns == stat.st_mtime_ns, (
        "an up-to-date file is not rewritten"
    )
    assert "up to date" in capsys.readouterr().out.splitlines()[-1]
    assert main(["--check", "--params", str(params), "--dvc-yaml", str(dvc)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvc.yaml", "params.yaml"], "no temporary file is left"


def test_a_dvc_yaml_without_the_markers_or_a_bad_entry_is_named(tmp_path, capsys):
    dvc, params = _copy(tmp_path)
    dvc.write_text(dvc.read_text().replace(pipeline.END, ""))
    assert main(["--params", str(params), "--dvc-yaml", str(dvc)]) == 2
    assert f"error: {dvc}: expected one generated block" in capsys.readouterr().err
    with pytest.raises(ForesightError, match=r"bad\.yaml: adapter\.multi_scale\.m\.points must be a list"):
        stages({"adapter": {"multi_scale": {"m": {"points": "vit_l7"}}}}, "bad.yaml")


@pytest.mark.parametrize("profile", sorted(p.name for p in (ROOT / "profiles").glob("*.yaml")))
def test_profiles_say_to_regenerate_after_copying(profile: str):
    text = (ROOT / "profiles" / profile).read_text()
    header = text[: text.index("\ndata:")]
    assert "python -m foresight_lib.pipeline" in header, f"profiles/{profile}: its header must say to regenerate"
    assert render(yaml.safe_load(text), profile).count("_multi_scale-") == 3 * len(
        yaml.safe_load(text)["adapter"]["multi_scale"]
    )
