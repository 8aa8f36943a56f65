"""ONNX Runtime is the default backend: no torch at inference, parity with torch (fp32) and within
tolerance (int8) on the bundled models, Grad-CAM through the torch weights when asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ferkit
from ferkit.detection import create_detector
from ferkit.errors import CheckpointError, ConfigError
from ferkit.inference.bundled import ONNX_FILES, bundled_models, bundled_weights
from ferkit.inference.checkpoint import load_model
from ferkit.inference.classifier import FaceClassifier
from ferkit.inference.images import load_image
from ferkit.inference.onnx_backend import OnnxClassifier, export_onnx

DATA = Path(__file__).parent / "data"
SHIPPED = bundled_models()


def real_faces() -> np.ndarray:
    """48x48 crops of the faces in the test photos, shifted and brightened: 48 real-looking faces."""
    rec = ferkit.load(backend="torch")
    crops = []
    for photo in ("bbt3.jpg", "amy1.png"):
        rgb = load_image(DATA / photo)
        crops.append(rec.crops(rgb, create_detector().detect(rgb)))
    base = np.concatenate(crops)
    variants = [np.clip(base.astype(int) + shift, 0, 255) for shift in (-40, -20, 0, 20, 40, 60, 80, 100)]
    return np.concatenate(variants).astype(np.uint8)


def test_load_uses_onnx_runtime_and_never_imports_torch():
    script = (
        "import sys, numpy as np, ferkit\n"
        "rec = ferkit.load()\n"
        "faces = rec.analyze(sys.argv[1])\n"
        "probs = rec.classify(np.zeros((2, 48, 48), np.uint8))\n"
        "print(type(rec.classifier).__name__, len(faces), faces[0].emotion, probs.shape,"
        " any(m == 'torch' or m.startswith('torch.') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(DATA / "amy1.png")], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["OnnxClassifier", "1", "happiness", "(2,", "8)", "False"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_onnx_files_are_exported_from_the_shipped_weights(name: str):
    folder = bundled_weights(name)
    safetensors_meta = load_model(folder).metadata
    for precision, file in ONNX_FILES.items():
        onnx_meta = dict(OnnxClassifier(folder / file).metadata)
        quantization = onnx_meta.pop("quantization", None)
        assert (quantization is not None) == (precision == "int8")
        assert onnx_meta == safetensors_meta, f"{file} is stale: run scripts/ship_onnx.py {name}"
        data = (folder / file).read_bytes()  # no exporter debug records (stack traces with the build's paths)
        assert b"stack_trace" not in data and b"pkg.torch.onnx" not in data, f"run scripts/seal_weights.py {folder}"


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("prior", ["train", "uniform"])
@pytest.mark.parametrize("tta", [False, True])
def test_backends_agree_on_the_bundled_models(name: str, prior: str, tta: bool):
    faces = real_faces()
    torch_rec = ferkit.load(name, backend="torch", prior=prior, tta=tta)
    fp32 = ferkit.load(name, backend="onnx", precision="fp32", prior=prior, tta=tta)
    int8 = ferkit.load(name, backend="onnx", precision="int8", prior=prior, tta=tta)
    bias = torch_rec.classifier.logit_bias
    assert bias is not None and np.ptp(bias) > 0.1  # a real, non-uniform adjustment is being compared
    np.testing.assert_allclose(fp32.classifier.logit_bias, bias)
    expected = torch_rec.classify(faces)
    np.testing.assert_allclose(fp32.classify(faces), expected, atol=1e-4)
    quantized = int8.classify(faces)
    assert (quantized.argmax(1) == expected.argmax(1)).mean() >= 0.9
    assert np.abs(quantized - expected).mean() < 0.03


def test_precision_choices(trained_run: Path):
    assert ferkit.load(trained_run).classifier.__class__ is FaceClassifier  # no model.onnx: torch
    with pytest.raises(CheckpointError, match="no int8 model"):
        ferkit.load(trained_run, precision="int8")
    with pytest.raises(ConfigError, match="unknown precision"):
        ferkit.load(precision="fp16")
    export_onnx(trained_run, trained_run / ONNX_FILES["fp32"])
    try:
        assert isinstance(ferkit.load(trained_run).classifier, OnnxClassifier)  # exported: ONNX Runtime
    finally:
        (trained_run / ONNX_FILES["fp32"]).unlink()


def test_int8_keeps_the_layers_that_write_the_output_in_float():
    from onnx import TensorProto, helper

    from ferkit.inference.onnx_backend import _float_output_nodes

    def graph(nodes: list, outputs: list[str]):
        return helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                 [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
                                 [helper.make_tensor(w, TensorProto.FLOAT, [4, 4], [0.0] * 16) for w in ("w1", "w2")]
                                 + [helper.make_tensor(c, TensorProto.FLOAT, [4], [0.0] * 4) for c in ("b", "shape")])

    def node(op: str, inputs: list[str], output: str):
        return helper.make_node(op, inputs, [output], name=output)

    body = [node("Conv", ["x", "w1"], "conv"), node("Relu", ["conv"], "relu")]
    # a network: the layer is found through what carries its result (bias, reshape) to the output
    net = graph(body + [node("MatMul", ["relu", "w2"], "mm"), node("Add", ["b", "mm"], "bias"),
                        node("Reshape", ["bias", "shape"], "logits")], ["logits"])
    assert sorted(_float_output_nodes(net)) == ["bias", "logits", "mm"]
    # a residual sum has two computed inputs: the walk stops there, the network's body stays int8
    residual = graph(body + [node("Add", ["relu", "conv"], "logits")], ["logits"])
    assert _float_output_nodes(residual) == ["logits"]
    # an ensemble: each member's last layer, its LogSoftmax and everything combining them
    members = graph(body + [node("Gemm", ["relu", "w1"], "g1"), node("Gemm", ["relu", "w2"], "g2"),
                            node("LogSoftmax", ["g1"], "l1"), node("LogSoftmax", ["g2"], "l2"),
                            node("Add", ["l1", "l2"], "sum"), node("Mul", ["sum", "b"], "logits")], ["logits"])
    assert sorted(_float_output_nodes(members)) == ["g1", "g2", "l1", "l2", "logits", "sum"]


def test_int8_export_calibrates_on_valid_faces_and_stays_close(trained_run: Path, smoke_data: Path, tmp_path: Path):
    from ferkit.cli import main

    out = tmp_path / "int8.onnx"
    assert main(["export", str(out), "--model", str(trained_run), "--int8", "--data", str(smoke_data),
                 "--calibration-faces", "32"]) == 0
    int8 = OnnxClassifier(out)
    assert int8.metadata["quantization"]["calibration_faces"] == 32
    assert json.dumps(int8.metadata["labels"]) == json.dumps(list(ferkit.EMOTIONS))
    from ferkit.data import load_dataset

    faces = load_dataset(smoke_data, progress=False).split("test").images
    torch_probs = FaceClassifier.from_path(trained_run).probabilities(faces)
    assert (int8.probabilities(faces).argmax(1) == torch_probs.argmax(1)).mean() >= 0.9
    assert np.abs(int8.probabilities(faces) - torch_probs).mean() < 0.05
    many = np.random.default_rng(5).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    logits = int8.raw_logits(many)  # the last layer writes float: not 256 levels, as a quantized output would be
    assert min(len(np.unique(column)) for column in logits.T) > 0.9 * len(logits)
    assert main(["export", str(out), "--model", str(trained_run), "--int8"]) == 2  # no --data: a clear error


def test_gradcam_on_the_onnx_backend_loads_the_torch_weights_once():
    faces = real_faces()[:3]
    onnx_rec, torch_rec = ferkit.load(), ferkit.load(backend="torch")
    assert isinstance(onnx_rec.classifier, OnnxClassifier)
    from ferkit.errors import ExplainUnavailableError
    from ferkit.explain.faces import explain_crops

    np.testing.assert_allclose(explain_crops(onnx_rec.classifier, faces, [1, 1, 1]),
                               explain_crops(torch_rec.classifier, faces, [1, 1, 1]), atol=1e-5)
    assert onnx_rec.classifier.can_explain and torch_rec.classifier.can_explain
    twin = onnx_rec.classifier.torch_classifier()
    assert onnx_rec.classifier.torch_classifier() is twin
    bare = ferkit.load(bundled_weights("fast") / ONNX_FILES["fp32"])
    assert not bare.classifier.can_explain
    with pytest.raises(ExplainUnavailableError, match="not a bare .onnx file"):
        explain_crops(bare.classifier, faces)
