"""The report's figures: every training curve distinguishable, one CKA panel when the estimators agree."""

from __future__ import annotations

import numpy as np
from PIL import Image

from foresight_lib.report.plots import curve_styles, plot_cka


def test_every_curve_has_its_own_colour_and_style():
    points = [f"p{i}" for i in range(12)]
    labels = [f"{p}/{h}" for p in points for h in ("linear", "mlp", "dense", "detr")]
    styles = curve_styles(labels)
    assert len(set(styles.values())) == len(labels)
    few = curve_styles([f"{p}/{h}" for p in points[:7] for h in ("linear", "dense")])
    assert len({colour for colour, _ in few.values()}) == 7  # one hue per point (tab10)


def test_one_cka_panel_when_the_estimators_agree(tmp_path):
    m = np.array([[1.0, 0.4], [0.4, 1.0]])
    plot_cka(["a", "b"], {"linear": m, "debiased": m + 0.005}, tmp_path / "same.png")
    plot_cka(["a", "b"], {"linear": m, "debiased": m - 0.2}, tmp_path / "different.png")
    same, different = (Image.open(tmp_path / f"{n}.png").size[0] for n in ("same", "different"))
    assert different > 1.8 * same
