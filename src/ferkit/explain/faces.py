"""Grad-CAM over a Recognizer's faces: heatmaps for crops, and the analysed photo with each face's
heatmap blended in. Explanations stand above inference: the Recognizer knows nothing of them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ferkit.explain.gradcam import gradcam_faces
from ferkit.explain.overlay import overlay_on_image
from ferkit.inference.base import Classifier
from ferkit.inference.recognizer import Analysis, Recognizer


def explain_crops(classifier: Classifier, crops: np.ndarray, targets: Sequence[int] | None = None) -> np.ndarray:
    """Grad-CAM heatmaps (N, H, W) in [0, 1] for gray crops (N, H, W), for ``targets`` (a class per
    crop) or each crop's predicted class. The ONNX backend hands over the torch model of the same
    weights (loaded on first use); an ExplainUnavailableError where it has none."""
    return gradcam_faces(classifier.torch_classifier().model, crops, classifier.preprocessing,
                         target=None if targets is None else list(targets))


def gradcam_overlay(recognizer: Recognizer, analysis: Analysis, max_faces: int | None = None) -> np.ndarray:
    """The analysed RGB image with Grad-CAM (for the predicted emotion) blended into each face,
    or into the ``max_faces`` largest only (the others are not explained: no time spent)."""
    out = analysis.image
    count = len(analysis.faces) if max_faces is None else min(max_faces, len(analysis.faces))
    if not count:
        return out.copy()
    labels = recognizer.labels
    targets = [int(np.argmax([r.probabilities[n] for n in labels])) for r in analysis.results[:count]]
    for face, heat in zip(analysis.faces[:count], explain_crops(recognizer.classifier, analysis.crops[:count], targets)):
        out = overlay_on_image(out, face, heat)
    return out
