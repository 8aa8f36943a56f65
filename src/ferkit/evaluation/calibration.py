"""Temperature scaling (Guo et al., 2017): one scalar T dividing the logits, fitted by NLL."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, log_loss

from ferkit.inference.base import softmax


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200,
                    class_weights: np.ndarray | None = None) -> float:
    """Return the temperature T > 0 that minimises the NLL of softmax(logits / T) on (logits, labels);
    ``class_weights`` weigh each face by its class (1 / frequency: the NLL under a uniform prior)."""
    x = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x / log_t.exp(), y, weight=weight)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / T)."""
    return float(log_loss(labels, softmax(logits, temperature), labels=np.arange(logits.shape[1])))


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in ``labels`` (scikit-learn's balanced accuracy)."""
    with warnings.catch_warnings():  # predictions of a class absent from the labels are fine here
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(labels, predicted))


def choose_logit_adjustment(logits: np.ndarray, labels: np.ndarray, prior: np.ndarray,
                            max_accuracy_drop: float = 0.005) -> float:
    """Post-hoc logit adjustment (Menon et al., ICLR 2021): the tau in logits - tau * log(prior) that
    maximises balanced accuracy while losing at most ``max_accuracy_drop`` accuracy (on valid)."""
    log_prior = np.log(np.clip(prior, 1e-12, 1))
    base_accuracy = float((logits.argmax(axis=1) == labels).mean())
    best_tau, best_balanced = 0.0, balanced_accuracy(labels, logits.argmax(axis=1))
    for tau in np.round(np.arange(0.05, 2.0001, 0.05), 2):
        predicted = (logits - tau * log_prior).argmax(axis=1)
        if float((predicted == labels).mean()) < base_accuracy - max_accuracy_drop:
            continue
        balanced = balanced_accuracy(labels, predicted)
        if balanced > best_balanced + 1e-9:
            best_tau, best_balanced = float(tau), balanced
    return best_tau


def uniform_prior_calibration(raw: np.ndarray, labels: np.ndarray, prior: np.ndarray,
                              raw_tta: np.ndarray | None = None) -> dict[str, Any]:
    """The logit bias that removes the training class prior completely (-log prior) and the
    temperature fitted for it on valid (also for TTA logits when given), each face weighted by
    1 / its class frequency so that valid stands for a uniform mix of emotions."""
    prior = np.clip(np.asarray(prior, dtype=np.float64), 1e-12, 1)
    bias = -np.log(prior)
    bias -= bias.mean()  # softmax ignores a constant; centred values read better
    counts = np.bincount(labels, minlength=raw.shape[1]).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / raw.shape[1], 0.0)
    predicted = (raw + bias).argmax(axis=1)
    record: dict[str, Any] = {
        "class_prior": [float(p) for p in prior],
        "logit_bias": [float(b) for b in bias],
        "temperature": fit_temperature(raw + bias, labels, class_weights=weights),
        "accuracy_valid": float((predicted == labels).mean()),
        "balanced_accuracy_valid": balanced_accuracy(labels, predicted),
    }
    if raw_tta is not None:
        record["temperature_tta"] = fit_temperature(raw_tta + bias, labels, class_weights=weights)
    return record
