"""The embedded default data: a seeded synthetic spatial benchmark at the real geometry.

Each clip shows 1 to 3 objects (categories = shapes; random colour, texture and size) moving in one
of :data:`DIRECTIONS` over a textured, non-uniform background, accelerating uniformly: an object's offset at
frame ``f`` of ``F`` is ``speed * (F - 1) * (u + u**2) / 2`` along the direction (``u = f / (F - 1)``), so its
per-frame displacement grows linearly from about half its mean speed ``speed`` (px per frame) to about 1.5 times
it. Motion is therefore time-asymmetric: a reversed clip decelerates, unlike any forward clip, so frame order is
visible in the pixels of three or more frames (a single pair of frames still cannot tell a reversed clip from one
moving the other way). Starting at rest instead weakened the direction signal of the early frames (the pixel
control's direction probe fell from passing to 5/8 on the probe tests' 8 test clips). Some clips have a
static foreground bar that occludes objects passing behind it; some objects leave (or enter) the frame.

Ground truth per frame is *modal*: the box is the tight box of the object's visible pixels (after
occlusion by the bar, by objects drawn later, and by the frame edge), and ``visibility`` is the visible
pixel count over the object's full area. An object with fewer than :data:`MIN_VISIBLE_PIXELS` visible
pixels in a frame is not annotated in that frame. Masks are hard-edged, so boxes are exact.

Clip ``i`` depends only on ``(seed, i)``: adding clips does not change earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from .clip import DIRECTIONS, OBJECT_COLUMNS, Clip

CATEGORIES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
TEXTURES: tuple[str, ...] = ("solid", "stripes", "checker")
PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [250, 250, 250],
        [20, 20, 20],
    ],
    dtype=np.uint8,
)  # [10, 3]
MIN_VISIBLE_PIXELS = 16
SIZE_RANGE = (48, 128)  # object side in pixels
SPEED_RANGE = (6.0, 20.0)  # mean pixels per frame
_STEP = {"right": (1, 0), "down": (0, 1), "left": (-1, 0), "up": (0, -1)}


@dataclass(frozen=True)
class _Object:
    category: str
    size: int
    colour: np.ndarray  # [2, 3] uint8: main and texture colour
    texture: str
    x0: float  # top-left corner at frame 0
    y0: float
    speed: float


def _shape_mask(category: str, size: int) -> np.ndarray:
    """Hard-edged mask of a shape inscribed in a ``size`` x ``size`` square, touching all four sides."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # pixel centres
    c = size / 2
    if category == "circle":
        mask = (xx - c) ** 2 + (yy - c) ** 2 <= c**2
    elif category == "square":
        mask = np.ones((size, size), dtype=bool)
    elif category == "triangle":  # apex at top centre, base on the bottom row
        mask = np.abs(xx - c) <= yy / 2
    elif category == "cross":
        arm = size / 6
        mask = (np.abs(xx - c) <= arm) | (np.abs(yy - c) <= arm)
    else:
        raise ValueError(f"unknown category {category!r}")
    # Crop to the mask's own extent, so a box built from the mask is tight by construction.
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _texture(texture: str, shape: tuple[int, int], colour: np.ndarray, phase: int) -> np.ndarray:
    """[h, w, 3] uint8 fill of an object: ``colour[0]`` with a ``colour[1]`` pattern."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    if texture == "solid":
        pattern = np.zeros((h, w), dtype=bool)
    elif texture == "stripes":
        pattern = ((xx + yy + phase) // 8) % 2 == 1
    else:  # checker
        pattern = ((xx // 10) + (yy // 10) + phase) % 2 == 1
    return np.where(pattern[..., None], colour[1], colour[0]).astype(np.uint8)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Textured, non-uniform background: a colour gradient, low-frequency blobs and fine noise. [H, W, 3] uint8."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(40, 200, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1) / 2
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    coarse = rng.normal(0, 30, size=(height // 48 + 2, width // 48 + 2, 3)).astype(np.float32)
    zoom = (height / (coarse.shape[0] - 1), width / (coarse.shape[1] - 1), 1)
    img += ndimage.zoom(coarse, zoom, order=1, grid_mode=False)[:height, :width]
    img += rng.normal(0, 8, size=(height, width, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _occluder(rng: np.random.Generator, height: int, width: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """A static vertical or horizontal textured bar in front of the objects."""
    thickness = int(rng.integers(28, 64))
    colour = PALETTE[rng.choice(len(PALETTE), size=2, replace=False)]
    if rng.random() < 0.5:
        x = int(rng.integers(width // 5, 4 * width // 5 - thickness))
        region = (slice(0, height), slice(x, x + thickness))
    else:
        y = int(rng.integers(height // 5, 4 * height // 5 - thickness))
        region = (slice(y, y + thickness), slice(0, width))
    shape = (region[0].stop - region[0].start, region[1].stop - region[1].start)
    return region, _texture("stripes", shape, colour, 0)


def travel_offset(speed: float, frame: int, n_frames: int) -> float:
    """Distance (px) an object has moved by ``frame``: accelerating uniformly to cover ``speed * (F - 1)``, its
    per-frame displacement growing from ``speed (1 + 1/(F-1)) / 2`` to ``speed (3 - 1/(F-1)) / 2``."""
    if n_frames < 2:
        return 0.0
    u = frame / (n_frames - 1)
    return speed * (n_frames - 1) * (u + u**2) / 2


def _sample_object(rng: np.random.Generator, height: int, width: int, direction: str, n_frames: int) -> _Object:
    size = int(rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1))
    speed = float(rng.uniform(*SPEED_RANGE))
    dx, dy = _STEP[direction]
    travel = speed * (n_frames - 1)
    exits = rng.random() < 0.25  # start close to the far edge so the object leaves the frame
    # Along the motion axis: inside the frame for the whole clip, unless it exits.
    extent = width if dx else height
    if exits:
        lead = rng.uniform(0, min(travel, extent - size) * 0.8)
        along = extent - size - lead if (dx > 0 or dy > 0) else lead
    else:
        room = max(extent - size - travel, 0.0)
        start = rng.uniform(0, room)
        along = start if (dx > 0 or dy > 0) else extent - size - start
    across = rng.uniform(0, (height if dx else width) - size)
    x0, y0 = (along, across) if dx else (across, along)
    colours = PALETTE[rng.choice(len(PALETTE), size=2, replace=False)]
    return _Object(
        category=CATEGORIES[int(rng.integers(len(CATEGORIES)))],
        size=size,
        colour=colours,
        texture=TEXTURES[int(rng.integers(len(TEXTURES)))],
        x0=float(x0),
        y0=float(y0),
        speed=speed,
    )


def make_clip(
    seed: int,
    index: int,
    height: int,
    width: int,
    n_frames: int,
    min_objects: int = 1,
    max_objects: int = 3,
    occlusion_prob: float = 0.3,
    with_owner: bool = False,
) -> Clip:
    """Render clip ``index`` of the benchmark for ``seed``: frames [F, H, W, 3] and modal ground truth.

    ``with_owner`` also returns ``clip.extra["owner"]``: int16 [F, H, W], the object id drawn at each
    pixel (0: background or occluder), the masks the boxes are measured from.
    """
    rng = np.random.default_rng([seed, index])
    direction = int(rng.integers(len(DIRECTIONS)))
    name = DIRECTIONS[direction]
    dx, dy = _STEP[name]
    background = _background(rng, height, width)
    n_obj = int(rng.integers(min_objects, max_objects + 1))
    objects = [_sample_object(rng, height, width, name, n_frames) for _ in range(n_obj)]
    occluder = _occluder(rng, height, width) if rng.random() < occlusion_prob else None
    masks = [_shape_mask(o.category, o.size) for o in objects]
    fills = [_texture(o.texture, m.shape, o.colour, i) for i, (o, m) in enumerate(zip(objects, masks))]

    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    owners = np.empty((n_frames, height, width), dtype=np.int16) if with_owner else None
    rows: list[tuple] = []
    for f in range(n_frames):
        img = background.copy()
        owner = np.zeros((height, width), dtype=np.int16)  # object id drawn at each pixel (last drawn wins)
        for k, (obj, mask, fill) in enumerate(zip(objects, masks, fills)):
            offset = travel_offset(obj.speed, f, n_frames)
            x = int(round(obj.x0 + dx * offset))
            y = int(round(obj.y0 + dy * offset))
            mh, mw = mask.shape
            ys, xs = slice(max(y, 0), min(y + mh, height)), slice(max(x, 0), min(x + mw, width))
            if ys.start >= ys.stop or xs.start >= xs.stop:
                continue
            sub = mask[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x]
            img[ys, xs][sub] = fill[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x][sub]
            owner[ys, xs][sub] = k + 1
        if occluder is not None:
            region, bar = occluder
            img[region] = bar
            owner[region] = 0
        frames[f] = img
        if owners is not None:
            owners[f] = owner
        for k, obj in enumerate(objects):
            visible = owner == k + 1
            count = int(visible.sum())
            if count < MIN_VISIBLE_PIXELS:
                continue
            r, c = np.flatnonzero(visible.any(1)), np.flatnonzero(visible.any(0))
            rows.append(
                (
                    f,
                    k + 1,
                    obj.category,
                    float(c[0]),
                    float(r[0]),
                    float(c[-1] - c[0] + 1),
                    float(r[-1] - r[0] + 1),
                    count / float(masks[k].sum()),
                )
            )
    table = pd.DataFrame(rows, columns=list(OBJECT_COLUMNS))
    return Clip(
        name=f"synthetic_{index:05d}",
        frames=frames,
        objects=table,
        direction=direction,
        source="synthetic",
        speed=float(np.mean([o.speed for o in objects])),
        extra={"owner": owners, "occluded": occluder is not None} if with_owner else {},
    )
