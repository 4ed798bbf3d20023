"""A trained pixel-control probe saved to disk and reused as a box detector on any frames.

The decoded-video evaluation asks "does the decoded video put objects in the right place" with the same
detector on original and decoded frames: the ``pixels`` point's probe, trained on real frames by its
``probe@pixels`` stage. It sees only raw pixel patches, so it runs on decoded frames without any model.
Saved as ``<dir>/<head>.safetensors`` (weights) and ``<dir>/<head>.json`` (how to rebuild and feed it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import ForesightError
from ..extract.pixels import pixel_patches
from ..features_loader import Standardiser
from ..metrics.operating import OperatingPoint
from ..params import ProbeParams
from .base import Detections, SpatialProbe
from .heads import make_probe


def save_probe(
    directory: str | Path,
    head: str,
    probe: SpatialProbe,
    point: OperatingPoint,
    n_classes: int,
    mean: np.ndarray,
    std: np.ndarray,
    stride: int,
    definition: dict[str, Any],
    dtype: str,
    params: ProbeParams,
) -> None:
    """Write a trained head with what it needs to run again: its operating point (chosen on validation), input
    statistics, stride, point definition and the storage dtype of the features it was trained on."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in probe.state_dict().items()}, directory / f"{head}.safetensors"
    )
    config = {
        "head": head,
        "operating_point": point.as_dict(),
        "channels": int(mean.shape[0]),
        "n_classes": n_classes,
        "stride": stride,
        "definition": definition,
        "dtype": dtype,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "params": params.model_dump(),
    }
    (directory / f"{head}.json").write_text(json.dumps(config, indent=1))


class ProbeDetector:
    """Boxes on uint8 frames ``[N, H, W, 3]`` from a saved ``pixels``-point probe: per frame ``(boxes xywh px [M, 4],
    scores [M], category ids [M])``, every decoded detection (bbox IoU counts those kept at ``operating_point``)."""

    def __init__(self, directory: str | Path, head: str) -> None:
        directory = Path(directory)
        config_path, weights_path = directory / f"{head}.json", directory / f"{head}.safetensors"
        if not config_path.is_file() or not weights_path.is_file():
            raise ForesightError(f"no saved {head!r} probe in {directory} (run its probe stage first)")
        config = json.loads(config_path.read_text())
        if config["definition"].get("kind") != "pixels":
            raise ForesightError(
                f"{directory}: the detector must be a pixels-point probe (it runs on frames alone), "
                f"got a {config['definition'].get('kind')!r} point"
            )
        self.patch = int(config["definition"]["patch"])
        self.stride = int(config["stride"])
        self.params = ProbeParams(**config["params"])
        self.operating_point = OperatingPoint(**config["operating_point"])
        self.probe = make_probe(head, config["channels"], config["n_classes"], self.params)
        self.probe.load_state_dict(load_file(weights_path))
        self.probe.eval()
        self.dtype = np.dtype(config["dtype"])  # features are rounded as the trained-on store rounded them
        self.standardiser = Standardiser(
            np.asarray(config["mean"], dtype=np.float32), np.asarray(config["std"], dtype=np.float32)
        )  # [C] each

    @torch.no_grad()
    def __call__(self, frames: np.ndarray, batch: int = 16) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out = []
        for start in range(0, len(frames), batch):
            patches = pixel_patches(frames[start : start + batch], self.patch).astype(self.dtype)  # [B, gh, gw, C]
            # held and standardised as the probe stage's loader does (features_loader)
            grids = self.standardiser.apply(torch.from_numpy(patches.astype(np.float16))).float()
            detections: list[Detections] = self.probe.decode(self.probe(grids), self.stride)
            out.extend((d.boxes, d.scores, d.labels + 1) for d in detections)
        return out
