"""What every classifier backend offers: logits and calibrated probabilities of 48x48 gray faces."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ferkit.preprocessing import Preprocessing


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature, in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Classifier(ABC):
    """A face classifier backend (torch or ONNX Runtime).

    Attributes:
        labels: emotion names, in output column order.
        preprocessing: how faces become model input.
        metadata: the weights' JSON description.
        tta: average each face's logits with its mirror image's.
    """

    labels: tuple[str, ...]
    preprocessing: Preprocessing
    metadata: dict[str, Any]
    tta: bool = False

    @property
    def temperature(self) -> float:
        """The calibration temperature stored with the weights (1.0 when not calibrated)."""
        return float(self.metadata.get("temperature", 1.0))

    @abstractmethod
    def _logits(self, inputs: np.ndarray) -> np.ndarray:
        """Logits (N, C) for normalised float32 input (N, 1, H, W)."""

    @property
    def logit_bias(self) -> np.ndarray | None:
        """Per-class bias added to the logits (post-hoc logit adjustment fitted on valid), or None."""
        bias = self.metadata.get("logit_bias")
        return None if bias is None else np.asarray(bias, dtype=np.float32)

    def logits(self, faces: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Logits (N, C) for uint8 gray faces (N, 48, 48), with the stored logit bias applied."""
        logits = self.raw_logits(faces, batch_size)
        bias = self.logit_bias
        return logits if bias is None else logits + bias

    def raw_logits(self, faces: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """The network's logits (N, C) for uint8 gray faces (N, 48, 48), before any adjustment."""
        faces = np.asarray(faces)
        size = self.preprocessing.size
        if faces.ndim != 3 or faces.shape[1:] != (size, size):
            raise ValueError(f"expected gray faces (N, {size}, {size}), got shape {faces.shape}")
        out = np.empty((len(faces), len(self.labels)), dtype=np.float32)
        for start in range(0, len(faces), batch_size):
            x = self.preprocessing.array(faces[start : start + batch_size])
            if self.tta:  # the faces and their mirror images in one forward pass: one call's overhead
                both = self._logits(np.concatenate([x, x[..., ::-1]]))
                logits = (both[: len(x)] + both[len(x) :]) / 2
            else:
                logits = self._logits(x)
            out[start : start + len(x)] = logits
        return out

    def probabilities(self, faces: np.ndarray, temperature: float | None = None) -> np.ndarray:
        """Calibrated probabilities (N, C) as float32, rows summing to 1, columns in ``labels`` order."""
        t = self.temperature if temperature is None else temperature
        return softmax(self.logits(faces), t).astype(np.float32)
