"""Feature extraction at named extraction points (raw pixels, Qwen2.5-VL, dedicated vision encoders), always as
raster grids in true spatial order, into the feature stores of :mod:`foresight_lib.features`."""
