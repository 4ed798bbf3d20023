"""The table of point kinds: every kind has one complete entry, and params, extraction and the report read it."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from foresight_lib import kinds
from foresight_lib.families import FAMILIES
from foresight_lib.kinds import FAMILIES as FAMILY_NAMES
from foresight_lib.kinds import KINDS, Section, load
from foresight_lib.params import PointParams, parse_params
from foresight_lib.report.markdown import family_lines
from foresight_lib.report.summary import HeadRow, PointRow, point_order
from foresight_lib.report.tables import family_table, family_table_json


def _point_classes() -> dict[str, type]:
    """Every params class in kinds.py that declares a ``kind``."""
    return {
        cls.model_fields["kind"].annotation.__args__[0]: cls
        for _, cls in inspect.getmembers(kinds, inspect.isclass)
        if issubclass(cls, Section) and "kind" in cls.model_fields
    }


def test_every_point_class_has_its_table_entry():
    classes = _point_classes()
    missing = sorted(set(classes) - set(KINDS))
    assert not missing, f"point kinds without a KINDS entry: {missing}"
    assert {k: info.params for k, info in KINDS.items()} == classes


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_entry_names_working_functions_and_known_families(kind):
    info = KINDS[kind]
    assert callable(load(info.extractor)), info.extractor
    assert info.flops is None or callable(load(info.flops))
    assert set(info.families) <= set(FAMILY_NAMES) == set(FAMILIES)
    assert (info.source == "vlm") == bool(info.families) == (info.check == "vlm")
    assert info.layer is None or "layer" in info.params.model_fields
    assert (info.flops is None) == (info.source in ("pixels", "ground truth"))


def test_the_params_union_is_the_table():
    union = PointParams.__origin__.__args__  # Annotated[Union[...], Field]
    assert set(union) == {info.params for info in KINDS.values()}


def test_sort_positions_are_distinct_and_order_points():
    assert len({info.sort for info in KINDS.values()}) == len(KINDS)
    params = parse_params(
        {
            "models": {"q3": {"family": "qwen3_vl"}},
            "points": {
                "llm_last": {"kind": "llm", "layer": -1},
                "q3_deep": {"kind": "deepstack", "layer": 0, "model": "q3"},
                "vit_last": {"kind": "vit_block", "layer": -1},  # resolved to 31: after block 7, before the merger
                "vit_l7": {"kind": "vit_block", "layer": 7},
                "embed": {"kind": "vit_embed"},
                "pixels": {"kind": "pixels"},
            },
        }
    )
    ordered = sorted(params.points, key=lambda n: point_order(params.points[n]))
    assert ordered == ["pixels", "embed", "vit_l7", "vit_last", "q3_deep", "llm_last"]
    assert params.points["vit_last"].layer == 31 and params.points["llm_last"].layer == 27


def test_pixels_extractor_comes_from_the_table(tmp_path):
    from foresight_lib.extract.points import make_extractor
    from foresight_lib.params import ExtractParams, ModelParams, PixelsPoint

    point = PixelsPoint(kind="pixels", patch=14)
    extractor = make_extractor("pixels", point, ModelParams(), ExtractParams(), 28, 56, 1)
    clips = np.random.default_rng(0).integers(0, 256, (1, 1, 28, 56, 3), dtype=np.uint8)
    assert extractor.run(clips).shape == (1, 1, 2, 4, 14 * 14 * 3)


def _row(name: str, kind: str, iou: float, layer: int | None = None, family: str = "qwen2_5_vl") -> PointRow:
    head = HeadRow(bbox_iou=iou, bbox_iou_lo=iou - 0.1, bbox_iou_hi=iou + 0.1, bbox_iou_chance=0.05)
    return PointRow(name=name, kind=kind, layer=layer, family=family, heads={"dense": head})


def test_the_family_table_puts_two_models_side_by_side():
    params = parse_params(
        {
            "models": {"q3": {"family": "qwen3_vl"}},
            "points": {
                "vit_l7": {"kind": "vit_block", "layer": 7},
                "q3_l8": {"kind": "vit_block", "layer": 8, "model": "q3"},
                "q3_deep": {"kind": "deepstack", "layer": 0, "model": "q3"},
                "merger": {"kind": "merger"},
                "pixels": {"kind": "pixels"},
            },
        }
    )
    rows = {
        "pixels": PointRow(name="pixels", kind="pixels"),
        "vit_l7": _row("vit_l7", "vit_block", 0.3, 7),
        "q3_l8": _row("q3_l8", "vit_block", 0.5, 8, "qwen3_vl"),
        "q3_deep": _row("q3_deep", "deepstack", 0.2, 0, "qwen3_vl"),
        "merger": _row("merger", "merger", 0.1, None),
    }
    table = family_table(rows, params.points, params, "dense")
    assert table is not None and table.models == {"model": "Qwen2.5-VL (tiny)", "q3": "Qwen3-VL (tiny)"}
    assert [k for k, _ in table.rows] == ["vit_block", "deepstack", "merger"]
    lines = family_lines(table)
    assert lines[0] == "| kind | `model`: Qwen2.5-VL (tiny) | `q3`: Qwen3-VL (tiny) |"
    assert (
        lines[2]
        == "| vit_block | `vit_l7` (7): 0.300 [0.200, 0.400] (chance 0.050) | `q3_l8` (8): 0.500 [0.400, 0.600] (chance 0.050) |"
    )
    assert lines[3] == "| deepstack | no such kind | `q3_deep` (0): 0.200 [0.100, 0.300] (chance 0.050) |"
    assert lines[4] == "| merger | `merger`: 0.100 [0.000, 0.200] (chance 0.050) | not run |"
    rows_json = family_table_json(table)["rows"]
    assert rows_json["deepstack"] == {"model": None, "q3": {"q3_deep": pytest.approx([0.2, 0.1, 0.3, 0.05])}}
    assert rows_json["merger"]["q3"] == {}
    one_model = {n: r for n, r in rows.items() if not n.startswith("q3")}
    assert family_table(one_model, params.points, params, "dense") is None


def test_a_kind_read_from_the_wrong_family_names_the_key():
    with pytest.raises(Exception, match=r"points.d.kind: deepstack points are read from qwen3_vl models, not qwen2_vl"):
        parse_params({"model": {"family": "qwen2_vl"}, "points": {"d": {"kind": "deepstack", "layer": 0}}})
    with pytest.raises(Exception, match=r"points.p.model: 'q9' is not in models \(defined: none\)"):
        parse_params({"points": {"p": {"kind": "vit_embed", "model": "q9"}}})
