"""What users get, pinned: `ferkit.load()` runs the bundled int8 ONNX file, and a model's stored
temperature and logit bias give exactly softmax((logits + bias) / T) on both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import ferkit
from ferkit.inference.bundled import bundled_dir
from ferkit.inference.checkpoint import save_weights
from ferkit.inference.onnx_backend import OnnxClassifier, export_onnx
from ferkit.labels import EMOTIONS
from ferkit.models import create_model
from ferkit.preprocessing import Preprocessing

DATA = Path(__file__).parent / "data"
#: FER+'s vote columns, written out here: the i-th output of every model is this emotion.
FERPLUS_ORDER = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
#: The tiny model's logits for every face, and the calibration stored with it.
LOGITS = np.array([0.0, 3.0, 1.0, -1.0, 0.5, -2.0, 2.0, 0.0])
BIAS = np.array([0.4, -1.2, 0.0, 0.8, -0.3, 1.5, -0.6, 0.2])
UNIFORM_BIAS = np.array([-0.5, 0.3, 0.9, 0.0, 1.1, -0.4, 0.2, -1.0])
T, T_TTA, T_UNIFORM = 2.0, 3.0, 0.5


def _by_hand(logits: np.ndarray, bias: np.ndarray, temperature: float) -> np.ndarray:
    e = np.exp((logits + bias) / temperature)
    return e / e.sum()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A baseline CNN whose logits are LOGITS for any face (every weight zero, the last bias LOGITS),
    saved with T, T_TTA and BIAS for the training prior and T_UNIFORM, UNIFORM_BIAS for the uniform
    one, and exported to model.onnx beside its weights."""
    folder = tmp_path_factory.mktemp("tiny")
    model = create_model("baseline_cnn").eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.head[-1].bias.copy_(torch.tensor(LOGITS))
    save_weights(model, folder, {
        "model": "baseline_cnn", "model_kwargs": {}, "labels": list(EMOTIONS),  # as every ferkit run stores them
        "preprocessing": Preprocessing().to_dict(), "temperature": T, "temperature_tta": T_TTA,
        "logit_bias": BIAS.tolist(),
        "uniform_prior": {"logit_bias": UNIFORM_BIAS.tolist(), "temperature": T_UNIFORM},
    })
    export_onnx(folder, folder / "model.onnx")
    return folder


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize(("prior", "tta", "bias", "temperature"), [
    ("train", False, BIAS, T), ("train", True, BIAS, T_TTA), ("uniform", False, UNIFORM_BIAS, T_UNIFORM)],
    ids=["train", "train-tta", "uniform"])
def test_the_stored_temperature_and_bias_give_these_probabilities(tiny_run: Path, backend: str, prior: str, tta: bool,
                                                                   bias: np.ndarray, temperature: float):
    rec = ferkit.load(tiny_run, backend=backend, prior=prior, tta=tta)
    assert type(rec.classifier).__name__ == ("OnnxClassifier" if backend == "onnx" else "FaceClassifier")
    expected = _by_hand(LOGITS, bias, temperature)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(rec.classifier.raw_logits(faces), np.tile(LOGITS, (3, 1)), rtol=0, atol=1e-6)
    np.testing.assert_allclose(rec.classify(faces), np.tile(expected, (3, 1)), rtol=0, atol=1e-6)
    [face] = rec.analyze(DATA / "amy1.png")  # through detection, as users get it: by emotion name
    assert list(face.probabilities) == list(FERPLUS_ORDER)
    for name, probability in zip(FERPLUS_ORDER, expected):
        assert face.probabilities[name] == pytest.approx(probability, abs=1e-6)
    assert (face.emotion, face.confidence) == (FERPLUS_ORDER[int(expected.argmax())], pytest.approx(expected.max(), abs=1e-6))


@pytest.mark.parametrize("name", [None, "accurate"])
def test_load_runs_the_bundled_int8_onnx_file(name: str | None):
    folder = bundled_dir(name or "fast")
    rec = ferkit.load(name)
    assert isinstance(rec.classifier, OnnxClassifier)
    assert rec.classifier.path == folder / "model.int8.onnx"
    assert ferkit.load(name, precision="fp32").classifier.path == folder / "model.onnx"
    faces = np.random.default_rng(1).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    int8 = OnnxClassifier(folder / "model.int8.onnx").probabilities(faces)
    fp32 = OnnxClassifier(folder / "model.onnx").probabilities(faces)
    assert np.abs(int8 - fp32).max() > 1e-3  # the two files answer differently, so the next line tells them apart
    np.testing.assert_array_equal(rec.classify(faces), int8)
