"""A dry check of a params file for a real run: validate it, list what is present, what is missing and where to
get it, and the GPU memory the run needs.

    python -m foresight_lib.check profiles/real.yaml
    python -m foresight_lib.check --cost profiles/real.yaml   # disk and GPU-hours (foresight_lib/cost.py)

Reads no weights and decodes no video: it checks the params (the strict loader), the data paths, that
each checkpoint directory holds the expected model class and weight files, the LPIPS backbone file and
the GPU; then the inputs' contents with the check the pipeline's ``validate`` stages run
(:mod:`foresight_lib.validate`: annotations that parse and hold clips, a video directory holding videos, layers
within the checkpoints' depths; for ``params.yaml`` beside a ``dvc.yaml``, that its generated stages match the
multi_scale entries, :mod:`foresight_lib.pipeline`). Each missing input says where to get it (model id and download command, dataset
page). Exit status 0 when everything is present, 1 when something is missing or wrong, 2 for invalid params.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .cost import estimate, format_cost
from .errors import ForesightError
from .extract.encoders import checkpoint_class
from .families import FAMILIES, check_checkpoint_dir
from .kinds import KINDS
from .ltx.vae import check_vae_dir, vae_weight_files
from .metrics.image import lpips_available
from .params import EncoderPoint, ModelParams, Params, load_params
from .pipeline import pipeline_problems
from .validate import data_problems, run_problems

Check = tuple[str, Callable[[], str], str]  # (what, a call that returns a detail or raises, where to get it)

LTX_ID = "Lightricks/LTX-Video"
ENCODER_IDS = {  # family: the Hugging Face model id of its base checkpoint ({size} from the directory's name)
    "dinov2": "facebook/dinov2-{size}",
    "owlvit": "google/owlvit-base-patch32",
    "owlv2": "google/owlv2-base-patch16-ensemble",
    "siglip": "google/siglip-base-patch16-224",
}
DATA_PAGES = {
    "something_else": (
        "the Something-Something v2 videos (<id>.webm): "
        "https://www.qualcomm.com/developer/software/something-something-v-2-dataset",
        "the Something-Else boxes (bounding_box_smthsmth_part*.json): https://github.com/joaanna/something_else",
    ),
    "coco_video": (
        "your videos, named as the annotation file's videos list them",
        "a COCO-style video annotation file",
    ),
    "coin": (
        "the COIN videos from YouTube by their ids (`video_url` in COIN.json), saved as <id>.mp4, e.g. with yt-dlp",
        "COIN.json: https://github.com/coin-dataset/annotations (linked from https://coin-dataset.github.io)",
    ),
}


def _download(model_id: str, where: str) -> str:
    return f"get {model_id}: huggingface-cli download {model_id} --local-dir {where}"


def _encoder_id(point: EncoderPoint) -> str:
    name = Path(point.source).name.lower()
    size = next((s for s in ("small", "base", "large", "giant") if s in name), "small")
    return ENCODER_IDS[point.family].format(size=size)


def _path(label: str, path: str, kind: str, hint: str) -> Check:
    def check() -> str:
        p = Path(path)
        if not (p.is_dir() if kind == "dir" else p.exists()):
            raise ForesightError(f"{p} not found")
        return str(p)

    return label, check, hint


def _vlm(model: ModelParams, key: str) -> str:
    """``model``'s checkpoint directory (``key``: its params section): its config.json's model_type (with a hint when
    it is another family's) and the family's files (:attr:`foresight_lib.families.FamilyInfo.files`)."""
    path, info = Path(model.source), FAMILIES[model.family]
    try:
        check_checkpoint_dir(path, model.family)
    except ForesightError as err:  # its messages name the `model` section
        message = str(err).replace("model.source", f"{key}.source").replace("model.family", f"{key}.family")
        raise ForesightError(message) from None
    for pattern in info.files:
        if not any(path.glob(pattern)):
            raise ForesightError(f"{key}.source: {path} has a {info.title} config.json but no {pattern}")
    weights = sorted(path.glob("*.safetensors"))
    return f"{path} ({info.title}, {len(weights)} safetensors files)"


def vlm_models(params: Params) -> dict[str, ModelParams]:
    """The models the VLM points read, by params key (``model`` or ``models.<name>``)."""
    models = {}
    for name in qwen_points(params):
        point = params.points[name]
        models["model" if point.model is None else f"models.{point.model}"] = params.model_of(point)
    return models


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
    """Everything a run with ``params`` reads from outside the repository, each with where to get it."""
    out: list[Check] = []
    if params.data.source != "synthetic":
        videos, annotations = DATA_PAGES[params.data.source]
        out += [
            _path("data.video_dir", params.data.video_dir, "dir", f"get {videos}"),
            _path("data.annotations", params.data.annotations, "any", f"get {annotations}"),
        ]
    for key, model in vlm_models(params).items():
        if model.source != "tiny":
            hint = _download(FAMILIES[model.family].reference_id, model.source)
            out.append((f"{key}.source", lambda m=model, k=key: _vlm(m, k), hint))
    for name, point in params.points.items():
        if isinstance(point, EncoderPoint) and point.source != "tiny":
            hint = _download(_encoder_id(point), point.source)
            out.append((f"points.{name}.source", lambda point=point: _encoder(point), hint))
    if params.ltx.source != "tiny":
        vae = params.ltx.source
        out.append(("ltx.source", lambda: _vae(vae), _download(LTX_ID, vae) + " --include 'vae/*'"))
    out.append((f"LPIPS backbone ({params.eval.lpips_net})", lambda: _lpips(params.eval.lpips_net), ""))
    if "cuda" in (params.model.device, params.ltx.device, params.adapter.train.device, params.probe.device):
        out.append(("GPU", _gpu, "run on a machine with an NVIDIA GPU, or set the device keys to cpu"))
    return out


def qwen_points(params: Params) -> list[str]:
    """The points read from a VLM (any family)."""
    return [n for n, p in params.points.items() if KINDS[p.kind].check == "vlm"]


def gpu_memory_gb(params: Params) -> tuple[float, str]:
    """The GPU memory the run needs at least (the stages run one at a time: the largest need) and what sets it."""
    needs = {
        "probe.gpu_memory_gb (features held by the probes)": params.probe.gpu_memory_gb,
        "adapter.train.gpu_memory_gb (features held by adapter training)": params.adapter.train.gpu_memory_gb,
    }
    for name in qwen_points(params):  # extraction holds one model at a time: the largest counts
        point = params.points[name]
        model = params.model_of(point)
        if model.source == "tiny":
            continue
        info = FAMILIES[model.family]
        files = sorted(Path(model.source).glob("*.safetensors"))
        weights = sum(f.stat().st_size for f in files) / 1e9 if files else info.reference_weights_gb
        key = "model" if point.model is None else f"models.{point.model}"
        needs[f"the {info.title} weights ({key}, extraction)"] = weights
    what, gb = max(needs.items(), key=lambda kv: kv[1])
    return gb, f"{what}, plus working memory (activations of extract.batch_frames frames, heads, the VAE)"


def _memory_line(params: Params) -> tuple[str, str]:
    """The status (``need`` without a GPU to compare with) and the line on the GPU memory the run needs."""
    need, why = gpu_memory_gb(params)
    if not torch.cuda.is_available():
        return "need", f"GPU memory: at least {need:.0f} GB: {why}"
    have = torch.cuda.get_device_properties(0).total_memory / 1e9
    return ("ok" if have >= need else "WRONG"), f"GPU memory: at least {need:.0f} GB ({why}); GPU 0 has {have:.0f} GB"


def _pipeline_problems(params: str) -> list[str]:
    """A stale generated block of ``dvc.yaml`` when ``params`` is the ``params.yaml`` DVC reads beside it (a profile
    is compared once copied there)."""
    if Path(params).resolve() != Path("params.yaml").resolve() or not Path("dvc.yaml").is_file():
        return []
    try:
        return pipeline_problems(params)
    except ForesightError as err:
        return [f"adapter.multi_scale: {err}"]


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
    missing: list[str] = []
    for what, check, hint in checks(params):
        try:
            print(f"ok       {what}: {check()}")
        except ForesightError as err:
            missing.append(what)
            print(f"MISSING  {err}" if str(err).startswith(what) else f"MISSING  {what}: {err}")
            if hint:
                print(f"         {hint}")
    wrong = [
        problem
        for problem in run_problems(params) + data_problems(params.data) + _pipeline_problems(args.params)
        if not problem.startswith(tuple(missing))  # reported above
    ]
    for problem in dict.fromkeys(wrong):
        print(f"WRONG    {problem}")
    status, memory = _memory_line(params)
    print(f"{status:9s}{memory}")
    n_wrong = len(set(wrong)) + (status == "WRONG")
    problems = len(missing) + n_wrong
    print(f"{len(missing)} missing, {n_wrong} wrong" if problems else "everything is present")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
