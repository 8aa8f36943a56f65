"""ONNX export and the ONNX Runtime backend (no torch at inference)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.errors import CheckpointError
from ferkit.inference.base import Classifier, check_prior
from ferkit.inference.metadata import check_sha256, validate_metadata
from ferkit.preprocessing import Preprocessing

METADATA_KEY = "ferkit"


def export_onnx(weights: str | Path, out: str | Path, opset: int = 18) -> Path:
    """Export ferkit weights to one self-contained .onnx file with a dynamic batch axis.

    The weights' JSON (labels, preprocessing, temperature, metrics) is stored in the model's
    metadata under "ferkit", so the file alone is enough to classify faces.
    """
    import onnx
    import torch

    from ferkit.inference.checkpoint import load_model

    loaded = load_model(weights)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    size = loaded.preprocessing.size
    dummy = torch.zeros(2, 1, size, size)
    # The exporter reports its optimisation passes on stdout, and warns that torchvision's ops
    # (which no ferkit model uses) are not registered.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(
            loaded.model.eval(), (dummy,), str(out), input_names=["faces"], output_names=["logits"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, opset_version=opset, dynamo=True,
            external_data=False, verbose=False,
        )
    model = onnx.load(str(out))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(loaded.metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


class OnnxClassifier(Classifier):
    """Classify 48x48 gray faces with ONNX Runtime from a file written by export_onnx."""

    def __init__(self, path: str | Path, tta: bool = False, threads: int | None = None, prior: str = "train",
                 expected_sha256: str | None = None) -> None:
        import onnxruntime as ort

        self.prior = check_prior(prior)
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such ONNX file")
        check_sha256(path, expected_sha256)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle worker threads would otherwise spin between calls and slow down the face detector.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt files
            raise CheckpointError(f"{path}: not a readable ONNX model ({exc})") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise CheckpointError(f"{path}: no ferkit metadata; export it with `ferkit export --format onnx`")
        try:
            parsed = json.loads(meta[METADATA_KEY])
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: the ferkit metadata is not valid JSON ({exc})") from exc
        self.metadata: dict[str, Any] = validate_metadata(parsed, str(path))
        self.labels = tuple(self.metadata["labels"])
        self.preprocessing = Preprocessing.from_dict(self.metadata["preprocessing"])
        self.tta = tta
        self.path = path
        self._prior_calibration()  # weights that cannot give the prior fail here, not at the first face

    def _logits(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"faces": inputs})[0]
