"""ONNX export and the ONNX Runtime backend (no torch at inference)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferkit.errors import CheckpointError
from ferkit.inference.base import Classifier, check_prior
from ferkit.inference.integrity import EMBEDDED_KEY, authorize, description, record_onnx_sha256
from ferkit.inference.metadata import METADATA_FILE
from ferkit.preprocessing import Preprocessing

if TYPE_CHECKING:
    from ferkit.inference.classifier import FaceClassifier

METADATA_KEY = EMBEDDED_KEY


def strip_build_details(model: Any) -> None:
    """Remove what the exporter and the quantizer record about the machine that built a model: each
    node's Python stack trace (absolute paths of the build's source and virtual environment), module
    names and export signatures, in the graph and in its functions, and every metadata prop. ONNX
    Runtime reads none of it; without it the same weights exported from another checkout, with the
    same library versions, give the same bytes."""

    def clear(message: Any) -> None:
        fields = message.DESCRIPTOR.fields_by_name
        if "metadata_props" in fields:
            del message.metadata_props[:]
        if "doc_string" in fields:
            message.doc_string = ""

    clear(model)
    graphs = [model.graph, *model.functions]
    while graphs:
        graph = graphs.pop()
        clear(graph)
        for field in ("input", "output", "value_info", "initializer", "sparse_initializer"):
            for item in getattr(graph, field, ()):
                if not isinstance(item, str):  # a function's inputs and outputs are bare names
                    clear(item)
        for node in graph.node:
            clear(node)
            for attribute in node.attribute:
                graphs.extend([attribute.g] if attribute.HasField("g") else [])
                graphs.extend(attribute.graphs)


def embed_metadata(path: str | Path, metadata: dict[str, Any]) -> Path:
    """Store ``metadata``'s description in an ONNX file's metadata props (replacing what was there,
    build details included: strip_build_details; the graph and its weights are unchanged), and
    record the file's new sha256 in the model.json beside it, if any."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    inside = description(metadata)
    strip_build_details(model)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(inside)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    record_onnx_sha256(path, inside)
    return path


def export_onnx(weights: str | Path, out: str | Path, opset: int = 18) -> Path:
    """Export ferkit weights to one self-contained .onnx file with a dynamic batch axis.

    The weights' JSON (labels, preprocessing, temperature, metrics) is stored in the model's
    metadata under "ferkit", so the file alone is enough to classify faces; written into the
    weights' folder, its sha256 is recorded in model.json.
    """
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
    return embed_metadata(out, loaded.metadata)


def valid_calibration_faces(data: str | Path, count: int = 2000, seed: int = 0) -> np.ndarray:
    """``count`` faces drawn at random (seeded) from the validation split of a data set, uint8
    (N, 48, 48): what int8 calibration sees. Never the test split."""
    from ferkit.data import load_dataset
    from ferkit.errors import DataError

    faces = load_dataset(data).split("valid").images
    if len(faces) == 0:
        raise DataError(f"{data}: no validation faces to calibrate int8 ranges on")
    pick = np.random.default_rng(seed).permutation(len(faces))[:count]
    return faces[np.sort(pick)]


#: Nodes that only carry a layer's result on (reshape it, add a bias): int8 would quantize their
#: output just the same, so the walk back from an output goes on through them to the layer.
_CARRIERS = frozenset({"Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze", "Transpose", "Add"})


def _float_output_nodes(graph: Any) -> list[str]:
    """The nodes whose results are the model's output: the layer that writes a network's logits (and
    the nodes that carry them on to the output), and in an ensemble each member's such layer and
    every node that combines the members' log-probabilities after their LogSoftmax. int8 would put
    the output, and every probability and confidence, on a grid of 256 values, so these nodes run
    in float (weights included: the last layer is small); the features they read stay int8."""
    producer = {tensor: node for node in graph.node for tensor in node.output}
    names: list[str] = []

    def back_to_layer(tensor: str) -> None:
        node = producer.get(tensor)
        while node is not None and node.name not in names:
            names.append(node.name)
            computed = [name for name in node.input if name in producer]  # not weights or constants
            if node.op_type not in _CARRIERS or len(computed) != 1:
                break
            node = producer[computed[0]]

    derived: set[str] = set()
    for node in graph.node:  # ONNX graphs are stored in topological order
        if node.op_type == "LogSoftmax" or any(name in derived for name in node.input):
            derived.update(node.output)
            if node.name not in names:
                names.append(node.name)
            if node.op_type == "LogSoftmax":
                back_to_layer(node.input[0])
    for value in graph.output:
        back_to_layer(value.name)
    return names


def quantize_int8(fp32: str | Path, out: str | Path, calibration_faces: np.ndarray) -> Path:
    """Static int8 quantization of an exported model with ONNX Runtime: QDQ format, int8 weights
    per output channel in 7 bits (``reduce_range``), uint8 activations whose ranges are calibrated
    (min-max) on ``calibration_faces``, uint8 gray faces (N, 48, 48) such as FER+ Valid's (never
    Test's). Without reduce_range, CPUs without VNNI (AVX2 only) saturate the u8 x s8 products:
    the bundled model lost 21 points of accuracy that way, 0.25 on Valid with it.

    The ferkit metadata is carried over with a "quantization" entry (scheme, calibration faces).
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = OnnxClassifier(fp32)
    inputs = source.preprocessing.array(np.asarray(calibration_faces, dtype=np.uint8))

    class Faces(CalibrationDataReader):
        def __init__(self, batch: int = 64) -> None:
            self._batches = iter([{"faces": inputs[i : i + batch]} for i in range(0, len(inputs), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=_float_output_nodes(onnx.load(str(prepared)).graph))
    return embed_metadata(out, dict(source.metadata, quantization={
        "scheme": "static QDQ, int8 weights per channel (7-bit range), uint8 activations (min-max calibration)",
        "calibration_faces": int(len(inputs)), "tool": "onnxruntime.quantization"}))


class OnnxClassifier(Classifier):
    """Classify 48x48 gray faces with ONNX Runtime from a file written by export_onnx.

    integrity.authorize decides whether the file may run: beside a model.json, its sha256 must be
    the one recorded there and its embedded description must agree with model.json's.
    """

    backend = "onnx"

    def __init__(self, path: str | Path, tta: bool = False, threads: int | None = None, prior: str = "train",
                 expected_sha256: str | None = None, torch_weights: Path | None = None) -> None:
        import onnxruntime as ort

        self.prior = check_prior(prior)
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such ONNX file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle worker threads would otherwise spin between calls and slow down the face detector.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")

        def open_session(file: Path) -> str | None:  # runs only once the file's hashes are checked
            try:
                self.session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt files
                raise CheckpointError(f"{file}: not a readable ONNX model ({exc})") from exc
            return self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)

        sidecar = path.parent / METADATA_FILE
        self.metadata: dict[str, Any] = authorize(path, sidecar if sidecar.is_file() else None, open_session,
                                                  expected_sha256)
        self.labels = tuple(self.metadata["labels"])
        self.preprocessing = Preprocessing.from_dict(self.metadata["preprocessing"])
        self.tta = tta
        self.path = path
        #: The safetensors this file was exported from, when known (Grad-CAM loads them with torch).
        self.torch_weights = torch_weights
        self._torch_twin: FaceClassifier | None = None
        self._twin_lock = threading.Lock()
        self._prior_calibration()  # weights that cannot give the prior fail here, not at the first face

    def _logits(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"faces": inputs})[0]

    @property
    def weights_file(self) -> Path:
        return self.path

    @property
    def can_explain(self) -> bool:
        return self.torch_weights is not None

    def torch_classifier(self) -> FaceClassifier:
        """The torch classifier of the same weights (for Grad-CAM), loaded on first use and shared
        by every caller of this classifier; an ExplainUnavailableError for a bare .onnx file."""
        if self.torch_weights is None:
            from ferkit.errors import ExplainUnavailableError

            raise ExplainUnavailableError("Grad-CAM needs the torch model: load a run folder or .safetensors file, "
                                          "not a bare .onnx file")
        with self._twin_lock:
            if self._torch_twin is None:
                from ferkit.inference.classifier import FaceClassifier

                self._torch_twin = FaceClassifier.from_path(self.torch_weights, tta=self.tta, prior=self.prior)
            return self._torch_twin
