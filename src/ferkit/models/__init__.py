"""Model registry and architectures. Importing this package registers every model."""

from ferkit.models import baseline_cnn, deep_cnn, ensemble, fernet, preresnet  # noqa: F401  (registration)
from ferkit.models.base import FerModel
from ferkit.models.registry import create_model, list_models, register_model
from ferkit.models.summary import ParamCount, count_parameters, layer_table, macs_per_face

__all__ = [
    "FerModel",
    "ParamCount",
    "count_parameters",
    "create_model",
    "layer_table",
    "list_models",
    "macs_per_face",
    "register_model",
]
