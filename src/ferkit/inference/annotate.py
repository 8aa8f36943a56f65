"""Drawing results onto images: a box, a label and small probability bars per face."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ferkit.inference.recognizer import UNCERTAIN, FaceResult
from ferkit.labels import EMOTION_COLORS


def annotate(image_rgb: np.ndarray, results: Sequence[FaceResult], track_ids: Sequence[int] | None = None,
             bars: bool = True, box_scale: float = 1.0) -> np.ndarray:
    """Return a copy of an RGB uint8 image with each face's box, label and probability bars drawn.

    ``box_scale``: the boxes are in pixels of an image this many times larger (Analysis.scale).
    """
    import cv2

    out = np.ascontiguousarray(image_rgb.copy())
    scale = max(0.4, min(out.shape[:2]) / 900)
    thickness = max(1, round(2 * scale))
    for i, result in enumerate(results):
        x, y, w, h = (round(v / box_scale) for v in result.box)
        colour = EMOTION_COLORS.get(result.emotion, (255, 255, 255))
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thickness)
        label = f"{result.emotion} {result.confidence:.2f}" if result.emotion != UNCERTAIN else UNCERTAIN
        if track_ids is not None:
            label = f"#{track_ids[i]} {label}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, thickness)
        top = max(0, y - th - base - 4)
        cv2.rectangle(out, (x, top), (x + tw + 4, top + th + base + 4), colour, -1)
        cv2.putText(out, label, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), thickness,
                    cv2.LINE_AA)
        if bars:
            _bars(out, result, x, y + h + 3, max(w, 60), scale)
    return out


def _bars(out: np.ndarray, result: FaceResult, x: int, y: int, width: int, scale: float) -> None:
    import cv2

    row = max(4, round(7 * scale))
    for k, (name, p) in enumerate(result.probabilities.items()):
        top = y + k * row
        if top + row > out.shape[0]:
            break
        cv2.rectangle(out, (x, top), (x + width, top + row - 1), (30, 30, 30), -1)
        cv2.rectangle(out, (x, top), (x + round(width * p), top + row - 1), EMOTION_COLORS.get(name, (255, 255, 255)), -1)
