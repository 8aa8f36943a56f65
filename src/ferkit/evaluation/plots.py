"""Evaluation figures. Each function returns a matplotlib Figure (no pyplot state, safe in threads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ferkit.explain.overlay import overlay
from ferkit.labels import emotion_hex


def confusion_panel(ax: Any, matrix: Sequence[Sequence[int]], names: Sequence[str], title: str,
                    fractions: bool = False) -> None:
    """Draw one confusion matrix on ``ax`` (rows = true class, columns = predicted), coloured by the
    row-normalised values and labelled with the counts, or with the fractions when ``fractions``."""
    cm = np.asarray(matrix, dtype=np.float64)
    normalised = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    values, fmt = (normalised, "{:.2f}") if fractions else (cm, "{:.0f}")
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(names)):
        for j in range(len(names)):
            colour = "white" if normalised[i, j] > 0.5 else "black"
            ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=8, color=colour)


def confusion_matrix_figure(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> Figure:
    """Counts and row-normalised confusion matrices; rows = true class, columns = predicted."""
    fig = Figure(figsize=(15, 6.5), layout="constrained")
    for ax, fractions, title in zip(fig.subplots(1, 2), (False, True),
                                    ("counts", "row-normalised (recall on the diagonal)")):
        confusion_panel(ax, matrix, names, f"Confusion matrix, {title}", fractions)
    return fig


def roc_figure(curves: Sequence[tuple[np.ndarray, np.ndarray] | None], aucs: Sequence[float | None], names: Sequence[str]) -> Figure:
    """One-vs-rest ROC curve per emotion with its AUC, and the chance diagonal."""
    fig = Figure(figsize=(7, 6.5), layout="constrained")
    ax = fig.subplots()
    for curve, auc, name in zip(curves, aucs, names):
        if curve is not None:
            ax.plot(curve[0], curve[1], color=emotion_hex(name), label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC, one emotion vs the rest")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def reliability_figure(before: dict[str, np.ndarray], after: dict[str, np.ndarray], ece_before: float,
                       ece_after: float, temperature: float) -> Figure:
    """Reliability diagrams before and after temperature scaling."""
    fig = Figure(figsize=(12, 5.5), layout="constrained")
    for ax, bins, title in zip(fig.subplots(1, 2), (before, after),
                               (f"uncalibrated, ECE {ece_before:.3f}", f"temperature {temperature:.2f}, ECE {ece_after:.3f}")):
        edges = bins["edges"]
        centres = (edges[:-1] + edges[1:]) / 2
        filled = bins["count"] > 0
        ax.bar(centres[filled], bins["accuracy"][filled], width=edges[1] - edges[0], edgecolor="black",
               color="#1f77b4", alpha=0.8, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        ax.plot(centres[filled], bins["confidence"][filled], "o", color="#d62728", label="mean confidence in the bin")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=8)
    return fig


def history_figure(history: Sequence[dict[str, Any]], best_epoch: int | None) -> Figure:
    """Loss and accuracy per epoch, train vs validation; learning-rate drops and the best epoch marked."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(13, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "acc")):
        for split, style in (("train", "-"), ("val", "-o")):
            values = [row.get(f"{split}_{metric}") for row in history]
            ax.plot(epochs, [np.nan if v is None else v for v in values], style, markersize=3, label=split)
        if metric == "acc":
            balanced = [row.get("val_balanced_acc") for row in history]
            ax.plot(epochs, [np.nan if v is None else v for v in balanced], ":", label="val balanced")
        lrs = [row.get("lr") for row in history]
        for epoch, before, lr in zip(epochs[1:], lrs, lrs[1:]):
            if lr is not None and before is not None and lr < before * 0.5:
                ax.axvline(epoch, color="gray", linestyle=":", linewidth=1)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="#d62728", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_title({"loss": "Loss", "acc": "Accuracy"}[metric] + " (dotted grey: learning-rate drops)")
        ax.legend(fontsize=8)
    return fig


def coverage_figure(curve: dict[str, list[float]], min_confidence: float | None) -> Figure:
    """Accuracy of the faces kept against the fraction kept, for confidence thresholds."""
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    ax.plot(curve["coverage"], curve["accuracy"], "-o", markersize=3)
    for t, c, a in zip(curve["threshold"], curve["coverage"], curve["accuracy"]):
        if round(t * 20) % 4 == 0:
            ax.annotate(f"{t:.2f}", (c, a), textcoords="offset points", xytext=(4, -10), fontsize=7)
    if min_confidence is not None:
        ax.set_title(f"Accuracy vs coverage (chosen threshold {min_confidence:.2f})")
    else:
        ax.set_title("Accuracy vs coverage (labels: confidence threshold)")
    ax.set_xlabel("coverage (fraction of faces answered)")
    ax.set_ylabel("accuracy on the faces answered")
    ax.invert_xaxis()
    return fig


def robustness_figure(rows: dict[str, dict[str, float]]) -> Figure:
    """Accuracy and balanced accuracy under each corruption (rows of robustness_metrics), with
    the clean values as dashed lines."""
    names = [n for n in rows if n != "none"]
    fig = Figure(figsize=(9, 0.42 * len(names) + 1.5), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(names))
    for offset, key, colour in ((-0.2, "accuracy", "#1f77b4"), (0.2, "balanced_accuracy", "#ff7f0e")):
        ax.barh(y + offset, [rows[n][key] for n in names], height=0.4, color=colour, label=key.replace("_", " "))
        ax.axvline(rows["none"][key], color=colour, linestyle="--", linewidth=1)
    ax.set_yticks(y, names)
    ax.set_xlabel("score (dashed: clean)")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    ax.set_title("Accuracy and balanced accuracy under corruptions")
    return fig


def gradcam_average_figure(mean_faces: np.ndarray, mean_maps: np.ndarray, counts: Sequence[int], names: Sequence[str]) -> Figure:
    """Per emotion: the mean face of its correctly classified test faces with the mean Grad-CAM map."""
    fig = Figure(figsize=(2.2 * len(names), 2.8), layout="constrained")
    for ax, face, heat, n, name in zip(fig.subplots(1, len(names)), mean_faces, mean_maps, counts, names):
        ax.imshow(overlay(face, heat) if n else np.zeros((48, 48, 3), np.uint8))
        ax.set_title(f"{name}\n(n={n})", fontsize=9)
        ax.axis("off")
    fig.suptitle("Class-average Grad-CAM over correctly classified faces")
    return fig


def gradcam_examples_figure(faces: np.ndarray, maps: np.ndarray, true: Sequence[int], predicted: Sequence[int],
                            names: Sequence[str], columns: int = 8) -> Figure:
    """A grid of faces with their Grad-CAM (for the predicted class), titled true -> predicted."""
    rows = max(1, int(np.ceil(len(faces) / columns)))
    fig = Figure(figsize=(1.8 * columns, 2.1 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, face, heat, t, p in zip(axes, faces, maps, true, predicted):
        ax.imshow(overlay(face, heat))
        ax.set_title(f"{names[t]} -> {names[p]}", fontsize=7, color="green" if t == p else "red")
    return fig
