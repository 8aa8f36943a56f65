"""Weights on disk: safetensors for tensors, JSON beside it for everything needed to rebuild the model.

The safetensors header carries the same description (see integrity.py), so the file's sha256
covers the tensors and their meaning. No pickles: loading a ferkit model never runs code from the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from ferkit.errors import CheckpointError, FerkitError
from ferkit.inference.integrity import EMBEDDED_KEY, authorize, description, safetensors_description
from ferkit.inference.metadata import FORMAT, FORMAT_VERSION, METADATA_FILE, WEIGHTS_FILE, sha256_file, write_json
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


def _seal(weights: Path, meta_file: Path, state: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Write the tensors with ``metadata``'s description inside their header, then its JSON with
    the file's sha256 (ONNX records are kept: a changed description makes those files disagree)."""
    inside: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
    inside.update((key, value) for key, value in description(metadata).items() if key not in inside)
    partial = weights.with_name(weights.name + ".partial")
    # safetensors' save_file creates its file readable by its owner only (0600, whatever the
    # umask): a service or another account could not load the weights. Written here, the file
    # gets the permissions of any other file the user creates. One header entry: safetensors
    # writes several in an order that changes from process to process, and so would the sha256.
    partial.unlink(missing_ok=True)  # a leftover would keep its own permissions
    partial.write_bytes(save(state, metadata={EMBEDDED_KEY: json.dumps(inside)}))
    partial.replace(weights)
    record = {key: metadata[key] for key in ("onnx_sha256",) if key in metadata}
    write_json(meta_file, {**inside, "sha256": sha256_file(weights), **record})
    return weights


def save_weights(model: nn.Module, folder: str | Path, metadata: dict[str, Any]) -> Path:
    """Write ``weights.safetensors`` and ``model.json`` into ``folder``; returns the weights path.

    ``metadata`` must hold at least ``model`` (registry name), ``model_kwargs``, ``labels`` and
    ``preprocessing``; it is stored in the safetensors header too, and the weights' sha256 is
    added to model.json.
    """
    for key in ("model", "model_kwargs", "labels", "preprocessing"):
        if key not in metadata:
            raise CheckpointError(f"weights metadata needs '{key}'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    # New tensors: no ONNX file records carry over.
    return _seal(folder / WEIGHTS_FILE, folder / METADATA_FILE, state, description(metadata))


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

    integrity.authorize decides whether the file may run: a corrupt, truncated or edited weights
    file, or a model.json that disagrees with the description inside the weights, is refused.
    Whoever replaces both consistently is only caught by ``expected_sha256``.

    Args:
        path: a run folder, a ``.safetensors`` file or its ``.json``.
        verify: compare the weights' sha256 with the one in the JSON.
        expected_sha256: the weights file's sha256 as you know it from a trusted source.
    """
    weights, meta_file = resolve_weights(path)
    metadata = authorize(weights, meta_file, safetensors_description, expected_sha256, verify)
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
    """Merge ``values`` into the description of existing, intact weights: the tensors are rewritten
    unchanged with the new description in their header, and model.json with their new sha256."""
    weights, meta_file = resolve_weights(path)
    metadata = authorize(weights, meta_file, safetensors_description)
    _seal(weights, meta_file, load_file(str(weights)), {**metadata, **values})
    return json.loads(meta_file.read_text(encoding="utf-8"))
