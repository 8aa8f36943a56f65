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
    _save(tmp_path)
    meta = tmp_path / "model.json"
    values = json.loads(meta.read_text())
    values["model"] = "fernet"
    meta.write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match="do not fit model 'fernet'"):
        load_model(tmp_path)


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
