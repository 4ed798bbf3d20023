"""Probes trained on stored grids: how much spatial (boxes) and temporal (direction, order) information a point holds.

Entry point: :func:`~.run.run_probes`. Heads (one interface, :class:`~.base.SpatialProbe`, built by
:func:`~.heads.make_probe`): ``linear`` and ``mlp`` (:mod:`.linear`), ``dense`` (:mod:`.dense`) on the shared grid
targets and decoding of :mod:`.grid`, and ``detr`` (:mod:`.detr`). Data pairing and streaming in :mod:`.data`, the
training loop in :mod:`.train`, predictions and metrics in :mod:`.evaluate`, temporal probes in :mod:`.temporal`.
"""
