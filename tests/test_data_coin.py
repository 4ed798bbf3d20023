"""COIN: the synthetic procedural set written in COIN's format, read back by the real reader through the frames stage
(steps, splits by video, skipped videos with reasons), and a dataset without boxes through the probe stage.

One set of 6 tiny videos (32x32 px, 8 fps) is written once; each test copies what it breaks.
"""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
import zarr
from helpers import small_params

from foresight_lib.data.clip import STEP_COLUMNS
from foresight_lib.data.coin import open_coin_source, segment_clip_times
from foresight_lib.data.frames import write_frames
from foresight_lib.data.video import decode_at_times, resize_frames
from foresight_lib.errors import ForesightError
from foresight_lib.extract.points import make_extractor
from foresight_lib.extract.writer import write_point
from foresight_lib.features import open_features
from foresight_lib.params import ExtractParams, ModelParams, OraclePoint, ProbeParams, load_params
from foresight_lib.probes.run import run_probes
from foresight_lib.tools.synthetic_coin import TASKS, make_video, write_synthetic_coin

ROOT = Path(__file__).resolve().parents[1]
SIDE, FPS, VIDEOS = 32, 8, 6


@pytest.fixture(scope="module")
def coin_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("coin")
    write_synthetic_coin(out, VIDEOS, seed=3, height=SIDE, width=SIDE, fps=FPS)
    return out


@pytest.fixture(scope="module")
def coin_frames(coin_set, tmp_path_factory):
    """The frames stage's outputs on the set, two clips per segment."""
    data = _params(coin_set, coin={"clips_per_segment": 2}).data
    return write_frames(data, tmp_path_factory.mktemp("coin_frames") / "data", progress=False)


@pytest.fixture(scope="module")
def steps_store(coin_frames, tmp_path_factory) -> Path:
    """The steps oracle point (stride 56) of the frames stage's outputs."""
    point = OraclePoint(kind="oracle", stride=56, target="steps")
    extractor = make_extractor(
        "steps", point, ModelParams(), ExtractParams(), 224, 224, 9, steps_path=coin_frames.steps
    )
    path = tmp_path_factory.mktemp("steps") / "steps.zarr"
    write_point(extractor, coin_frames.frames, path, None, progress=False)
    return path


def _copy(coin_set: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(coin_set, tmp_path / "coin"))


def _params(root: Path, **data):
    return small_params(
        data={
            "source": "coin",
            "height": 224,
            "width": 224,
            "annotations": str(root / "COIN.json"),
            "video_dir": str(root / "videos"),
            **data,
        }
    )


def test_segment_clip_times_stay_inside_the_segment():
    uniform = segment_clip_times(2.0, 6.0, 9, None, 2)
    assert len(uniform) == 2 and all(t.shape == (9,) for t in uniform)
    assert 2.0 < uniform[0][0] and uniform[0][-1] < 4.0 < uniform[1][0] and uniform[1][-1] < 6.0
    assert np.allclose(np.diff(uniform[0]), 2.0 / 9)
    at_rate = segment_clip_times(2.0, 6.0, 9, 4.0, 3)  # each clip spans 2 s: starts at 2, 3 and 4
    assert np.allclose([t[0] for t in at_rate], [2.0, 3.0, 4.0]) and np.allclose(at_rate[2][-1], 6.0)
    assert np.allclose(segment_clip_times(2.0, 6.0, 9, 4.0, 1)[0][[0, -1]], [3.0, 5.0])  # one clip: centred
    assert "shorter than a clip at data.fps 1.5" in segment_clip_times(2.0, 6.0, 9, 1.5, 1)
    assert "empty or inverted" in segment_clip_times(3.0, 3.0, 9, None, 1)


def test_decode_at_times_takes_the_nearest_frame_and_says_where_the_video_ends(coin_set):
    path = coin_set / "videos" / "syn0001.mp4"
    n = len(make_video(3, 1, SIDE, SIDE, FPS)[0])
    times = np.array([0.0, 0.06, 0.07, 1.0, 1.0 / 16, 100.0])  # 1/16 s: a tie between frames 0 and 1
    frames, indices, end = decode_at_times(path, times)
    assert indices.tolist() == [0, 0, 1, 8, 0, n - 1]
    assert end == pytest.approx(n / FPS) and frames.shape == (6, SIDE, SIDE, 3)


def test_coin_round_trip_through_the_frames_stage(coin_set, coin_frames):
    out = coin_frames
    steps, clips = pd.read_parquet(out.steps), pd.read_parquet(out.clips)
    database = json.loads((coin_set / "COIN.json").read_text())["database"]
    n_segments = sum(len(v["annotation"]) for v in database.values())
    assert len(steps) == len(clips) == 2 * n_segments and steps["clip"].tolist() == clips["clip"].tolist()
    assert dict(steps.dtypes.astype(str)) == STEP_COLUMNS
    for video, g in steps.groupby("video"):
        task = database[video]["class"]
        assert set(g["task"]) == {task}
        assert g.drop_duplicates("step_index").sort_values("step_index")["step"].tolist() == list(TASKS[task])
        assert (g["n_steps"] == len(TASKS[task])).all()
        assert ((g["segment_start"] <= g["clip_start"]) & (g["clip_end"] <= g["segment_end"])).all()
    by_video = clips.assign(video=steps["video"]).groupby("video")["split"].nunique()
    assert (by_video == 1).all() and set(clips["split"]) == {"train", "val", "test"}, "splits are drawn by video"

    ann = pd.read_parquet(out.annotations)
    assert ann.empty and "category_id" in ann.columns
    arr = zarr.open_array(out.frames, mode="r")
    assert arr.shape == (len(clips), 9, 224, 224, 3) and arr.attrs["categories"] == []
    row = steps.iloc[3]  # its stored frames are the rendered frames nearest the clip's times, resized
    source, _ = make_video(3, int(row["video"][3:]), SIDE, SIDE, FPS)
    times = np.linspace(row["clip_start"], row["clip_end"], 9)
    nearest = np.floor(times * FPS + 0.5).astype(int)
    expected, _ = resize_frames(source[nearest], 224, 224, "pad")
    assert np.abs(arr[3].astype(int) - expected).mean() < 4.0


def test_missing_unreadable_and_short_videos_are_listed(coin_set, tmp_path):
    root = _copy(coin_set, tmp_path)
    (root / "videos" / "syn0000.mp4").unlink()
    (root / "videos" / "syn0002.mp4").write_bytes(b"not a video")
    coin = json.loads((root / "COIN.json").read_text())
    last = coin["database"]["syn0003"]["annotation"][-1]
    last["segment"] = [last["segment"][0], last["segment"][1] + 30.0]  # past the video's end
    (root / "COIN.json").write_text(json.dumps(coin))

    with pytest.raises(ForesightError, match=r"data.max_skipped_fraction 10%"):
        write_frames(_params(root).data, tmp_path / "strict", progress=False)
    out = write_frames(_params(root, max_skipped_fraction=0.5).data, tmp_path / "data", progress=False)
    record = json.loads(out.skipped.read_text())
    reasons = {s["name"]: s["reason"] for s in record["skipped"]}
    n_unreadable = len(coin["database"]["syn0002"]["annotation"])
    assert sum(name.startswith("syn0002/") for name in reasons) == n_unreadable
    short = f"syn0003/{len(coin['database']['syn0003']['annotation']) - 1}/0"
    assert set(reasons) == {f"syn0002/{i}/0" for i in range(n_unreadable)} | {short}
    assert reasons[short].startswith("the video ends at")
    assert record["source_report"]["unknown_video_ids"] == ["syn0000"]
    steps = pd.read_parquet(out.steps)
    assert not steps["video"].isin(["syn0000", "syn0002"]).any()
    assert not ((steps["video"] == "syn0003") & (steps["step_index"] == int(short.split("/")[1]))).any()


def test_bad_coin_json_names_the_entry(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "COIN.json").write_text(json.dumps({"database": {"v1": {"annotation": [{"id": 1, "label": "x"}]}}}))
    with pytest.raises(ForesightError, match=r"database.v1.annotation.0.segment: Field required"):
        open_coin_source(_params(tmp_path).data)


def test_steps_oracle_holds_each_clips_step_in_every_cell(coin_frames, steps_store, tmp_path):
    store = open_features(steps_store)
    steps = pd.read_parquet(coin_frames.steps)
    labels = sorted(set(steps["step"]))
    assert store.grid == (9, 4, 4) and store.channels == len(labels) and store.attrs["definition"]["steps"] == labels
    grids = store.read(slice(None)).astype(np.float32)  # [clips, 9, 4, 4, K]
    truth = steps["step"].map(labels.index).to_numpy()[:, None, None, None]  # [clips, 1, 1, 1]
    assert np.array_equal(grids.argmax(-1), np.broadcast_to(truth, grids.shape[:-1])) and (grids.sum(-1) == 1).all()

    point = OraclePoint(kind="oracle", stride=56, target="steps")
    make = partial(make_extractor, "steps", point, ModelParams(), ExtractParams(), 224, 224, 9)
    with pytest.raises(ForesightError, match=r"--steps data/steps.parquet"):
        make()
    boxes = write_frames(small_params().data, tmp_path / "boxes", progress=False)
    with pytest.raises(ForesightError, match=r"points.steps.target: steps needs a step per clip .* it has 0 rows"):
        make(steps_path=boxes.steps)


def test_probe_stage_on_a_dataset_without_boxes_says_why(coin_frames, steps_store, tmp_path):
    metrics = run_probes(
        steps_store,
        coin_frames.root,
        ProbeParams(),
        tmp_path / "metrics.json",
        tmp_path / "live",
        tmp_path / "predictions.parquet",
        tmp_path / "heads",
    )
    assert metrics["skipped"].startswith(f"no boxes in {coin_frames.annotations}") and metrics["point"]["stride"] == 56
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert pd.read_parquet(tmp_path / "predictions.parquet").empty and not any((tmp_path / "heads").iterdir())


@pytest.mark.parametrize(
    ("profile", "base"),
    [("profiles/procedural.yaml", "params.yaml"), ("profiles/real_coin.yaml", "profiles/real.yaml")],
)
def test_coin_profiles_differ_from_their_base_only_in_data_and_the_oracle(profile, base):
    mine, theirs = (yaml.safe_load((ROOT / p).read_text()) for p in (profile, base))
    assert load_params(ROOT / profile).data.source == "coin"
    assert mine["points"].pop("oracle_steps") == {"kind": "oracle", "stride": 56, "target": "steps"}
    assert theirs["points"].pop("oracle") == {"kind": "oracle", "stride": 14}  # boxes: none in COIN
    assert {k: v for k, v in mine.items() if k != "data"} == {k: v for k, v in theirs.items() if k != "data"}


def test_the_validate_gate_reads_coin_json_and_needs_three_videos_with_files(coin_set, tmp_path):
    from foresight_lib.validate import data_problems

    assert data_problems(_params(coin_set).data) == []
    root = _copy(coin_set, tmp_path)
    for video in sorted((root / "videos").iterdir())[2:]:
        video.unlink()
    (problem,) = data_problems(_params(root).data)
    assert problem.startswith("data.annotations: ") and f"{VIDEOS} videos, 2 with a video" in problem
    (root / "COIN.json").write_text("{}")
    (problem,) = data_problems(_params(root).data)
    assert problem.startswith("data.annotations: ") and "database" in problem
