"""Phase 2: adapters from VLM feature grids to LTX-Video VAE latents, their training and reconstruction metrics."""
