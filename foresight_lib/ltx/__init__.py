"""LTX-Video VAE: loading (real checkpoint or seeded tiny), clip geometry, encode and decode."""
