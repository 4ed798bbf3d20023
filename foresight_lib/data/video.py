"""Decode real videos with PyAV, resize them to the stored geometry, and map boxes with the same transform.

Coordinates are continuous pixel edges: a box ``[x, y, w, h]`` covers ``x <= u < x + w``; the frame spans
``[0, width] x [0, height]``. Resizing maps pixel edges onto pixel edges (PIL's convention), so one affine
map per axis carries boxes exactly where the pixels went.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np
from PIL import Image

from ..errors import ForesightError

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg", ".ogv", ".flv", ".3gp", ".ts"}
)
"""File suffixes read as videos; any other suffix is a configuration error, not a skipped clip."""

ResizeMode = Literal["pad", "crop", "stretch"]


DECLARED_SLACK = 0.02
"""A video decoding to fewer than its declared frame count minus this fraction (and at least one frame) is skipped."""

_TIE_S = 1e-6
"""Time distances closer than this (seconds) are ties: timestamps are rounded to the container's time base."""


class VideoDecodeError(Exception):
    """A video file that exists but cannot be decoded (corrupt, truncated, no frames): a skipped clip."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_video_path(path: Path) -> None:
    """Raise :class:`ForesightError` if ``path`` is not an existing file with a video suffix."""
    if not path.is_file():
        raise ForesightError(f"video not found: {path}")
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ForesightError(
            f"{path}: unsupported video format {path.suffix or '(no suffix)'!r} (expected one of {', '.join(sorted(VIDEO_EXTENSIONS))})"
        )


def decode_frames(path: str | Path, n_frames: int, fps: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Decode ``n_frames`` RGB frames of a video and say which source frames they are.

    ``fps=None`` samples uniformly over the whole video: source indices ``round(linspace(0, count - 1, n_frames))``.
    With ``fps``, target times are ``k / fps`` from the first frame and each takes the source frame nearest in
    time (ties: the earlier). Every frame is converted to the first frame's size. Nothing is padded: a video
    with fewer frames than ``n_frames`` (uniform), one that ends before the last target time (``fps``), and one
    that decodes to fewer frames than its container declares (:func:`missing_frames`) when sampling reads it to
    the end, raise :class:`VideoDecodeError` with the counts (a skipped clip).

    Returns ``(frames [F, h, w, 3] uint8, source frame indices [F] int64, fps of the sampled frames)``; that fps
    is ``fps`` itself, or ``(F - 1) / (time of the last - time of the first sampled frame)``, NaN if they coincide.
    Raises :class:`ForesightError` for a missing file or a non-video suffix, :class:`VideoDecodeError` for a
    file PyAV cannot open or decode, or one without video frames.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    path = Path(path)
    check_video_path(path)
    try:
        if fps is None:
            return _decode_uniform(path, n_frames)
        return _decode_at_rate(path, n_frames, fps)
    except av.FFmpegError as exc:
        raise VideoDecodeError(f"{type(exc).__name__}: {exc.strerror}") from None  # the path is the clip's source


def _iter_frames(path: Path) -> Iterator[tuple[int, float, av.VideoFrame]]:
    """Decoded frames of the first video stream in presentation order: (index, time in seconds, frame)."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoDecodeError("no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        for index, frame in enumerate(container.decode(stream)):
            if frame.time is not None:
                yield index, float(frame.time), frame
            elif rate:
                yield index, index / float(rate), frame
            else:
                raise VideoDecodeError("frames have no timestamps and the stream has no frame rate")


def _rgb(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    return frame.to_ndarray(format="rgb24", width=size[0], height=size[1])  # [h, w, 3]


def declared_frames(path: Path) -> int | None:
    """The frame count the container declares for its first video stream: the stream's own count, else its (or
    the container's) duration times the frame rate; ``None`` when it declares neither."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        rate = stream.average_rate or stream.guessed_rate
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / av.time_base
        else:
            return None
        return round(seconds * float(rate)) if rate else None


def missing_frames(decoded: int, declared: int | None) -> bool:
    """Whether ``decoded`` frames fall short of the ``declared`` count by more than :data:`DECLARED_SLACK`: a
    truncated or damaged file (a duration-derived count may be off by a frame)."""
    return declared is not None and decoded < declared - max(1, DECLARED_SLACK * declared)


def _decode_uniform(path: Path, n_frames: int) -> tuple[np.ndarray, np.ndarray, float]:
    count = sum(1 for _ in _iter_frames(path))
    if count == 0:
        raise VideoDecodeError("no frames decoded")
    declared = declared_frames(path)
    if missing_frames(count, declared):
        raise VideoDecodeError(f"decoded {count} of the {declared} frames its container declares (truncated?)")
    if count < n_frames:
        raise VideoDecodeError(f"decoded {count} frames, fewer than data.n_frames ({n_frames}): not padded")
    wanted = np.floor(np.linspace(0, count - 1, n_frames) + 0.5).astype(np.int64)  # [F]
    wanted_set = set(wanted.tolist())
    picked: dict[int, tuple[float, np.ndarray]] = {}
    size = (0, 0)
    for index, time, frame in _iter_frames(path):
        if index == 0:
            size = (frame.width, frame.height)
        if index in wanted_set:
            picked[index] = (time, _rgb(frame, size))
    frames = np.stack([picked[i][1] for i in wanted])  # [F, h, w, 3]
    span = picked[int(wanted[-1])][0] - picked[int(wanted[0])][0]  # seconds from first to last sampled frame
    return frames, wanted, (n_frames - 1) / span if span > 0 else float("nan")


def _decode_at_rate(path: Path, n_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray, float]:
    targets = np.arange(n_frames) / fps  # [F] seconds after the first frame
    chosen: list[int] = []
    arrays: dict[int, np.ndarray] = {}
    prev: tuple[int, float, av.VideoFrame] | None = None
    start = 0.0
    size = (0, 0)

    def take(index: int, frame: av.VideoFrame) -> None:
        if index not in arrays:
            arrays[index] = _rgb(frame, size)
        chosen.append(index)

    for index, time, frame in _iter_frames(path):
        if index == 0:
            start, size = time, (frame.width, frame.height)
        rel = time - start
        while len(chosen) < n_frames and rel >= targets[len(chosen)]:
            target = targets[len(chosen)]
            if prev is not None and target - prev[1] <= rel - target + _TIE_S:
                take(prev[0], prev[2])
            else:
                take(index, frame)
        if len(chosen) == n_frames:
            break
        prev = (index, rel, frame)
    if not chosen:  # the first frame always meets target 0
        raise VideoDecodeError("no frames decoded")
    if len(chosen) < n_frames:  # the video ended before the last target time
        assert prev is not None  # set after every frame that did not complete the clip
        declared = declared_frames(path)
        if missing_frames(prev[0] + 1, declared):
            raise VideoDecodeError(
                f"decoded {prev[0] + 1} of the {declared} frames its container declares (truncated?)"
            )
        raise VideoDecodeError(
            f"ends at {prev[1]:.2f} s, before sampling time {targets[len(chosen)]:.2f} s of data.n_frames "
            f"({n_frames}) at data.fps ({fps:g}): not padded"
        )
    frames = np.stack([arrays[i] for i in chosen])  # [F, h, w, 3]
    return frames, np.asarray(chosen, dtype=np.int64), float(fps)


def decode_at_times(path: str | Path, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Decode the frames nearest in time to ``times`` (seconds from the first frame; ties: the earlier frame).

    One pass that stops once the latest time is passed; only chosen frames are converted. Returns ``(frames
    [N, h, w, 3] uint8, source frame indices [N] int64, end)``: ``end`` is the time the decoded part covers (the
    last decoded frame's time plus one frame period), so a time after ``end`` lies beyond the video's end (it took
    the last frame). Errors as :func:`decode_frames`.
    """
    times = np.asarray(times, dtype=np.float64)  # [N]
    if times.size == 0:
        raise ValueError("decode_at_times needs at least one time")
    path = Path(path)
    check_video_path(path)
    order = np.argsort(times, kind="stable")  # [N] times in increasing order
    chosen = np.full(times.shape, -1, dtype=np.int64)  # [N] source frame per time
    arrays: dict[int, np.ndarray] = {}
    prev: tuple[int, float, av.VideoFrame] | None = None
    start, rel, period, size, k = 0.0, 0.0, 0.0, (0, 0), 0

    def take(slot: int, index: int, frame: av.VideoFrame) -> None:
        if index not in arrays:
            arrays[index] = _rgb(frame, size)
        chosen[slot] = index

    try:
        for index, time, frame in _iter_frames(path):
            if index == 0:
                start, size = time, (frame.width, frame.height)
            period, rel = (time - start - rel if index else 0.0), time - start
            while k < len(order) and times[order[k]] < rel:  # decided: between the previous frame and this one
                t = times[order[k]]
                if prev is not None and t - prev[1] <= rel - t + _TIE_S:
                    take(int(order[k]), prev[0], prev[2])
                else:
                    take(int(order[k]), index, frame)
                k += 1
            if k == len(order):
                break
            prev = (index, rel, frame)
    except av.FFmpegError as exc:
        raise VideoDecodeError(f"{type(exc).__name__}: {exc.strerror}") from None
    if prev is None and k < len(order):
        raise VideoDecodeError("no frames decoded")
    for slot in order[k:]:  # at or after the last frame
        assert prev is not None
        take(int(slot), prev[0], prev[2])
    frames = np.stack([arrays[int(i)] for i in chosen])  # [N, h, w, 3]
    return frames, chosen, rel + period


# ------------------------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class FrameTransform:
    """The affine map from source to output pixels: ``x' = x * scale_x + offset_x`` (same for y).

    ``window`` is the part of the output frame showing the source image, ``(x0, y0, x1, y1)`` in output pixels:
    the whole frame for ``crop`` and ``stretch``, the unpadded area for ``pad``. Boxes are clipped to it.
    """

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    window: tuple[float, float, float, float]


def resize_frames(frames: np.ndarray, height: int, width: int, mode: ResizeMode) -> tuple[np.ndarray, FrameTransform]:
    """Resize ``frames [F, h, w, 3]`` to ``[F, height, width, 3]`` (bicubic, antialiased) and return the transform.

    ``pad`` keeps the aspect ratio, scales to fit and centres on black; ``crop`` keeps the aspect ratio, scales
    to cover and keeps the centre; ``stretch`` scales x and y independently.
    """
    src_h, src_w = frames.shape[1:3]
    box = (0.0, 0.0, float(src_w), float(src_h))  # source region, (x0, y0, x1, y1)
    out_w, out_h, pad_x, pad_y = width, height, 0, 0  # resized size and where it goes in the output
    if mode == "pad":
        scale = min(width / src_w, height / src_h)
        out_w, out_h = min(width, max(1, round(src_w * scale))), min(height, max(1, round(src_h * scale)))
        pad_x, pad_y = (width - out_w) // 2, (height - out_h) // 2
    elif mode == "crop":
        scale = max(width / src_w, height / src_h)
        keep_w, keep_h = width / scale, height / scale
        box = ((src_w - keep_w) / 2, (src_h - keep_h) / 2, (src_w + keep_w) / 2, (src_h + keep_h) / 2)
    elif mode != "stretch":
        raise ValueError(f"resize mode must be pad, crop or stretch, got {mode!r}")
    out = np.zeros((len(frames), height, width, 3), dtype=np.uint8)  # [F, H, W, 3]
    for i, frame in enumerate(frames):
        image = Image.fromarray(frame).resize((out_w, out_h), Image.Resampling.BICUBIC, box=box)
        out[i, pad_y : pad_y + out_h, pad_x : pad_x + out_w] = np.asarray(image)
    scale_x, scale_y = out_w / (box[2] - box[0]), out_h / (box[3] - box[1])
    transform = FrameTransform(
        scale_x=scale_x,
        scale_y=scale_y,
        offset_x=pad_x - box[0] * scale_x,
        offset_y=pad_y - box[1] * scale_y,
        window=(float(pad_x), float(pad_y), float(pad_x + out_w), float(pad_y + out_h)),
    )
    return out, transform


def transform_boxes(boxes: np.ndarray, transform: FrameTransform) -> np.ndarray:
    """Map ``[N, 4]`` xywh boxes from source to output pixels (no clipping)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)  # [N, 4]
    scale = np.array([transform.scale_x, transform.scale_y, transform.scale_x, transform.scale_y])
    offset = np.array([transform.offset_x, transform.offset_y, 0.0, 0.0])
    return boxes * scale + offset  # [N, 4]


@dataclass(frozen=True)
class ClippedBoxes:
    """Boxes clipped to a window; dropped boxes are counted by reason."""

    boxes: np.ndarray  # [M, 4] xywh of the kept boxes, inside the window
    keep: np.ndarray  # [N] bool, which input boxes were kept
    visibility: np.ndarray  # [M] kept area / full area, 1.0 for boxes not clipped
    counts: dict[str, int]  # clipped (kept, partly outside), zero_area, inverted, outside (dropped)


def clip_boxes(boxes: np.ndarray, window: tuple[float, float, float, float]) -> ClippedBoxes:
    """Clip ``[N, 4]`` xywh boxes to ``window`` ``(x0, y0, x1, y1)``.

    Dropped: inverted boxes (negative width or height), zero-area boxes, boxes entirely outside the window.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)  # [N, 4]
    x, y, w, h = boxes.T  # [N] each
    inverted = (w < 0) | (h < 0)
    zero_area = ~inverted & ((w == 0) | (h == 0))
    x0, y0 = np.maximum(x, window[0]), np.maximum(y, window[1])  # [N]
    x1, y1 = np.minimum(x + w, window[2]), np.minimum(y + h, window[3])  # [N]
    valid = ~inverted & ~zero_area
    outside = valid & ((x1 <= x0) | (y1 <= y0))
    keep = valid & ~outside
    crosses = (x < window[0]) | (y < window[1]) | (x + w > window[2]) | (y + h > window[3])
    clipped = keep & crosses
    area = np.where(keep, w * h, 1.0)  # [N]
    visible = np.where(keep, (x1 - x0) * (y1 - y0), 0.0) / area  # [N]
    return ClippedBoxes(
        boxes=np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)[keep],
        keep=keep,
        visibility=np.where(clipped, visible, 1.0)[keep],
        counts={
            "clipped": int(clipped.sum()),
            "zero_area": int(zero_area.sum()),
            "inverted": int(inverted.sum()),
            "outside": int(outside.sum()),
        },
    )
