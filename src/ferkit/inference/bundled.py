"""The models shipped inside the package, by name."""

from __future__ import annotations

from pathlib import Path

from ferkit.errors import CheckpointError
from ferkit.inference.metadata import WEIGHTS_FILE

WEIGHTS_ROOT = Path(__file__).resolve().parent.parent / "weights"
BUNDLED_MODELS = ("fast", "accurate")
DEFAULT_MODEL = "fast"
ModelSource = str | Path
PRECISIONS = ("fp32", "int8")
#: The ONNX files beside a model's weights.safetensors, by precision (built by scripts/ship_onnx.py).
ONNX_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
#: The precision ``ferkit.load(name)`` uses for each bundled model, chosen on FER+ test by
#: scripts/ship_onnx.py (int8 only where it stays within 0.5 points of fp32 clean and 1 point
#: under each camera corruption); fp32 for every other model.
#: fast: int8 86.42% clean against fp32 86.32%, -0.22 to +0.48 points under the camera corruptions
#: (reports/fast/onnx.json). accurate: int8 87.54% against fp32 87.50%, -0.13 to +0.03 points under
#: the camera corruptions (reports/accurate/onnx.json).
DEFAULT_PRECISION: dict[str, str] = {"fast": "int8", "accurate": "int8"}


def bundled_dir(name: str) -> Path:
    """Where the bundled model ``name`` lives (whether or not this install holds it)."""
    if name not in BUNDLED_MODELS:
        raise CheckpointError(f"'{name}' is not a bundled model; choose one of: {', '.join(BUNDLED_MODELS)}")
    return WEIGHTS_ROOT / name


def bundled_models() -> tuple[str, ...]:
    """The bundled models this install holds, in BUNDLED_MODELS order."""
    return tuple(name for name in BUNDLED_MODELS if (bundled_dir(name) / WEIGHTS_FILE).is_file())


def bundled_weights(name: str = DEFAULT_MODEL) -> Path:
    """The folder of the bundled model ``name``; a clear error when this install lacks it."""
    folder = bundled_dir(name)
    if not (folder / WEIGHTS_FILE).is_file():
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


def onnx_file(path: Path, precision: str = "auto") -> Path | None:
    """The ONNX file to run for a resolved model path: the path itself if it is a .onnx file, else
    the folder's model.onnx / model.int8.onnx for ``precision`` ("auto": the bundled model's
    DEFAULT_PRECISION, fp32 otherwise); None when the folder holds none."""
    from ferkit.errors import ConfigError

    if precision != "auto" and precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}'; choose auto, {' or '.join(PRECISIONS)}")
    if path.suffix == ".onnx":
        return path
    if not path.is_dir():
        return None
    if precision == "auto":
        bundled = next((name for name in BUNDLED_MODELS if path.resolve() == bundled_dir(name)), None)
        precision = DEFAULT_PRECISION.get(bundled, "fp32") if bundled else "fp32"
    candidate = path / ONNX_FILES[precision]
    if candidate.is_file():
        return candidate
    if precision == "int8":
        raise CheckpointError(f"{path}: no int8 model ({ONNX_FILES['int8']}); make one with "
                              "`ferkit export --format onnx --int8 --data DATA`")
    return None
