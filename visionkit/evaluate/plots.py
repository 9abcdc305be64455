"""Plots a person would rather look at than read: training curves, the confusion matrix,
and image grids (worst mistakes, predictions). All use matplotlib's Agg backend and are
written atomically; each function also returns the figure path."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionkit.io import save_figure


def new_figure(*grid: int, figsize: tuple[float, float] | None = None, **kwargs):
    """``(figure, axes)`` like ``plt.subplots`` but on a standalone ``Figure``: no pyplot
    state and no backend switch, so a notebook's own ``plt.show()`` keeps working."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **kwargs)


def plot_history(history, path: str | os.PathLike, title: str = "training curves") -> Path:
    """Loss and every metric per epoch, training beside validation (``val_`` columns; the
    validated epochs joined when ``val_every`` > 1 left the others empty).

    ``history`` is a pandas DataFrame or a path to ``history.csv`` with an ``epoch`` column.
    Vertical lines mark stage changes when a ``stage`` column is present.
    """
    import pandas as pd

    frame = pd.read_csv(history) if isinstance(history, (str, os.PathLike)) else history
    metrics = [
        c
        for c in frame.columns
        if c not in ("epoch", "stage", "lr", "learning_rate") and not c.startswith("val_")
    ]
    fig, axes = new_figure(
        1, max(1, len(metrics)), figsize=(4.5 * max(1, len(metrics)), 3.6), squeeze=False
    )
    epochs = frame["epoch"] + 1 if "epoch" in frame else np.arange(1, len(frame) + 1)
    for ax, name in zip(axes[0], metrics, strict=False):
        ax.plot(epochs, frame[name], marker="o", ms=3, label=f"train {name}")
        if f"val_{name}" in frame:
            done = frame[f"val_{name}"].notna().to_numpy()  # val_every > 1 leaves gaps
            ax.plot(epochs[done], frame[f"val_{name}"][done], marker="o", ms=3, label=f"val {name}")
        if "stage" in frame:
            stages = frame["stage"].astype(str).to_numpy()
            for c in np.flatnonzero(stages[1:] != stages[:-1]) + 1:
                ax.axvline(epochs.iloc[c] - 0.5, color="grey", ls="--", lw=1)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_confusion_matrix(
    matrix: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    normalize: bool = True,
    title: str = "confusion matrix",
) -> Path:
    """Rows true class, columns predicted; cells show counts (and row-normalised colour)."""
    counts = np.asarray(matrix, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    shade = (
        np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0) if normalize else counts
    )
    n = len(class_names)
    size = min(2.0 + 0.45 * n, 24)
    fig, ax = new_figure(figsize=(size + 1.5, size))
    image = ax.imshow(shade, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(
        image, ax=ax, fraction=0.046, label="fraction of the true class" if normalize else "count"
    )
    ax.set_xticks(
        range(n), labels=class_names, rotation=60 if n > 6 else 0, ha="right" if n > 6 else "center"
    )
    ax.set_yticks(range(n), labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                colour = "white" if shade[i, j] > 0.5 * (shade.max() or 1) else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour, fontsize=8)
    ax.set_title(title)
    return save_figure(fig, path)


def plot_image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    path: str | os.PathLike,
    *,
    colours: Sequence[str] | None = None,
    suptitle: str | None = None,
    cols: int | None = None,
) -> Path:
    """A grid of images (uint8 or float 0..255) with a coloured title under each."""
    n = max(1, len(images))
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = new_figure(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, (image, title) in enumerate(zip(images, titles, strict=True)):
        ax = axes.ravel()[k]
        array = np.asarray(image)
        if array.dtype != np.uint8:
            array = np.clip(array, 0, 255).astype(np.uint8)
        ax.imshow(array.squeeze(), cmap="gray" if array.ndim == 2 or array.shape[-1] == 1 else None)
        ax.set_title(title, fontsize=8, color=(colours[k] if colours else "black"))
    if suptitle:
        fig.suptitle(suptitle)
    return save_figure(fig, path)
