"""`ferkit finetune`: a tiny end-to-end run through the command line, the recipe's pieces, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import face_pixels
from PIL import Image

import ferkit
from ferkit.cli import main
from ferkit.data import load_dataset
from ferkit.finetune.options import FinetuneOptions
from ferkit.finetune.recipe import check_data, freeze_features, relabel
from ferkit.inference.bundled import resolve_model
from ferkit.inference.checkpoint import load_model
from ferkit.labels import EMOTIONS
from ferkit.models import create_model

TRAINED = ("happiness", "sadness", "anger")


def _crops_csv(folder: Path, per_emotion: int = 20) -> Path:
    """48x48 crops whose bright band depends on the emotion (learnable), one subject per face."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    table = folder / "faces.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        for emotion in TRAINED:
            for k in range(per_emotion):
                name = f"{emotion}_{k}.png"
                Image.fromarray(face_pixels(rng, EMOTIONS.index(emotion))).save(folder / name)
                writer.writerow([name, emotion, f"{emotion}{k}"])
    return table


@pytest.mark.slow
def test_tiny_finetune_through_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    ds, run = tmp_path / "ds", tmp_path / "run"
    assert main(["dataset", "build", str(_crops_csv(tmp_path / "crops")), str(ds), "--crops", "--no-progress"]) == 0
    assert main(["finetune", str(ds), "--from", "fast", "--out", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert f"run folder: {run}" in capsys.readouterr().out
    for name in ("weights.safetensors", "model.json", "model.onnx", "model.int8.onnx", "report.md",
                 "confusion_before_after.png", "recall_before_after.png", "history.json"):
        assert (run / name).is_file(), name
    metadata = json.loads((run / "model.json").read_text())
    assert metadata["labels"] == list(EMOTIONS)  # every output kept
    assert metadata["finetune"]["emotions_trained"] == list(TRAINED)
    assert metadata["finetune"]["emotions_never_seen"] == [e for e in EMOTIONS if e not in TRAINED]
    assert "uniform_prior" in metadata and metadata["calibration"]["fitted_on"] == "valid"
    # the ONNX check is in the report's numbers: model.json must keep agreeing with the exported files
    assert json.loads((run / "before_after.json").read_text())["onnx_check"]["fp32_vs_torch_max_logit_diff"] < 1e-3
    assert len(json.loads((run / "history.json").read_text())) == 2
    # the default recipe pulls the weights toward the starting model's (L2-SP) instead of decaying them
    assert metadata["training"]["l2sp"] == FinetuneOptions().l2sp > 0
    assert metadata["finetune"]["options"]["l2sp"] == FinetuneOptions().l2sp
    # and keeps part of the way from the start to the fine-tuned weights (WiSE-FT), which stay in unblended/
    share = FinetuneOptions().blend
    assert metadata["finetune"]["options"]["blend"] == metadata["blend"]["share"] == share < 1
    start, tuned, blended = (load_model(p).model.state_dict() for p in (resolve_model("fast"), run / "unblended", run))
    assert metadata["blend"]["unblended_sha256"] == load_model(run / "unblended").metadata["sha256"]
    for name, tensor in blended.items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, (1 - share) * start[name] + share * tuned[name], msg=name)
    assert any(not torch.equal(tuned[n], start[n]) for n in start)  # it did fine-tune
    assert f"(`--blend {share}`)" in (run / "report.md").read_text()
    # the report's numbers are those of ferkit.load(RUN) (ONNX fp32) on the test split
    test = relabel(load_dataset(ds), EMOTIONS).split("test")
    recognizer = ferkit.load(run)
    assert recognizer.classifier.__class__.__name__ == "OnnxClassifier"
    predicted = recognizer.classify(test.images).argmax(axis=1)
    numbers = json.loads((run / "before_after.json").read_text())
    assert numbers["user"]["after"]["accuracy"] == pytest.approx(float((predicted == test.labels).mean()))
    assert numbers["user"]["after"]["faces"] == len(test) == 9
    before = ferkit.load("fast").classify(test.images).argmax(axis=1)
    assert numbers["user"]["before"]["accuracy"] == pytest.approx(float((before == test.labels).mean()))
    report = (run / "report.md").read_text()
    assert "Never seen in your data: neutral, surprise, disgust, fear, contempt." in report
    assert "Not measured: pass `--ferplus PATH`" in report
    # a second run into the same folder is refused, the first one kept
    assert main(["finetune", str(ds), "--out", str(run), "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert ferkit.load(run, precision="int8").classify(test.images[:2]).shape == (2, 8)


@pytest.mark.slow
def test_blend_1_keeps_the_fine_tuned_weights(tmp_path: Path):
    ds, run = tmp_path / "ds", tmp_path / "run"
    assert main(["dataset", "build", str(_crops_csv(tmp_path / "crops", per_emotion=10)), str(ds), "--crops",
                 "--no-progress"]) == 0
    assert main(["finetune", str(ds), "--out", str(run), "--epochs", "1", "--blend", "1", "--no-progress"]) == 0
    metadata = json.loads((run / "model.json").read_text())
    assert "blend" not in metadata and not (run / "unblended").exists()
    assert metadata["finetune"]["options"]["blend"] == 1
    assert "--blend" not in (run / "report.md").read_text()


def test_relabel_keeps_every_output_of_the_model(tmp_path: Path):
    ds = tmp_path / "ds"
    from ferkit.finetune.dataset import build_dataset

    build_dataset(_crops_csv(tmp_path / "crops", per_emotion=10), ds, crops=True, progress=False)
    data = load_dataset(ds)
    assert data.classes == TRAINED
    mapped = relabel(data, EMOTIONS)
    assert mapped.classes == EMOTIONS
    for split, raw in data.splits.items():
        np.testing.assert_array_equal(mapped.splits[split].labels,
                                      [EMOTIONS.index(TRAINED[k]) for k in raw.labels])
    assert check_data(mapped) == []


def test_a_blend_outside_0_to_1_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    ds = _write_folder(tmp_path / "ds", {"train": {"happy": 6}, "valid": {"happy": 2}})
    for blend in ("0", "1.5"):
        assert main(["finetune", str(ds), "--blend", blend, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
        assert f"--blend {float(blend)}: give the share of the fine-tuning's change to keep, in (0, 1]" in \
            capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _write_folder(root: Path, counts: dict[str, dict[str, int]]) -> Path:
    rng = np.random.default_rng(0)
    for split, row in counts.items():
        for emotion, n in row.items():
            folder = root / split / emotion
            folder.mkdir(parents=True)
            for k in range(n):
                Image.fromarray(face_pixels(rng, 0)).save(folder / f"{k}.png")
    return root


@pytest.mark.parametrize("counts, message", [
    ({"train": {"happy": 6}}, "no valid split; fine-tuning needs train/ and valid/"),
    ({"train": {"happy": 6, "sad": 2}, "valid": {"happy": 2, "sad": 1}}, "too few faces of sadness (3)"),
    ({"train": {"happy": 6}, "valid": {"happy": 2, "sad": 5}}, "train has no faces of sadness"),
])
def test_data_that_cannot_be_fine_tuned_on_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      counts: dict[str, dict[str, int]], message: str):
    ds = _write_folder(tmp_path / "ds", counts)
    assert main(["finetune", str(ds), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ferkit: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_split_missing_an_emotion_is_a_warning(tmp_path: Path):
    ds = _write_folder(tmp_path / "ds", {"train": {"happy": 6, "sad": 5}, "valid": {"happy": 2},
                                         "test": {"happy": 2, "sad": 1}})
    notes = check_data(relabel(load_dataset(ds), EMOTIONS))
    assert notes == ["the valid split has no sadness faces: early stopping and calibration cannot see them"]


def test_an_unknown_starting_model_or_ferplus_path_is_a_clear_error(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]):
    ds = _write_folder(tmp_path / "ds", {"train": {"happy": 6}, "valid": {"happy": 2}})
    assert main(["finetune", str(ds), "--from", str(tmp_path / "nothing"), "--out", str(tmp_path / "run")]) == 2
    assert f"{tmp_path / 'nothing'}: no such file or folder" in capsys.readouterr().err
    assert main(["finetune", str(ds), "--ferplus", str(tmp_path / "fer"), "--out", str(tmp_path / "run")]) == 2
    assert f"--ferplus {tmp_path / 'fer'}: no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_head_only_trains_the_head_and_keeps_batchnorm_statistics():
    model = create_model("fernet", num_classes=8)
    freeze_features(model)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.3.weight", "head.3.bias"}
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model.train()
    model(torch.rand(4, 1, 48, 48)).sum().backward()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.features[0][0].weight.grad is None and model.head[3].weight.grad is not None


def test_head_only_on_an_ensemble_trains_each_members_head():
    spec = {"model": "fernet", "model_kwargs": {"widths": [8, 8, 16, 16], "depths": [1, 1, 1]}}
    model = create_model("ensemble", num_classes=8, members=[spec, spec])
    freeze_features(model)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"members.{i}.head.3.{p}" for i in (0, 1) for p in ("weight", "bias")}
