"""The one decision whether a weights file may run, for every backend (torch and ONNX Runtime).

Each weights file carries its own description: the safetensors header's ``__metadata__`` and the
ONNX file's metadata props hold the JSON that model.json shows (labels, preprocessing,
calibration...), so the file's sha256 covers the numbers and their meaning together. model.json
is the readable copy; it records the sha256 of every file of the folder ("sha256" for
weights.safetensors, "onnx_sha256" for each ONNX file) and must agree with the description inside
the file that runs.

What this detects: a weights file that is corrupt, truncated or edited (its sha256 differs from
model.json's record), and a model.json whose description was edited (it disagrees with the copy
inside the weights). What it cannot detect: both replaced together, consistently (whoever
replaces a file can rewrite its record too), or a bare .onnx file with no model.json beside it.
Pin the file's sha256 (``expected_sha256``) for those. No torch here: the ONNX path uses it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ferkit.errors import CheckpointError
from ferkit.inference.metadata import METADATA_FILE, check_sha256, sha256_file, validate_metadata

logger = logging.getLogger(__name__)
#: Where the description sits inside a weights file (safetensors __metadata__, ONNX metadata props).
EMBEDDED_KEY = "ferkit"
#: model.json's records of the files' hashes: a file cannot hold its own hash, so no embedded copy has them.
HASH_KEYS = ("sha256", "onnx_sha256")
#: What an embedded copy may hold beyond model.json's description (an int8 file's quantization scheme).
FILE_ONLY_KEYS = ("quantization",)
#: The first format whose weights carry their description; older folders are checked by hash only.
EMBEDDED_SINCE_VERSION = 2
MAX_HEADER_BYTES = 100 * 1024 * 1024

ReadEmbedded = Callable[[Path], str | None]


def description(metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata without model.json's hash records: what a weights file embeds."""
    return {key: value for key, value in metadata.items() if key not in HASH_KEYS}


def read_json(path: Path) -> dict[str, Any]:
    """A weights description file, parsed and validated (CheckpointError naming the problem)."""
    try:
        parsed = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from exc
    return validate_metadata(parsed, str(path))


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, after checking that the tensors it lists fill the
    file exactly: a truncated or padded file is a CheckpointError here, before any tensor is read."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < length <= min(size - 8, MAX_HEADER_BYTES):
            raise CheckpointError(f"{path}: not a readable safetensors file (no valid header; truncated?)")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file (header: {exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a readable safetensors file (header is not a mapping)")
    try:
        ends = [int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file (a tensor has no data offsets)") from exc
    held = size - 8 - length
    if max(ends, default=0) != held:
        raise CheckpointError(f"{path}: its header lists {max(ends, default=0):,} bytes of tensors but the file holds "
                              f"{held:,}: the file is truncated or damaged; copy it again")
    return header


def safetensors_description(path: Path) -> str | None:
    """The description embedded in a safetensors file's header (None for files written before it was)."""
    metadata = safetensors_header(path).get("__metadata__") or {}
    value = metadata.get(EMBEDDED_KEY) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


def recorded_sha256(recorded: dict[str, Any], file: Path) -> str | None:
    """model.json's record of ``file``'s sha256 (None when it records none)."""
    if file.suffix == ".onnx":
        hashes = recorded.get("onnx_sha256") or {}
        return hashes.get(file.name)
    return recorded.get("sha256")


def _parse_embedded(text: str, file: Path) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{file}: the ferkit metadata inside it is not valid JSON ({exc})") from exc
    return validate_metadata(parsed, str(file))


def _disagreement(recorded: dict[str, Any], embedded: dict[str, Any]) -> list[str]:
    readable = description(recorded)
    inside = {k: v for k, v in description(embedded).items() if k not in FILE_ONLY_KEYS}
    return sorted(key for key in set(readable) | set(inside) if readable.get(key) != inside.get(key))


def authorize(file: Path, sidecar: Path | None, read_embedded: ReadEmbedded, expected_sha256: str | None = None,
              verify: bool = True) -> dict[str, Any]:
    """Decide whether the weights file ``file`` may run; returns the metadata the backend must use.

    In order: the pinned hash (``expected_sha256``), the sha256 that ``sidecar`` (model.json)
    records for ``file``, the description embedded in ``file`` (read by ``read_embedded``), and
    the agreement of that description with ``sidecar``'s. Any failure is a CheckpointError that
    names the file.

    Args:
        file: the file the backend runs (.safetensors or .onnx).
        sidecar: the model.json beside it, or None (a bare .onnx file: its own description only).
        read_embedded: returns the description text inside ``file`` (None when it has none).
        expected_sha256: ``file``'s sha256 from a trusted source.
        verify: check model.json's recorded hash (False only to inspect a damaged folder).
    """
    if not file.is_file():
        raise CheckpointError(f"{file}: no such weights file")
    check_sha256(file, expected_sha256)
    recorded = read_json(sidecar) if sidecar is not None else None
    record_name = sidecar.name if sidecar is not None else METADATA_FILE  # named only where there is a record
    sealed = recorded is not None and recorded["format_version"] >= EMBEDDED_SINCE_VERSION
    if recorded is not None and verify:
        want = recorded_sha256(recorded, file)
        if want is None and sealed:
            raise CheckpointError(f"{file}: {record_name} records no sha256 for it; re-export it into this folder "
                                  "(`ferkit export FOLDER/model.onnx --model FOLDER`) or load the file on its own")
        if want is None:
            logger.warning("%s: %s (format 1) records no sha256 for it; it is not checked", file, record_name)
        elif sha256_file(file) != want:
            raise CheckpointError(f"{file}: sha256 differs from {record_name}; the file is corrupt or was edited")
    text = read_embedded(file)
    if text is None:
        if recorded is None:
            raise CheckpointError(f"{file}: no ferkit metadata; export it with `ferkit export --format onnx`")
        if sealed:
            raise CheckpointError(f"{file}: carries no description of its own, but {record_name} says it should "
                                  "(format 2): the file was replaced or damaged")
        return recorded  # format 1: written before weights carried their description
    embedded = _parse_embedded(text, file)
    if recorded is None:
        return embedded
    differ = _disagreement(recorded, embedded)
    if differ:
        raise CheckpointError(f"{sidecar}: disagrees with the description inside {file.name} on "
                              f"{', '.join(differ)}: one of them was edited; restore model.json "
                              "or re-export the weights")
    return {**embedded, **recorded}


def record_onnx_sha256(file: Path, embedded: dict[str, Any]) -> None:
    """Record a freshly written ONNX file's sha256 in the model.json beside it, if there is one
    (a folder's ONNX files are checked against these records). A model.json that describes other
    weights is a CheckpointError, and the file is removed: loading the folder would refuse it."""
    from ferkit.inference.metadata import METADATA_FILE, write_json

    sidecar = file.parent / METADATA_FILE
    if not sidecar.is_file():
        return
    recorded = read_json(sidecar)
    differ = _disagreement(recorded, embedded)
    if differ:
        file.unlink()
        raise CheckpointError(f"{sidecar} describes other weights (it differs on {', '.join(differ)}); "
                              f"write {file.name} into another folder")
    recorded["onnx_sha256"] = {**(recorded.get("onnx_sha256") or {}), file.name: sha256_file(file)}
    write_json(sidecar, recorded)
