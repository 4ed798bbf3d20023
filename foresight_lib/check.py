"""A dry check of a params file for a real run: validate it, then list what is present and what is missing.

    python -m foresight_lib.check profiles/real.yaml
    python -m foresight_lib.check --cost profiles/real.yaml   # disk and GPU-hours (foresight_lib/cost.py)

Reads no weights and decodes no video: it checks the params (the strict loader), the data paths, that
each checkpoint directory holds the expected model class and weight files, the LPIPS backbone file and
the GPU. Exit status 0 when everything is present, 1 when something is missing, 2 for invalid params.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .cost import estimate, format_cost
from .errors import ForesightError
from .extract import qwen
from .extract.encoders import checkpoint_class
from .ltx.vae import check_vae_dir, vae_weight_files
from .metrics.image import lpips_available
from .params import EncoderPoint, Params, load_params

Check = tuple[str, Callable[[], str]]  # (what, a call that returns a detail or raises ForesightError)


def _path(label: str, path: str | None, kind: str) -> Check:
    def check() -> str:
        if path is None:
            raise ForesightError(f"{label} is not set")
        p = Path(path)
        if not (p.is_dir() if kind == "dir" else p.exists()):
            raise ForesightError(f"{p} not found")
        return str(p)

    return label, check


def _qwen(source: str) -> str:
    path = Path(source)
    qwen.check_checkpoint_dir(path)
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise ForesightError(f"{path} has a Qwen2.5-VL config.json but no *.safetensors weights")
    return f"{path} (Qwen2.5-VL, {len(weights)} safetensors files)"


def _vae(source: str) -> str:
    folder = check_vae_dir(Path(source))
    return f"{folder} (LTX-Video VAE, {len(vae_weight_files(folder))} weight files)"


def _encoder(point: EncoderPoint) -> str:
    cls = checkpoint_class(Path(point.source), point.family)
    return f"{point.source} ({cls.__name__})"


def _lpips(net: str) -> str:
    ok, reason = lpips_available(net)
    if not ok:
        raise ForesightError(reason + " (LPIPS would be reported unavailable)")
    return reason


def _gpu() -> str:
    if not torch.cuda.is_available():
        raise ForesightError("no CUDA device visible (device: auto would run on the CPU)")
    return torch.cuda.get_device_name(0)


def checks(params: Params) -> list[Check]:
    """Everything a run with ``params`` reads from outside the repository."""
    out: list[Check] = []
    if params.data.source != "synthetic":
        out += [
            _path("data.video_dir", params.data.video_dir, "dir"),
            _path("data.annotations", params.data.annotations, "any"),
        ]
    qwen_points = [p for p in params.points.values() if p.kind in ("vit_embed", "vit_block", "merger", "llm")]
    if qwen_points and params.model.source != "tiny":
        out.append(("model.source", lambda: _qwen(params.model.source)))
    for name, point in params.points.items():
        if isinstance(point, EncoderPoint) and point.source != "tiny":
            out.append((f"points.{name}.source", lambda point=point: _encoder(point)))
    if params.ltx.source != "tiny":
        out.append(("ltx.source", lambda: _vae(params.ltx.source)))
    out.append((f"LPIPS backbone ({params.eval.lpips_net})", lambda: _lpips(params.eval.lpips_net)))
    if "cuda" in (params.model.device, params.ltx.device, params.adapter.train.device):
        out.append(("GPU", _gpu))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("params", nargs="?", default="params.yaml")
    parser.add_argument("--cost", action="store_true", help="print the disk and GPU-hours the profile needs instead")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        if args.cost:
            print(format_cost(estimate(params), args.params))
            return 0
    except ForesightError as err:
        print(f"invalid  {err}")
        return 2
    print(f"ok       {args.params}: valid params")
    missing = 0
    for what, check in checks(params):
        try:
            print(f"ok       {what}: {check()}")
        except ForesightError as err:
            missing += 1
            print(f"MISSING  {err}" if str(err).startswith(what) else f"MISSING  {what}: {err}")
    print(f"{missing} missing" if missing else "everything is present")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
