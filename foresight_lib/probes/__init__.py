"""Probes trained on stored grids: how much spatial (boxes) and temporal (direction, order) information a point holds.

Entry point: :func:`~.run.run_probes`. The data path: :mod:`.truth` (the frames stage's boxes and splits) and
:mod:`.data` (one point's grids, held by :mod:`foresight_lib.features_loader`, in batches) -> :mod:`.spatial` and
:mod:`.temporal` (what is trained) -> :mod:`.engine` (one data stream trains every head, control, learning rate
and seed within a step budget, with early stopping; selection of step, learning rate and, for the spatial heads,
the operating point on validation) -> :mod:`.evaluate` (predictions, metrics, selectivity) and :mod:`.prior` (the
data's prior, a control). Heads (one interface,
:class:`~.base.SpatialProbe`, built by :func:`~.heads.make_probe`): ``linear`` and ``mlp`` (:mod:`.linear`),
``dense`` (:mod:`.dense`) on the shared grid targets and decoding of :mod:`.grid`, and ``detr`` (:mod:`.detr`);
a saved head runs again as a detector (:mod:`.detector`).
"""
