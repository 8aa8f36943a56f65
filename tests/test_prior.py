"""The class prior: 'train' keeps the fitted partial logit adjustment, 'uniform' removes the training
prior completely; both backends apply the same bias and temperature."""

from pathlib import Path

import numpy as np
import pytest

import ferkit
from ferkit.cli import main
from ferkit.errors import CheckpointError, ConfigError
from ferkit.evaluation.calibration import fit_temperature, uniform_prior_calibration
from ferkit.inference.base import UNIFORM_PRIOR_KEY, softmax
from ferkit.inference.checkpoint import load_model, save_weights

FACES = np.random.default_rng(5).integers(0, 256, (16, 48, 48), dtype=np.uint8)


def test_uniform_calibration_removes_the_log_prior():
    prior = np.array([0.5, 0.3, 0.15, 0.05])
    raw = np.random.default_rng(0).normal(size=(200, 4))
    labels = np.random.default_rng(1).integers(0, 4, 200)
    record = uniform_prior_calibration(raw, labels, prior)
    bias = np.array(record["logit_bias"])
    np.testing.assert_allclose(bias - bias[0], -np.log(prior) + np.log(prior[0]), rtol=1e-9)
    assert abs(bias.sum()) < 1e-9 and record["class_prior"] == pytest.approx(prior.tolist())
    predicted = (raw + bias).argmax(axis=1)
    assert record["accuracy_valid"] == pytest.approx(float((predicted == labels).mean()))


def test_class_weights_change_the_fitted_temperature_as_a_subset_would():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1], [300, 300])
    logits = rng.normal(size=(600, 2)) + np.where(labels[:, None] == np.arange(2), 2.0, 0.0)
    logits[labels == 1] *= 3  # class 1 is over-confident, class 0 is not
    only_zero = fit_temperature(logits[labels == 0], labels[labels == 0])
    weighted = fit_temperature(logits, labels, class_weights=np.array([1.0, 0.0]))
    assert weighted == pytest.approx(only_zero, rel=1e-4)
    assert abs(fit_temperature(logits, labels) - only_zero) > 0.2


def test_skewed_run_stores_both_priors(skewed_run: Path):
    meta = load_model(skewed_run).metadata
    uniform = meta[UNIFORM_PRIOR_KEY]
    prior = np.array(uniform["class_prior"])
    assert prior[0] > 0.5  # the fixture is 60% neutral
    bias = np.array(uniform["logit_bias"])
    assert bias[0] == bias.min() and bias.max() - bias.min() > 1.0  # neutral pushed down, far from zero
    assert uniform["temperature"] > 0


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_both_backends_apply_the_chosen_prior(skewed_run: Path, tmp_path: Path, backend: str):
    model = skewed_run
    if backend == "onnx":
        model = tmp_path / "skewed.onnx"
        assert main(["export", str(model), "--model", str(skewed_run)]) == 0
    meta = load_model(skewed_run).metadata
    train, uniform = ferkit.load(model, backend=backend), ferkit.load(model, backend=backend, prior="uniform")
    raw = train.classifier.raw_logits(FACES)
    np.testing.assert_allclose(uniform.classifier.raw_logits(FACES), raw, atol=1e-5)
    for rec, bias, temperature in (
        (train, np.array(meta["logit_bias"]), meta["temperature"]),
        (uniform, np.array(meta[UNIFORM_PRIOR_KEY]["logit_bias"]), meta[UNIFORM_PRIOR_KEY]["temperature"]),
    ):
        expected = softmax(raw + bias, temperature)
        np.testing.assert_allclose(rec.classify(FACES), expected, atol=1e-5)
    # the uniform prior moves probability from neutral to the rare emotions
    assert uniform.classify(FACES)[:, 0].mean() < train.classify(FACES)[:, 0].mean()


def test_torch_and_onnx_agree_under_the_uniform_prior(skewed_run: Path, tmp_path: Path):
    onnx_file = tmp_path / "skewed.onnx"
    assert main(["export", str(onnx_file), "--model", str(skewed_run)]) == 0
    for tta in (False, True):
        torch_rec = ferkit.load(skewed_run, prior="uniform", tta=tta)
        onnx_rec = ferkit.load(onnx_file, prior="uniform", tta=tta)
        assert np.abs(torch_rec.classify(FACES) - onnx_rec.classify(FACES)).max() < 1e-4


def test_unknown_prior_and_weights_without_one(trained_run: Path, tmp_path: Path):
    import shutil

    with pytest.raises(ConfigError, match="unknown prior 'balanced'"):
        ferkit.load(trained_run, prior="balanced")
    old = tmp_path / "old"
    shutil.copytree(trained_run, old)
    loaded = load_model(old)
    meta = dict(loaded.metadata)
    meta.pop(UNIFORM_PRIOR_KEY)
    save_weights(loaded.model, old, meta)  # weights saved before the uniform prior was fitted
    assert ferkit.load(old).classify(FACES[:1]).shape == (1, 8)  # the default prior still works
    with pytest.raises(CheckpointError, match="ferkit calibrate"):
        ferkit.load(old, prior="uniform")


def test_predict_cli_takes_the_prior(skewed_run: Path, capsys: pytest.CaptureFixture[str]):
    import json

    photo = Path(__file__).parent / "data" / "amy1.png"
    rows = {}
    for prior in ("train", "uniform"):
        assert main(["predict", str(photo), "--model", str(skewed_run), "--prior", prior]) == 0
        rows[prior] = json.loads(capsys.readouterr().out.splitlines()[0])["faces"][0]["probabilities"]
    assert rows["uniform"]["neutral"] < rows["train"]["neutral"]


@pytest.mark.parametrize("prior", ["train", "uniform"])
def test_tta_uses_the_temperature_fitted_for_tta(skewed_run: Path, prior: str):
    meta = load_model(skewed_run).metadata
    stored = meta if prior == "train" else meta[UNIFORM_PRIOR_KEY]
    assert stored["temperature_tta"] > 0 and stored["temperature_tta"] != stored["temperature"]
    rec = ferkit.load(skewed_run, prior=prior, tta=True)
    assert rec.classifier.temperature == stored["temperature_tta"]
    expected = softmax(rec.classifier.raw_logits(FACES) + np.array(stored["logit_bias"]), stored["temperature_tta"])
    np.testing.assert_allclose(rec.classify(FACES), expected, atol=1e-5)
