"""Stages `decode_<kind>@<name>` (multi_scale: `decode_multi_scale-<name>`, generated): VAE decode of an adapter's
predicted latents, plus a PNG sheet (original | ceiling | adapter)."""

from foresight_lib.adapters.sheet import write_sheet
from foresight_lib.cli import run, stage_parser
from foresight_lib.errors import ForesightError
from foresight_lib.ltx.latents import check_same_vae, load_ltx_vae, write_decoded
from foresight_lib.params import load_params
from foresight_lib.store import open_complete


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--adapter", required=True, help="the adapter's name (recorded in the decoded store)")
    parser.add_argument("--latents", required=True, help="its predicted latents (adapters/<adapter>/latents.zarr)")
    parser.add_argument("--ceiling", required=True, help="the decode_ceiling stage's store (latents/decoded.zarr)")
    parser.add_argument("--frames", required=True, help="the originals, for the sheet (data/frames.zarr)")
    parser.add_argument("--out", required=True, help="the decoded clips (adapters/<adapter>/decoded.zarr)")
    parser.add_argument("--sheet", required=True, help="the PNG sheet (adapters/<adapter>/sheet.png)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    vae, identity = load_ltx_vae(params.ltx)
    predicted = open_complete(args.latents)
    check_same_vae(identity, predicted.attrs, f"adapter {args.adapter}'s latents")
    ceiling = open_complete(args.ceiling)
    if ceiling.attrs["clips"] != predicted.attrs["clips"]:
        raise ForesightError(f"{args.ceiling} and {args.latents} hold different clips: rerun the decode_ceiling stage")
    clips = predicted.attrs["clips"]
    decoded = write_decoded(
        vae, predicted, range(len(clips)), clips, args.out, params.ltx, {"source": f"adapter {args.adapter}"}
    )
    write_sheet(open_complete(args.frames), ceiling, decoded, params.eval.sheet_clips, args.sheet)


if __name__ == "__main__":
    run(main)
