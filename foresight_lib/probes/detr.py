"""``detr``: object queries decoding boxes from the grid tokens (a small DETR decoder, no encoder).

Tokens are projected to ``width`` channels and get a 2-D sine positional encoding of their grid coordinates
(DETR's, normalised to [0, 2*pi] over the grid); ``probe.detr_queries`` learned queries go through
``probe.detr_layers`` transformer decoder layers (4 heads, feed-forward 2 x width, no dropout) attending to
them. Each query predicts class logits over the K classes plus *no object*, and a box ``(cx, cy, w, h)``
as fractions of the frame (sigmoid).

Training: Hungarian matching (scipy ``linear_sum_assignment``) of queries to a frame's boxes on the cost
``-p(class) + 5 * L1(cxcywh) - 2 * GIoU``; loss = cross-entropy over all queries (matched ones to their
box's class, the rest to no-object, weighted 0.1; weighted mean) + ``5 * L1 + 2 * (1 - GIoU)`` averaged
over the matched queries. Decoding: score = 1 - p(no object), class = the most probable object
class, every query scoring at least ``min_score`` (no NMS).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou, generalized_box_iou_loss

from .base import BoxTargets, DecodeConfig, Detections, SpatialProbe, to_detections

COST_CLASS, COST_L1, COST_GIOU = 1.0, 5.0, 2.0
NO_OBJECT_WEIGHT = 0.1
HEADS = 4


def sine_position_encoding(gh: int, gw: int, dim: int) -> torch.Tensor:
    """DETR's 2-D sine encoding ``[gh, gw, dim]`` of cell coordinates: half the channels for y, half for x."""
    if dim % 4:
        raise ValueError(f"sine position encoding needs a width divisible by 4 (got {dim})")
    quarter = dim // 4
    freqs = 10000.0 ** (-torch.arange(quarter, dtype=torch.float32) / quarter)  # [dim/4]
    ys = (torch.arange(gh, dtype=torch.float32) + 0.5) / gh * 2 * math.pi  # [gh]
    xs = (torch.arange(gw, dtype=torch.float32) + 0.5) / gw * 2 * math.pi  # [gw]
    ey = torch.cat([torch.sin(ys[:, None] * freqs), torch.cos(ys[:, None] * freqs)], dim=-1)  # [gh, dim/2]
    ex = torch.cat([torch.sin(xs[:, None] * freqs), torch.cos(xs[:, None] * freqs)], dim=-1)  # [gw, dim/2]
    return torch.cat([ey[:, None].expand(gh, gw, -1), ex[None].expand(gh, gw, -1)], dim=-1)


def hungarian_match(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost one-to-one assignment of ``cost`` ``[Q, N]`` rows (queries) to columns (boxes).

    Returns ``(query_idx [P], box_idx [P])``, ``P = min(Q, N)``, ordered by box.
    """
    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    order = np.argsort(cols)
    return torch.as_tensor(rows[order], dtype=torch.long), torch.as_tensor(cols[order], dtype=torch.long)


class DetrProbe(SpatialProbe):
    """``[B, gh, gw, C]`` -> per query: class logits ``[B, Q, K + 1]`` and boxes ``[B, Q, 4]`` (cxcywh, 0..1)."""

    def __init__(
        self, channels: int, n_classes: int, decoding: DecodeConfig, width: int, queries: int, layers: int
    ) -> None:
        super().__init__(channels, n_classes, decoding)
        self.width = width
        self.project = nn.Linear(channels, width)
        self.queries = nn.Embedding(queries, width)
        layer = nn.TransformerDecoderLayer(width, HEADS, dim_feedforward=2 * width, dropout=0.0, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.classes = nn.Linear(width, n_classes + 1)
        self.boxes = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 4))

    def forward(self, grid: torch.Tensor) -> dict[str, torch.Tensor]:
        b, gh, gw, _ = grid.shape
        pos = sine_position_encoding(gh, gw, self.width).to(grid.device)  # [gh, gw, width]
        memory = (self.project(grid) + pos).reshape(b, gh * gw, self.width)  # [B, gh*gw, width]
        x = self.decoder(self.queries.weight.expand(b, -1, -1), memory)  # [B, Q, width]
        grid_size = torch.tensor([gh, gw])
        return {"logits": self.classes(x), "boxes": torch.sigmoid(self.boxes(x)), "grid": grid_size}

    def loss(self, outputs: dict[str, torch.Tensor], targets: BoxTargets) -> torch.Tensor:
        logits, boxes = outputs["logits"], outputs["boxes"]  # [B, Q, K + 1], [B, Q, 4]
        gh, gw = outputs["grid"].tolist()
        device = logits.device
        size = (
            torch.tensor([gw, gh, gw, gh], dtype=torch.float32, device=device) * targets.stride
        )  # frame w, h, w, h px
        classes = torch.full(logits.shape[:2], self.n_classes, dtype=torch.long, device=device)  # [B, Q] no-object
        matched_pred, matched_gt = [], []
        for i, (gt_xywh, gt_labels) in enumerate(zip(targets.boxes, targets.labels)):
            if len(gt_xywh) == 0:
                continue
            gt = box_convert(gt_xywh.float(), "xywh", "cxcywh") / size  # [N, 4] cxcywh, fractions of the frame
            q, g = hungarian_match(self.match_cost(logits[i], boxes[i], gt, gt_labels))
            q, g = q.to(device), g.to(device)
            classes[i, q] = gt_labels[g].long()
            matched_pred.append(boxes[i, q])
            matched_gt.append(gt[g])
        weight = torch.ones(self.n_classes + 1, device=device)
        weight[-1] = NO_OBJECT_WEIGHT
        loss = F.cross_entropy(logits.flatten(0, 1), classes.flatten(), weight=weight)
        if matched_pred:
            pred, gt = torch.cat(matched_pred), torch.cat(matched_gt)  # [P, 4], [P, 4]
            loss = loss + COST_L1 * F.l1_loss(pred, gt, reduction="none").sum(-1).mean()
            loss = loss + COST_GIOU * generalized_box_iou_loss(
                box_convert(pred, "cxcywh", "xyxy"), box_convert(gt, "cxcywh", "xyxy"), reduction="mean"
            )
        return loss

    @staticmethod
    def match_cost(logits: torch.Tensor, boxes: torch.Tensor, gt: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Matching cost ``[Q, N]`` of one frame's queries (``logits [Q, K+1]``, ``boxes [Q, 4]``) and its boxes
        ``gt [N, 4]`` (cxcywh fractions) of classes ``labels [N]``."""
        prob = logits.softmax(-1)[:, labels.long()]  # [Q, N]
        l1 = torch.cdist(boxes, gt, p=1)  # [Q, N]
        giou = generalized_box_iou(box_convert(boxes, "cxcywh", "xyxy"), box_convert(gt, "cxcywh", "xyxy"))  # [Q, N]
        return -COST_CLASS * prob + COST_L1 * l1 - COST_GIOU * giou

    def decode(self, outputs: dict[str, torch.Tensor], stride: int, at_least: float = 0.0) -> list[Detections]:
        gh, gw = outputs["grid"].tolist()
        height, width = gh * stride, gw * stride
        prob = outputs["logits"].softmax(-1)  # [B, Q, K + 1]
        scores = 1 - prob[..., -1]  # [B, Q]
        labels = prob[..., :-1].argmax(-1)  # [B, Q]
        size = torch.tensor([width, height, width, height], dtype=torch.float32)
        boxes = box_convert(outputs["boxes"], "cxcywh", "xyxy") * size  # [B, Q, 4] xyxy px
        frames = []
        for s, b, l in zip(scores, boxes, labels):
            keep = s >= max(self.decoding.min_score, at_least)  # [Q]
            frames.append(to_detections(b[keep], s[keep], l[keep], height, width, self.decoding.max_detections))
        return frames
