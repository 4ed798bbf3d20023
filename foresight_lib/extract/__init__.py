"""Feature extraction from Qwen2.5-VL at named extraction points, always returned in true raster order."""
