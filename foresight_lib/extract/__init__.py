"""Feature extraction at named extraction points (raw pixels, Qwen2.5-VL, dedicated vision encoders), always as
raster grids in true spatial order, into the feature stores of :mod:`foresight_lib.features`."""

TINY_QWEN_DEPTHS = (32, 28)
"""ViT blocks and LLM layers of the tiny Qwen2.5-VL (:func:`.qwen.tiny_config`): the real checkpoints' depths."""

TINY_ENCODER_DEPTH = 12
"""Blocks of every family's tiny encoder (:mod:`.encoders`): the base models' depth."""
