import numpy as np
import pytest

from foresight_lib.data.clip import DIRECTIONS
from foresight_lib.data.synthetic import CATEGORIES, make_clip, travel_offset

H, W, F = 224, 448, 9


@pytest.fixture(scope="module")
def clips():
    return [make_clip(7, i, H, W, F, with_owner=True) for i in range(12)]


def test_boxes_are_tight_around_visible_pixels(clips):
    checked = 0
    for clip in clips:
        owner = clip.extra["owner"]  # [F, H, W]
        for row in clip.objects.itertuples():
            ys, xs = np.nonzero(owner[row.frame] == row.object_id)
            x0, y0, x1, y1 = row.x, row.y, row.x + row.w - 1, row.y + row.h - 1
            # Every visible pixel lies inside the box, and the box touches the pixels on all four sides.
            assert xs.min() == x0 and xs.max() == x1 and ys.min() == y0 and ys.max() == y1
            assert 0 <= x0 and x1 < W and 0 <= y0 and y1 < H
            assert 0 < row.visibility <= 1
            checked += 1
    assert checked > 100


def test_owner_masks_are_what_is_drawn(clips):
    # Pixels an object covers in the first frame and has left by the last frame changed value:
    # the masks the boxes come from are the pixels actually drawn.
    for clip in clips[:4]:
        owner = clip.extra["owner"]  # [F, H, W]
        left = (owner[0] > 0) & (owner[-1] == 0)
        assert left.sum() > 100
        changed = np.abs(clip.frames[0].astype(int) - clip.frames[-1].astype(int)).sum(-1) > 0  # [H, W]
        assert changed[left].mean() > 0.95


def test_motion_matches_direction_and_speed(clips):
    step = {"right": (1, 0), "down": (0, 1), "left": (-1, 0), "up": (0, -1)}
    for clip in clips:
        dx, dy = step[DIRECTIONS[clip.direction]]
        full = clip.objects[clip.objects.visibility == 1.0].sort_values("frame")
        for _, track in full.groupby("object_id"):
            if len(track) < 2:
                continue
            moved_x = np.diff(track.x.to_numpy()) / np.diff(track.frame.to_numpy())
            moved_y = np.diff(track.y.to_numpy()) / np.diff(track.frame.to_numpy())
            along, across = (moved_x, moved_y) if dx else (moved_y, moved_x)
            assert np.all(along * (dx or dy) >= 0) and np.all(across == 0)  # the direction label holds


def test_motion_accelerates_so_time_is_asymmetric(clips):
    """Per-frame displacement grows: a forward clip speeds up, its reverse slows down."""
    step = {"right": (1, 0), "down": (0, 1), "left": (-1, 0), "up": (0, -1)}
    checked = 0
    for clip in clips:
        dx, _ = step[DIRECTIONS[clip.direction]]
        full = clip.objects[clip.objects.visibility == 1.0].sort_values("frame")
        for _, track in full.groupby("object_id"):
            frames = track.frame.to_numpy()
            if len(track) < 4 or np.any(np.diff(frames) != 1):
                continue
            along = np.abs(np.diff((track.x if dx else track.y).to_numpy()))
            assert np.all(np.diff(along) >= -1)  # non-decreasing up to rounding
            assert along[-1] > along[0] + 2
            reversed_along = along[::-1]
            assert reversed_along[0] > reversed_along[-1]  # the reversed clip decelerates: distinguishable
            checked += 1
    assert checked >= 5
    assert travel_offset(10.0, 0, 9) == 0.0 and travel_offset(10.0, 8, 9) == pytest.approx(80.0)
    assert travel_offset(10.0, 1, 9) == pytest.approx(5.625) and travel_offset(10.0, 8, 9) - travel_offset(
        10.0, 7, 9
    ) == pytest.approx(14.375)
    assert travel_offset(10.0, 0, 1) == 0.0


def test_benchmark_has_the_promised_variety(clips):
    objects = __import__("pandas").concat([c.objects for c in clips])
    assert set(objects.category) <= set(CATEGORIES) and len(set(objects.category)) >= 3
    assert len({c.objects.object_id.nunique() for c in clips}) >= 2, "clips must differ in object count"
    assert len({c.direction for c in clips}) >= 3
    assert (objects.visibility < 1).any(), "some objects must be partly occluded or leave the frame"
    assert any(c.extra["occluded"] for c in clips)
    # Some object is cut by the frame edge.
    edge = (objects.x == 0) | (objects.y == 0) | (objects.x + objects.w == W) | (objects.y + objects.h == H)
    assert edge.any()


def test_generator_is_deterministic_per_seed_and_differs_across_seeds():
    a, b, c = make_clip(3, 5, H, W, F), make_clip(3, 5, H, W, F), make_clip(4, 5, H, W, F)
    assert np.array_equal(a.frames, b.frames) and a.objects.equals(b.objects)
    assert not np.array_equal(a.frames, c.frames)
    assert not np.array_equal(make_clip(3, 6, H, W, F).frames, a.frames)


def test_backgrounds_are_textured_not_uniform(clips):
    for clip in clips[:4]:
        bg = clip.frames[0][clip.extra["owner"][0] == 0].astype(float)  # [n, 3]
        assert bg.std(0).min() > 5
