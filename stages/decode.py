"""Stage `ceiling` (--ceiling): VAE decode of the test split's latents, the best any adapter can reach.
Stages `decode_<kind>@<name>` (--adapter): VAE decode of an adapter's predicted latents, plus a PNG sheet."""

from pathlib import Path

from foresight_lib.adapters.sheet import write_sheet
from foresight_lib.cli import run, stage_parser
from foresight_lib.errors import ForesightError
from foresight_lib.ltx.latents import check_same_vae, load_ltx_vae, split_clips, write_decoded
from foresight_lib.params import load_params
from foresight_lib.store import open_complete


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--ceiling", action="store_true", help="decode the VAE latents of the test split")
    which.add_argument("--adapter", help="decode adapters/<adapter>/latents.zarr")
    parser.add_argument("--latents", default="latents/latents.zarr")
    parser.add_argument("--clips", default="data/clips.parquet")
    parser.add_argument("--frames", default="data/frames.zarr", help="originals, for the sheet")
    parser.add_argument("--ceiling-store", default="latents/ceiling.zarr")
    parser.add_argument("--adapters", default="adapters", help="directory of the adapters' outputs")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    vae, identity = load_ltx_vae(params.ltx)
    if args.ceiling:
        latents = open_complete(args.latents)
        check_same_vae(identity, latents.attrs, args.latents)
        test = split_clips(args.clips, "test")
        write_decoded(vae, latents, test, test, args.ceiling_store, params.ltx, {"source": str(args.latents)})
        return
    out = Path(args.adapters) / args.adapter
    predicted = open_complete(out / "latents.zarr")
    check_same_vae(identity, predicted.attrs, f"adapter {args.adapter}'s latents")
    ceiling = open_complete(args.ceiling_store)
    if ceiling.attrs["clips"] != predicted.attrs["clips"]:
        raise ForesightError(f"{args.ceiling_store} and {out / 'latents.zarr'} hold different clips: "
                             "rerun the ceiling stage")
    clips = predicted.attrs["clips"]
    decoded = write_decoded(vae, predicted, range(len(clips)), clips, out / "decoded.zarr", params.ltx,
                            {"source": f"adapter {args.adapter}"})
    write_sheet(open_complete(args.frames), ceiling, decoded, params.eval.sheet_clips, out / "sheet.png")


if __name__ == "__main__":
    run(main)
