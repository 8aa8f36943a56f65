"""FaceClassifier: uint8 gray face crops in, calibrated probabilities out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ferkit.inference.checkpoint import LoadedModel, load_model


class FaceClassifier:
    """Classify 48x48 gray faces with a loaded model.

    Args:
        loaded: the model and its metadata (see load_model).
        tta: average the logits of each face and its mirror image.
        device: torch device to run on.
    """

    def __init__(self, loaded: LoadedModel, tta: bool = False, device: str = "cpu") -> None:
        self.loaded = loaded
        self.model = loaded.model.to(device).eval()
        self.device = device
        self.tta = tta

    @classmethod
    def from_path(cls, path: str | Path, tta: bool = False, device: str = "cpu") -> "FaceClassifier":
        """Load weights (run folder or .safetensors) and wrap them."""
        return cls(load_model(path), tta=tta, device=device)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.loaded.labels

    @property
    def temperature(self) -> float:
        """The calibration temperature stored with the weights (1.0 when not calibrated)."""
        return float(self.loaded.metadata.get("temperature", 1.0))

    def logits(self, faces: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Raw logits (N, C) for uint8 gray faces (N, 48, 48)."""
        faces = np.asarray(faces)
        if faces.ndim != 3 or faces.shape[1:] != (self.loaded.preprocessing.size,) * 2:
            raise ValueError(f"expected gray faces (N, 48, 48), got shape {faces.shape}")
        out = np.empty((len(faces), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(faces), batch_size):
                x = self.loaded.preprocessing(faces[start : start + batch_size]).to(self.device)
                logits = self.model(x)
                if self.tta:
                    logits = (logits + self.model(x.flip(-1))) / 2
                out[start : start + len(x)] = logits.float().cpu().numpy()
        return out

    def probabilities(self, faces: np.ndarray, temperature: float | None = None) -> np.ndarray:
        """Calibrated probabilities (N, C), rows summing to 1, columns in ``labels`` order."""
        t = self.temperature if temperature is None else temperature
        logits = torch.from_numpy(self.logits(faces)) / t
        return logits.softmax(dim=1).numpy()
