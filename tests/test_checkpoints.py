"""A checkpoint's identity covers its tensor values (a fine-tune or a random twin of one layout differs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from foresight_lib.extract.checkpoints import checkpoint_sha256, file_sha256


def _checkpoint(root: Path, value: float) -> Path:
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"model_type": "dinov2", "hidden_size": 4}))
    save_file({"w": torch.full((4, 4), value)}, str(root / "model.safetensors"))
    return root


def test_same_layout_different_values_differ_and_same_bytes_agree(tmp_path, monkeypatch):
    monkeypatch.setenv("FORESIGHT_CACHE", str(tmp_path / "cache"))
    a, b, c = (_checkpoint(tmp_path / n, v) for n, v in (("a", 1.0), ("b", 2.0), ("c", 1.0)))
    assert checkpoint_sha256(a) != checkpoint_sha256(b)  # same header, different values
    assert checkpoint_sha256(a) == checkpoint_sha256(c)


def test_the_file_hash_cache_follows_the_file(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("FORESIGHT_CACHE", str(tmp_path / "cache"))
    file = tmp_path / "w.bin"
    file.write_bytes(b"one")
    assert file_sha256(file) == hashlib.sha256(b"one").hexdigest()
    assert (tmp_path / "cache" / "checkpoint_sha256.json").is_file()
    file.write_bytes(b"two")  # same size, rewritten: new mtime
    os.utime(file, ns=(1, 1))
    assert file_sha256(file) == hashlib.sha256(b"two").hexdigest()
