"""Real video decoding, resizing and box transforms, on small videos written here with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from foresight_lib.data.video import (
    VideoDecodeError,
    clip_boxes,
    decode_frames,
    resize_frames,
    transform_boxes,
)
from foresight_lib.errors import ForesightError

N, H, W, RATE, SIDE = 30, 120, 160, 12, 20


def square_x(i: int) -> int:
    """Left edge of the white square in source frame ``i`` (it moves right 4 px per frame)."""
    return 10 + 4 * i


def square_box(i: int) -> list[float]:
    return [square_x(i), 50.0, SIDE, SIDE]


def write_video(
    path: Path, codec: str = "libx264", pix_fmt: str = "yuv444p", options: dict[str, str] | None = None
) -> Path:
    """N frames of H x W at RATE fps: a white SIDE x SIDE square on black moving right."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=RATE)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        stream.options = {"crf": "0"} if options is None else options
        for i in range(N):
            frame = np.zeros((H, W, 3), np.uint8)  # [H, W, 3]
            frame[50 : 50 + SIDE, square_x(i) : square_x(i) + SIDE] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def bright_box(frame: np.ndarray) -> np.ndarray:
    """xywh bounding box of the pixels brighter than half, in pixel-edge coordinates."""
    ys, xs = np.nonzero(frame.mean(axis=-1) > 127.5)
    return np.array([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()], dtype=float)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "square.mp4")


def test_uniform_sampling_takes_expected_frames(mp4: Path) -> None:
    frames, indices, fps = decode_frames(mp4, 9)
    assert frames.shape == (9, H, W, 3) and frames.dtype == np.uint8
    assert indices.tolist() == [0, 4, 7, 11, 15, 18, 22, 25, 29]
    for frame, i in zip(frames, indices, strict=True):
        np.testing.assert_array_equal(bright_box(frame), square_box(int(i)))
        assert frame[50:70, square_x(int(i)) : square_x(int(i)) + SIDE].min() >= 250
        assert frame[:40].max() <= 5
    assert fps == pytest.approx(8 / (29 / RATE))


def test_fixed_fps_sampling(mp4: Path) -> None:
    _, indices, fps = decode_frames(mp4, 9, fps=6.0)
    assert indices.tolist() == list(range(0, 18, 2)) and fps == 6.0
    frames, indices, _ = decode_frames(mp4, 9, fps=5.0)  # targets every 2.4 source frames: the nearest is taken
    assert indices.tolist() == [0, 2, 5, 7, 10, 12, 14, 17, 19]
    for frame, i in zip(frames, indices, strict=True):
        np.testing.assert_array_equal(bright_box(frame), square_box(int(i)))
    _, indices, _ = decode_frames(mp4, 5, fps=8.0)  # every 1.5 source frames: ties go to the earlier frame
    assert indices.tolist() == [0, 1, 3, 4, 6]
    with pytest.raises(VideoDecodeError, match=r"ends at 2.42 s, before sampling time 2.50 s .*not padded"):
        decode_frames(mp4, 17, fps=4.0)  # needs 4 s, the video lasts 2.5 s


def test_a_video_shorter_than_n_frames_is_not_padded(mp4: Path) -> None:
    with pytest.raises(VideoDecodeError, match=r"decoded 30 frames, fewer than data.n_frames \(33\): not padded"):
        decode_frames(mp4, 33)


@pytest.mark.parametrize("fps", [None, 2.0])
def test_a_truncated_webm_that_still_decodes_is_skipped(tmp_path: Path, fps: float | None) -> None:
    """The file's header still declares 30 frames; the cut data decodes to 9 (uniform sampling would have stored
    them with repeats, and the fps sampling padded with the last frame)."""
    data = write_video(tmp_path / "full.webm", "libvpx-vp9", "yuv444p", {"lossless": "1"}).read_bytes()
    truncated = tmp_path / "truncated.webm"
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VideoDecodeError, match=r"decoded \d+ of the 30 frames its container declares"):
        decode_frames(truncated, 9, fps=fps)


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "options", "tolerance"),
    [("libvpx-vp9", "yuv444p", {"lossless": "1"}, 3), ("libvpx", "yuv420p", {"crf": "4", "b": "2M"}, 24)],
)
def test_webm_decodes(tmp_path: Path, codec: str, pix_fmt: str, options: dict[str, str], tolerance: int) -> None:
    path = write_video(tmp_path / "square.webm", codec, pix_fmt, options)
    frames, indices, fps = decode_frames(path, 5)
    assert indices.tolist() == [0, 7, 15, 22, 29]
    for frame, i in zip(frames, indices, strict=True):
        np.testing.assert_allclose(bright_box(frame), square_box(int(i)), atol=1)
        inside = frame[52:68, square_x(int(i)) + 2 : square_x(int(i)) + SIDE - 2]
        assert inside.min() >= 255 - tolerance
    assert fps == pytest.approx(4 / (29 / RATE), rel=1e-2)


@pytest.mark.parametrize("mode", ["pad", "crop", "stretch"])
def test_boxes_follow_the_resize(mp4: Path, mode: str) -> None:
    frames, indices, _ = decode_frames(mp4, 9)
    resized, transform = resize_frames(frames, 224, 224, mode)  # type: ignore[arg-type]
    assert resized.shape == (9, 224, 224, 3) and resized.dtype == np.uint8
    boxes = transform_boxes(np.array([square_box(int(i)) for i in indices]), transform)  # [9, 4]
    clipped = clip_boxes(boxes, transform.window)
    checked = 0
    for k, (frame, box) in enumerate(zip(resized, boxes, strict=True)):
        if clipped.keep[k] and clipped.visibility[clipped.keep[: k + 1].sum() - 1] == 1.0:
            np.testing.assert_allclose(bright_box(frame), box, atol=1.5)
            checked += 1
    assert checked == (7 if mode == "crop" else 9)
    x0, y0, x1, y1 = transform.window
    if mode == "pad":  # 160x120 -> 224x168, centred: black bands above and below
        assert transform.scale_x == transform.scale_y == pytest.approx(1.4)
        assert (x0, y0, x1, y1) == (0, 28, 224, 196)
        assert resized[:, :28].max() == 0 and resized[:, 196:].max() == 0
    elif mode == "crop":  # 160x120 -> 298.7x224, 37.3 px cut on each side: the first and last squares are cut
        scale = 224 / 120
        assert transform.scale_x == transform.scale_y == pytest.approx(scale)
        assert (x0, y0, x1, y1) == (0, 0, 224, 224)
        assert clipped.counts["clipped"] == 2
        offset = (160 * scale - 224) / 2
        first = ((square_x(0) + SIDE) * scale - offset) / (SIDE * scale)
        last = (224 + offset - square_x(29) * scale) / (SIDE * scale)
        np.testing.assert_allclose(clipped.visibility[[0, -1]], [first, last])
    else:
        assert (transform.scale_x, transform.scale_y) == (pytest.approx(1.4), pytest.approx(224 / 120))


def test_clip_boxes_clips_and_drops() -> None:
    window = (0.0, 10.0, 100.0, 60.0)
    boxes = np.array(
        [
            [10, 20, 10, 10],  # inside
            [-10, 20, 20, 10],  # half outside on the left
            [90, 55, 20, 10],  # quarter inside, bottom right
            [10, 20, 0, 10],  # zero area
            [10, 20, 10, -5],  # inverted
            [10, 0, 10, 5],  # entirely above the window
        ],
        dtype=float,
    )
    out = clip_boxes(boxes, window)
    assert out.keep.tolist() == [True, True, True, False, False, False]
    np.testing.assert_allclose(out.boxes, [[10, 20, 10, 10], [0, 20, 10, 10], [90, 55, 10, 5]])
    np.testing.assert_allclose(out.visibility, [1.0, 0.5, 0.25])
    assert out.counts == {"clipped": 2, "zero_area": 1, "inverted": 1, "outside": 1}


def test_corrupt_file_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(VideoDecodeError, match="Invalid data"):
        decode_frames(path, 9)


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_file_is_a_decode_error(mp4: Path, tmp_path: Path, faststart: bool) -> None:
    source = mp4
    if faststart:  # index first: the file opens, then the frame data runs out
        source = tmp_path / "faststart.mp4"
        with av.open(str(mp4)) as src, av.open(str(source), "w", options={"movflags": "faststart"}) as dst:
            out = dst.add_stream_from_template(src.streams.video[0])
            for packet in src.demux(src.streams.video[0]):
                if packet.size:
                    packet.stream = out
                    dst.mux(packet)
    data = source.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError):
        decode_frames(truncated, 9)


@pytest.mark.parametrize(
    ("name", "codec", "reason"), [("empty.avi", "mpeg4", "no frames"), ("empty.mp4", "libx264", "no video stream")]
)
def test_zero_frame_video_is_a_decode_error(tmp_path: Path, name: str, codec: str, reason: str) -> None:
    path = tmp_path / name
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=RATE)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    container.start_encoding()
    container.close()
    with pytest.raises(VideoDecodeError, match=reason):
        decode_frames(path, 9)
    with pytest.raises(VideoDecodeError, match=reason):
        decode_frames(path, 9, fps=6.0)


def test_missing_path_and_unsupported_format_are_foresight_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(ForesightError, match=f"video not found: {missing}$"):
        decode_frames(missing, 9)
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    with pytest.raises(ForesightError, match=f"{text}: unsupported video format '.txt'") as info:
        decode_frames(text, 9)
    assert "\n" not in str(info.value)
