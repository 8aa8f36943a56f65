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


def test_weights_are_readable_by_whoever_may_read_the_users_files(tmp_path: Path):
    import os

    umask = os.umask(0o022)
    try:
        (tmp_path / "weights.safetensors.partial").touch(mode=0o600)  # left by an interrupted write
        _save(tmp_path)
        from ferkit.inference.checkpoint import update_metadata

        update_metadata(tmp_path, {"temperature": 0.5})  # rewrites the tensors with a new header
    finally:
        os.umask(umask)
    assert (tmp_path / "weights.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "model.json").stat().st_mode & 0o777 == 0o644


def test_the_same_weights_and_description_give_the_same_file(tmp_path: Path):
    from ferkit.inference.metadata import sha256_file

    hashes = set()
    for i in range(8):  # safetensors orders several header entries differently from one write to the next
        _save(tmp_path / str(i))
        hashes.add(sha256_file(tmp_path / str(i) / "weights.safetensors"))
    assert len(hashes) == 1


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
    fernet = create_model("fernet").eval()
    for name, message in (("baseline_cnn", "model 'baseline_cnn' .* tensors do not fit"),
                          ("deep_cnn", "tensors do not fit")):  # 5.9 M parameters cannot come from fernet's 1.3 M
        # Weights saved with another model's description: both files agree, the tensors do not fit.
        save_weights(fernet, tmp_path / name, {"model": name, "model_kwargs": {}, "labels": list(EMOTIONS),
                                               "preprocessing": Preprocessing().to_dict()})
        with pytest.raises(CheckpointError, match=message):
            load_model(tmp_path / name)
    _save(tmp_path / "edited", "fernet")
    meta = tmp_path / "edited" / "model.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "model": "baseline_cnn"}))
    with pytest.raises(CheckpointError, match="disagrees with the description inside weights.safetensors on model:"):
        load_model(tmp_path / "edited")


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
    _rewrite_both(tmp_path, values)  # tampered consistently: the fields are still checked
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path)


def _rewrite_both(folder: Path, values: dict) -> None:
    """Write ``values`` as model.json and as the description inside the weights, with the new hash."""
    from safetensors.torch import load_file, save_file

    from ferkit.inference.metadata import sha256_file

    weights = folder / "weights.safetensors"
    inside = {k: v for k, v in values.items() if k != "sha256"}
    save_file(load_file(str(weights)), str(weights), metadata={"format": "ferkit-weights", "ferkit": json.dumps(inside)})
    (folder / "model.json").write_text(json.dumps({**inside, "sha256": sha256_file(weights)}))


def test_onnx_metadata_is_checked_too(tmp_path: Path):
    import onnx

    from ferkit.inference.onnx_backend import METADATA_KEY, OnnxClassifier, export_onnx

    _save(tmp_path / "run", "fernet")
    path = export_onnx(tmp_path / "run", tmp_path / "m.onnx")  # a bare .onnx: its own description only
    model = onnx.load(str(path))
    entry = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    values = json.loads(entry.value)
    values["temperature"] = -1
    entry.value = json.dumps(values)
    onnx.save(model, str(path))
    with pytest.raises(CheckpointError, match="'temperature' is -1"):
        OnnxClassifier(path)


def test_onnx_files_say_nothing_of_the_machine_that_built_them(tmp_path: Path):
    import onnx

    import ferkit
    from ferkit.inference.onnx_backend import export_onnx

    _save(tmp_path / "run", "fernet")
    path = export_onnx(tmp_path / "run", tmp_path / "m.onnx")
    model = onnx.load(str(path))
    assert [p.key for p in model.metadata_props] == ["ferkit"]
    assert not any(node.metadata_props or node.doc_string for node in model.graph.node)
    assert not model.graph.metadata_props
    data = path.read_bytes()  # the exporter wrote each node's stack trace, with the source's path
    assert str(Path(ferkit.__file__).parent).encode() not in data and b"stack_trace" not in data


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


def bundled_copy(tmp_path: Path) -> Path:
    """A copy of the bundled fast model's folder (safetensors, model.json and both ONNX files)."""
    import shutil

    from ferkit.inference.bundled import bundled_weights

    return Path(shutil.copytree(bundled_weights("fast"), tmp_path / "fast"))


def _flip_bias_exponent(path: Path) -> None:
    """Change one byte of an ONNX file: the exponent of the first value of its first 1-D initializer."""
    import onnx

    raw = next(t.raw_data for t in onnx.load(str(path)).graph.initializer if len(t.dims) == 1 and len(t.raw_data) >= 4)
    data = bytearray(path.read_bytes())
    at = data.find(raw)
    assert at > 0 and data.find(raw, at + 1) < 0  # the one place these bytes are
    data[at + 3] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("file", ["model.onnx", "model.int8.onnx"])
def test_one_changed_byte_in_an_onnx_file_is_refused(tmp_path: Path, file: str, capsys: pytest.CaptureFixture[str]):
    import ferkit
    from ferkit.cli import main

    folder = bundled_copy(tmp_path)
    precision = "int8" if "int8" in file else "fp32"
    assert ferkit.load(folder, precision=precision).classifier.path == folder / file  # the file that runs
    _flip_bias_exponent(folder / file)
    with pytest.raises(CheckpointError, match=f"{file}: sha256 differs from model.json"):
        ferkit.load(folder, precision=precision)
    photo = Path(__file__).parent / "data" / "amy1.png"
    assert main(["predict", str(photo), "--model", str(folder / file)]) == 2  # the file named: checked the same
    err = capsys.readouterr().err
    assert err.startswith("ferkit: error:") and f"{file}: sha256 differs" in err and "Traceback" not in err


EDITS = {
    "swapped labels": lambda m: m.update(labels=[m["labels"][1], m["labels"][0], *m["labels"][2:]]),
    "another logit bias": lambda m: m.update(logit_bias=[0.0] * 8),
    "another temperature": lambda m: m.update(temperature=2.0),
    "seven labels": lambda m: m.update(labels=m["labels"][:7], logit_bias=m["logit_bias"][:7],
                                       uniform_prior={**m["uniform_prior"], "logit_bias": m["uniform_prior"]["logit_bias"][:7]}),
}


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_model_json_that_disagrees_with_the_weights_is_refused(tmp_path: Path, edit: str, backend: str):
    import ferkit

    folder = bundled_copy(tmp_path)
    meta = json.loads((folder / "model.json").read_text())
    EDITS[edit](meta)
    (folder / "model.json").write_text(json.dumps(meta))
    ran = "weights.safetensors"
    if backend == "onnx":  # without Grad-CAM's torch weights (checked first), the ONNX file decides
        (folder / ran).unlink()
        ran = "model.onnx"
    with pytest.raises(CheckpointError, match=f"model.json: disagrees with the description inside {ran} on .*"
                                              f"{'labels' if 'labels' in edit else ''}"):
        ferkit.load(folder, backend=backend)


def test_an_onnx_file_beside_a_model_json_must_be_recorded_there(tmp_path: Path):
    import ferkit

    folder = bundled_copy(tmp_path)
    meta = json.loads((folder / "model.json").read_text())
    del meta["onnx_sha256"]["model.int8.onnx"]
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="model.int8.onnx: model.json records no sha256 for it"):
        ferkit.load(folder, precision="int8")
    assert ferkit.load(folder, precision="fp32").labels == EMOTIONS


def test_truncated_safetensors_are_refused_at_load(tmp_path: Path):
    import ferkit

    folder = bundled_copy(tmp_path)
    weights = folder / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="weights.safetensors: sha256 differs from model.json"):
        ferkit.load(folder)  # the ONNX backend checks Grad-CAM's torch weights at load too
    with pytest.raises(CheckpointError, match="the file is truncated or damaged"):
        load_model(folder, verify=False)


def test_weights_carry_their_description_and_updates_keep_it_in_step(tmp_path: Path):
    from ferkit.inference.checkpoint import update_metadata
    from ferkit.inference.integrity import safetensors_description

    _save(tmp_path, "fernet")
    weights = tmp_path / "weights.safetensors"
    inside = json.loads(safetensors_description(weights))
    meta = json.loads((tmp_path / "model.json").read_text())
    assert inside == {k: v for k, v in meta.items() if k != "sha256"} and inside["format_version"] == 2
    before = load_model(tmp_path).model.state_dict()
    update_metadata(tmp_path, {"temperature": 0.5})
    loaded = load_model(tmp_path)
    assert loaded.metadata["temperature"] == 0.5 == json.loads(safetensors_description(weights))["temperature"]
    assert all(torch.equal(before[k], v) for k, v in loaded.model.state_dict().items())


def test_format_1_folders_still_load_by_their_hash(tmp_path: Path):
    from safetensors.torch import load_file, save_file

    from ferkit.inference.metadata import sha256_file

    _save(tmp_path, "fernet")
    weights, meta_file = tmp_path / "weights.safetensors", tmp_path / "model.json"
    save_file(load_file(str(weights)), str(weights), metadata={"format": "ferkit-weights"})  # as format 1 wrote it
    meta = json.loads(meta_file.read_text())
    meta.update(format_version=1, sha256=sha256_file(weights))
    meta_file.write_text(json.dumps(meta))
    assert load_model(tmp_path).labels == EMOTIONS
    meta["format_version"] = 2  # a format 2 description with weights that carry none: refused
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="carries no description of its own"):
        load_model(tmp_path)
