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
from .summary import Rows  # noqa: E402

HEAD_COLOURS = {"linear": "tab:blue", "mlp": "tab:orange", "dense": "tab:green", "detr": "tab:red"}


def plot_by_point(rows: Rows, heads: Sequence[str], decision: DecisionParams, out: str | Path) -> None:
    """bbox IoU and mAP@0.5 per point in model order: 95% intervals as bars, shuffled controls as crosses, the bbox
    IoU's chance level (random boxes at each head's asserted count) as a grey bar per point and head, thresholds as
    dashed lines."""
    names = list(rows)
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.3 * len(names)), 4.2), sharex=True)
    map_key = f"map50_{decision.map_kind}"
    nan = (np.nan, np.nan, np.nan)
    for ax, key, title in ((axes[0], "bbox_iou", "bbox IoU"), (axes[1], map_key, f"mAP@0.5 ({decision.map_kind})")):
        width = 0.8 / max(1, len(heads))
        for k, head in enumerate(heads):
            vals = np.array([rows[n].heads[head].interval(key) if head in rows[n].heads else nan for n in names])
            pos = x - 0.4 + width * (k + 0.5)  # [P]
            err = np.abs(vals[:, [1, 2]].T - vals[:, 0])  # [2, P]
            ax.errorbar(
                pos, vals[:, 0], yerr=np.nan_to_num(err), fmt="o", color=HEAD_COLOURS[head], label=head, capsize=3
            )
            control_key = key if key == "bbox_iou" else "map50_class_agnostic"
            shuffled = [
                getattr(rows[n].shuffled[head], control_key) if head in rows[n].shuffled else None for n in names
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
                chance = [rows[n].heads[head].bbox_iou_chance if head in rows[n].heads else None for n in names]
                ax.hlines(
                    [np.nan if v is None else v for v in chance],
                    pos - width / 2,
                    pos + width / 2,
                    color="0.45",
                    lw=2.5,
                    label="chance (random boxes)" if k == 0 else None,
                )
        if key == "bbox_iou":
            ax.axhline(decision.go_iou, color="green", ls="--", lw=1, label=f"GO > {decision.go_iou}")
            ax.axhline(decision.nogo_iou, color="red", ls="--", lw=1, label=f"NO-GO < {decision.nogo_iou}")
        else:
            ax.axhline(decision.go_map50, color="green", ls="--", lw=1, label=f"GO > {decision.go_map50}")
        ax.set_title(title)
        ax.set_ylabel(title + " (test split)")
        ax.set_ylim(0, 1)
        ax.set_xticks(x, names, rotation=45, ha="right")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def curve_styles(labels: Sequence[str]) -> dict[str, tuple[Any, str]]:
    """``{"point/head": (colour, line style)}``: one colour per point, one line style per head, so no two lines
    share both (up to 20 points and 4 heads)."""
    points = list(dict.fromkeys(label.split("/")[0] for label in labels))
    heads = list(dict.fromkeys(label.split("/")[-1] for label in labels))
    palette = plt.get_cmap("tab10" if len(points) <= 10 else "tab20").colors  # tab10: distinct hues
    styles = ("-", "--", ":", "-.")
    return {
        label: (
            palette[points.index(label.split("/")[0]) % len(palette)],
            styles[heads.index(label.split("/")[-1]) % 4],
        )
        for label in labels
    }


def plot_curves(curves: dict[str, pd.DataFrame], out: str | Path) -> None:
    """Training curves: one panel per metric, one line per ``point/head`` (``curves[label]``: step + metric columns),
    each with its own colour (point) and line style (head)."""
    metrics = sorted({c for df in curves.values() for c in df.columns if c != "step"})
    if not metrics:
        return
    styles = curve_styles(list(curves))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for label, df in curves.items():
            if metric in df:
                colour, style = styles[label]
                ax.plot(df["step"], df[metric], label=label, lw=1.2, color=colour, ls=style)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("/", " ").replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6, ncol=1 + len(curves) // 8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
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


def plot_cka(names: Sequence[str], matrices: dict[str, np.ndarray], out: str | Path, tolerance: float = 0.01) -> None:
    """CKA between every pair of points: one heatmap per estimator, or one when the estimators agree within
    ``tolerance`` everywhere (then the title says so)."""
    first, *others = matrices
    if all(np.nanmax(np.abs(matrices[k] - matrices[first])) <= tolerance for k in others):
        same = " = ".join(matrices)
        matrices = {f"{same}: equal within {tolerance}": matrices[first]}
    fig, axes = plt.subplots(1, len(matrices), figsize=(5.2 * len(matrices), 4.6), squeeze=False)
    for ax, (label, m) in zip(axes[0], matrices.items()):
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(f"CKA ({label})", fontsize=9)
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(
                    j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6, color="w" if m[i, j] < 0.6 else "k"
                )
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
