"""Seal weights folders written before weights carried their own description (format 1): the
safetensors header and each ONNX file get model.json's description, and model.json records
every file's sha256. The tensors and ONNX graphs are unchanged; only the metadata is rewritten.

    python scripts/seal_weights.py src/ferkit/weights/fast [MORE_FOLDERS...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ferkit.inference.bundled import ONNX_FILES
from ferkit.inference.checkpoint import load_model, update_metadata
from ferkit.inference.integrity import EMBEDDED_KEY, FILE_ONLY_KEYS
from ferkit.inference.onnx_backend import OnnxClassifier, embed_metadata


def seal(folder: Path) -> None:
    """Seal one weights folder (see the module docstring), refusing damaged weights."""
    import onnx

    metadata = update_metadata(folder, {})
    for file in ONNX_FILES.values():
        path = folder / file
        if not path.is_file():
            continue
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        before = json.loads(props.get(EMBEDDED_KEY, "{}"))
        embed_metadata(path, {**metadata, **{k: before[k] for k in FILE_ONLY_KEYS if k in before}})
        OnnxClassifier(path)  # checks what was written
    load_model(folder)
    print(f"sealed {folder}: {json.loads((folder / 'model.json').read_text())['onnx_sha256'] if any((folder / f).is_file() for f in ONNX_FILES.values()) else 'no ONNX files'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    for folder in parser.parse_args().folders:
        seal(folder)


if __name__ == "__main__":
    main()
