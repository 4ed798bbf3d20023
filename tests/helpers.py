"""Builders shared by the tests: small params for the real code paths."""

from __future__ import annotations

import torch

from foresight_lib.params import Params, parse_params


def small_params(**sections: dict) -> Params:
    """Params for tests: a small synthetic benchmark at a reduced geometry, overridable per section."""
    raw: dict = {"data": {"height": 224, "width": 448, "n_frames": 9, "synthetic": {"n_clips": 6}}}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return parse_params(raw)


def input_keys(mode: str) -> tuple[str, str]:
    """The processor's pixel and grid keys of a Qwen image or video input."""
    return ("pixel_values", "image_grid_thw") if mode == "image" else ("pixel_values_videos", "video_grid_thw")


def input_dims(inputs: dict[str, torch.Tensor], mode: str) -> tuple[int, int, int]:
    """(T, h, w) of the inputs: total temporal slots and the patch grid."""
    grid = inputs[input_keys(mode)[1]]
    return int(grid[:, 0].sum()), int(grid[0, 1]), int(grid[0, 2])
