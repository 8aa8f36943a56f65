"""Where the model shipped inside the package lives."""

from __future__ import annotations

from pathlib import Path

from ferkit.errors import CheckpointError

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "weights"


def default_weights() -> Path:
    """The bundled model's folder; a clear error when this install has none."""
    if not (BUNDLED_DIR / "weights.safetensors").is_file():
        raise CheckpointError("this ferkit install has no bundled model; pass --weights RUN_FOLDER_OR_SAFETENSORS")
    return BUNDLED_DIR
