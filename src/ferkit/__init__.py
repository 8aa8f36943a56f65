"""ferkit: facial expression recognition trained on FER+ (8 emotions, 48x48 gray faces)."""

from ferkit.errors import CheckpointError, ConfigError, DataError, FerkitError, ModelNotFoundError
from ferkit.labels import EMOTIONS
from ferkit.models import create_model, list_models

__version__ = "0.1.0"

__all__ = [
    "EMOTIONS",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "FerkitError",
    "ModelNotFoundError",
    "__version__",
    "create_model",
    "list_models",
]
