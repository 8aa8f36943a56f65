import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_ferplus

import ferkit
from ferkit.cli import main
from ferkit.data import load_dataset
from ferkit.errors import DataError, FerkitError
from ferkit.evaluation.evaluate import EvalOptions, evaluate_weights, run_evaluation
from ferkit.evaluation.robustness import CAMERA_CORRUPTIONS
from ferkit.inference.base import Classifier
from ferkit.inference.bundled import ONNX_FILES, bundled_weights
from ferkit.inference.checkpoint import load_model

ALL_FILES = {"metrics.json", "classification_report.txt", "confusion_matrix.png", "roc.png", "reliability.png",
             "coverage.png", "history.png", "robustness.png", "gradcam_class_average.png", "gradcam_examples.png",
             "report.md"}


def evaluate_split(data: Path) -> np.ndarray:
    from ferkit.data import apply_protocol

    return apply_protocol(load_dataset(data).split("test"), "majority", 8).images


def test_training_stores_a_temperature_fitted_on_valid(trained_run: Path):
    meta = load_model(trained_run).metadata
    assert meta["calibration"]["fitted_on"] == "valid" and meta["calibration"]["faces"] == 64
    assert meta["temperature"] == meta["calibration"]["temperature"] > 0
    assert meta["calibration"]["nll_after"] <= meta["calibration"]["nll_before"] + 1e-9


def test_evaluate_writes_every_file(trained_run: Path, smoke_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "eval"
    code = main(["evaluate", "--weights", str(trained_run), "--data", str(smoke_data), "--out", str(out),
                 "--tta", "hflip", "--robustness", "--gradcam", "--min-confidence", "0.5"])
    assert code == 0, capsys.readouterr().err
    assert ALL_FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 64 and metrics["tta"] == "hflip" and metrics["protocol"] == "FER+ majority vote"
    rows = metrics["robustness"]
    assert set(rows) >= {"none", "noise_std8", "blur_sigma1", "jpeg_q30", "lowres_24px", "occlude_eyes",
                         "crop_tight_80%", "mean_camera", "mean_all"}
    assert rows["none"]["accuracy"] == metrics["accuracy"]
    assert "lowres_24px_bilinear" in rows
    camera = [rows[n]["balanced_accuracy"] for n in CAMERA_CORRUPTIONS]
    assert rows["mean_camera"]["balanced_accuracy"] == pytest.approx(np.mean(camera))
    assert rows["jpeg_q30"]["accuracy_drop"] == pytest.approx(rows["jpeg_q30"]["accuracy"] - metrics["accuracy"])
    from ferkit.inference.classifier import FaceClassifier

    faces = evaluate_split(smoke_data)
    confident = FaceClassifier.from_path(trained_run, tta=True).probabilities(faces).max(axis=1) >= 0.5
    assert metrics["abstention"]["coverage"] == pytest.approx(confident.mean())
    assert metrics["abstention"]["uncertain"] == int((~confident).sum())
    assert sum(map(sum, metrics["confusion_matrix"])) == 64
    assert metrics["best_performance"]["epochs"] == 3
    report = (out / "report.md").read_text()
    for figure in ALL_FILES - {"metrics.json", "classification_report.txt", "report.md"}:
        assert f"]({figure})" in report
    assert "macro avg" in report and "Best performance" in report


@pytest.mark.parametrize("prior", ["train", "uniform"])
def test_metrics_match_a_direct_computation(skewed_run: Path, skewed_data: Path, tmp_path: Path, prior: str):
    """On a run with a skewed class prior the stored logit bias is far from zero, so the check
    fails if evaluation drops the bias, picks the wrong prior or the wrong temperature."""
    from ferkit.data import apply_protocol
    from ferkit.inference.base import UNIFORM_PRIOR_KEY

    data = load_dataset(skewed_data)
    metrics = evaluate_weights(skewed_run, data, tmp_path, EvalOptions(prior=prior))
    loaded = load_model(skewed_run)
    stored = loaded.metadata if prior == "train" else loaded.metadata[UNIFORM_PRIOR_KEY]
    test = apply_protocol(data.split("test"), "majority", 8)
    with torch.inference_mode():
        raw = loaded.model(loaded.preprocessing(test.images)).numpy()
    predicted = (raw + np.array(stored["logit_bias"])).argmax(axis=1)
    assert metrics["accuracy"] == pytest.approx(float((predicted == test.labels).mean()))
    assert metrics["temperature"] == pytest.approx(stored["temperature"])
    assert metrics["prior"] == prior


def test_several_weights_give_a_comparison_table(trained_run: Path, smoke_data: Path, tmp_path: Path):
    other = tmp_path / "copy"
    other.mkdir()
    for name in ("weights.safetensors", "model.json"):
        (other / name).write_bytes((trained_run / name).read_bytes())
    report = run_evaluation([trained_run, other], load_dataset(smoke_data), tmp_path / "cmp", EvalOptions())
    text = report.read_text()
    assert "| weights | model | parameters | best val accuracy" in text
    assert "| tiny | fernet | 1,264,744 |" in text and "| copy | fernet |" in text
    assert (tmp_path / "cmp" / "tiny" / "metrics.json").is_file() and (tmp_path / "cmp" / "copy" / "roc.png").is_file()


def test_mismatched_labels_and_missing_split(trained_run: Path, tmp_path: Path):
    from PIL import Image

    root = tmp_path / "seven"
    (root / "test" / "happy").mkdir(parents=True)
    (root / "test" / "sad").mkdir(parents=True)
    Image.new("L", (48, 48)).save(root / "test" / "happy" / "a.png")
    Image.new("L", (48, 48)).save(root / "test" / "sad" / "b.png")
    with pytest.raises(FerkitError, match="the weights predict neutral, .* but .* is labelled happiness, sadness"):
        evaluate_weights(trained_run, load_dataset(root), tmp_path / "e", EvalOptions())
    only_test = write_ferplus(tmp_path / "only_test", {"test": 8})
    with pytest.raises(DataError, match="has no 'valid' split"):
        evaluate_weights(trained_run, load_dataset(only_test), tmp_path / "e", EvalOptions(split="valid"))


def test_explain_writes_overlays(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from PIL import Image

    crop = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    Image.fromarray(crop).save(tmp_path / "crop.png")
    (tmp_path / "broken.jpg").write_text("not an image")
    photo = Path(__file__).parent / "data" / "bbt3.jpg"
    code = main(["explain", str(photo), str(tmp_path / "crop.png"), str(tmp_path / "broken.jpg"),
                 "--weights", str(trained_run), "--out", str(tmp_path / "x"), "--all-classes"])
    assert code == 2  # one image failed, the others were still written
    written = {p.name for p in (tmp_path / "x").iterdir()}
    assert {"bbt3_gradcam.png", "crop_gradcam.png", "crop_face1_all_classes.png"} <= written
    assert {f"bbt3_face{i}_all_classes.png" for i in range(1, 6)} <= written
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err and captured.out.count("bbt3.jpg face") == 5


def test_calibrate_command_stores_bias_and_temperature(trained_run: Path, smoke_data: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["calibrate", "--weights", str(run), "--data", str(smoke_data)]) == 0
    record = json.loads(capsys.readouterr().out)
    meta = load_model(run).metadata
    assert meta["temperature"] == record["temperature"] and len(meta["logit_bias"]) == 8
    assert record["balanced_accuracy_after"] >= record["balanced_accuracy_before"]
    assert record["accuracy_after"] >= record["accuracy_before"] - 0.01
    from ferkit.inference.classifier import FaceClassifier

    clf = FaceClassifier.from_path(run)
    faces = np.zeros((2, 48, 48), np.uint8)
    np.testing.assert_allclose(clf.logits(faces), clf.raw_logits(faces) + np.array(meta["logit_bias"]), rtol=1e-6)


def _direct_scores(classifier: Classifier, data: Path) -> tuple[float, float]:
    """Accuracy and log loss of ``classifier`` on the test split of ``data``, computed here."""
    from ferkit.data import apply_protocol

    test = apply_protocol(load_dataset(data).split("test"), "majority", 8)
    probs = classifier.probabilities(test.images).astype(np.float64)
    accuracy = float((probs.argmax(axis=1) == test.labels).mean())
    return accuracy, float(-np.log(np.clip(probs[np.arange(len(test)), test.labels], 1e-12, 1)).mean())


@pytest.fixture()
def labelled_faces(tmp_path: Path) -> Path:
    return write_ferplus(tmp_path / "faces", {"test": 32}, seed=5)


def test_evaluate_scores_the_int8_file_that_load_runs_for_fast(labelled_faces: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]):
    from ferkit.inference.onnx_backend import OnnxClassifier

    int8 = bundled_weights("fast") / ONNX_FILES["int8"]
    assert ferkit.load("fast").classifier.weights_file == int8  # what evaluation must score by default
    out = tmp_path / "default"
    code = main(["evaluate", "--model", "fast", "--data", str(labelled_faces), "--out", str(out), "--gradcam"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert Path(metrics["weights"]) == int8 and metrics["backend"] == "onnx" and metrics["precision"] == "int8"
    assert metrics["weights_sha256"] == load_model(bundled_weights("fast")).metadata["onnx_sha256"][int8.name]
    accuracy, log_loss = _direct_scores(OnnxClassifier(int8), labelled_faces)
    assert metrics["accuracy"] == pytest.approx(accuracy) and metrics["log_loss"] == pytest.approx(log_loss, rel=1e-5)
    assert {"gradcam_class_average.png", "gradcam_examples.png"} <= {p.name for p in out.iterdir()}  # its torch twin
    assert "run by ONNX Runtime in int8" in (out / "report.md").read_text()


def test_evaluate_backend_torch_scores_the_torch_model(labelled_faces: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]):
    from ferkit.inference.classifier import FaceClassifier

    folder = bundled_weights("fast")
    out = tmp_path / "torch"
    assert main(["evaluate", "--model", "fast", "--backend", "torch", "--data", str(labelled_faces),
                 "--out", str(out)]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert Path(metrics["weights"]).name == "weights.safetensors" and metrics["backend"] == "torch"
    accuracy, log_loss = _direct_scores(FaceClassifier.from_path(folder), labelled_faces)
    assert metrics["accuracy"] == pytest.approx(accuracy) and metrics["log_loss"] == pytest.approx(log_loss, rel=1e-5)
    int8 = evaluate_weights(folder, load_dataset(labelled_faces), tmp_path / "int8", EvalOptions(backend="auto"))
    assert int8["log_loss"] != pytest.approx(metrics["log_loss"], rel=1e-6)  # the two backends really differ
    # the Python function keeps scoring the torch model unless told otherwise (scripts/ship_model.py)
    assert evaluate_weights(folder, load_dataset(labelled_faces), tmp_path / "py", EvalOptions())["backend"] == "torch"
    assert main(["evaluate", "--backend", "torch", "--precision", "int8", "--data", str(labelled_faces),
                 "--out", str(tmp_path / "x")]) == 2
    assert "is for the onnx backend" in capsys.readouterr().err


def test_gradcam_of_a_bare_onnx_file_fails_before_scoring(labelled_faces: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]):
    bare = tmp_path / "bare.onnx"
    bare.write_bytes((bundled_weights("fast") / ONNX_FILES["fp32"]).read_bytes())
    assert main(["evaluate", "--model", str(bare), "--data", str(labelled_faces), "--out", str(tmp_path / "e"),
                 "--gradcam"]) == 2
    assert "Grad-CAM needs the torch model" in capsys.readouterr().err
    assert not (tmp_path / "e" / "metrics.json").exists()
