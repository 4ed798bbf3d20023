"""Static PNG figures for the report (matplotlib, Agg): they open anywhere, offline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ..params import DecisionParams  # noqa: E402

HEAD_COLOURS = {"linear": "tab:blue", "mlp": "tab:orange", "dense": "tab:green", "detr": "tab:red"}


def _interval(row: dict[str, Any], key: str) -> tuple[float, float, float]:
    value = row.get(key)
    lo, hi = row.get(f"{key}_lo"), row.get(f"{key}_hi")
    nan = float("nan")
    return (nan if value is None else value, nan if lo is None else lo, nan if hi is None else hi)


def plot_by_point(summary: dict[str, Any], heads: Sequence[str], decision: DecisionParams, out: str | Path) -> None:
    """bbox IoU and mAP@0.5 per point in model order, 95% intervals as bars, thresholds as lines."""
    names = list(summary)
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.3 * len(names)), 4.2), sharex=True)
    map_key = f"map50_{decision.map_kind}"
    for ax, key, title in ((axes[0], "bbox_iou", "bbox IoU"), (axes[1], map_key, f"mAP@0.5 ({decision.map_kind})")):
        width = 0.8 / max(1, len(heads))
        for k, head in enumerate(heads):
            rows = [summary[n].get(head, {}) for n in names]
            vals = np.array([_interval(r, key) for r in rows])  # [P, 3]
            pos = x - 0.4 + width * (k + 0.5)
            err = np.abs(vals[:, [1, 2]].T - vals[:, 0])
            ax.errorbar(
                pos, vals[:, 0], yerr=np.nan_to_num(err), fmt="o", color=HEAD_COLOURS[head], label=head, capsize=3
            )
            shuffled = [
                summary[n].get("shuffled", {}).get(head, {}).get(key if key == "bbox_iou" else "map50_class_agnostic")
                for n in names
            ]
            ax.plot(
                pos,
                [np.nan if v is None else v for v in shuffled],
                "x",
                color=HEAD_COLOURS[head],
                alpha=0.5,
                label=f"{head} (shuffled control)",
            )
        if key == "bbox_iou":
            ax.axhline(decision.go_iou, color="green", ls="--", lw=1, label=f"GO > {decision.go_iou}")
            ax.axhline(decision.nogo_iou, color="red", ls="--", lw=1, label=f"NO-GO < {decision.nogo_iou}")
        else:
            ax.axhline(decision.go_map50, color="green", ls="--", lw=1, label=f"GO > {decision.go_map50}")
        ax.set_title(title)
        ax.set_ylim(0, 1)
        ax.set_xticks(x, names, rotation=45, ha="right")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_curves(curves: dict[str, pd.DataFrame], out: str | Path) -> None:
    """Training curves: one panel per metric, one line per ``point/head`` (``curves[label]``: step + metric columns)."""
    metrics = sorted({c for df in curves.values() for c in df.columns if c != "step"})
    if not metrics:
        return
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for label, df in curves.items():
            if metric in df:
                ax.plot(df["step"], df[metric], label=label, lw=1)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_boxes(
    frames: dict[str, list[np.ndarray]],
    truth: dict[str, list[np.ndarray]],
    predicted: dict[str, list[np.ndarray]],
    out: str | Path,
) -> None:
    """A sheet: one row per point, one column per frame; ground truth in green, predictions in red (xywh px)."""
    rows = list(frames)
    cols = max(len(v) for v in frames.values())
    fig, axes = plt.subplots(len(rows), cols, figsize=(3.2 * cols, 2.3 * len(rows)), squeeze=False)
    for r, name in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(frames[name]):
                continue
            ax.imshow(frames[name][c])
            for boxes, colour in ((truth[name][c], "lime"), (predicted[name][c], "red")):
                for x, y, w, h in boxes:
                    ax.add_patch(Rectangle((x, y), w, h, fill=False, ec=colour, lw=1.2))
            if c == 0:
                ax.set_title(name, fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def plot_cka(names: Sequence[str], matrices: dict[str, np.ndarray], out: str | Path) -> None:
    """CKA between every pair of points, one heatmap per estimator."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(5.2 * len(matrices), 4.6), squeeze=False)
    for ax, (label, m) in zip(axes[0], matrices.items()):
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(f"CKA ({label})")
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(
                    j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6, color="w" if m[i, j] < 0.6 else "k"
                )
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
