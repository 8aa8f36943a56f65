"""A smoke `ferkit train` run on a few hundred faces, through the command line."""

import csv
import json
from pathlib import Path

import pytest
import torch

from ferkit.cli import main
from ferkit.data import apply_protocol, load_dataset
from ferkit.inference.checkpoint import load_model
from ferkit.labels import EMOTIONS

RUN_FILES = {"weights.safetensors", "model.json", "history.json", "history.csv", "model_summary.txt",
             "config.yaml", "checkpoints"}


def _train(data: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data", str(data), "--out", str(out), "--name", "smoke", "--model", "fernet",
                 "--batch-size", "32", "--no-progress", "--seed", "1", *extra])


def test_smoke_run_writes_a_complete_run_folder(smoke_data: Path, tmp_path: Path):
    assert _train(smoke_data, tmp_path, "--epochs", "1") == 0
    run = tmp_path / "smoke"
    assert RUN_FILES <= {p.name for p in run.iterdir()}
    meta = json.loads((run / "model.json").read_text())
    assert meta["model"] == "fernet" and meta["labels"] == list(EMOTIONS)
    assert meta["label_mode"] == "majority" and meta["epoch"] == 0
    assert meta["preprocessing"] == {"color": "gray", "size": 48, "mean": 0.5, "std": 0.25}
    assert meta["data"]["fingerprint"] == load_dataset(smoke_data).fingerprint
    assert set(meta["metrics"]) >= {"val_loss", "val_acc", "train_loss"}
    assert meta["hardware"].endswith(" cores") and meta["train_seconds"] > 0 and meta["epochs_run"] == 1
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0] and history[0]["lr"] == pytest.approx(1e-3)
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert float(rows[0]["val_acc"]) == pytest.approx(history[0]["val_acc"])
    summary = (run / "model_summary.txt").read_text()
    assert "Total params: 1,264,744" in summary and "Non-trainable params: 2,464" in summary

    # The saved weights reproduce the logits of the trained network (one epoch: best == last).
    loaded = load_model(run)
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    from ferkit.models import create_model

    trained = create_model("fernet")
    trained.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    faces = apply_protocol(load_dataset(smoke_data).split("test"), "majority", 8).images
    x = loaded.preprocessing(faces)
    torch.testing.assert_close(loaded.model(x), trained.eval()(x), rtol=0, atol=0)


def test_resume_continues_history(smoke_data: Path, tmp_path: Path):
    assert _train(smoke_data, tmp_path, "--epochs", "1") == 0
    assert _train(smoke_data, tmp_path, "--epochs", "2", "--resume") == 0
    history = json.loads((tmp_path / "smoke" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1]


def test_existing_run_is_not_overwritten(smoke_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert _train(smoke_data, tmp_path, "--epochs", "1") == 0
    assert _train(smoke_data, tmp_path, "--epochs", "1") == 2
    assert "already holds a run" in capsys.readouterr().err


def test_training_learns_the_synthetic_task(smoke_data: Path, tmp_path: Path):
    """Five epochs on label-dependent stripes must beat chance (1/8) on validation by far."""
    assert _train(smoke_data, tmp_path, "--epochs", "6", "--lr", "0.003", "--monitor", "val_acc", "--seed", "2") == 0
    meta = json.loads((tmp_path / "smoke" / "model.json").read_text())
    assert meta["metrics"]["val_acc"] > 0.5


def test_fine_tuning_with_degradations_is_recorded(smoke_data: Path, trained_run: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]):
    import yaml

    augment = '{"degrade": 0.7, "noise": 12, "jpeg": 25}'
    assert _train(smoke_data, tmp_path, "--epochs", "1", "--lr", "1e-12", "--init-weights", str(trained_run),
                  "--augment", augment) == 0
    run = tmp_path / "smoke"
    meta = json.loads((run / "model.json").read_text())
    start = load_model(trained_run)
    assert meta["init_weights"]["sha256"] == start.metadata["sha256"]
    for recorded in (meta["training"]["augment"], yaml.safe_load((run / "config.yaml").read_text())["augment"]):
        assert recorded["degrade"] == 0.7 and recorded["noise"] == 12 and recorded["jpeg"] == 25
        assert recorded["blur"] == 1.6 and recorded["low_res"] == 14  # defaults of the other degradations
    tuned = load_model(run).model.state_dict()
    for name, tensor in start.model.state_dict().items():
        if name.endswith("weight") and tensor.ndim == 4:  # convolutions: a learning rate of 1e-12 keeps them
            torch.testing.assert_close(tuned[name], tensor, rtol=0, atol=1e-6)
    # another architecture cannot start from these weights
    assert main(["train", "--data", str(smoke_data), "--out", str(tmp_path), "--name", "other", "--model",
                 "baseline_cnn", "--epochs", "1", "--no-progress", "--init-weights", str(trained_run)]) == 2
    assert "pass the same --model and --model-kwargs" in capsys.readouterr().err


def test_train_help_lists_every_degradation(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for key in ("degrade", "gamma", "blur", "low_res", "noise", "shot_noise", "jpeg", "init-weights"):
        assert key in text


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # what a hostile checkpoint does: run code when unpickled
        return (Path(self.marker).write_text, ("ran",))


def test_resume_refuses_a_checkpoint_that_runs_code(smoke_data: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]):
    assert _train(smoke_data, tmp_path, "--epochs", "1") == 0
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "payload": _Payload(str(marker))}, tmp_path / "smoke" / "checkpoints" / "last.ckpt")
    assert _train(smoke_data, tmp_path, "--epochs", "2", "--resume") == 2
    assert "not loaded" in capsys.readouterr().err
    assert not marker.exists()


def test_sgd_with_a_one_cycle_schedule(smoke_data: Path, tmp_path: Path):
    assert _train(smoke_data, tmp_path, "--epochs", "3", "--optimizer", "sgd", "--scheduler", "onecycle",
                  "--lr", "0.05", "--momentum", "0.9") == 0
    history = json.loads((tmp_path / "smoke" / "history.json").read_text())
    rates = [row["lr"] for row in history]
    assert all(rate < 0.05 for rate in rates) and rates[-1] < rates[1]  # warm-up to 0.05 within epoch 0, then down
    meta = json.loads((tmp_path / "smoke" / "model.json").read_text())
    assert meta["training"]["optimizer"] == "sgd" and meta["training"]["scheduler"] == "onecycle"


def test_monitor_last_keeps_the_final_epoch(smoke_data: Path, tmp_path: Path):
    assert _train(smoke_data, tmp_path, "--epochs", "2", "--monitor", "last") == 0
    meta = json.loads((tmp_path / "smoke" / "model.json").read_text())
    assert meta["epoch"] == 1 and meta["monitor"] == "last" and meta["epochs_run"] == 2
    state = torch.load(tmp_path / "smoke" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    final = {k.removeprefix("model."): v for k, v in state["state_dict"].items()}
    for name, tensor in load_model(tmp_path / "smoke").model.state_dict().items():
        torch.testing.assert_close(tensor, final[name])


def test_monitor_val_robust_acc_keeps_the_epoch_that_holds_up(smoke_data: Path, tmp_path: Path):
    assert _train(smoke_data, tmp_path, "--epochs", "2", "--monitor", "val_robust_acc", "--lr", "0.003") == 0
    history = json.loads((tmp_path / "smoke" / "history.json").read_text())
    meta = json.loads((tmp_path / "smoke" / "model.json").read_text())
    values = [row["val_robust_acc"] for row in history]
    assert all(0 < v <= 1 for v in values)
    best = max(range(len(values)), key=values.__getitem__)
    assert meta["monitor"] == "val_robust_acc" and meta["epoch"] == best
    assert meta["metrics"]["val_robust_acc"] == values[best]


class _Interrupt(Exception):
    pass


def test_an_interrupted_run_resumed_ends_with_the_weights_of_an_uninterrupted_one(
    smoke_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
):
    """Killed in the middle of epoch 2 and resumed from epoch 1's checkpoint: same data order,
    augmentation and degradation draws, dropout, optimizer and one-cycle schedule, so the same weights."""
    import importlib

    import lightning as L

    from ferkit.training import build_config, fit

    fit_module = importlib.import_module("ferkit.training.fit")

    def config(name: str):
        return build_config(overrides={
            "data": str(smoke_data), "out": str(tmp_path), "name": name, "model": "fernet", "epochs": 3,
            "batch_size": 32, "optimizer": "sgd", "lr": 0.05, "scheduler": "onecycle", "label_mode": "probability",
            "augment": {"degrade": 0.8}, "monitor": "last", "progress": False, "seed": 5,
        })

    class KillInEpoch2(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch == 2 and batch_idx == 2:
                raise _Interrupt

    build_trainer = fit_module._trainer
    fit(config("whole"))
    monkeypatch.setattr(fit_module, "_trainer", lambda *a: _with(build_trainer(*a), KillInEpoch2()))
    with pytest.raises(_Interrupt):
        fit(config("cut"))
    monkeypatch.setattr(fit_module, "_trainer", build_trainer)
    fit(config("cut"), resume=True)

    def weights(name: str) -> dict[str, torch.Tensor]:
        ckpt = torch.load(tmp_path / name / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        assert ckpt["epoch"] == 2
        return ckpt["state_dict"]

    whole, cut = weights("whole"), weights("cut")
    assert whole.keys() == cut.keys()
    for key in whole:
        torch.testing.assert_close(cut[key], whole[key], rtol=0, atol=0, msg=key)
    history = [json.loads((tmp_path / n / "history.json").read_text()) for n in ("whole", "cut")]
    assert [r["epoch"] for r in history[1]] == [0, 1, 2]
    assert [r["lr"] for r in history[1]] == [r["lr"] for r in history[0]]
    assert [r["train_loss"] for r in history[1]] == [r["train_loss"] for r in history[0]]


def _with(trainer, callback):
    trainer.callbacks.insert(0, callback)
    return trainer


def test_distillation_loss_mixes_labels_and_the_softened_teacher():
    import math

    from ferkit.training.module import distillation_loss

    logits = torch.tensor([[2.0, 0.0, -1.0]])
    teacher = torch.tensor([[0.0, 3.0, 0.0]])
    target = torch.tensor([0])
    t = 2.0

    def softmax(v):
        e = [math.exp(a) for a in v]
        return [a / sum(e) for a in e]

    student_p, teacher_p = softmax([v / t for v in (2.0, 0.0, -1.0)]), softmax([v / t for v in (0.0, 3.0, 0.0)])
    kl = sum(q * math.log(q / p) for p, q in zip(student_p, teacher_p))
    hard = -math.log(softmax([2.0, 0.0, -1.0])[0])
    assert distillation_loss(logits, target, teacher, 0.3, t).item() == pytest.approx(0.7 * hard + 0.3 * t * t * kl, rel=1e-6)
    assert distillation_loss(logits, target, teacher, 0.0, t).item() == pytest.approx(hard, rel=1e-6)
    # the same logits as the teacher: no soft term left
    assert distillation_loss(teacher, target, teacher, 1.0, t).item() == pytest.approx(0.0, abs=1e-6)


def test_a_student_distilled_from_a_teacher_records_it(smoke_data: Path, trained_run: Path, tmp_path: Path):
    assert _train(smoke_data, tmp_path, "--epochs", "1", "--teacher", str(trained_run), "--distill-weight", "0.7",
                  "--distill-temperature", "3", "--augment", '{"degrade": 0.5}') == 0
    meta = json.loads((tmp_path / "smoke" / "model.json").read_text())
    teacher = json.loads((trained_run / "model.json").read_text())
    assert meta["teacher"]["sha256"] == teacher["sha256"] and meta["teacher"]["weight"] == "0.7"
    assert meta["training"]["distill_temperature"] == 3.0
    # the teacher is not part of the student's weights
    assert json.loads((tmp_path / "smoke" / "model.json").read_text())["model"] == "fernet"
    assert load_model(tmp_path / "smoke").model.state_dict().keys() == load_model(trained_run).model.state_dict().keys()


def test_distillation_options_are_checked(smoke_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert _train(smoke_data, tmp_path, "--epochs", "1", "--teacher", "fast", "--distill-weight", "1.5") == 2
    assert "distill_weight" in capsys.readouterr().err


def _distance(run: Path, start: Path) -> float:
    tuned, initial = load_model(run).model.state_dict(), load_model(start).model.state_dict()
    return sum(float(((tuned[k] - v) ** 2).sum()) for k, v in initial.items() if k.endswith("weight") and v.ndim > 1)


def test_l2sp_pulls_the_weights_toward_their_start(smoke_data: Path, trained_run: Path, tmp_path: Path):
    from ferkit.models import create_model
    from ferkit.training.config import TrainConfig
    from ferkit.training.module import FerClassifier

    model = create_model("fernet", num_classes=len(EMOTIONS))
    module = FerClassifier(model, TrainConfig(data="x", init_weights="start", l2sp=0.5), [1 / len(EMOTIONS)] * 8)
    assert module.l2sp_penalty().item() == 0.0
    weights = [p for p in model.parameters() if p.ndim > 1]
    vectors = [p for p in model.parameters() if p.ndim == 1]  # biases and BatchNorm: not pulled
    with torch.no_grad():
        weights[0].add_(0.1)
        vectors[0].add_(5.0)
    assert module.l2sp_penalty().item() == pytest.approx(0.5 * 0.5 * 0.01 * weights[0].numel(), rel=1e-4)
    decay_group = module.configure_optimizers()["optimizer"].param_groups[0]
    assert decay_group["weight_decay"] == 0.0  # the pull toward the start replaces decay toward zero
    # trained at a large learning rate, the run with L2-SP ends nearer its starting weights
    distances = {}
    for name, extra in (("free", ()), ("l2sp", ("--l2sp", "50"))):
        assert main(["train", "--data", str(smoke_data), "--out", str(tmp_path), "--name", name, "--model", "fernet",
                     "--batch-size", "32", "--no-progress", "--seed", "1", "--epochs", "2", "--lr", "0.01",
                     "--init-weights", str(trained_run), *extra]) == 0
        distances[name] = _distance(tmp_path / name, trained_run)
    assert distances["l2sp"] < 0.5 * distances["free"]


def test_l2sp_needs_starting_weights(smoke_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert _train(smoke_data, tmp_path, "--epochs", "1", "--l2sp", "0.1") == 2
    assert "--init-weights" in capsys.readouterr().err


def test_mixup_blends_each_face_and_its_label_at_the_same_share():
    from ferkit.training.module import mixup

    # faces of class 0 are black, faces of class 1 white: a mixed face's gray level is its class-1 share
    x = torch.cat([torch.zeros(8, 1, 4, 4), torch.ones(8, 1, 4, 4)]).contiguous(memory_format=torch.channels_last)
    targets = torch.nn.functional.one_hot(torch.tensor([0] * 8 + [1] * 8), len(EMOTIONS)).float()
    shares = set()
    for seed in range(4):
        torch.manual_seed(seed)
        mixed, mixed_targets = mixup(x, targets, alpha=0.4)
        level = mixed.mean(dim=(1, 2, 3))
        assert torch.allclose(mixed, level[:, None, None, None].expand_as(mixed))  # one partner per face
        assert torch.allclose(mixed_targets[:, 1], level, atol=1e-6)
        assert torch.allclose(mixed_targets.sum(dim=1), torch.ones(16))
        torch.manual_seed(seed)
        assert torch.equal(mixup(x, targets, alpha=0.4)[0], mixed)  # the seeded generator decides
        shares.add(tuple(sorted({round(v, 4) for v in level.tolist()})))
    assert len(shares) > 1  # a new share per batch


def test_mixup_changes_the_training_and_is_recorded(smoke_data: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]):
    common = ["--epochs", "1", "--label-mode", "majority"]
    assert main(["train", "--data", str(smoke_data), "--out", str(tmp_path), "--name", "plain", "--model", "fernet",
                 "--batch-size", "32", "--no-progress", "--seed", "1", *common]) == 0
    assert _train(smoke_data, tmp_path, *common, "--mixup", "0.4") == 0
    assert json.loads((tmp_path / "smoke" / "model.json").read_text())["training"]["mixup"] == 0.4
    assert _distance(tmp_path / "smoke", tmp_path / "plain") > 0
    assert _train(smoke_data, tmp_path, "--epochs", "1", "--mixup", "-1", "--name", "bad") == 2
    assert "mixup" in capsys.readouterr().err
