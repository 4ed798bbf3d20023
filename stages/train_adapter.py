"""Stage `train_single@<name>` / `train_dual_stream@<name>`: train one adapter, predict the test split's latents."""

from pathlib import Path

from foresight_lib.adapters.models import adapter_spec
from foresight_lib.adapters.train import PixelTerm, open_data, save_adapter, train_adapter, write_predictions
from foresight_lib.cli import run, stage_parser
from foresight_lib.device import resolve_device, resolve_dtype
from foresight_lib.features_loader import MemoryBudget
from foresight_lib.ltx.latents import check_same_vae, split_clips
from foresight_lib.ltx.vae import load_vae
from foresight_lib.params import load_params
from foresight_lib.store import open_complete, write_json_atomic


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--adapter", required=True, help="name of an entry of adapter.single or adapter.dual_stream")
    parser.add_argument("--features", default="features", help="directory of the <point>.zarr feature stores")
    parser.add_argument("--latents", default="latents/latents.zarr")
    parser.add_argument("--clips", default="data/clips.parquet")
    parser.add_argument("--frames", default="data/frames.zarr", help="read only for the pixel loss")
    parser.add_argument("--out", help="default: adapters/<adapter>")
    parser.add_argument("--metrics", help="default: metrics/adapter/<adapter>.json")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    spec = adapter_spec(params.adapter, params.points, args.adapter)
    train = params.adapter.train
    out = Path(args.out or f"adapters/{args.adapter}")
    device = resolve_device(train.device, "adapter.train.device")
    data = open_data(spec, args.features, args.latents, MemoryBudget.of(train.gpu_memory_gb, train.host_memory_gb))
    pixel_term = None
    if train.pixel_loss_weight > 0:
        ltx = params.ltx
        vae, identity = load_vae(ltx.source, resolve_dtype(ltx.dtype, device), device, seed=ltx.seed)
        check_same_vae(identity, data.latents.attrs, args.latents)
        pixel_term = PixelTerm(vae.requires_grad_(False), open_complete(args.frames), ltx.decode_timestep,
                               train.pixel_loss_weight)
    splits = {split: split_clips(args.clips, split) for split in ("train", "val", "test")}
    trained = train_adapter(spec, train, data, splits, out / "live", pixel_term, device)
    save_adapter(out, args.adapter, spec, trained.model)
    write_predictions(trained.model, data, splits["test"], out / "latents.zarr", args.adapter, train.batch_size)
    write_json_atomic(args.metrics or f"metrics/adapter/{args.adapter}.json", trained.summary)


if __name__ == "__main__":
    run(main)
