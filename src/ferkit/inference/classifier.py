"""FaceClassifier: the torch backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ferkit.inference.base import Classifier, check_prior
from ferkit.inference.checkpoint import LoadedModel, load_model
from ferkit.models.base import MODULE_CALL_LOCK


class FaceClassifier(Classifier):
    """Classify 48x48 gray faces with a PyTorch model.

    Args:
        loaded: the model and its metadata (see load_model).
        tta: average the logits of each face and its mirror image.
        device: torch device to run on.
        prior: "train" or "uniform" (see Classifier).
    """

    backend = "torch"

    def __init__(self, loaded: LoadedModel, tta: bool = False, device: str = "cpu", prior: str = "train") -> None:
        self.prior = check_prior(prior)
        self.loaded = loaded
        self.model = loaded.model.to(device).eval()
        self.device = device
        self.tta = tta
        self.labels = loaded.labels
        self.preprocessing = loaded.preprocessing
        self.metadata = loaded.metadata
        self.weights_path = loaded.path
        self._fast = _inference_copy(self.model) if device == "cpu" else self.model
        self._prior_calibration()  # weights that cannot give the prior fail here, not at the first face

    @classmethod
    def from_path(cls, path: str | Path, tta: bool = False, device: str = "cpu", prior: str = "train",
                  expected_sha256: str | None = None) -> "FaceClassifier":
        """Load weights (run folder or .safetensors) and wrap them; ``expected_sha256`` pins the
        weights file's hash."""
        return cls(load_model(path, expected_sha256=expected_sha256), tta=tta, device=device, prior=prior)

    @property
    def weights_file(self) -> Path:
        return self.weights_path

    @property
    def can_explain(self) -> bool:
        return True

    def torch_classifier(self) -> FaceClassifier:
        return self

    def _logits(self, inputs: np.ndarray) -> np.ndarray:
        with MODULE_CALL_LOCK, torch.inference_mode():
            return self._fast(torch.from_numpy(inputs).to(self.device)).float().cpu().numpy()


def _inference_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of an eval-mode model with BatchNorm folded into the convolutions and channels-last
    memory, about 25% faster on CPU (the original stays untouched for Grad-CAM's hooks)."""
    from torch.fx.experimental.optimization import fuse

    try:
        with MODULE_CALL_LOCK:
            fast = fuse(model)
    except (torch.fx.proxy.TraceError, NotImplementedError, RuntimeError, TypeError):
        return model  # an architecture FX cannot trace runs as it is
    # torch's type hints omit Module.to's memory_format keyword, which it documents and accepts
    return fast.to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
