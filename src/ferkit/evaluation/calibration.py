"""Temperature scaling (Guo et al., 2017): one scalar T dividing the logits, fitted by NLL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ferkit.data.protocols import LabelledSplit
from ferkit.inference.base import softmax
from ferkit.inference.checkpoint import update_metadata
from ferkit.inference.classifier import FaceClassifier


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """Return the temperature T > 0 that minimises the NLL of softmax(logits / T) on (logits, labels)."""
    x = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / T)."""
    probs = softmax(logits, temperature)
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1)).mean())


def calibrate_weights(weights: str | Path, valid: LabelledSplit) -> dict[str, Any]:
    """Fit the temperature on a validation split and store it in the weights' JSON.

    Returns the ``calibration`` record written (temperature, split size, NLL before and after).
    """
    classifier = FaceClassifier.from_path(weights)
    logits = classifier.logits(valid.images)
    temperature = fit_temperature(logits, valid.labels)
    record = {
        "temperature": temperature,
        "fitted_on": "valid",
        "faces": int(len(valid)),
        "nll_before": nll(logits, valid.labels),
        "nll_after": nll(logits, valid.labels, temperature),
    }
    update_metadata(weights, {"temperature": temperature, "calibration": record})
    return record
