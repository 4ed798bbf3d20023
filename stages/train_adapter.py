"""Stages `train_single@<name>`, `train_dual_stream@<name>`, `train_multi_scale@<name>`: train one adapter, predict
the test split's latents."""

from pathlib import Path

from foresight_lib.adapters.models import adapter_spec, proposal_option
from foresight_lib.adapters.train import PixelTerm, open_data, save_adapter, train_adapter, write_predictions
from foresight_lib.cli import run, stage_parser
from foresight_lib.data.splits import SPLITS, read_split
from foresight_lib.device import resolve_device, resolve_dtype
from foresight_lib.features_loader import MemoryBudget
from foresight_lib.ltx.latents import check_same_vae
from foresight_lib.ltx.vae import load_vae
from foresight_lib.params import load_params
from foresight_lib.store import open_complete, write_json_atomic


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument(
        "--adapter",
        required=True,
        help="name of an entry of adapter.single, adapter.dual_stream or adapter.multi_scale",
    )
    parser.add_argument("--features", required=True, help="directory of the <point>.zarr feature stores (features)")
    parser.add_argument("--latents", required=True, help="the VAE latents, the targets (latents/latents.zarr)")
    parser.add_argument("--clips", required=True, help="the clip table with the splits (data/clips.parquet)")
    parser.add_argument("--frames", required=True, help="the frames store, read only for the pixel loss")
    parser.add_argument("--out", required=True, help="output directory (adapters/<adapter>)")
    parser.add_argument("--metrics", required=True, help="training summary (metrics/adapter/<adapter>.json)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    spec = adapter_spec(params.adapter, args.adapter)
    train = params.adapter.train
    out = Path(args.out)
    device = resolve_device(train.device, "adapter.train.device")
    data = open_data(spec, args.features, args.latents, MemoryBudget.of(train.gpu_memory_gb, train.host_memory_gb))
    pixel_term = None
    if train.pixel_loss_weight > 0:
        ltx = params.ltx
        vae, identity = load_vae(ltx.source, resolve_dtype(ltx.dtype, device), device, seed=ltx.seed)
        check_same_vae(identity, data.latents.attrs, args.latents)
        pixel_term = PixelTerm(
            vae.requires_grad_(False), open_complete(args.frames), ltx.decode_timestep, train.pixel_loss_weight
        )
    splits = {split: read_split(args.clips, split) for split in SPLITS}
    trained = train_adapter(spec, train, data, splits, out / "live", pixel_term, device)
    save_adapter(out, args.adapter, spec, trained.model)
    write_predictions(
        trained.model, data, splits["test"], out / "latents.zarr", args.adapter, train.batch_size, train.autocast
    )
    write_json_atomic(args.metrics, {**trained.summary, "option": proposal_option(spec, params.points)})


if __name__ == "__main__":
    run(main)
