"""Project tools run by hand or by a DVC stage (``python -m foresight_lib.tools.<tool>``)."""
