"""Evaluation figures: per-class IoU bars, confusion heat maps, labelled map renders.

Figures are drawn on matplotlib's Agg canvas through the object API (no pyplot), so
nothing needs a display and no global backend or figure registry is touched. Every
file is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from ..core.atomic_file import atomic_path
from ..map.export import render_points_png

__all__ = ["plot_class_iou", "plot_confusion", "render_labelled_map"]

# Distinct from the class palette, which is drawn as a strip under the bars.
_METHOD_COLORS = ("#9ecae1", "#4292c6", "#08306b", "#fdae6b", "#e6550d", "#7f2704", "#a1d99b", "#31a354")


def _save(fig: Figure, path: str | os.PathLike, dpi: int) -> Path:
    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def plot_class_iou(
    scores_by_method: Mapping[str, Sequence[float | None]],
    class_names: Sequence[str],
    class_colors: Sequence[Sequence[int]] | np.ndarray | None,
    path: str | os.PathLike,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Grouped bar chart of per-class IoU, one bar per method in each class group.

    scores_by_method: {method name: (C,) IoU fractions in [0, 1], NaN/None = class
    absent (no bar)}, in legend order, e.g. {"2D": ..., "3D": ..., "expert": ...}.
    class_names: C names. class_colors: (C, 3) RGB uint8 0..255 drawn as a strip under
    each group, or None. The legend shows each method's mIoU (mean over its non-NaN
    classes) in percent. Writes a PNG atomically and returns its path.
    """
    names = [str(n) for n in class_names]
    c = len(names)
    if not scores_by_method:
        raise ValueError("scores_by_method is empty: nothing to plot")
    values = {}
    for method, ious in scores_by_method.items():
        arr = np.array([np.nan if v is None else v for v in ious], dtype=np.float64)
        if arr.shape != (c,):
            raise ValueError(f"method {method!r} has {arr.shape[0]} IoUs for {c} classes")
        values[str(method)] = arr
    if class_colors is not None:
        class_colors = np.asarray(class_colors, dtype=np.float64).reshape(-1, 3)
        if class_colors.shape[0] != c:
            raise ValueError(f"{class_colors.shape[0]} class colours for {c} classes")

    m = len(values)
    group = 0.8
    width = group / m
    x = np.arange(c, dtype=np.float64)
    fig = Figure(figsize=(max(6.0, 0.3 * c * max(1.0, m / 2) + 2.0), 4.2), layout="constrained")
    ax = fig.add_subplot()
    for k, (method, arr) in enumerate(values.items()):
        offset = (k - (m - 1) / 2) * width
        shown = ~np.isnan(arr)
        miou = f"{100 * np.nanmean(arr):.1f}" if shown.any() else "n/a"
        ax.bar(
            x[shown] + offset,
            100 * arr[shown],
            width * 0.95,
            color=_METHOD_COLORS[k % len(_METHOD_COLORS)],
            edgecolor="black",
            linewidth=0.3,
            label=f"{method} (mIoU {miou})",
        )
    # Class colours under the axis make the bars readable against the map renders.
    strip = 4.0
    if class_colors is not None:
        ax.bar(x, -strip, group, bottom=0.0, color=class_colors / 255.0, edgecolor="none")
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylim(-strip - 1.0 if class_colors is not None else 0.0, 100.0)
    ax.set_xlim(-0.6, c - 0.4)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(np.arange(0, 101, 20))
    ax.set_ylabel("IoU [%]")
    ax.grid(axis="y", linewidth=0.3, alpha=0.6)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)


def plot_confusion(
    confusion: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike,
    normalize: str | None = "true",
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Heat map of a (C, C+1) confusion matrix (rows ground truth, last column "unknown").

    normalize: "true" divides each row by its ground-truth point count (rows without
    points stay blank), "none"/None shows raw counts. class_names: C names. Cells are
    annotated with their value when C <= 25. Writes a PNG atomically; returns its path.
    """
    conf = np.asarray(confusion)
    if conf.ndim != 2 or conf.shape[1] != conf.shape[0] + 1:
        raise ValueError(f"confusion must have shape (C, C+1), got {conf.shape}")
    c = conf.shape[0]
    names = [str(n) for n in class_names]
    if len(names) != c:
        raise ValueError(f"{len(names)} class names for {c} classes")
    if normalize == "true":
        rows = conf.sum(axis=1, keepdims=True).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            data = np.where(rows > 0, conf / rows, np.nan)
        vmax, label = 1.0, "fraction of ground-truth points"
    elif normalize in (None, "none"):
        data = conf.astype(np.float64)
        vmax, label = max(float(data.max()), 1.0), "points"
    else:
        raise ValueError(f"normalize must be 'true', 'none' or None, got {normalize!r}")

    side = max(4.0, 0.32 * c + 2.5)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.add_subplot()
    # Grey marks rows of classes without ground-truth points (nothing to normalise by).
    cmap = colormaps["Blues"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label=label)
    # A line separates the "unknown" column, which is not a class.
    ax.axvline(c - 0.5, color="black", linewidth=1.0)
    ax.set_xticks(np.arange(c + 1))
    ax.set_xticklabels(names + ["unknown"], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(np.arange(c))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if c <= 25:
        for (i, j), v in np.ndenumerate(data):
            if np.isnan(v) or v == 0:
                continue
            text = f"{v:.2f}" if normalize == "true" else f"{int(v)}"
            shade = np.mean(to_rgb(cmap(v / vmax)))
            ax.text(j, i, text, ha="center", va="center", fontsize=5, color="white" if shade < 0.5 else "black")
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)


def render_labelled_map(
    points: np.ndarray,
    colors: np.ndarray,
    path: str | os.PathLike,
    width: int = 1024,
    height: int = 768,
    voxel_size: float = 0.05,
    up: np.ndarray | None = None,
    front: np.ndarray | None = None,
) -> Path:
    """Render coloured points (e.g. ground-truth points coloured by transferred labels,
    ``LabelSpace.colorize``) headlessly with the map renderer.

    points: (N, 3) float [m]; colors: (N, 3) uint8 RGB; width, height: pixels;
    voxel_size: edge of the cube drawn per point [m]; up / front: (3,) view directions as
    in ``map.export.render_png``. Raises ValueError for N = 0, RuntimeError without a
    rendering context (EGL / Mesa). Writes the PNG atomically; returns its path.
    """
    colors = np.asarray(colors)
    if colors.dtype != np.uint8:
        raise ValueError(f"colors must be uint8 RGB, got {colors.dtype}")
    return render_points_png(points, colors, path, voxel_size, width=width, height=height, up=up, front=front)
