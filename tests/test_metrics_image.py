"""Per-frame PSNR, SSIM (against an independent scipy reference) and offline LPIPS."""

from __future__ import annotations

import lpips
import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from foresight_lib.errors import ForesightError
from foresight_lib.metrics import image as M


def _frames(n: int, seed: int, height: int = 64, width: int = 96) -> np.ndarray:
    """Smooth random frames (so SSIM is neither ~0 nor ~1 under noise), uint8 [n, H, W, 3]."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, height // 8, width // 8, 3)).astype(np.float64)
    return np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2).astype(np.uint8)


def _noisy(x: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, x.shape)
    return np.clip(x + noise, 0, 255).round().astype(np.uint8)


def _reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 written out with scipy on one frame [H, W, 3]: per channel, valid region, mean."""
    r = np.arange(11) - 5.0
    g = np.exp(-(r**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    maps = []
    for ch in range(3):
        a, b = x[..., ch].astype(np.float64), y[..., ch].astype(np.float64)
        mu_a, mu_b = correlate2d(a, w, "valid"), correlate2d(b, w, "valid")
        var_a = correlate2d(a * a, w, "valid") - mu_a**2
        var_b = correlate2d(b * b, w, "valid") - mu_b**2
        cov = correlate2d(a * b, w, "valid") - mu_a * mu_b
        maps.append((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(maps))


def test_psnr():
    x = _frames(2, 0) // 2 + 10  # values in [10, 137]: offsets never clip
    assert np.all(np.isinf(M.psnr(x, x)))
    y = x.copy()
    y[0] += 5
    y[1] -= 10
    np.testing.assert_allclose(M.psnr(x, y), [10 * np.log10(255**2 / 25), 10 * np.log10(255**2 / 100)])
    np.testing.assert_allclose(M.psnr(torch.from_numpy(x), torch.from_numpy(y)), M.psnr(x, y))


def test_ssim_identical_and_constant_offset():
    x = _frames(3, 1)
    np.testing.assert_allclose(M.ssim(x, x), 1.0, atol=1e-12)
    a, c = 100.0, 20.0
    flat = np.full((1, 32, 32, 3), a, np.uint8)
    expected = (2 * a * (a + c) + (0.01 * 255) ** 2) / (a**2 + (a + c) ** 2 + (0.01 * 255) ** 2)
    np.testing.assert_allclose(M.ssim(flat, flat + np.uint8(c)), [expected], rtol=1e-12)


def test_ssim_matches_reference():
    x = _frames(3, 2)
    y = _noisy(x, sigma=25.0, seed=3)
    got = M.ssim(x, y)
    np.testing.assert_allclose(got, [_reference_ssim(x[i], y[i]) for i in range(3)], rtol=1e-10)
    assert np.all((got > 0.05) & (got < 0.95))


def test_rejects_bad_frames():
    x = _frames(2, 0)
    with pytest.raises(ValueError, match="differ in shape"):
        M.psnr(x, x[:1])
    with pytest.raises(ValueError, match="uint8"):
        M.ssim(x.astype(np.float32), x)


@pytest.fixture
def no_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def test_lpips_unavailable_without_backbone(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ok, reason = M.lpips_available("alex")
    assert not ok and "alexnet-owt-7be5be79.pth" in reason and "not found" in reason
    assert str(tmp_path / "hub" / "checkpoints") in reason
    x = _frames(2, 0)
    result = M.lpips_distance(x, x, "alex")
    assert result.values is None and result.reason == reason
    with pytest.raises(ForesightError, match="unavailable"):
        M.Lpips("alex")


@pytest.mark.filterwarnings(
    "ignore:.*(pretrained|weights).*:UserWarning"
)  # stock lpips uses the legacy torchvision API
def test_lpips_runs_offline_with_cached_backbone(stand_in_torch_home, monkeypatch, no_download):
    monkeypatch.setenv("TORCH_HOME", stand_in_torch_home)
    assert M.lpips_available("alex")[0]
    x, y = _frames(3, 4), _frames(3, 5)
    metric = M.Lpips("alex")
    same, diff = metric(x, x), metric(x, y)
    assert same.shape == diff.shape == (3,)
    np.testing.assert_array_equal(same, 0.0)
    assert np.all(diff > 0)
    result = M.lpips_distance(x, y, "alex")
    np.testing.assert_allclose(result.values, diff, rtol=1e-6)
    # the same network as stock lpips built from the cached file (torchvision's own loader)
    stock = lpips.LPIPS(net="alex", verbose=False)
    with torch.no_grad():
        ref = stock(*(torch.from_numpy(t).permute(0, 3, 1, 2).float() / 255 * 2 - 1 for t in (x, y))).flatten()
    np.testing.assert_allclose(diff, ref.double().numpy(), rtol=1e-5)


def test_lpips_rejects_a_foreign_backbone_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = M.lpips_backbone_path("alex")
    path.parent.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(ForesightError, match="wrong shape"):
        M.Lpips("alex")
