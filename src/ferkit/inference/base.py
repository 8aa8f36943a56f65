"""What every classifier backend offers: logits and calibrated probabilities of 48x48 gray faces."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferkit.errors import InputShapeError
from ferkit.preprocessing import Preprocessing

if TYPE_CHECKING:
    from ferkit.inference.classifier import FaceClassifier


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature, in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


#: Each backend's name for people, by its name in ``ferkit.load(backend=...)``.
BACKEND_NAMES = {"torch": "PyTorch", "onnx": "ONNX Runtime"}
PRIORS = ("train", "uniform")
UNIFORM_PRIOR_KEY = "uniform_prior"


def check_prior(prior: str) -> str:
    """``prior`` if it is one of PRIORS, else a ConfigError saying which are."""
    from ferkit.errors import ConfigError

    if prior not in PRIORS:
        raise ConfigError(f"unknown prior '{prior}'; choose one of: {', '.join(PRIORS)}")
    return prior


class Classifier(ABC):
    """A face classifier backend (torch or ONNX Runtime).

    Attributes:
        backend: "torch" or "onnx", as ``ferkit.load(backend=...)`` names it.
        labels: emotion names, in output column order.
        preprocessing: how faces become model input.
        metadata: the weights' JSON description.
        tta: average each face's logits with its mirror image's.
        prior: the class prior the answers assume. "train": faces arrive as often as in the
            training data (FER+: mostly neutral and happy), with the partial logit adjustment
            fitted on valid; "uniform": every emotion equally likely (posed or elicited
            expressions), the training prior removed from the logits completely.
    """

    backend: str
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    metadata: dict[str, Any]
    tta: bool = False
    prior: str = "train"

    @property
    @abstractmethod
    def weights_file(self) -> Path:
        """The file that runs: .safetensors for torch, .onnx for ONNX Runtime."""

    @property
    def precision(self) -> str:
        """"int8" for a quantized model, else "fp32"."""
        return "int8" if "quantization" in self.metadata else "fp32"

    def _prior_calibration(self) -> dict[str, Any]:
        if self.prior == "train":
            return self.metadata
        from ferkit.errors import CheckpointError

        stored = self.metadata.get(UNIFORM_PRIOR_KEY)
        if not isinstance(stored, dict):
            raise CheckpointError("these weights store no class prior, so prior='uniform' is unavailable; "
                                  "fit it with `ferkit calibrate --weights WEIGHTS --data DATA`")
        return stored

    @property
    def temperature(self) -> float:
        """The calibration temperature for the chosen prior, fitted for TTA logits when TTA is on
        (1.0 when not calibrated)."""
        calibration = self._prior_calibration()
        key = "temperature_tta" if self.tta and "temperature_tta" in calibration else "temperature"
        return float(calibration.get(key, 1.0))

    @property
    def mirrored_inside(self) -> bool:
        """Whether the network itself averages each face with its mirror image (an ensemble built
        with ``mirror``), so that TTA would only repeat it."""
        kwargs = self.metadata.get("model_kwargs")
        return isinstance(kwargs, dict) and kwargs.get("mirror") is True

    @property
    def can_explain(self) -> bool:
        """Whether Grad-CAM can explain these weights (it needs their torch model)."""
        return False

    def torch_classifier(self) -> FaceClassifier:
        """The torch classifier of these weights, for Grad-CAM (the torch backend: itself); an
        ExplainUnavailableError where ``can_explain`` is False."""
        from ferkit.errors import ExplainUnavailableError

        raise ExplainUnavailableError(f"{type(self).__name__} cannot be explained with Grad-CAM")

    @abstractmethod
    def _logits(self, inputs: np.ndarray) -> np.ndarray:
        """Logits (N, C) for normalised float32 input (N, 1, H, W)."""

    @property
    def logit_bias(self) -> np.ndarray | None:
        """Per-class bias added to the logits for the chosen prior (post-hoc logit adjustment), or None."""
        bias = self._prior_calibration().get("logit_bias")
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
            raise InputShapeError(f"expected gray faces (N, {size}, {size}), got shape {faces.shape}")
        out = np.empty((len(faces), len(self.labels)), dtype=np.float32)
        for start in range(0, len(faces), batch_size):
            x = self.preprocessing.array(faces[start : start + batch_size])
            if self.tta and not self.mirrored_inside:  # faces and mirror images in one pass: one call's overhead
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
