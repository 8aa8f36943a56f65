"""Classification and calibration metrics as pure functions of labels and probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from torchmetrics.functional.classification import multiclass_calibration_error

ECE_BINS = 15


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE with equal-width confidence bins (torchmetrics' l1 calibration error)."""
    return float(
        multiclass_calibration_error(
            torch.as_tensor(probs, dtype=torch.float64), torch.as_tensor(labels), probs.shape[1], n_bins=bins
        )
    )


def multiclass_brier(labels: np.ndarray, probs: np.ndarray) -> float:
    """Brier score: mean over faces of the squared distance between probabilities and one-hot labels."""
    onehot = np.eye(probs.shape[1])[labels]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def per_class_auc(labels: np.ndarray, probs: np.ndarray) -> list[float | None]:
    """One-vs-rest ROC AUC per class; None for a class with no positive or no negative face."""
    aucs: list[float | None] = []
    for k in range(probs.shape[1]):
        positive = labels == k
        aucs.append(float(roc_auc_score(positive, probs[:, k])) if 0 < positive.sum() < len(labels) else None)
    return aucs


def roc_curves(labels: np.ndarray, probs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """One-vs-rest ROC curve (false positive rate, true positive rate) per class, None where undefined."""
    curves: list[tuple[np.ndarray, np.ndarray] | None] = []
    for k in range(probs.shape[1]):
        positive = labels == k
        if 0 < positive.sum() < len(labels):
            fpr, tpr, _ = roc_curve(positive, probs[:, k])
            curves.append((fpr, tpr))
        else:
            curves.append(None)
    return curves


def reliability_bins(labels: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per confidence bin: mean confidence, accuracy and face count (for the reliability diagram)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    safe = np.maximum(counts, 1)
    return {
        "edges": edges,
        "confidence": np.bincount(index, confidence, bins) / safe,
        "accuracy": np.bincount(index, correct.astype(float), bins) / safe,
        "count": counts,
    }


def coverage_curve(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray | None = None) -> dict[str, list[float]]:
    """Accuracy of the faces whose confidence reaches each threshold, and the fraction kept (coverage)."""
    thresholds = np.linspace(0, 0.95, 20) if thresholds is None else thresholds
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    coverage, accuracy = [], []
    for t in thresholds:
        kept = confidence >= t
        coverage.append(float(kept.mean()))
        accuracy.append(float(correct[kept].mean()) if kept.any() else float("nan"))
    return {"threshold": [float(t) for t in thresholds], "coverage": coverage, "accuracy": accuracy}


def classification_metrics(labels: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...]) -> dict[str, Any]:
    """Every headline metric for integer ``labels`` (N,) and ``probs`` (N, C) with rows summing to 1."""
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    classes = list(range(len(class_names)))
    predicted = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    aucs = per_class_auc(labels, probs)
    defined = [a for a in aucs if a is not None]
    averages = {}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(labels, predicted, labels=classes, average=average, zero_division=0)
        averages[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    return {
        "images": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "macro": averages["macro"],
        "weighted": averages["weighted"],
        "per_class": {
            name: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
                "auc": aucs[k],
            }
            for k, name in enumerate(class_names)
        },
        "macro_auc": float(np.mean(defined)) if defined else None,
        "log_loss": float(log_loss(labels, np.clip(probs, 1e-12, 1), labels=classes)),
        "ece": expected_calibration_error(labels, probs),
        "brier": multiclass_brier(labels, probs),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=classes).tolist(),
    }


def report_text(labels: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...]) -> str:
    """scikit-learn's classification report (precision, recall, f1, support; accuracy and averages)."""
    return classification_report(
        labels, probs.argmax(axis=1), labels=list(range(len(class_names))), target_names=list(class_names),
        digits=4, zero_division=0,
    )
