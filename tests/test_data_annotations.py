"""Annotation readers and the real source, end to end on tiny videos and annotation files written here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
import pytest

from foresight_lib.data.clip import DIRECTIONS, OBJECT_COLUMNS, Clip, Skipped
from foresight_lib.data.frames import report_dropped
from foresight_lib.data.real import match_annotated_frames, open_real_source, summarise
from foresight_lib.errors import ForesightError
from foresight_lib.params import DataParams

N, H, W, RATE, SIDE = 30, 120, 160, 12, 20
OUT = 224  # output side; pad maps 160x120 to 224x168 at y offset 28, scale 1.4


def square_x(i: int) -> int:
    return 10 + 4 * i


def write_video(path: Path, codec: str = "libx264", options: dict[str, str] | None = None) -> Path:
    """N frames of H x W at RATE fps: a white SIDE x SIDE square at y=50 moving right 4 px per frame."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=RATE)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv444p"
        stream.options = {"crf": "0"} if options is None else options
        for i in range(N):
            frame = np.zeros((H, W, 3), np.uint8)  # [H, W, 3]
            frame[50 : 50 + SIDE, square_x(i) : square_x(i) + SIDE] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def params(source: str, video_dir: Path, annotations: Path, **kw: Any) -> DataParams:
    return DataParams(
        source=source, height=OUT, width=OUT, n_frames=9, video_dir=str(video_dir), annotations=str(annotations), **kw
    )


def write_json(path: Path, payload: Any) -> Path:
    path.write_text(json.dumps(payload))
    return path


def se_frames(video: str, frames: range) -> list[dict[str, Any]]:
    """Something-Else frames: the square (object 0000) and a still hand."""
    out = []
    for i in frames:
        square = {"x1": square_x(i), "y1": 50, "x2": square_x(i) + SIDE, "y2": 50 + SIDE}
        hand = {"x1": 100, "y1": 90, "x2": 120, "y2": 110}
        labels = [
            {"box2d": square, "category": "white square", "standard_category": "0000"},
            {"box2d": hand, "category": "hand", "standard_category": "hand"},
        ]
        out.append({"name": f"{video}/{i + 1:04d}.jpg", "labels": labels, "nr_instances": 2})
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A video directory: square.mp4 and 12.webm (the same content)."""
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "square.mp4")
    write_video(root / "12.webm", "libvpx-vp9", {"lossless": "1"})
    return root


def expected_box(i: int) -> list[float]:
    """The square of source frame ``i`` after ``pad`` to 224x224."""
    return [square_x(i) * 1.4, 28 + 50 * 1.4, SIDE * 1.4, SIDE * 1.4]


# --------------------------------------------------------------------------------- Something-Else
def test_something_else_end_to_end(videos: Path, tmp_path: Path) -> None:
    ann = write_json(tmp_path / "boxes.json", {"12": se_frames("12", range(N)), "99": se_frames("99", range(3))})
    source = open_real_source(params("something_else", videos, ann))
    assert len(source) == 1
    (clip,) = list(source)
    assert isinstance(clip, Clip)
    assert clip.name == "12" and clip.source == str(videos / "12.webm")
    assert clip.frames.shape == (9, OUT, OUT, 3)
    assert clip.extra["source_frames"] == [0, 4, 7, 11, 15, 18, 22, 25, 29]
    assert list(clip.objects.columns) == list(OBJECT_COLUMNS)
    square = clip.objects[clip.objects["category"] == "white square"]
    hand = clip.objects[clip.objects["category"] == "hand"]
    assert square["frame"].tolist() == list(range(9)) and hand["frame"].tolist() == list(range(9))
    assert set(square["object_id"]) == {0} and set(hand["object_id"]) == {1}
    for row, i in zip(square.itertuples(), clip.extra["source_frames"], strict=True):
        np.testing.assert_allclose([row.x, row.y, row.w, row.h], expected_box(i), atol=1e-9)
        frame = clip.frames[row.frame]
        ys, xs = np.nonzero(frame.mean(axis=-1) > 127.5)
        np.testing.assert_allclose([xs.min(), ys.min()], [row.x, row.y], atol=1.5)
    assert (clip.objects["visibility"] == 1.0).all()
    assert DIRECTIONS[clip.direction] == "right"
    step = 4 * 1.4 * 29 / 8  # square moves 4 px per source frame, 29/8 source frames per sampled frame
    assert clip.speed == pytest.approx(step / 2)  # averaged with the still hand
    assert clip.fps == pytest.approx(8 / (29 / RATE), rel=1e-3)  # webm stores milliseconds
    report = summarise(source.report, [clip])
    assert report["unknown_videos"] == 1 and report["unknown_video_ids"] == ["99"]
    assert (report["videos_annotated"], report["videos_found"], report["clips"], report["skipped"]) == (2, 1, 1, 0)
    assert report["boxes"]["total"] == report["boxes"]["kept"] == 18
    assert report["boxes"]["not_sampled"] == 2 * (N - 9)
    json.dumps(report)


def test_something_else_directory_of_parts(videos: Path, tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    write_json(parts / "part1.json", {"12": se_frames("12", range(N))})
    write_json(parts / "part2.json", {"7": se_frames("7", range(N))})
    source = open_real_source(params("something_else", videos, parts))
    assert len(source) == 1 and source.report["unknown_video_ids"] == ["7"]
    write_json(parts / "part3.json", {"12": []})
    with pytest.raises(ForesightError, match="part3.json: video '12' is also annotated"):
        open_real_source(params("something_else", videos, parts))


def test_something_else_two_boxes_with_one_id_are_two_objects(videos: Path, tmp_path: Path) -> None:
    frames = se_frames("12", range(N))
    for frame in frames:
        frame["labels"].append(
            {"box2d": {"x1": 0, "y1": 0, "x2": 10, "y2": 10}, "category": "hand", "standard_category": "hand"}
        )
    source = open_real_source(params("something_else", videos, write_json(tmp_path / "b.json", {"12": frames})))
    (clip,) = list(source)
    assert isinstance(clip, Clip) and sorted(clip.objects["object_id"].unique()) == [0, 1, 2]


# ------------------------------------------------------------------------------------ COCO video
def coco(
    videos: list[dict[str, Any]], boxes: dict[str, dict[int, list[list[float]]]], size: tuple[int, int] = (W, H)
) -> dict[str, Any]:
    """A COCO-video payload: ``boxes[file_name][frame] = [[x, y, w, h], ...]``, track id = position in the list."""
    images, annotations = [], []
    ids = {v["file_name"]: v["id"] for v in videos}
    for file_name, frames in boxes.items():
        for frame, frame_boxes in frames.items():
            image_id = len(images) + 1
            images.append(
                {"id": image_id, "video_id": ids[file_name], "frame_id": frame, "width": size[0], "height": size[1]}
            )
            for track, bbox in enumerate(frame_boxes):
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "bbox": bbox,
                        "category_id": 3,
                        "track_id": track,
                    }
                )
    return {"videos": videos, "images": images, "annotations": annotations, "categories": [{"id": 3, "name": "square"}]}


def test_coco_video_maps_unsampled_frames_to_the_nearest_annotated(videos: Path, tmp_path: Path) -> None:
    every_second = {i: [[square_x(i), 50, SIDE, SIDE]] for i in range(0, N, 2)}
    payload = coco([{"id": 5, "file_name": "square.mp4"}], {"square.mp4": every_second})
    source = open_real_source(params("coco_video", videos, write_json(tmp_path / "coco.json", payload)))
    (clip,) = list(source)
    assert isinstance(clip, Clip) and clip.name == "square"
    # sampled 0 4 7 11 15 18 22 25 29 -> annotated 0 4 6 10 14 18 22 24 28 (reach 1.8 frames, ties to the earlier)
    for row, i in zip(clip.objects.itertuples(), [0, 4, 6, 10, 14, 18, 22, 24, 28], strict=True):
        np.testing.assert_allclose([row.x, row.y, row.w, row.h], expected_box(i))
    assert (clip.objects["category"] == "square").all()
    assert summarise(source.report, [clip])["boxes"]["not_sampled"] == 15 - 9


def test_match_annotated_frames() -> None:
    sampled = np.array([0, 4, 7, 11, 15, 18, 22, 25, 29])
    annotated = np.array([0, 10, 21, 26, 27, 27])  # reach: 29 / 8 / 2 = 1.8 frames
    assert match_annotated_frames(sampled, annotated).tolist() == [0, -1, -1, 10, -1, -1, 21, 26, -1]
    assert match_annotated_frames(np.array([0, 4, 8]), np.array([3, 5])).tolist() == [-1, 3, -1]  # tie: the earlier
    assert match_annotated_frames(sampled, np.array([], dtype=int)).tolist() == [-1] * 9
    assert match_annotated_frames(np.array([5]), np.array([4, 5])).tolist() == [5]
    assert match_annotated_frames(np.array([5]), np.array([4])).tolist() == [-1]


def test_coco_video_rescales_boxes_drawn_on_another_size(videos: Path, tmp_path: Path) -> None:
    doubled = {i: [[2 * square_x(i), 100, 2 * SIDE, 2 * SIDE]] for i in range(N)}
    payload = coco([{"id": 1, "file_name": "square.mp4"}], {"square.mp4": doubled}, size=(2 * W, 2 * H))
    source = open_real_source(params("coco_video", videos, write_json(tmp_path / "coco.json", payload)))
    (clip,) = list(source)
    assert isinstance(clip, Clip) and summarise(source.report, [clip])["rescaled_videos"] == 1
    np.testing.assert_allclose(clip.objects[["x", "y", "w", "h"]].iloc[1], expected_box(4))


def test_bad_boxes_are_clipped_dropped_and_counted(videos: Path, tmp_path: Path) -> None:
    frames = {i: [[-20, 0, 40, 20], [5, 5, 0, 10], [30, 30, -5, 10], [10, 10, 10, 10]] for i in range(N)}
    payload = coco([{"id": 1, "file_name": "square.mp4"}], {"square.mp4": frames})
    source = open_real_source(
        params("coco_video", videos, write_json(tmp_path / "coco.json", payload), resize="stretch")
    )
    (clip,) = list(source)
    assert isinstance(clip, Clip)
    assert summarise(source.report, [clip])["boxes"] == {
        "total": 36, "kept": 18, "clipped": 9, "zero_area": 9, "inverted": 9, "outside": 0, "not_sampled": 84,
    }  # fmt: skip
    half = clip.objects[clip.objects["object_id"] == 0]
    assert (half["visibility"] == 0.5).all() and (half["x"] == 0).all()
    np.testing.assert_allclose(half[["w", "h"]].iloc[0], [20 * OUT / W, 20 * OUT / H])
    assert set(clip.objects["object_id"]) == {0, 3}


def test_dropped_input_is_one_line_on_stderr(videos: Path, tmp_path: Path, capsys) -> None:
    frames = {i: [[-20, 0, 40, 20], [5, 5, 0, 10], [30, 30, -5, 10], [10, 10, 10, 10]] for i in range(N)}
    payload = coco([{"id": 1, "file_name": "square.mp4"}], {"square.mp4": frames})
    source = open_real_source(
        params("coco_video", videos, write_json(tmp_path / "coco.json", payload), resize="stretch")
    )
    report_dropped({"skipped": [], "source_report": summarise(source.report, list(source))}, tmp_path / "skipped.json")
    assert capsys.readouterr().err == (
        f"frames: 18 of 36 boxes dropped (9 inverted, 9 zero area); details in {tmp_path / 'skipped.json'}\n"
    )
    report_dropped({"skipped": [], "source_report": {}}, tmp_path / "skipped.json")  # synthetic: nothing dropped
    assert capsys.readouterr().err == ""


def test_undecodable_videos_are_skipped_with_a_reason(videos: Path, tmp_path: Path) -> None:
    root = tmp_path / "videos"
    root.mkdir()
    (root / "a_good.mp4").write_bytes((videos / "square.mp4").read_bytes())
    (root / "b_noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    data = (videos / "square.mp4").read_bytes()
    (root / "c_truncated.mp4").write_bytes(data[: len(data) // 2])
    container = av.open(str(root / "d_empty.avi"), "w")
    stream = container.add_stream("mpeg4", rate=RATE)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    container.start_encoding()
    container.close()
    names = ["d_empty.avi", "c_truncated.mp4", "b_noise.mp4", "a_good.mp4"]
    payload = coco(
        [{"id": i, "file_name": n} for i, n in enumerate(names)], {n: {0: [[10, 50, 20, 20]]} for n in names}
    )
    source = open_real_source(params("coco_video", root, write_json(tmp_path / "coco.json", payload)))
    items = list(source)
    assert [item.name for item in items] == ["a_good", "b_noise", "c_truncated", "d_empty"]
    assert isinstance(items[0], Clip)
    skipped = items[1:]
    assert all(isinstance(s, Skipped) for s in skipped)
    invalid = "InvalidDataError: Invalid data found when processing input"
    assert [s.reason for s in skipped] == [invalid, invalid, "no frames decoded"]
    assert skipped[2].source == str(root / "d_empty.avi")
    report = summarise(source.report, items)
    assert (report["clips"], report["skipped"]) == (1, 3)
    limited = open_real_source(params("coco_video", root, tmp_path / "coco.json", max_clips=2))
    assert [item.name for item in limited] == ["a_good", "b_noise"] and len(limited) == 2


# --------------------------------------------------------------------------------- bad inputs
def test_missing_paths_are_foresight_errors(videos: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ForesightError, match=f"annotation file not found: {missing}$"):
        open_real_source(params("coco_video", videos, missing))
    ann = write_json(tmp_path / "boxes.json", {"12": se_frames("12", range(2))})
    with pytest.raises(ForesightError, match=f"video directory not found: {tmp_path / 'gone'}$"):
        open_real_source(params("something_else", tmp_path / "gone", ann))


def test_invalid_json_and_wrong_layout_are_foresight_errors(videos: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"12": [')
    with pytest.raises(ForesightError, match=f"{broken}: not valid JSON"):
        open_real_source(params("something_else", videos, broken))
    as_list = write_json(tmp_path / "list.json", [{"name": "12/0001.jpg"}])
    with pytest.raises(ForesightError, match=f"{as_list}: top level is a list, not a mapping of video ids; expected"):
        open_real_source(params("something_else", videos, as_list))
    no_box = write_json(tmp_path / "nobox.json", {"12": [{"name": "12/0001.jpg", "labels": [{"category": "cup"}]}]})
    with pytest.raises(ForesightError, match=r"nobox.json: 12.0.labels.0.box2d: Field required; expected \{video_id"):
        open_real_source(params("something_else", videos, no_box))
    bad_name = write_json(tmp_path / "name.json", {"12": [{"name": "12/first.jpg", "labels": []}]})
    with pytest.raises(ForesightError, match="frame name '12/first.jpg'"):
        open_real_source(params("something_else", videos, bad_name))
    no_videos = write_json(tmp_path / "coco.json", {"images": [], "annotations": [], "categories": []})
    with pytest.raises(ForesightError, match=r"coco.json: videos: Field required; expected \{\"videos\"") as info:
        open_real_source(params("coco_video", videos, no_videos))
    assert "\n" not in str(info.value)
    dangling = coco([{"id": 1, "file_name": "square.mp4"}], {"square.mp4": {0: [[0, 0, 5, 5]]}})
    dangling["categories"] = []
    with pytest.raises(ForesightError, match="category_id 3 is not in 'categories'"):
        open_real_source(params("coco_video", videos, write_json(tmp_path / "dangling.json", dangling)))


def test_unsupported_video_format_is_a_foresight_error(tmp_path: Path) -> None:
    (tmp_path / "clip.txt").write_text("not a video")
    payload = coco([{"id": 1, "file_name": "clip.txt"}], {"clip.txt": {0: [[0, 0, 5, 5]]}})
    with pytest.raises(ForesightError, match=f"{tmp_path / 'clip.txt'}: unsupported video format '.txt'"):
        open_real_source(params("coco_video", tmp_path, write_json(tmp_path / "coco.json", payload)))


# ------------------------------------------------------------------------------- the frames stage
def _stage(params_file: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stages.frames", "--params", str(params_file), "--out", str(out)],
        capture_output=True,
        text=True,
    )


def test_frames_stage_on_real_videos(videos: Path, tmp_path: Path) -> None:
    root = tmp_path / "videos"
    root.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (root / name).write_bytes((videos / "square.mp4").read_bytes())
    (root / "d.mp4").write_bytes(b"not a video")
    track = {i: [[square_x(i), 50, SIDE, SIDE]] for i in range(N)}
    names = ["a.mp4", "b.mp4", "c.mp4", "d.mp4", "gone.mp4"]
    payload = coco([{"id": i + 1, "file_name": n} for i, n in enumerate(names)], {n: track for n in names})
    ann = write_json(tmp_path / "coco.json", payload)
    data = {
        "source": "coco_video",
        "video_dir": str(root),
        "annotations": str(ann),
        "height": OUT,
        "width": OUT,
        "n_frames": 9,
        "max_skipped_fraction": 0.3,
    }
    (tmp_path / "params.yaml").write_text(json.dumps({"data": data}))
    res = _stage(tmp_path / "params.yaml", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    clips = pd.read_parquet(tmp_path / "out" / "clips.parquet")
    assert list(clips["name"]) == ["a", "b", "c"] and (clips["direction_name"] == "right").all()
    annotations = pd.read_parquet(tmp_path / "out" / "annotations.parquet")
    first = annotations[(annotations["clip"] == 0) & (annotations["frame"] == 0)]
    np.testing.assert_allclose(first[["x", "y", "w", "h"]].to_numpy()[0], expected_box(0))
    assert set(annotations["category_id"]) == {1}
    report = json.loads((tmp_path / "out" / "skipped.json").read_text())
    assert [s["name"] for s in report["skipped"]] == ["d"]
    assert report["source_report"]["unknown_video_ids"] == ["gone"]
    assert report["source_report"]["clips"] == 3 and report["source_report"]["boxes"]["kept"] == 27

    assert res.stderr.strip().splitlines()[-1] == (
        "frames: 1 clips skipped; 1 annotated videos not found; details in " + str(tmp_path / "out" / "skipped.json")
    )

    data["max_skipped_fraction"] = 0.2  # 1 of 4 skipped is now too many: the stage fails, the outputs stay
    (tmp_path / "params.yaml").write_text(json.dumps({"data": data}))
    res = _stage(tmp_path / "params.yaml", tmp_path / "out")
    assert res.returncode == 2 and "1 of 4 clips could not be decoded" in res.stderr and "Traceback" not in res.stderr
    assert pd.read_parquet(tmp_path / "out" / "clips.parquet").equals(clips)


@pytest.mark.parametrize("broken", ["video_dir", "annotations"])
def test_frames_stage_names_a_missing_path_in_one_line(videos: Path, tmp_path: Path, broken: str) -> None:
    ann = write_json(
        tmp_path / "coco.json", coco([{"id": 1, "file_name": "square.mp4"}], {"square.mp4": {0: [[1, 1, 5, 5]]}})
    )
    data = {"source": "coco_video", "video_dir": str(videos), "annotations": str(ann), "height": OUT, "width": OUT}
    data[broken] = str(tmp_path / "nowhere")
    (tmp_path / "params.yaml").write_text(json.dumps({"data": data}))
    res = _stage(tmp_path / "params.yaml", tmp_path / "out")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and str(tmp_path / "nowhere") in res.stderr
