"""Target assignment and box decoding shared by the grid heads (linear, mlp, dense): FCOS-style, one box per cell.

Cell ``(r, c)`` has its centre at pixel ``((c + 0.5) * stride, (r + 0.5) * stride)``. For a frame's boxes:

- positives: a cell is positive for a box when its centre lies inside the box (``x0 <= cx < x1``,
  ``y0 <= cy < y1``); the cell holding a box's centre is always positive for it, so a box smaller than a cell
  still has one. A cell inside several boxes belongs to the smallest (by area).
- targets of a positive cell: objectness 1, the distances ``(l, t, r, b)`` from its centre to the box's left,
  top, right and bottom edges in stride units (negative for a centre cell outside a tiny box), its class.
- loss: binary cross-entropy of the objectness over all cells, plus, over the positive cells, the L1 error of
  the distances, ``1 - GIoU`` of the boxes they span around the cell and the cross-entropy of the class logits.

Decoding: score = sigmoid(objectness) per cell; the (at most 1000 best) cells scoring at least ``min_score`` give the
candidate boxes ``[cx - l*stride, cy - t*stride, cx + r*stride, cy + b*stride]`` (clipped to the frame), class =
argmax of the class logits, ranked by score (equal scores: by cell index, row-major); class-agnostic greedy NMS at
``nms_iou`` in that rank order (torchvision) with box voting (each kept box becomes the score-weighted mean of the
candidates overlapping it by at least ``nms_iou``: the cells of one object average their estimates), then the
``max_detections`` best, then greedy NMS again over the voted boxes in the same rank order (voting can move two kept
boxes onto each other; without it a real DINOv2-S's dense head kept such duplicates, 2.2 boxes per frame for 1.6
objects). A candidate's fate in greedy NMS depends only on the candidates ranked above it, so the detections scoring
at least some ``at_least`` come from NMS over that prefix of the ranking alone (voting still reads every candidate):
:meth:`GridProbe.decode` ``(at_least=...)`` gives exactly the full decode's, filtered.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, box_iou, generalized_box_iou_loss, nms

from .base import BoxTargets, DecodeConfig, Detections, SpatialProbe, to_detections

OBJECTNESS_PRIOR = 0.05  # initial objectness probability of every cell (bias of the objectness logit)
PRE_NMS = 1000  # candidates (best scores) that enter NMS per frame


def cell_centres(gh: int, gw: int, stride: int, device: torch.device | None = None) -> torch.Tensor:
    """Pixel centres ``[gh, gw, 2]`` (x, y) of the cells of a ``gh`` x ``gw`` grid."""
    ys = (torch.arange(gh, dtype=torch.float32, device=device) + 0.5) * stride
    xs = (torch.arange(gw, dtype=torch.float32, device=device) + 0.5) * stride
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)


def assign_cells(
    boxes: list[torch.Tensor], labels: list[torch.Tensor], gh: int, gw: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets of ``B`` frames: ``positive [B, gh, gw]`` bool, ``distances [B, gh, gw, 4]`` (stride units) and
    ``classes [B, gh, gw]``.

    ``boxes``: per frame ``[N_i, 4]`` xywh px; ``labels``: per frame ``[N_i]`` class indices. The rules are in the
    module docstring; negative cells get distances 0 and class -1 (every cell, when no frame has a box).
    """
    b, n = len(boxes), max([len(x) for x in boxes], default=0)
    device = boxes[0].device if boxes else None
    if n == 0:
        return (
            torch.zeros(b, gh, gw, dtype=torch.bool, device=device),
            torch.zeros(b, gh, gw, 4, device=device),
            torch.full((b, gh, gw), -1, dtype=torch.long, device=device),
        )
    xyxy = torch.zeros(b, n, 4, device=device)  # [B, N, 4] padded
    classes = torch.zeros(b, n, dtype=torch.long, device=device)  # [B, N]
    valid = torch.zeros(b, n, dtype=torch.bool, device=device)  # [B, N]
    for i, (x, l) in enumerate(zip(boxes, labels)):
        xyxy[i, : len(x)] = box_convert(x.float(), "xywh", "xyxy")
        classes[i, : len(x)] = l.long()
        valid[i, : len(x)] = True
    centres = cell_centres(gh, gw, stride, device)  # [gh, gw, 2]
    cx, cy = centres[..., 0], centres[..., 1]  # [gh, gw]
    x0, y0, x1, y1 = (xyxy[..., k, None, None] for k in range(4))  # [B, N, 1, 1]
    inside = (x0 <= cx) & (cx < x1) & (y0 <= cy) & (cy < y1) & valid[..., None, None]  # [B, N, gh, gw]
    middle = (xyxy[..., :2] + xyxy[..., 2:]) / 2  # [B, N, 2]
    rows = (middle[..., 1] / stride).floor().long().clamp(0, gh - 1)  # [B, N]
    cols = (middle[..., 0] / stride).floor().long().clamp(0, gw - 1)  # [B, N]
    frame, box = torch.nonzero(valid, as_tuple=True)
    inside[frame, box, rows[frame, box], cols[frame, box]] = True
    area = (xyxy[..., 2] - xyxy[..., 0]) * (xyxy[..., 3] - xyxy[..., 1])  # [B, N]
    owner = torch.zeros(b, gh, gw, dtype=torch.long, device=device)  # [B, gh, gw] the smallest box holding the cell
    smallest = torch.full((b, gh, gw), torch.inf, device=device)  # [B, gh, gw]
    for k in range(n):
        smaller = inside[:, k] & (area[:, k, None, None] < smallest)  # [B, gh, gw]
        owner[smaller] = k
        smallest = torch.where(smaller, area[:, k, None, None], smallest)
    positive = inside.any(dim=1)  # [B, gh, gw]
    own = torch.gather(xyxy, 1, owner.flatten(1)[..., None].expand(-1, -1, 4)).reshape(b, gh, gw, 4)  # [B, gh, gw, 4]
    distances = torch.stack([cx - own[..., 0], cy - own[..., 1], own[..., 2] - cx, own[..., 3] - cy], dim=-1) / stride
    distances = torch.where(positive[..., None], distances, 0.0)  # [B, gh, gw, 4]
    cls = torch.where(positive, torch.gather(classes, 1, owner.flatten(1)).reshape(b, gh, gw), -1)  # [B, gh, gw]
    return positive, distances, cls


def cell_boxes(distances: torch.Tensor, stride: int) -> torch.Tensor:
    """Distances ``[B, gh, gw, 4]`` (stride units) -> boxes ``[B, gh, gw, 4]`` xyxy px around each cell centre.

    A box with ``l + r < 0`` (or ``t + b < 0``) gets zero width (height).
    """
    centres = cell_centres(distances.shape[1], distances.shape[2], stride, distances.device)  # [gh, gw, 2]
    low = centres - distances[..., :2] * stride  # [B, gh, gw, 2]
    return torch.cat([low, torch.maximum(centres + distances[..., 2:] * stride, low)], dim=-1)


def relative_giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - GIoU`` of boxes given as distances ``(l, t, r, b)`` ``[P, 4]`` from a common centre.

    A predicted box with ``l + r <= 0`` (or ``t + b <= 0``) counts as a point at its left (top) edge.
    """
    low = -pred[:, :2]  # [P, 2]
    high = torch.maximum(pred[:, 2:], low)  # [P, 2]
    return generalized_box_iou_loss(
        torch.cat([low, high], dim=1), torch.cat([-target[:, :2], target[:, 2:]], dim=1), reduction="mean"
    )


def vote(boxes: torch.Tensor, scores: torch.Tensor, keep: torch.Tensor, iou: float) -> torch.Tensor:
    """Box voting: each kept box ``[K]`` becomes the score-weighted mean of the candidates ``boxes [M, 4]`` (xyxy)
    overlapping it by at least ``iou`` (itself included) -> ``[K, 4]``."""
    overlap = box_iou(boxes[keep], boxes) >= iou  # [K, M]
    overlap[torch.arange(len(keep)), keep] = True  # a degenerate (zero-area) box still votes for itself
    weights = overlap.float() * scores  # [K, M]
    return weights @ boxes / weights.sum(dim=1, keepdim=True)


class GridProbe(SpatialProbe):
    """A head with per-cell outputs ``[B, gh, gw, 5 + K]``: objectness, distances (l, t, r, b), class logits."""

    def __init__(self, channels: int, n_classes: int, decoding: DecodeConfig) -> None:
        super().__init__(channels, n_classes, decoding)
        self.n_outputs = 5 + n_classes

    @abstractmethod
    def cell_outputs(self, grid: torch.Tensor) -> torch.Tensor:
        """Standardised grid ``[B, gh, gw, C]`` -> per-cell outputs ``[B, gh, gw, 5 + K]``."""

    def forward(self, grid: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.cell_outputs(grid)  # [B, gh, gw, 5 + K]
        return {"objectness": out[..., 0], "distances": out[..., 1:5], "classes": out[..., 5:]}

    def loss(self, outputs: dict[str, torch.Tensor], targets: BoxTargets) -> torch.Tensor:
        _, gh, gw = outputs["objectness"].shape
        key = ("cells", gh, gw)  # the same for every grid head of a batch: assigned once
        if key not in targets.cache:
            targets.cache[key] = assign_cells(targets.boxes, targets.labels, gh, gw, targets.stride)
        positive, distances, classes = targets.cache[key]
        loss = F.binary_cross_entropy_with_logits(outputs["objectness"], positive.float())
        if positive.any():
            pred = outputs["distances"][positive]  # [P, 4]
            loss = loss + F.l1_loss(pred, distances[positive])
            loss = loss + relative_giou_loss(pred, distances[positive])
            loss = loss + F.cross_entropy(outputs["classes"][positive], classes[positive])
        return loss

    def decode(self, outputs: dict[str, torch.Tensor], stride: int, at_least: float = 0.0) -> list[Detections]:
        _, gh, gw = outputs["objectness"].shape
        scores = torch.sigmoid(outputs["objectness"]).flatten(1)  # [B, gh*gw]
        boxes = cell_boxes(outputs["distances"], stride).flatten(1, 2)  # [B, gh*gw, 4] xyxy px
        labels = outputs["classes"].argmax(dim=-1).flatten(1)  # [B, gh*gw]
        asked = (scores >= max(at_least, self.decoding.min_score)).any(dim=1).tolist()  # [B] frames with any
        frames = []
        for s, b, l, any_asked in zip(scores, boxes, labels, asked):
            if not any_asked:
                frames.append(to_detections(b[:0], s[:0], l[:0], gh * stride, gw * stride, 0))
                continue
            cand = torch.nonzero(s >= self.decoding.min_score).flatten()  # [M]
            cand = cand[torch.argsort(s[cand], descending=True, stable=True)[:PRE_NMS]]  # ranked
            s, b, l = s[cand], b[cand], l[cand]
            ranked = int((s >= at_least).sum())  # the prefix that can score at least at_least
            rank = torch.arange(ranked, 0, -1, dtype=torch.float32)  # NMS in rank order, whatever the ties
            keep = nms(b[:ranked], rank, self.decoding.nms_iou)[: self.decoding.max_detections]  # [K] by rank
            voted = vote(b, s, keep, self.decoding.nms_iou)  # [K, 4]
            # voting can move two kept boxes onto each other: suppress again, in rank order, so that no two decoded
            # boxes overlap by more than nms_iou (measured on a real DINOv2-S: 2.2 boxes per frame for 1.6 objects)
            again = nms(voted, rank[keep], self.decoding.nms_iou)  # [K'] by rank
            keep, voted = keep[again], voted[again]
            frames.append(
                to_detections(
                    voted,
                    s[keep],
                    l[keep],
                    gh * stride,
                    gw * stride,
                    self.decoding.max_detections,
                )
            )
        return frames

    def init_objectness_bias(self, bias: torch.Tensor) -> None:
        """Start every cell at :data:`OBJECTNESS_PRIOR` objectness: ``bias`` is the output layer's ``[5 + K]`` bias."""
        with torch.no_grad():
            bias.zero_()
            bias[0] = -math.log((1 - OBJECTNESS_PRIOR) / OBJECTNESS_PRIOR)
