"""Figures written by `ferkit explain`: one face with its heatmap, or all classes side by side."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ferkit.explain.overlay import overlay


def explanation_figure(image: np.ndarray, heatmap: np.ndarray, title: str) -> Figure:
    """The face (gray or RGB) with its heatmap blended on, titled."""
    fig = Figure(figsize=(4, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.imshow(overlay(image, heatmap))
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    return fig


def all_classes_figure(image: np.ndarray, heatmaps: np.ndarray, probs: np.ndarray, names: Sequence[str]) -> Figure:
    """One panel per emotion: the heatmap for that class and its probability."""
    columns = 4
    rows = int(np.ceil(len(names) / columns))
    fig = Figure(figsize=(3 * columns, 3.3 * rows), layout="constrained")
    best = int(np.argmax(probs))
    for k, ax in enumerate(np.atleast_1d(fig.subplots(rows, columns)).ravel()):
        ax.axis("off")
        if k < len(names):
            ax.imshow(overlay(image, heatmaps[k]))
            ax.set_title(f"{names[k]} {probs[k]:.2f}", fontsize=10, fontweight="bold" if k == best else "normal")
    return fig
