"""Clips: the synthetic benchmark, real video decoding, annotation readers and the frames store."""
