"""Model-neutral checkpoint helpers: config reading, identity hashes, pixel normalisation, weights records.

Every model family (Qwen2.5-VL, the dedicated encoders) loads a local directory the same way: its
``config.json`` is checked before any weight is read, its identity is a hash of its files' bytes (tensor values
included), its pixel normalisation comes from ``preprocessor_config.json``, and what produced a store is
one :func:`weights_identity` record.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from ..errors import ForesightError

SHA256_SCOPE = "config.json, preprocessor_config.json, and each weight file's name and bytes"
"""What a checkpoint's identity hash covers: every tensor value (two checkpoints of one layout with different
weights, e.g. a fine-tune or a random twin, get different identities)."""

_HASH_CACHE = "checkpoint_sha256.json"
"""File under ``$FORESIGHT_CACHE`` (default ``~/.cache/foresight``) remembering each weight file's sha256 by path,
size, mtime and inode, so the 15 GB of a 7B checkpoint are read once per machine, not once per stage."""


@dataclass(frozen=True)
class Normalization:
    """Pixel normalisation of an image processor: ``(x * rescale_factor - mean) / std`` per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    rescale_factor: float = 1 / 255


CLIP_NORMALIZATION = Normalization(mean=tuple(OPENAI_CLIP_MEAN), std=tuple(OPENAI_CLIP_STD))
"""The Qwen2-VL processors' default (OpenAI CLIP mean/std)."""


def normalize(frames: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` -> float32 ``[N, 3, H, W]``, with the processors' exact float arithmetic.

    The processors fuse rescale and normalise: ``(x - mean/rescale_factor) / (std/rescale_factor)``
    in float32, which is what makes the comparison with them bit-exact.
    """
    mean = torch.tensor(norm.mean, device=frames.device) * (1.0 / norm.rescale_factor)  # [3]
    std = torch.tensor(norm.std, device=frames.device) * (1.0 / norm.rescale_factor)  # [3]
    x = frames.permute(0, 3, 1, 2).to(torch.float32)  # [N, 3, H, W]
    return (x - mean[:, None, None]) / std[:, None, None]


def read_json(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON file; unreadable or invalid stops with a :class:`ForesightError` naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ForesightError(f"{path}: unreadable JSON: {exc}") from None


def checkpoint_sha256(path: Path) -> str:
    """Identity hash of a checkpoint directory over :data:`SHA256_SCOPE` (weight files' hashes cached: _HASH_CACHE)."""
    digest = hashlib.sha256()
    for name in ("config.json", "preprocessor_config.json"):
        if (path / name).is_file():
            digest.update(name.encode() + b"\0" + (path / name).read_bytes())
    for weights in sorted([*path.glob("*.safetensors"), *path.glob("*.bin")]):
        digest.update(f"{weights.name}\0{file_sha256(weights)}\0".encode())
    return digest.hexdigest()


def file_sha256(file: Path) -> str:
    """sha256 of a file's bytes, remembered in the machine's cache by (path, size, mtime, inode)."""
    stat = file.stat()
    key = f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"
    cache_file = Path(os.environ.get("FORESIGHT_CACHE", Path.home() / ".cache" / "foresight")) / _HASH_CACHE
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with file.open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    cache[key] = digest.hexdigest()
    try:  # best effort: a read-only home only costs a re-read next time
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, cache_file)
    except OSError:
        pass
    return cache[key]


def read_normalization(path: Path, default: Normalization = CLIP_NORMALIZATION) -> Normalization:
    """Mean/std/rescale factor from the checkpoint's ``preprocessor_config.json``, ``default`` where absent."""
    file = path / "preprocessor_config.json"
    if not file.is_file():
        return default
    config = read_json(file)
    return Normalization(
        mean=tuple(config.get("image_mean", default.mean)),
        std=tuple(config.get("image_std", default.std)),
        rescale_factor=config.get("rescale_factor", default.rescale_factor),
    )


def weights_identity(
    weights: str,
    *,
    dtype: torch.dtype,
    device: torch.device,
    attn_implementation: Any,
    norm: Normalization,
    path: Path | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The JSON record of what produced a store, for every model family.

    ``weights``: ``tiny-random`` (seeded random tiny model), ``random-init`` (a checkpoint's architecture,
    seeded random weights) or ``checkpoint`` (then ``path`` gets its resolved path, ``sha256`` and
    ``sha256_scope``); ``extra`` adds family-specific keys (seed, config, class, ...).
    """
    identity: dict[str, Any] = {"weights": weights, **extra}
    if weights == "checkpoint":
        if path is None:
            raise ValueError("a checkpoint's identity needs its path")
        identity |= {"path": str(path.resolve()), "sha256": checkpoint_sha256(path), "sha256_scope": SHA256_SCOPE}
    return identity | {
        "dtype": str(dtype).removeprefix("torch."),
        "device": device.type,
        "attn_implementation": attn_implementation,
        "normalization": asdict(norm),
    }
