"""The weights' JSON description, checked field by field before anything is built from it.

A model.json (or the copy inside an ONNX file) comes from wherever the user got the weights: every
value is checked here so that a tampered or broken file gives a CheckpointError naming the field
and the value, never a NaN answer, a low-level error or gigabytes allocated. No torch here: the
ONNX Runtime path uses it too.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from ferkit.errors import CheckpointError
from ferkit.labels import EMOTIONS

FORMAT = "ferkit-weights"
#: 2: the weights files carry their own description and model.json records every file's sha256
#: (see integrity.py); 1: model.json alone, with the safetensors' sha256.
FORMAT_VERSION = 2
#: The two files of a weights folder (a run folder or a bundled model).
WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "model.json"
MAX_FACE_SIZE = 512


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically (a crash leaves the old file or the new one)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _sha256_hex(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def check_sha256(path: Path, expected: str | None) -> None:
    """Raise CheckpointError unless ``path`` hashes to ``expected`` (nothing to check when None)."""
    if expected is not None and sha256_file(path) != expected.strip().lower():
        raise CheckpointError(f"{path}: sha256 is not the expected {expected}; these are not the weights you pinned")


def _fail(where: str, field: str, value: Any, expected: str) -> CheckpointError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return CheckpointError(f"{where}: field '{field}' is {shown}; expected {expected}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_bias(where: str, field: str, bias: Any, classes: int) -> None:
    if not (isinstance(bias, list) and len(bias) == classes and all(_number(b) for b in bias)):
        raise _fail(where, field, bias, f"a list of {classes} finite numbers, one per label")


def _check_temperature(where: str, field: str, value: Any) -> None:
    if not (_number(value) and value > 0):
        raise _fail(where, field, value, "a finite number above 0")


def validate_metadata(metadata: Any, where: str) -> dict[str, Any]:
    """Return ``metadata`` if every field ferkit reads is well-formed, else raise CheckpointError.

    Args:
        metadata: the parsed JSON.
        where: the file it came from, for the message.
    """
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a ferkit weights description (no \"format\": \"{FORMAT}\")")
    version = metadata.get("format_version")
    if not (isinstance(version, int) and not isinstance(version, bool) and 1 <= version):
        raise _fail(where, "format_version", version, f"an integer from 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{where}: format_version {version} was written by a newer ferkit "
                              f"(this one reads up to {FORMAT_VERSION}); upgrade ferkit")
    labels = metadata.get("labels")
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)
            and len(set(labels)) == len(labels) and set(labels) <= set(EMOTIONS)):
        raise _fail(where, "labels", labels, f"distinct emotion names from: {', '.join(EMOTIONS)}")
    if not isinstance(metadata.get("model"), str):
        raise _fail(where, "model", metadata.get("model"), "a registered model name")
    if not isinstance(metadata.get("model_kwargs"), dict):
        raise _fail(where, "model_kwargs", metadata.get("model_kwargs"), "a mapping of keyword arguments")
    prep = metadata.get("preprocessing")
    if not (isinstance(prep, dict) and prep.get("color", "gray") == "gray"
            and isinstance(prep.get("size"), int) and 8 <= prep["size"] <= MAX_FACE_SIZE
            and _number(prep.get("mean")) and _number(prep.get("std")) and prep["std"] > 0):
        raise _fail(where, "preprocessing", prep,
                    f"gray faces of size 8 to {MAX_FACE_SIZE} with a finite mean and a std above 0")
    for key in ("temperature", "temperature_tta"):
        if key in metadata:
            _check_temperature(where, key, metadata[key])
    if metadata.get("logit_bias") is not None:
        _check_bias(where, "logit_bias", metadata["logit_bias"], len(labels))
    uniform = metadata.get("uniform_prior")
    if uniform is not None:
        if not isinstance(uniform, dict):
            raise _fail(where, "uniform_prior", uniform, "a mapping with logit_bias and temperature")
        _check_bias(where, "uniform_prior.logit_bias", uniform.get("logit_bias"), len(labels))
        _check_temperature(where, "uniform_prior.temperature", uniform.get("temperature"))
        if "temperature_tta" in uniform:
            _check_temperature(where, "uniform_prior.temperature_tta", uniform["temperature_tta"])
    sha = metadata.get("sha256")
    if sha is not None and not _sha256_hex(sha):
        raise _fail(where, "sha256", sha, "64 lowercase hex digits")
    onnx = metadata.get("onnx_sha256")
    if onnx is not None and not (isinstance(onnx, dict) and all(
            isinstance(k, str) and k.endswith(".onnx") and _sha256_hex(v) for k, v in onnx.items())):
        raise _fail(where, "onnx_sha256", onnx, "a mapping of .onnx file names to 64 lowercase hex digits")
    return metadata
