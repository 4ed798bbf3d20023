"""Builders shared by the tests: small params for the real code paths."""

from __future__ import annotations

from foresight_lib.params import Params, parse_params


def small_params(**sections: dict) -> Params:
    """Params for tests: a small synthetic benchmark at a reduced geometry, overridable per section."""
    raw: dict = {"data": {"height": 224, "width": 448, "n_frames": 9, "synthetic": {"n_clips": 6}}}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return parse_params(raw)
