"""The models shipped inside the package, by name."""

from __future__ import annotations

from pathlib import Path

from ferkit.errors import CheckpointError

WEIGHTS_ROOT = Path(__file__).resolve().parent.parent / "weights"
BUNDLED_MODELS = ("fast", "accurate")
DEFAULT_MODEL = "fast"
ModelSource = str | Path


def bundled_dir(name: str) -> Path:
    """Where the bundled model ``name`` lives (whether or not this install holds it)."""
    if name not in BUNDLED_MODELS:
        raise CheckpointError(f"'{name}' is not a bundled model; choose one of: {', '.join(BUNDLED_MODELS)}")
    return WEIGHTS_ROOT / name


def bundled_models() -> tuple[str, ...]:
    """The bundled models this install holds, in BUNDLED_MODELS order."""
    return tuple(name for name in BUNDLED_MODELS if (bundled_dir(name) / "weights.safetensors").is_file())


def bundled_weights(name: str = DEFAULT_MODEL) -> Path:
    """The folder of the bundled model ``name``; a clear error when this install lacks it."""
    folder = bundled_dir(name)
    if not (folder / "weights.safetensors").is_file():
        held = ", ".join(bundled_models()) or "none"
        raise CheckpointError(f"this ferkit install has no bundled '{name}' model (it holds: {held}); "
                              "pass a run folder, .safetensors or .onnx file instead")
    return folder


def default_weights() -> Path:
    """The default bundled model's folder."""
    return bundled_weights(DEFAULT_MODEL)


def resolve_model(model: ModelSource | None) -> Path:
    """A bundled model's name ("fast", "accurate"), a path, or None (the default) -> a path.

    A bundled name wins over a folder of the same name in the working directory; write
    ``./fast`` for the folder.
    """
    if model is None:
        return default_weights()
    if isinstance(model, str) and model in BUNDLED_MODELS:
        return bundled_weights(model)
    return Path(model)
