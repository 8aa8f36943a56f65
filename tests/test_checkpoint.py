import json
from pathlib import Path

import pytest
import torch

from ferkit.errors import CheckpointError
from ferkit.inference.checkpoint import load_model, save_weights
from ferkit.labels import EMOTIONS
from ferkit.models import create_model
from ferkit.preprocessing import Preprocessing


def _save(folder: Path, name: str = "baseline_cnn") -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name).eval()
    save_weights(model, folder, {"model": name, "model_kwargs": {}, "labels": list(EMOTIONS),
                                 "preprocessing": Preprocessing().to_dict()})
    return model


def test_round_trip_reproduces_logits(tmp_path: Path):
    model = _save(tmp_path)
    loaded = load_model(tmp_path)
    x = torch.randn(3, 1, 48, 48)
    torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)
    assert loaded.labels == EMOTIONS and loaded.preprocessing == Preprocessing()
    assert load_model(tmp_path / "weights.safetensors").metadata["sha256"] == loaded.metadata["sha256"]


def test_corrupt_weights_fail_the_hash_check(tmp_path: Path):
    _save(tmp_path)
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="sha256 differs"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        weights.write_bytes(b"garbage")
        load_model(tmp_path, verify=False)


def test_weights_of_another_architecture(tmp_path: Path):
    _save(tmp_path, "fernet")
    meta = tmp_path / "model.json"
    values = json.loads(meta.read_text())
    values["model"] = "baseline_cnn"
    meta.write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match="model 'baseline_cnn' .* tensors do not fit"):
        load_model(tmp_path)
    values["model"] = "deep_cnn"  # 5.9 M parameters cannot come from fernet's 1.3 M
    meta.write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match="tensors do not fit"):
        load_model(tmp_path)


TAMPERED = {
    "temperature zero": ("temperature", 0, "'temperature' is 0"),
    "temperature negative": ("temperature", -1.5, "'temperature' is -1.5"),
    "temperature NaN": ("temperature", float("nan"), "'temperature' is nan"),
    "bias too short": ("logit_bias", [0.1, 0.2], "'logit_bias' is \\[0.1, 0.2\\]"),
    "bias infinite": ("logit_bias", [0.0] * 7 + [float("inf")], "'logit_bias'"),
    "duplicate labels": ("labels", list(EMOTIONS[:7]) + ["neutral"], "'labels'"),
    "unknown label": ("labels", list(EMOTIONS[:7]) + ["boredom"], "'labels'"),
    "no format version": ("format_version", None, "'format_version' is None"),
    "future format": ("format_version", 99, "newer ferkit"),
    "huge model": ("model_kwargs", {"widths": [4096, 4096, 4096, 4096]}, "over the 50,000,000"),
    "bad kwargs": ("model_kwargs", {"colour": "blue"}, "cannot build 'fernet'"),
    "odd face size": ("preprocessing", {"color": "gray", "size": 100000, "mean": 0.5, "std": 0.25}, "'preprocessing'"),
    "zero std": ("preprocessing", {"color": "gray", "size": 48, "mean": 0.5, "std": 0}, "'preprocessing'"),
    "uniform prior bias": ("uniform_prior", {"logit_bias": [1], "temperature": 1.0}, "'uniform_prior.logit_bias'"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_metadata_is_refused_with_the_field(tmp_path: Path, case: str):
    _save(tmp_path, "fernet")
    field, value, message = TAMPERED[case]
    meta = tmp_path / "model.json"
    values = json.loads(meta.read_text())
    if value is None:
        values.pop(field)
    else:
        values[field] = value
    meta.write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path)


def test_onnx_metadata_is_checked_too(tmp_path: Path):
    import onnx

    from ferkit.inference.onnx_backend import METADATA_KEY, OnnxClassifier, export_onnx

    _save(tmp_path, "fernet")
    path = export_onnx(tmp_path, tmp_path / "m.onnx")
    model = onnx.load(str(path))
    entry = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    values = json.loads(entry.value)
    values["temperature"] = -1
    entry.value = json.dumps(values)
    onnx.save(model, str(path))
    with pytest.raises(CheckpointError, match="'temperature' is -1"):
        OnnxClassifier(path)


def test_pinned_sha256(tmp_path: Path):
    import ferkit
    from ferkit.inference.metadata import sha256_file

    _save(tmp_path, "fernet")
    good = sha256_file(tmp_path / "weights.safetensors")
    assert ferkit.load(tmp_path, expected_sha256=good.upper()).labels == EMOTIONS
    with pytest.raises(CheckpointError, match="not the expected"):
        ferkit.load(tmp_path, expected_sha256="0" * 64)


def test_missing_and_foreign_files(tmp_path: Path):
    with pytest.raises(CheckpointError, match="no such file or folder"):
        load_model(tmp_path / "nothing.safetensors")
    (tmp_path / "model.json").write_text("{not json")
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(CheckpointError, match="not a ferkit weights description"):
        load_model(tmp_path)
    (tmp_path / "weights.pt").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="not ferkit weights"):
        load_model(tmp_path / "weights.pt")
