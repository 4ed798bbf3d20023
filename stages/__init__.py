"""One entry point per DVC stage, run as ``python -m stages.<name>`` from the repository root.

``-m`` puts the repository root first on ``sys.path``, so every stage imports this checkout's ``foresight_lib``
(the code DVC hashes), never the checkout an editable install points at.
"""
