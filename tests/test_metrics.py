import numpy as np
import pytest

from ferkit.evaluation.calibration import fit_temperature, softmax
from ferkit.evaluation.metrics import (
    classification_metrics,
    coverage_curve,
    expected_calibration_error,
    multiclass_brier,
    per_class_auc,
    reliability_bins,
    report_text,
)

NAMES = ("a", "b", "c")
LABELS = np.array([0, 0, 0, 1, 1, 2])
PROBS = np.array([
    [0.8, 0.1, 0.1],   # right
    [0.6, 0.3, 0.1],   # right
    [0.2, 0.7, 0.1],   # wrong -> b
    [0.1, 0.9, 0.0],   # right
    [0.5, 0.4, 0.1],   # wrong -> a
    [0.1, 0.1, 0.8],   # right
])


def test_hand_built_predictions():
    m = classification_metrics(LABELS, PROBS, NAMES)
    assert m["images"] == 6
    assert m["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # a: precision 2/3, recall 2/3 -> f1 2/3; b: precision 1/2, recall 1/2; c: 1, 1
    assert m["per_class"]["a"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["precision"] == pytest.approx(0.5)
    assert m["macro"]["f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["weighted"]["f1"] == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 1) / 6)
    assert m["per_class"]["c"]["support"] == 1
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.6, 0.2, 0.9, 0.4, 0.8])))


def test_auc_exact_values():
    # class c: its one positive (0.8) outranks every negative -> 1.0
    # class a: positives 0.8, 0.6, 0.2 against negatives 0.1, 0.5, 0.1 -> 8 of 9 pairs ordered
    aucs = per_class_auc(LABELS, PROBS)
    assert aucs[2] == pytest.approx(1.0)
    assert aucs[0] == pytest.approx(8 / 9)
    assert classification_metrics(LABELS, PROBS, NAMES)["macro_auc"] == pytest.approx(np.mean(aucs))


def test_auc_is_undefined_for_a_class_without_faces():
    labels = np.array([0, 1, 0, 1])
    probs = np.array([[0.6, 0.3, 0.1]] * 4)
    assert per_class_auc(labels, probs)[2] is None


def test_ece_and_brier_on_known_values():
    # confidences 0.8, 0.6, 0.7, 0.9, 0.5, 0.8 in distinct bins except the two 0.8s (both right)
    # |acc - conf| per bin weighted: 0.8 bin: 2 faces, acc 1 -> 0.2; 0.6: 0.4; 0.7: 0.7; 0.9: 0.1; 0.5: 0.5
    expected = (2 * 0.2 + 0.4 + 0.7 + 0.1 + 0.5) / 6
    assert expected_calibration_error(LABELS, PROBS) == pytest.approx(expected)
    brier = np.mean([((PROBS[i] - np.eye(3)[LABELS[i]]) ** 2).sum() for i in range(6)])
    assert multiclass_brier(LABELS, PROBS) == pytest.approx(brier)


def test_reliability_bins_and_coverage():
    bins = reliability_bins(LABELS, PROBS, bins=5)  # edges 0, .2, .4, .6, .8, 1
    assert bins["count"].tolist() == [0, 0, 2, 3, 1]  # 0.5, 0.6 | 0.7, 0.8, 0.8 | 0.9
    assert bins["accuracy"][3] == pytest.approx(2 / 3)
    curve = coverage_curve(LABELS, PROBS, np.array([0.0, 0.75]))
    assert curve["coverage"] == pytest.approx([1.0, 0.5])
    assert curve["accuracy"] == pytest.approx([4 / 6, 1.0])


def test_report_text_has_the_familiar_rows():
    text = report_text(LABELS, PROBS, NAMES)
    for row in ("precision", "recall", "f1-score", "support", "accuracy", "macro avg", "weighted avg"):
        assert row in text


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 4)) * 2
    labels = np.array([rng.choice(4, p=p) for p in softmax(true_logits)])
    fitted = fit_temperature(true_logits * 3, labels)  # over-confident by a factor 3
    assert fitted == pytest.approx(3.0, rel=0.1)
    assert softmax(true_logits * 3, fitted).sum(axis=1) == pytest.approx(np.ones(4000))


def test_logit_adjustment_raises_balanced_accuracy_within_the_accuracy_budget():
    from ferkit.evaluation.calibration import balanced_accuracy, choose_logit_adjustment

    rng = np.random.default_rng(0)
    prior = np.array([0.9, 0.1])
    labels = (rng.random(5000) < prior[1]).astype(int)
    # the network's logits carry the prior: the rare class 1 wins only when its evidence is strong
    evidence = rng.normal(0, 1, 5000) + 1.5 * labels
    logits = np.stack([np.zeros(5000), evidence + np.log(prior[1] / prior[0])], axis=1)
    tau = choose_logit_adjustment(logits, labels, prior, max_accuracy_drop=0.02)
    assert 0 < tau <= 2
    adjusted = logits - tau * np.log(prior)
    before, after = logits.argmax(axis=1), adjusted.argmax(axis=1)
    assert balanced_accuracy(labels, after) > balanced_accuracy(labels, before) + 0.05
    assert (after == labels).mean() >= (before == labels).mean() - 0.02
    assert choose_logit_adjustment(logits, labels, prior, max_accuracy_drop=0.0) <= tau
