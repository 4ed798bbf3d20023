"""Stage `decode_ceiling`: VAE decode of the test split's own latents, the best any adapter can reach."""

from foresight_lib.cli import run, stage_parser
from foresight_lib.data.splits import read_split
from foresight_lib.ltx.latents import check_same_vae, load_ltx_vae, write_decoded
from foresight_lib.params import load_params
from foresight_lib.store import open_complete


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--latents", required=True, help="the VAE latents (latents/latents.zarr)")
    parser.add_argument("--clips", required=True, help="the clip table with the splits (data/clips.parquet)")
    parser.add_argument("--out", required=True, help="the decoded test clips (latents/decoded.zarr)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    vae, identity = load_ltx_vae(params.ltx)
    latents = open_complete(args.latents)
    check_same_vae(identity, latents.attrs, args.latents)
    test = read_split(args.clips, "test")
    write_decoded(vae, latents, test, test, args.out, params.ltx, {"source": str(args.latents)})


if __name__ == "__main__":
    run(main)
