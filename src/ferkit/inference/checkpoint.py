"""Weights on disk: safetensors for tensors, JSON beside it for everything needed to rebuild the model.

No pickles: loading a ferkit model never runs code from the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ferkit.errors import CheckpointError, FerkitError
from ferkit.inference.metadata import (FORMAT, FORMAT_VERSION, METADATA_FILE, WEIGHTS_FILE, check_sha256, sha256_file,
                                       validate_metadata)
from ferkit.models import create_model
from ferkit.preprocessing import Preprocessing

#: The largest model ferkit builds from a model.json (the seed's largest network has 5.9 M).
MAX_PARAMETERS = 50_000_000


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode with its metadata."""

    model: nn.Module
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    metadata: dict[str, Any]
    path: Path


def _atomic_write(path: Path, write: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def save_weights(model: nn.Module, folder: str | Path, metadata: dict[str, Any]) -> Path:
    """Write ``weights.safetensors`` and ``model.json`` into ``folder``; returns the weights path.

    ``metadata`` must hold at least ``model`` (registry name), ``model_kwargs``, ``labels`` and
    ``preprocessing``; the weights' sha256 is added.
    """
    for key in ("model", "model_kwargs", "labels", "preprocessing"):
        if key not in metadata:
            raise CheckpointError(f"weights metadata needs '{key}'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    _atomic_write(weights, lambda p: save_file(state, str(p), metadata={"format": FORMAT}))
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata, "sha256": sha256_file(weights)}
    _atomic_write(folder / METADATA_FILE, lambda p: p.write_text(json.dumps(full, indent=2) + "\n"))
    return weights


def resolve_weights(path: str | Path) -> tuple[Path, Path]:
    """Return (weights file, metadata file) for a run folder, a .safetensors file or a model.json."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder; give a run folder or a .safetensors file")
    if path.is_dir():
        weights, meta = path / WEIGHTS_FILE, path / METADATA_FILE
    elif path.suffix == ".json":
        weights, meta = path.with_suffix(".safetensors"), path
        if not weights.exists():
            weights = path.parent / WEIGHTS_FILE
    elif path.suffix == ".safetensors":
        weights, meta = path, path.with_suffix(".json")
        if not meta.exists():
            meta = path.parent / METADATA_FILE
    else:
        raise CheckpointError(f"{path}: not ferkit weights; give a run folder or a .safetensors file with its .json")
    for file in (weights, meta):
        if not file.is_file():
            raise CheckpointError(f"{file}: missing; ferkit weights are a .safetensors file with a JSON beside it")
    return weights, meta


def _build(metadata: dict[str, Any], state: dict[str, torch.Tensor], where: Path) -> nn.Module:
    """The model the metadata describes, after checking on torch's meta device (no memory used)
    that it is of sensible size and has as many values as the weights file."""
    name, kwargs, classes = metadata["model"], dict(metadata["model_kwargs"]), len(metadata["labels"])
    try:
        with torch.device("meta"):
            probe = create_model(name, num_classes=classes, **kwargs)
        size = sum(t.numel() for t in probe.state_dict().values())
        if size > MAX_PARAMETERS:
            raise CheckpointError(f"{where}: field 'model_kwargs' {kwargs} builds {size:,} parameters, "
                                  f"over the {MAX_PARAMETERS:,} ferkit accepts")
        held = sum(t.numel() for t in state.values())
        if size != held:
            raise CheckpointError(f"{where}: model '{name}' {kwargs} has {size:,} values but the weights hold "
                                  f"{held:,}: the tensors do not fit this model")
        return create_model(name, num_classes=classes, **kwargs)
    except CheckpointError:
        raise
    except (FerkitError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{where}: field 'model_kwargs' {kwargs} cannot build '{name}' ({exc})") from exc


def load_model(path: str | Path, verify: bool = True, expected_sha256: str | None = None) -> LoadedModel:
    """Rebuild a model from ferkit weights, checking the metadata, the hash and the architecture.

    The sha256 stored in the JSON catches a corrupt weights file, not a replaced one (whoever
    replaces the weights can rewrite the JSON too); pin ``expected_sha256`` for that.

    Args:
        path: a run folder, a ``.safetensors`` file or its ``.json``.
        verify: compare the weights' sha256 with the one in the JSON.
        expected_sha256: the weights file's sha256 as you know it from a trusted source.
    """
    weights, meta_file = resolve_weights(path)
    try:
        metadata = json.loads(meta_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta_file}: not valid JSON ({exc})") from exc
    validate_metadata(metadata, str(meta_file))
    check_sha256(weights, expected_sha256)
    if verify and metadata.get("sha256") != sha256_file(weights):
        raise CheckpointError(f"{weights}: sha256 differs from {meta_file.name}; the file is corrupt or was replaced")
    try:
        state = load_file(str(weights))  # safetensors checks its header against the file's size
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc})") from exc
    model = _build(metadata, state, meta_file)
    preprocessing = Preprocessing.from_dict(metadata["preprocessing"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{weights}: tensors do not fit model '{metadata['model']}' {metadata['model_kwargs']}: {exc}"
        ) from exc
    model.eval()
    labels = tuple(metadata["labels"])
    return LoadedModel(model=model, labels=labels, preprocessing=preprocessing, metadata=metadata, path=weights)


def update_metadata(path: str | Path, values: dict[str, Any]) -> dict[str, Any]:
    """Merge ``values`` into the JSON of existing weights (the tensors and their hash are unchanged)."""
    _, meta_file = resolve_weights(path)
    metadata = json.loads(meta_file.read_text(encoding="utf-8"))
    metadata.update(values)
    _atomic_write(meta_file, lambda p: p.write_text(json.dumps(metadata, indent=2) + "\n"))
    return metadata
