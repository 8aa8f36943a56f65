"""The model shipped inside the package: it loads offline, its hash checks, and (with FER+ at hand)
its test accuracy is no more than 0.3 points below the number published with it."""

import numpy as np
import pytest

import ferkit
from conftest import full_ferplus_path
from ferkit.inference.bundled import BUNDLED_DIR, default_weights
from ferkit.inference.checkpoint import load_model

pytestmark = pytest.mark.skipif(not (BUNDLED_DIR / "weights.safetensors").is_file(),
                                reason="this checkout has no bundled model (src/ferkit/weights/)")


def test_bundled_model_loads_and_classifies():
    rec = ferkit.load()
    assert rec.labels == ferkit.EMOTIONS
    meta = rec.classifier.metadata
    assert {"test_metrics", "calibration", "temperature", "sha256"} <= set(meta)
    probs = rec.classify(np.zeros((3, 48, 48), np.uint8))
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (default_weights() / "weights.safetensors").stat().st_size < 25 * 1024 * 1024


def test_tta_averages_the_logits_of_each_face_and_its_mirror():
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    plain, mirrored = ferkit.load(), ferkit.load(tta=True)
    expected = (plain.classifier.raw_logits(faces) + plain.classifier.raw_logits(faces[..., ::-1])) / 2
    np.testing.assert_allclose(mirrored.classifier.raw_logits(faces), expected, atol=1e-4)
    assert not np.allclose(expected, plain.classifier.raw_logits(faces), atol=1e-3)


@pytest.mark.data
@pytest.mark.skipif(full_ferplus_path() is None, reason="FER+ not found: set FERKIT_DATA or put ../shared/data")
def test_bundled_model_accuracy_matches_its_card(tmp_path):
    from ferkit.data import load_dataset
    from ferkit.evaluation.evaluate import EvalOptions, evaluate_weights

    published = load_model(BUNDLED_DIR).metadata["test_metrics"]
    metrics = evaluate_weights(BUNDLED_DIR, load_dataset(full_ferplus_path(), progress=False), tmp_path, EvalOptions())
    assert metrics["images"] == 3137
    assert metrics["accuracy"] >= published["accuracy"] - 0.003
    assert metrics["balanced_accuracy"] >= published["balanced_accuracy"] - 0.003



def test_model_card_states_the_published_numbers():
    card = (BUNDLED_DIR.parents[2] / "MODEL_CARD.md")
    if not card.is_file():
        pytest.skip("MODEL_CARD.md is in the source repository, not in installed packages")
    published = load_model(BUNDLED_DIR).metadata["test_metrics"]
    text = card.read_text()
    assert f"{100 * published['accuracy']:.2f}%" in text
    assert f"{100 * published['balanced_accuracy']:.2f}%" in text
