"""The models shipped inside the package: they load offline by name, their hashes check, and (with
FER+ at hand) their test accuracy and balanced accuracy are no more than 0.3 points below the
numbers published with them, for both priors."""

import numpy as np
import pytest

import ferkit
from conftest import REPO, full_ferplus_path
from ferkit.errors import CheckpointError
from ferkit.inference.bundled import BUNDLED_MODELS, WEIGHTS_ROOT, bundled_models, bundled_weights, default_weights
from ferkit.inference.checkpoint import load_model

SHIPPED = bundled_models()
pytestmark = pytest.mark.skipif(not SHIPPED, reason="this checkout has no bundled model (src/ferkit/weights/)")


def test_fast_is_the_default_and_every_bundled_model_loads_by_name():
    assert "fast" in SHIPPED and default_weights() == bundled_weights("fast")
    assert ferkit.load().classifier.metadata["sha256"] == ferkit.load("fast").classifier.metadata["sha256"]
    for name in SHIPPED:
        rec = ferkit.load(name)
        assert rec.labels == ferkit.EMOTIONS
        meta = rec.classifier.metadata
        assert {"test_metrics", "test_metrics_uniform", "calibration", "uniform_prior", "sha256"} <= set(meta)
        probs = rec.classify(np.zeros((3, 48, 48), np.uint8))
        np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    size = sum(f.stat().st_size for f in WEIGHTS_ROOT.rglob("*") if f.is_file())
    assert size <= 25 * 1024 * 1024


def test_a_missing_bundled_model_is_a_clear_error():
    for name in set(BUNDLED_MODELS) - set(SHIPPED):
        with pytest.raises(CheckpointError, match=f"no bundled '{name}' model"):
            ferkit.load(name)
    with pytest.raises(CheckpointError, match="not a bundled model"):
        bundled_weights("huge")


@pytest.mark.parametrize("name", SHIPPED)
def test_tta_averages_the_logits_of_each_face_and_its_mirror(name: str):
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    plain, mirrored = ferkit.load(name), ferkit.load(name, tta=True)
    expected = (plain.classifier.raw_logits(faces) + plain.classifier.raw_logits(faces[..., ::-1])) / 2
    np.testing.assert_allclose(mirrored.classifier.raw_logits(faces), expected, atol=1e-4)
    assert not np.allclose(expected, plain.classifier.raw_logits(faces), atol=1e-3)


@pytest.mark.data
@pytest.mark.skipif(full_ferplus_path() is None, reason="FER+ not found: set FERKIT_DATA or put ../shared/data")
@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("prior", ["train", "uniform"])
def test_bundled_model_accuracy_matches_its_card(tmp_path, name: str, prior: str):
    from ferkit.data import load_dataset
    from ferkit.evaluation.evaluate import EvalOptions, evaluate_weights

    folder = bundled_weights(name)
    published = load_model(folder).metadata["test_metrics" if prior == "train" else "test_metrics_uniform"]
    data = load_dataset(full_ferplus_path(), progress=False)
    metrics = evaluate_weights(folder, data, tmp_path, EvalOptions(prior=prior))
    assert metrics["images"] == 3137
    assert metrics["accuracy"] >= published["accuracy"] - 0.003
    assert metrics["balanced_accuracy"] >= published["balanced_accuracy"] - 0.003


@pytest.mark.parametrize("name", SHIPPED)
def test_model_card_states_the_published_numbers(name: str):
    card = REPO / "MODEL_CARD.md"
    if not card.is_file():
        pytest.skip("MODEL_CARD.md is in the source repository, not in installed packages")
    meta = load_model(bundled_weights(name)).metadata
    text = card.read_text()
    assert f"## `{name}`" in text
    for key in ("test_metrics", "test_metrics_uniform"):
        assert f"{100 * meta[key]['accuracy']:.2f}%" in text
        assert f"{100 * meta[key]['balanced_accuracy']:.2f}%" in text
