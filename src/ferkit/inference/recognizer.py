"""Recognizer: image -> faces -> crops -> probabilities -> one result per face."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.detection import DEFAULT_DETECTOR, DetectorOptions, Face, FaceDetector, create_detector, crop_faces
from ferkit.inference.base import Classifier
from ferkit.inference.images import ImageSource, load_image_scaled

UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class FaceResult:
    """The emotion of one face.

    Attributes:
        box: (x, y, w, h) in image pixels.
        emotion: the most probable emotion, or "uncertain" below the recognizer's min_confidence.
        confidence: probability of the most probable emotion.
        probabilities: every emotion's probability, in EMOTIONS order.
        detection_score: the face detector's confidence.
    """

    box: tuple[int, int, int, int]
    emotion: str
    confidence: float
    probabilities: dict[str, float]
    detection_score: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "emotion": self.emotion,
            "confidence": round(self.confidence, 6),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "detection_score": round(self.detection_score, 4),
        }


@dataclass(frozen=True)
class Analysis:
    """Everything analyze() computed for one image: the RGB image, detections, crops and results.

    ``image`` and ``faces`` are in the pixels of the image as decoded; ``results`` boxes are in
    the original image's pixels, ``scale`` times larger when a huge JPEG was decoded at reduced
    size (1.0 otherwise). Draw with ``annotate(analysis.image, analysis.results, box_scale=analysis.scale)``.
    """

    image: np.ndarray
    faces: list[Face]
    crops: np.ndarray
    results: list[FaceResult]
    scale: float = 1.0


class Recognizer:
    """Detects faces and classifies their emotions. Thread-safe; one instance can serve many callers.

    Args:
        classifier: a torch or ONNX Runtime classifier backend.
        detector: a face detector.
        min_confidence: below this top probability, the emotion is reported as "uncertain".
    """

    def __init__(self, classifier: Classifier, detector: FaceDetector, min_confidence: float | None = None) -> None:
        self.classifier = classifier
        self.detector = detector
        self.min_confidence = min_confidence

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities (N, 8) float32 for uint8 gray face crops (N, 48, 48); rows sum to 1."""
        faces = np.asarray(faces, dtype=np.uint8)
        if faces.ndim == 2:
            faces = faces[None]
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.classifier.probabilities(faces)

    def detect(self, image: ImageSource) -> tuple[np.ndarray, list[Face], float]:
        """The image as RGB uint8 (as decoded), the faces found in it, and the scale from its
        pixels to the original image's."""
        rgb, scale = load_image_scaled(image)
        return rgb, self.detector.detect(rgb), scale

    def crops(self, rgb: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """48x48 gray crops (N, 48, 48) of ``faces`` in an RGB image, as the model was trained on."""
        return crop_faces(rgb, list(faces), self.classifier.preprocessing.size)

    def results(self, faces: Sequence[Face], probs: np.ndarray, scale: float = 1.0) -> list[FaceResult]:
        """Pair detected faces with their probability rows; boxes multiplied by ``scale``."""
        return self._results([(_scaled(face.box, scale), face.score) for face in faces], probs)

    def results_from_probs(self, results: Sequence[FaceResult], probs: np.ndarray) -> list[FaceResult]:
        """The same faces with other probabilities (e.g. smoothed over time)."""
        return self._results([(r.box, r.detection_score) for r in results], probs)

    def _results(self, boxes: Sequence[tuple[tuple[int, int, int, int], float]], probs: np.ndarray) -> list[FaceResult]:
        out = []
        for (box, score), row in zip(boxes, probs):
            k = int(row.argmax())
            confident = self.min_confidence is None or row[k] >= self.min_confidence
            out.append(FaceResult(
                box=box,
                emotion=self.labels[k] if confident else UNCERTAIN,
                confidence=float(row[k]),
                probabilities={name: float(p) for name, p in zip(self.labels, row)},
                detection_score=score,
            ))
        return out

    def analyze(self, image: ImageSource) -> list[FaceResult]:
        """One result per face in an image (path, bytes, PIL image, or RGB uint8 array), largest first."""
        return self.analyze_image(image).results

    def analyze_image(self, image: ImageSource) -> Analysis:
        """analyze(), keeping the decoded image, the detections and the crops (for display and Grad-CAM)."""
        rgb, faces, scale = self.detect(image)
        crops = self.crops(rgb, faces)
        return Analysis(rgb, faces, crops, self.results(faces, self.classify(crops), scale), scale)

    def analyze_many(self, images: Iterable[ImageSource]) -> list[list[FaceResult]]:
        """analyze() for many images, classifying all their faces in one batch."""
        return [analysis.results for analysis in self.analyze_decoded([load_image_scaled(i) for i in images])]

    def analyze_decoded(self, decoded: Sequence[tuple[np.ndarray, float]],
                        classify: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Analysis]:
        """analyze_image() for images already decoded, as (RGB uint8 array, scale to the original
        pixels) pairs: every face of every image classified in one batch by ``classify``
        (default: this recognizer's; the service passes its micro-batcher)."""
        found = [(rgb, self.detector.detect(rgb), scale) for rgb, scale in decoded]
        crops = [self.crops(rgb, faces) for rgb, faces, _ in found]
        results = self.results_many([(faces, batch, scale) for (_, faces, scale), batch in zip(found, crops)], classify)
        return [Analysis(rgb, faces, batch, rows, scale)
                for (rgb, faces, scale), batch, rows in zip(found, crops, results)]

    def with_settings(self, detector: FaceDetector, min_confidence: float | None) -> Recognizer:
        """A recognizer sharing this one's classifier, with another detector and confidence floor
        (per-request options of the service); nothing is loaded or copied."""
        return Recognizer(self.classifier, detector, min_confidence)

    def results_many(self, found: Sequence[tuple[Sequence[Face], np.ndarray, float]],
                     classify: Callable[[np.ndarray], np.ndarray] | None = None) -> list[list[FaceResult]]:
        """The results of several images' (faces, crops, scale), every crop classified in one
        batch by ``classify`` (default: this recognizer's; e.g. a shared micro-batcher)."""
        crops = [batch for _, batch, _ in found]
        size = self.classifier.preprocessing.size
        probs = (classify or self.classify)(np.concatenate(crops) if crops else np.zeros((0, size, size), np.uint8))
        out, start = [], 0
        for faces, batch, scale in found:
            out.append(self.results(faces, probs[start : start + len(batch)], scale))
            start += len(batch)
        return out


def _scaled(box: tuple[int, int, int, int], scale: float) -> tuple[int, int, int, int]:
    if scale == 1.0:
        return box
    x, y, w, h = box
    return round(x * scale), round(y * scale), round(w * scale), round(h * scale)


def load_classifier(
    model: str | Path | None = None,
    backend: str = "auto",
    tta: bool = False,
    device: str = "cpu",
    prior: str = "train",
    expected_sha256: str | None = None,
    precision: str = "auto",
) -> Classifier:
    """The classifier backend ``load`` runs for these arguments (see ``load``): ONNX Runtime where
    an ONNX file exists and ``backend`` is "auto" or "onnx" (the bundled models: their
    DEFAULT_PRECISION), torch otherwise."""
    from ferkit.errors import ConfigError, FerkitError
    from ferkit.inference.base import check_prior
    from ferkit.inference.bundled import onnx_file, resolve_model

    check_prior(prior)
    path = resolve_model(model)
    onnx_path = onnx_file(path, precision) if backend != "torch" else None
    if backend == "auto":
        backend = "onnx" if onnx_path is not None else "torch"
    if backend == "onnx":
        from ferkit.inference.onnx_backend import OnnxClassifier

        if onnx_path is None:
            raise FerkitError(f"{path}: the onnx backend needs a .onnx file; make one with `ferkit export --format onnx`")
        from ferkit.inference.integrity import authorize, safetensors_description
        from ferkit.inference.metadata import METADATA_FILE, WEIGHTS_FILE

        torch_weights: Path | None = path / WEIGHTS_FILE if path.is_dir() else None
        if torch_weights is not None and torch_weights.is_file():
            # Grad-CAM's weights are checked now: a damaged file fails the load, not a later request.
            authorize(torch_weights, path / METADATA_FILE, safetensors_description)
        else:
            torch_weights = None
        return OnnxClassifier(onnx_path, tta=tta, prior=prior, expected_sha256=expected_sha256,
                              torch_weights=torch_weights)
    if backend == "torch":
        from ferkit.inference.classifier import FaceClassifier

        return FaceClassifier.from_path(path, tta=tta, device=device, prior=prior, expected_sha256=expected_sha256)
    raise ConfigError(f"unknown backend '{backend}'; choose torch, onnx or auto")


def load(
    model: str | Path | None = None,
    backend: str = "auto",
    detector: str = DEFAULT_DETECTOR,
    detector_options: DetectorOptions | None = None,
    min_confidence: float | None = None,
    tta: bool = False,
    device: str = "cpu",
    prior: str = "train",
    expected_sha256: str | None = None,
    precision: str = "auto",
) -> Recognizer:
    """Load a Recognizer: the bundled ``fast`` model by default, with no network access.

    Args:
        model: a bundled model's name ("fast", "accurate"), a run folder, a .safetensors or a
            .onnx file; None for the bundled "fast".
        backend: "onnx" (ONNX Runtime, torch never imported), "torch", or "auto": ONNX Runtime
            wherever an ONNX file exists (the bundled models, a .onnx file, a run folder with an
            exported model.onnx), torch otherwise. Grad-CAM loads torch when it is first asked.
        detector: "yunet" (default, CNN with landmarks) or "haar".
        detector_options: minimum face size, score threshold, maximum faces, largest only.
        min_confidence: report "uncertain" below this top probability.
        tta: average each face with its mirror image (twice the classifier time).
        device: torch device (torch backend only).
        prior: "train" (faces as frequent as in FER+: mostly neutral and happy; the default) or
            "uniform" (every emotion equally likely: posed or elicited expressions).
        expected_sha256: the sha256 of the file the backend reads (.safetensors for torch, the
            .onnx file for ONNX Runtime) as you know it from a trusted source; loading fails if
            the file differs. The hash stored in model.json only catches corruption: whoever
            replaces the weights can rewrite it too.
        precision: ONNX Runtime only: "fp32", "int8" (statically quantized) or "auto" (the bundled
            model's chosen precision; fp32 for other models).
    """
    classifier = load_classifier(model, backend, tta=tta, device=device, prior=prior, expected_sha256=expected_sha256,
                                 precision=precision)
    return Recognizer(classifier, create_detector(detector, detector_options), min_confidence)
