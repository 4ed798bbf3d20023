import pytest
import yaml

from foresight_lib.errors import ForesightError
from foresight_lib.params import load_params, parse_params


def test_repository_params_file_is_valid():
    p = load_params("params.yaml")
    assert p.data.source == "synthetic"
    assert (p.data.height, p.data.width, p.data.n_frames) == (224, 448, 9)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"data": {"heigth": 448}}, ["data.heigth: unknown key", "allowed:", "height"]),
        ({"nonsense": {}}, ["nonsense: unknown key", "allowed:", "data"]),
        ({"data": {"synthetic": {"clips": 3}}}, ["data.synthetic.clips: unknown key", "n_clips"]),
        ({"data": {"height": "448"}}, ["data.height", "valid integer", "'448'"]),
        ({"data": {"height": 450}}, ["data.height", "multiple of 224", "450"]),
        ({"data": {"n_frames": 8}}, ["data.n_frames", "1 + 8k", "8"]),
        ({"data": {"max_skipped_fraction": 1.5}}, ["data.max_skipped_fraction", "less than or equal to 1"]),
        ({"data": {"source": "youtube"}}, ["data.source", "synthetic", "something_else", "coco_video"]),
        ({"data": {"source": "coco_video"}}, ["data", "data.video_dir", "data.annotations"]),
        ({"data": {"splits": {"train": 0.5, "val": 0.2, "test": 0.2}}}, ["data.splits", "must be 1"]),
        ({"points": {"p": {"kind": "vit_blok", "layer": 3}}}, ["points.p.kind", "vit_block"]),
        ({"points": {"p": {"kind": "vit_block"}}}, ["points.p.layer: required"]),
        (
            {"points": {"p": {"kind": "llm", "layer": "last"}}},
            ["points.p.layer", "valid integer"],
        ),  # -1 is valid: from the end
        ({"points": {"p": {"kind": "merger", "layer": 3}}}, ["points.p.layer: unknown key", "allowed: kind"]),
        ({"points": {"Bad-Name": {"kind": "merger"}}}, ["points", "Bad-Name"]),
        ({"points": {"o": {"kind": "oracle", "stride": 15}}}, ["points.o.stride: 15 must divide data.height (224)"]),
        ({"points": {"o": {"kind": "oracle", "stride": 0}}}, ["points.o.stride", "greater than or equal to 1"]),
        ({"points": {"p": {"kind": "vit_block", "layer": 7, "order": "windowed"}}}, ["points.p.order", "'naive'"]),
        ({"points": {"p": {"kind": "merger", "order": "naive"}}}, ["points.p.order: unknown key"]),
        ({"decision": {"selectivity_margin": -0.1}}, ["decision.selectivity_margin", "greater than or equal to 0"]),
        ({"decision": {"oracle_min_iou": 1.5}}, ["decision.oracle_min_iou", "less than or equal to 1"]),
        ({"probe": {"steps": 0}}, ["probe.steps", "greater than or equal to 1"]),
        ({"probe": {"steps": 10, "val_every": 20}}, ["probe", "val_every (20) must be <= steps (10)"]),
        ({"probe": {"patience": -1}}, ["probe.patience", "greater than or equal to 0"]),
        ({"probe": {"score_thresholds": [0.5, 1.5]}}, ["probe.score_thresholds", "in (0, 1]", "1.5"]),
        ({"probe": {"score_thresholds": []}}, ["probe.score_thresholds", "at least 1"]),
        ({"probe": {"score_thresholds": [0.01]}}, ["probe", "min_score (0.05) must be <= every score_thresholds"]),
        ({"probe": {"max_boxes": [0, 2]}}, ["probe.max_boxes", "must be >= 1"]),
        ({"probe": {"max_boxes": [2, 2]}}, ["probe.max_boxes", "must not repeat"]),
        ({"probe": {"max_boxes": [200]}}, ["probe", "max_boxes entries must be <= max_detections (100"]),
        ({"probe": {"epochs": 10}}, ["probe.epochs: unknown key", "steps"]),
    ],
)
def test_bad_params_name_the_key_and_what_is_allowed(raw, expected):
    with pytest.raises(ForesightError) as err:
        parse_params(raw)
    for fragment in expected:
        assert fragment in str(err.value)


def test_missing_and_malformed_params_file(tmp_path):
    with pytest.raises(ForesightError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ForesightError, match="not valid YAML"):
        load_params(bad)
    bad.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ForesightError, match="mapping of sections"):
        load_params(bad)


def test_defaults_fill_missing_sections():
    p = parse_params({"data": {"seed": 3}})
    assert p.data.seed == 3 and p.data.synthetic.n_clips >= 3
    assert p.decision.go_iou == 0.4 and p.decision.go_map50 == 0.15 and p.decision.nogo_iou == 0.2
