"""ferkit: facial expression recognition trained on FER+ (8 emotions, 48x48 gray faces).

    import ferkit
    rec = ferkit.load()                      # the bundled model and the default face detector
    faces = rec.analyze("photo.jpg")         # one FaceResult per face
    probs = rec.classify(crops)              # (N, 48, 48) uint8 gray crops -> (N, 8)

Attributes are imported on first use, so `import ferkit` stays light (the ONNX path never loads torch).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ferkit.errors import CheckpointError, ConfigError, DataError, FerkitError, ModelNotFoundError
from ferkit.labels import EMOTIONS

__version__ = "0.1.0"

_LAZY = {
    "load": "ferkit.inference.recognizer",
    "Recognizer": "ferkit.inference.recognizer",
    "FaceResult": "ferkit.inference.recognizer",
    "create_model": "ferkit.models",
    "list_models": "ferkit.models",
}

__all__ = [
    "EMOTIONS",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "FaceResult",
    "FerkitError",
    "ModelNotFoundError",
    "Recognizer",
    "__version__",
    "create_model",
    "list_models",
    "load",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ferkit' has no attribute '{name}'")
