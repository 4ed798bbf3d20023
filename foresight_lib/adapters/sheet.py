"""A small PNG sheet comparing frames: one row per clip, columns original | VAE ceiling | adapter (middle frame)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zarr
from PIL import Image, ImageDraw, ImageFont

COLUMNS = ("original", "VAE ceiling", "adapter")
GAP = 4
HEADER = 20
FONT_PX = 13  # Pillow's scalable default font: its bitmap fallback runs words together ("VAEceiling")
SCALE = 2  # downscale factor of every panel


def write_sheet(
    frames: zarr.Array, ceiling: zarr.Array, decoded: zarr.Array, n_clips: int, out_path: str | Path
) -> None:
    """The middle frame of the first ``n_clips`` decoded clips beside their original and ceiling frames."""
    clips: Sequence[int] = [int(c) for c in decoded.attrs["clips"]][:n_clips]
    middle = frames.shape[1] // 2
    rows = [
        [np.asarray(frames[c, middle]), np.asarray(ceiling[r, middle]), np.asarray(decoded[r, middle])]
        for r, c in enumerate(clips)
    ]
    h, w = rows[0][0].shape[0] // SCALE, rows[0][0].shape[1] // SCALE
    sheet = Image.new("RGB", (len(COLUMNS) * (w + GAP) - GAP, HEADER + len(rows) * (h + GAP) - GAP), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=FONT_PX)
    for j, title in enumerate(COLUMNS):
        draw.text((j * (w + GAP) + 2, 3), title, fill="black", font=font)
    for i, (clip, panels) in enumerate(zip(clips, rows, strict=True)):
        top = HEADER + i * (h + GAP)
        for j, panel in enumerate(panels):
            sheet.paste(Image.fromarray(panel).resize((w, h), Image.Resampling.BOX), (j * (w + GAP), top))
        draw.text(
            (3, top + 2), f"clip {clip}, frame {middle}", fill="white", font=font, stroke_width=1, stroke_fill="black"
        )
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_path)
