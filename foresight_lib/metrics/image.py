"""Per-frame image quality: PSNR, SSIM and LPIPS, for uint8 frames ``[N, H, W, 3]`` (data range 255).

LPIPS runs offline only: its backbone (torchvision ImageNet weights) must already sit in
``torch.hub.get_dir()/checkpoints/``; otherwise the metric is *unavailable*, reported with the reason, never faked.
"""

from __future__ import annotations

import importlib.util
import pickle
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy import ndimage

from ..errors import ForesightError

LpipsNet = Literal["alex", "vgg", "squeeze"]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 255.0

BACKBONE_URLS = {  # torchvision's IMAGENET1K_V1 weights of each LPIPS backbone (tested against torchvision)
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}
_SLICE_KEY = re.compile(r"slice\d+\.(\d+)\.(.+)")
_CHUNK = 16  # frames per SSIM / LPIPS forward


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-frame PSNR in dB, float64 ``[N]``; identical frames give ``inf``."""
    x, y = _pair(a, b)
    mse = ((x.astype(np.float64) - y.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))  # [N]
    with np.errstate(divide="ignore"):
        return 10 * np.log10(DATA_RANGE**2 / mse)


def ssim(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-frame SSIM (Wang et al. 2004), float64 ``[N]``.

    Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, population (co)variances, computed on each RGB channel
    over the valid region (no padding) and averaged over channels and positions: the same number as
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    channel_axis=-1, data_range=255)``. Frames must be at least 11 px on each side.
    """
    x, y = _pair(a, b)
    if min(x.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} px, got {x.shape[1]}x{x.shape[2]}")
    g = _gaussian_1d()  # [11]; the 2-D window is outer(g, g)
    r = SSIM_WINDOW // 2
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2

    def blur(t: np.ndarray) -> np.ndarray:  # [H, W, 3] -> valid region [H - 10, W - 10, 3]
        t = ndimage.correlate1d(ndimage.correlate1d(t, g, axis=0), g, axis=1)
        return t[r:-r, r:-r]

    out = np.empty(len(x))
    for i in range(len(x)):
        xs, ys = x[i].astype(np.float64), y[i].astype(np.float64)  # [H, W, 3]
        mu_x, mu_y, e_xx, e_yy, e_xy = (blur(t) for t in (xs, ys, xs * xs, ys * ys, xs * ys))
        var_x, var_y, cov = e_xx - mu_x**2, e_yy - mu_y**2, e_xy - mu_x * mu_y
        num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        out[i] = (num / den).mean()
    return out


def lpips_backbone_path(net: LpipsNet = "alex") -> Path:
    """Where torchvision keeps (and LPIPS needs) the ImageNet backbone of ``net``: the torch hub checkpoint dir."""
    if net not in BACKBONE_URLS:
        raise ValueError(f"LPIPS net must be one of {sorted(BACKBONE_URLS)}, got {net!r}")
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(BACKBONE_URLS[net]).name


def lpips_available(net: LpipsNet = "alex") -> tuple[bool, str]:
    """Whether LPIPS ``net`` can run offline, with the reason (or the backbone file used); never downloads."""
    backbone = lpips_backbone_path(net)
    heads = _heads_path(net)
    if not backbone.is_file():
        return False, (
            f"LPIPS ({net}) unavailable: backbone weights {backbone} not found "
            f"(torchvision's {backbone.name}, from {BACKBONE_URLS[net]}; copy it there, no download is tried)"
        )
    if not heads.is_file():
        return False, f"LPIPS ({net}) unavailable: linear heads {heads} missing from the lpips package"
    return True, f"LPIPS ({net}) backbone {backbone}"


class Lpips:
    """LPIPS v0.1 with the ImageNet backbone read from the hub cache (ForesightError when unavailable).

    The model is built without weights (so neither lpips nor torchvision loads or downloads anything), then the
    linear heads from the lpips wheel and the backbone from :func:`lpips_backbone_path` are loaded strictly with
    ``torch.load(weights_only=True)``: the same network as ``lpips.LPIPS(net=net)`` with a cached backbone.
    """

    def __init__(self, net: LpipsNet = "alex", device: str | torch.device = "cpu") -> None:
        ok, reason = lpips_available(net)
        if not ok:
            raise ForesightError(reason)
        self.net = net
        self.backbone = lpips_backbone_path(net)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(pretrained|weights).*", category=UserWarning)
            import lpips  # imported here: it pulls in torchvision's model zoo (seconds), needed only for LPIPS

            model = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)
        model.lins.load_state_dict(_load(_heads_path(net), _heads_key, model.lins.state_dict()))
        model.net.load_state_dict(_load(self.backbone, _backbone_key, model.net.state_dict()))
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
        """Per-frame LPIPS distance, float64 ``[N]`` (0 for identical frames)."""
        x, y = _pair(a, b)
        out = []
        for start in range(0, len(x), _CHUNK):
            xs, ys = (self._to_input(t[start : start + _CHUNK]) for t in (x, y))  # [n, 3, H, W] in [-1, 1]
            out.append(self.model(xs, ys).flatten().to(torch.float64).cpu())  # [n]
        return torch.cat(out).numpy()

    def _to_input(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``[n, H, W, 3]`` -> float32 ``[n, 3, H, W]`` in [-1, 1] on the model's device."""
        t = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2)
        return t.to(torch.float32) / DATA_RANGE * 2 - 1


@dataclass(frozen=True)
class LpipsResult:
    """Per-frame LPIPS, or None with the reason it is unavailable."""

    values: np.ndarray | None  # [N] float64
    reason: str


def lpips_distance(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    net: LpipsNet = "alex",
    device: str | torch.device = "cpu",
) -> LpipsResult:
    """One-shot LPIPS: per-frame values, or ``values=None`` and the reason when the backbone is not cached."""
    ok, reason = lpips_available(net)
    return LpipsResult(Lpips(net, device)(a, b) if ok else None, reason)


def _pair(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as uint8 numpy ``[N, H, W, 3]`` of equal shape."""
    x, y = (t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t) for t in (a, b))
    for t in (x, y):
        if t.dtype != np.uint8 or t.ndim != 4 or t.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [N, H, W, 3], got {t.dtype} {t.shape}")
    if x.shape != y.shape:
        raise ValueError(f"frame stacks differ in shape: {x.shape} vs {y.shape}")
    return x, y


def _gaussian_1d() -> np.ndarray:
    """Normalised 1-D Gaussian, float64 ``[11]``: the SSIM window is its outer product (separable)."""
    r = np.arange(SSIM_WINDOW, dtype=np.float64) - (SSIM_WINDOW - 1) / 2
    g = np.exp(-(r**2) / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def _heads_path(net: LpipsNet) -> Path:
    """The linear heads shipped inside the lpips wheel (located without importing lpips)."""
    return Path(importlib.util.find_spec("lpips").origin).parent / "weights" / "v0.1" / f"{net}.pth"


def _heads_key(key: str) -> str:
    """``lins`` key ``0.model.1.weight`` -> file key ``lin0.model.1.weight``."""
    return f"lin{key}"


def _backbone_key(key: str) -> str:
    """lpips backbone key ``slice2.3.weight`` -> torchvision key ``features.3.weight`` (slices keep the indices)."""
    index, rest = _SLICE_KEY.fullmatch(key).groups()
    return f"features.{index}.{rest}"


def _load(path: Path, file_key: Callable[[str], str], wanted: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors for ``wanted``'s keys read from ``path`` (keys mapped by ``file_key``), shapes checked."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        raise ForesightError(f"LPIPS weights {path}: cannot be read ({' '.join(str(exc).split())[:300]})") from None
    if not isinstance(state, dict):
        raise ForesightError(f"LPIPS weights {path}: not a state dict (got {type(state).__name__})")
    bad = [file_key(k) for k, v in wanted.items() if getattr(state.get(file_key(k)), "shape", None) != v.shape]
    if bad:
        raise ForesightError(
            f"LPIPS weights {path}: {len(bad)} tensors missing or of the wrong shape (first: {bad[0]})"
        )
    return {k: state[file_key(k)] for k in wanted}
