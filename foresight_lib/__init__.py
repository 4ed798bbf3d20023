"""foresight: where inside a VLM does spatial information survive, and can it drive a video decoder?"""

__version__ = "0.1.0"
