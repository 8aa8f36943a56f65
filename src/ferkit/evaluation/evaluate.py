"""`ferkit evaluate`: score weights on a split and write metrics, plots and a report.

Any classifier backend can be scored: the torch model of the weights, or the ONNX file (fp32 or
int8) that ``ferkit.load`` runs. Grad-CAM always explains the torch model of the same weights."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from ferkit.data.dataset import FaceData
from ferkit.data.protocols import LabelledSplit, apply_protocol
from ferkit.errors import ConfigError, DataError, FerkitError
from ferkit.evaluation import plots
from ferkit.evaluation.calibration import fit_temperature, softmax
from ferkit.evaluation.metrics import (
    classification_metrics,
    coverage_curve,
    expected_calibration_error,
    reliability_bins,
    report_text,
    roc_curves,
)
from ferkit.evaluation.robustness import CAMERA_CORRUPTIONS, corruptions
from ferkit.explain.gradcam import gradcam_faces
from ferkit.inference.base import Classifier
from ferkit.inference.classifier import FaceClassifier
from ferkit.inference.metadata import sha256_file
from ferkit.inference.recognizer import load_classifier
from ferkit.models import count_parameters, create_model, macs_per_face

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)
GRADCAM_FACES_PER_CLASS = 100
GRADCAM_EXAMPLES = 16


@dataclass(frozen=True)
class EvalOptions:
    """What `ferkit evaluate` computes besides the core metrics, and which backend it scores.

    Attributes:
        backend: "torch" (the weights' torch model; the default of these functions), "onnx" or
            "auto": what ``ferkit.load`` runs (ONNX Runtime where an ONNX file exists; the
            default of `ferkit evaluate`).
        precision: with the ONNX backend: "fp32", "int8" or "auto" (a bundled model's default
            precision, fp32 for other weights).
    """

    split: str = "test"
    tta: bool = False
    min_confidence: float | None = None
    robustness: bool = False
    gradcam: bool = False
    prior: str = "train"
    backend: str = "torch"
    precision: str = "auto"


def _save(fig: Figure, path: Path) -> str:
    fig.savefig(path, dpi=110)
    return path.name


def labelled_split(data: FaceData, split: str) -> LabelledSplit:
    """The split under the majority protocol (hard labels as they are); an empty split is an error."""
    labelled = apply_protocol(data.split(split), "majority", len(data.classes))
    if len(labelled) == 0:
        raise DataError(f"{data.source}: the '{split}' split has no faces with a majority label")
    return labelled


def _temperature(classifier: Classifier, data: FaceData, split: str) -> tuple[float, str]:
    if "calibration" in classifier.metadata:
        return classifier.temperature, "stored with the weights (fitted on valid)"
    if "valid" in data.splits and split != "valid":
        valid = labelled_split(data, "valid")
        return fit_temperature(classifier.logits(valid.images), valid.labels), "fitted on valid now"
    return 1.0, "none (no validation split)"


def best_performance(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed's summary: best accuracies and lowest losses with their epochs."""
    summary: dict[str, Any] = {}
    for key, better in (("train_acc", max), ("val_acc", max), ("train_loss", min), ("val_loss", min)):
        rows = [r for r in history if r.get(key) is not None]
        if rows:
            row = better(rows, key=lambda r: r[key])
            summary[key] = {"value": row[key], "epoch": row["epoch"]}
    summary["epochs"] = len(history)
    summary["training_seconds"] = round(sum(r.get("epoch_seconds") or 0 for r in history), 1)
    return summary


def evaluate_weights(weights: str | Path, data: FaceData, out: Path, options: EvalOptions) -> dict[str, Any]:
    """Evaluate one set of weights on ``data`` with the backend of ``options`` and write every file
    into ``out``; returns the metrics."""
    if options.backend == "torch" and options.precision != "auto":
        raise ConfigError(f"precision '{options.precision}' is for the onnx backend; the torch model runs in fp32")
    classifier = load_classifier(weights, options.backend, tta=options.tta, prior=options.prior,
                                 precision=options.precision)
    return evaluate_classifier(classifier, data, out, options)


def evaluate_classifier(classifier: Classifier, data: FaceData, out: Path, options: EvalOptions) -> dict[str, Any]:
    """Evaluate a loaded classifier (its own TTA and prior; ``options`` gives the rest) on ``data``
    and write every file into ``out``; returns the metrics."""
    out.mkdir(parents=True, exist_ok=True)
    weights_file = classifier.weights_file
    names = classifier.labels
    if tuple(names) != tuple(data.classes):
        raise FerkitError(
            f"the weights predict {', '.join(names)} but {data.source} is labelled {', '.join(data.classes)}; "
            "evaluate on data with the same label set"
        )
    split = labelled_split(data, options.split)
    explainer = classifier.torch_classifier() if options.gradcam else None  # a bare .onnx file fails here, not last
    logger.info("evaluating %s (%s, %s) on %d %s faces", weights_file, classifier.backend, classifier.precision,
                len(split), options.split)
    logits = classifier.logits(split.images)
    temperature, temperature_source = _temperature(classifier, data, options.split)
    raw, probs = softmax(logits), softmax(logits, temperature)
    labels = split.labels
    architecture = _architecture(classifier)
    metrics = classification_metrics(labels, probs, names)
    metrics.update(
        ece_uncalibrated=expected_calibration_error(labels, raw),
        temperature=temperature,
        temperature_source=temperature_source,
        split=options.split,
        protocol="FER+ majority vote" if data.split(options.split).votes is not None else "hard labels",
        tta="hflip" if classifier.tta else "none",
        prior=classifier.prior,
        backend=classifier.backend,
        precision=classifier.precision,
        weights=str(weights_file),
        weights_sha256=sha256_file(weights_file),
        model=classifier.metadata.get("model"),
        parameters=count_parameters(architecture).total,
        macs_per_face=macs_per_face(architecture),
        data_source=data.source,
    )
    curve = coverage_curve(labels, probs)
    metrics["coverage_curve"] = curve
    if options.min_confidence is not None:
        metrics["abstention"] = abstention(labels, probs, options.min_confidence)
    figures = _core_figures(metrics, labels, raw, probs, names, options.min_confidence, out)
    history_file = weights_file.parent / "history.json"
    if history_file.is_file():
        history = json.loads(history_file.read_text())
        metrics["best_performance"] = best_performance(history)
        figures["history"] = _save(plots.history_figure(history, classifier.metadata.get("epoch")), out / "history.png")
    if options.robustness:
        metrics["robustness"] = robustness_metrics(classifier, split, metrics)
        figures["robustness"] = _save(plots.robustness_figure(metrics["robustness"]), out / "robustness.png")
    if explainer is not None:
        figures.update(_gradcam_figures(explainer, split, probs, names, out))
    (out / "classification_report.txt").write_text(report_text(labels, probs, names))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    metrics["figures"] = figures
    return metrics


def _architecture(classifier: Classifier) -> nn.Module:
    """The torch model whose parameters and MACs per face are reported: the same architecture
    whichever backend runs the weights."""
    if isinstance(classifier, FaceClassifier):
        return classifier.model
    metadata = classifier.metadata
    return create_model(metadata["model"], num_classes=len(classifier.labels), **metadata.get("model_kwargs", {}))


def abstention(labels: np.ndarray, probs: np.ndarray, min_confidence: float) -> dict[str, Any]:
    """Coverage and accuracy when faces below ``min_confidence`` are answered "uncertain"."""
    confident = probs.max(axis=1) >= min_confidence
    correct = probs.argmax(axis=1) == labels
    return {
        "min_confidence": min_confidence,
        "coverage": float(confident.mean()),
        "accuracy_answered": float(correct[confident].mean()) if confident.any() else None,
        "uncertain": int((~confident).sum()),
    }


def _core_figures(metrics: dict[str, Any], labels: np.ndarray, raw: np.ndarray, probs: np.ndarray,
                  names: tuple[str, ...], min_confidence: float | None, out: Path) -> dict[str, str]:
    aucs = [metrics["per_class"][n]["auc"] for n in names]
    reliability = plots.reliability_figure(reliability_bins(labels, raw), reliability_bins(labels, probs),
                                           metrics["ece_uncalibrated"], metrics["ece"], metrics["temperature"])
    return {
        "confusion_matrix": _save(plots.confusion_matrix_figure(metrics["confusion_matrix"], names), out / "confusion_matrix.png"),
        "roc": _save(plots.roc_figure(roc_curves(labels, probs), aucs, names), out / "roc.png"),
        "reliability": _save(reliability, out / "reliability.png"),
        "coverage": _save(plots.coverage_figure(metrics["coverage_curve"], min_confidence), out / "coverage.png"),
    }


def robustness_metrics(classifier: Classifier, split: LabelledSplit, clean: dict[str, Any]) -> dict[str, Any]:
    """Accuracy and balanced accuracy under each corruption, their drops from clean (in points of
    a fraction: -0.05 is 5 points lower), and the means over the camera corruptions and over all."""
    rows: dict[str, dict[str, float]] = {"none": {"accuracy": clean["accuracy"],
                                                  "balanced_accuracy": clean["balanced_accuracy"]}}
    suite = corruptions()
    for name, corrupt in suite.items():
        predicted = classifier.logits(corrupt(split.images)).argmax(axis=1)
        rows[name] = {"accuracy": float(accuracy_score(split.labels, predicted)),
                      "balanced_accuracy": float(balanced_accuracy_score(split.labels, predicted))}
    names = list(suite)
    for mean_name, members in (("mean_camera", CAMERA_CORRUPTIONS), ("mean_all", names)):
        rows[mean_name] = {key: float(np.mean([rows[m][key] for m in members])) for key in ("accuracy", "balanced_accuracy")}
    for row in rows.values():
        row["accuracy_drop"] = row["accuracy"] - rows["none"]["accuracy"]
        row["balanced_accuracy_drop"] = row["balanced_accuracy"] - rows["none"]["balanced_accuracy"]
    return rows


def _gradcam_figures(classifier: FaceClassifier, split: LabelledSplit, probs: np.ndarray,
                     names: tuple[str, ...], out: Path) -> dict[str, str]:
    predicted = probs.argmax(axis=1)
    model, prep = classifier.model, classifier.loaded.preprocessing
    rng = np.random.default_rng(0)
    side = prep.size
    mean_faces = np.zeros((len(names), side, side), np.uint8)
    mean_maps = np.zeros((len(names), side, side), np.float32)
    counts = []
    for k in range(len(names)):
        index = np.flatnonzero((split.labels == k) & (predicted == k))
        index = rng.permutation(index)[:GRADCAM_FACES_PER_CLASS]
        counts.append(len(index))
        if len(index):
            mean_faces[k] = split.images[index].mean(axis=0).round().astype(np.uint8)
            mean_maps[k] = gradcam_faces(model, split.images[index], prep, target=k).mean(axis=0)
    right = rng.permutation(np.flatnonzero(predicted == split.labels))[: GRADCAM_EXAMPLES // 2]
    wrong = rng.permutation(np.flatnonzero(predicted != split.labels))[: GRADCAM_EXAMPLES // 2]
    chosen = np.concatenate([right, wrong]).astype(int)
    example_maps = gradcam_faces(model, split.images[chosen], prep, target=predicted[chosen].tolist())
    return {
        "gradcam_average": _save(plots.gradcam_average_figure(mean_faces, mean_maps, counts, names), out / "gradcam_class_average.png"),
        "gradcam_examples": _save(plots.gradcam_examples_figure(split.images[chosen], example_maps, split.labels[chosen],
                                                                predicted[chosen], names), out / "gradcam_examples.png"),
    }


def weights_name(weights: str | Path) -> str:
    """A short name for weights: the run folder's name, or the file's stem."""
    path = Path(weights)
    return path.name if path.is_dir() else (path.parent.name if path.stem == "weights" else path.stem)


def run_evaluation(weights: Sequence[str | Path], data: FaceData, out: str | Path, options: EvalOptions) -> Path:
    """Evaluate one or several weights on the same data; returns the path of report.md."""
    from ferkit.evaluation.report import write_report

    out = Path(out)
    results: dict[str, dict[str, Any]] = {}
    for w in weights:
        name = weights_name(w)
        if name in results:
            raise ConfigError(f"two weights are both called '{name}'; give run folders with different names")
        results[name] = evaluate_weights(w, data, out / name if len(weights) > 1 else out, options)
    return write_report(out, results)
