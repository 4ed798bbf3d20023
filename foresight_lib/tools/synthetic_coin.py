"""A synthetic procedural set written in COIN's format, so the real reader (``data.source: coin``) runs on it.

    python -m foresight_lib.tools.synthetic_coin --out DIR [--videos 24 --height 224 --width 224 --fps 8 --seed 0]

writes ``DIR/COIN.json`` and ``DIR/videos/<id>.mp4`` (H.264). Each video is one task's procedure: one square on a
textured background goes through the task's steps (:data:`TASKS`, a fixed order per task), one segment each:
``appear`` (grows from nothing), ``move_right`` / ``move_down`` (travels a third of the frame that way),
``recolour`` (its colour blends into another), ``leave`` (moves up and out of the frame). Segments last 1.5-2.5 s
and a still pause of 0-0.5 s precedes each and follows the last. Tasks cycle over the videos (``video i`` does task
``i mod 4``); everything else depends only on ``(seed, i)``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np

STEPS: tuple[str, ...] = ("appear", "move_right", "move_down", "recolour", "leave")
"""Step labels; a step's COIN ``id`` is its index here plus 1."""

TASKS: dict[str, tuple[str, ...]] = {
    "slide": ("appear", "move_right", "leave"),
    "paint": ("appear", "recolour"),
    "drop": ("appear", "move_down", "recolour", "leave"),
    "tour": ("appear", "move_right", "move_down", "leave"),
}
"""Task (COIN ``class``) -> its steps in their fixed order."""


@dataclass(frozen=True)
class _State:
    x: float  # centre, px
    y: float
    size: float  # side, px
    colour: np.ndarray  # [3] float RGB


def _advance(step: str, s: _State, p: float, height: int, width: int, target: np.ndarray) -> _State:
    """The state a fraction ``p`` in [0, 1] through ``step`` begun in state ``s``."""
    full = min(height, width) / 4
    if step == "appear":
        return replace(s, size=full * p)
    if step == "move_right":
        return replace(s, x=s.x + width / 3 * p)
    if step == "move_down":
        return replace(s, y=s.y + height / 3 * p)
    if step == "recolour":
        return replace(s, colour=(1 - p) * s.colour + p * target)
    if step == "leave":
        return replace(s, y=s.y - (s.y + s.size) * p)
    raise ValueError(f"unknown step {step!r}")


def _render(s: _State, background: np.ndarray) -> np.ndarray:
    """The frame ``[H, W, 3]`` uint8 of state ``s`` over ``background``."""
    frame = background.copy()
    h, w = frame.shape[:2]
    half = s.size / 2
    y0, y1 = int(np.clip(round(s.y - half), 0, h)), int(np.clip(round(s.y + half), 0, h))
    x0, x1 = int(np.clip(round(s.x - half), 0, w)), int(np.clip(round(s.x + half), 0, w))
    frame[y0:y1, x0:x1] = np.round(s.colour).astype(np.uint8)
    return frame


def make_video(seed: int, index: int, height: int, width: int, fps: float) -> tuple[np.ndarray, dict]:
    """Video ``index``: its frames ``[N, H, W, 3]`` uint8 at ``fps`` and its COIN database entry."""
    rng = np.random.default_rng([seed, index])
    task_index = index % len(TASKS)
    task = list(TASKS)[task_index]
    background = (rng.integers(40, 90) + rng.integers(0, 24, size=(height, width, 1))).astype(np.uint8)
    background = np.repeat(background, 3, axis=2)  # [H, W, 3] grey texture
    colours = rng.integers(120, 256, size=(2, 3)).astype(np.float64)  # [2, 3] start, recolour target
    state = _State(x=width * rng.uniform(0.15, 0.3), y=height * rng.uniform(0.3, 0.45), size=0.0, colour=colours[0])
    spans: list[tuple[str, float, float]] = []
    t = 0.0
    for step in TASKS[task]:
        t += rng.uniform(0.0, 0.5)
        length = rng.uniform(1.5, 2.5)
        spans.append((step, t, t + length))
        t += length
    duration = t + rng.uniform(0.0, 0.5)
    frames = []
    times = np.arange(int(np.floor(duration * fps)) + 1) / fps  # [N]
    k, begun = 0, state  # the current or next segment, and the state it began in
    for time in times:
        while k < len(spans) and time >= spans[k][2]:  # finished segments
            begun = _advance(spans[k][0], begun, 1.0, height, width, colours[1])
            k += 1
        now = begun
        if k < len(spans) and time >= spans[k][1]:
            step, start, end = spans[k]
            now = _advance(step, begun, (time - start) / (end - start), height, width, colours[1])
        frames.append(_render(now, background))
    entry = {
        "annotation": [
            {"id": str(STEPS.index(step) + 1), "segment": [round(a, 3), round(b, 3)], "label": step}
            for step, a, b in spans
        ],
        "class": task,
        "recipe_type": task_index,
        "subset": "testing" if rng.uniform() < 0.2 else "training",
        "duration": round(float(duration), 3),
        "video_url": "",
    }
    return np.stack(frames), entry


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Encode ``frames [N, H, W, 3]`` uint8 as H.264 (yuv420p: even sides) with PyAV."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def write_synthetic_coin(out: str | Path, videos: int, seed: int, height: int, width: int, fps: int) -> Path:
    """Write ``videos`` procedural videos and their ``COIN.json`` under ``out``; returns the JSON's path."""
    if height % 2 or width % 2 or min(height, width) < 16:
        raise ValueError(f"height and width must be even and >= 16, got {height}x{width}")
    out = Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    database = {}
    for i in range(videos):
        frames, entry = make_video(seed, i, height, width, fps)
        write_video(out / "videos" / f"syn{i:04d}.mp4", frames, fps)
        database[f"syn{i:04d}"] = entry
    path = out / "COIN.json"
    path.write_text(json.dumps({"database": database}, indent=1))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory for COIN.json and videos/")
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=224)
    parser.add_argument("--width", type=int, default=224)
    parser.add_argument("--fps", type=int, default=8)
    args = parser.parse_args(argv)
    path = write_synthetic_coin(args.out, args.videos, args.seed, args.height, args.width, args.fps)
    print(f"wrote {args.videos} videos and {path}")


if __name__ == "__main__":
    main()
